package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"
)

// advisoriesStateKey names the state row that changes with every advisory import: its value is
// a fresh random token per committed import, so any process can tell whether what it remembers
// about advisories is still current with one indexed read.
const advisoriesStateKey = "advisories"

// maxCachedKeys bounds keyCache; past it the cache starts over (a store has a few hundred
// thousand distinct package keys at most, each a few dozen bytes).
const maxCachedKeys = 200_000

// keyRef is one advisory of a package key: its id and content hash.
type keyRef struct {
	id   string
	hash []byte
}

// keyCache remembers which advisories each package key has, for one advisory generation. Images
// on one base share most of their keys, and asking the database for a few hundred keys' advisories
// (one statement of a thousand parameters on SQLite) was most of matching a pushed image.
type keyCache struct {
	mu  sync.Mutex
	gen string
	m   map[PackageKey][]keyRef
}

// lookup returns the remembered refs of keys at generation gen and the keys it does not know.
func (c *keyCache) lookup(gen string, keys []PackageKey) (known map[PackageKey][]keyRef, missing []PackageKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen || c.m == nil {
		c.gen, c.m = gen, map[PackageKey][]keyRef{}
	}
	known = make(map[PackageKey][]keyRef, len(keys))
	for _, k := range keys {
		if refs, ok := c.m[k]; ok {
			known[k] = refs
		} else {
			missing = append(missing, k)
		}
	}
	return known, missing
}

// remember records what the database said of keys at generation gen (keys absent from refs have
// no advisories).
func (c *keyCache) remember(gen string, keys []PackageKey, refs map[PackageKey][]keyRef) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return // a newer generation was seen meanwhile
	}
	if len(c.m)+len(keys) > maxCachedKeys {
		c.m = map[PackageKey][]keyRef{}
	}
	for _, k := range keys {
		c.m[k] = refs[k]
	}
}

// advisoryGeneration reads the token of the last advisory import ("" before the first).
func (s *Store) advisoryGeneration(ctx context.Context) (string, error) {
	var gen string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM state WHERE key = $1`, advisoriesStateKey).Scan(&gen)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("advisory generation: %w", err)
	}
	return gen, nil
}

// bumpAdvisoryGeneration gives the advisories a new generation within an import's transaction.
func bumpAdvisoryGeneration(ctx context.Context, tx *txw) error {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO state (key, value, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
		advisoriesStateKey, hex.EncodeToString(b), time.Now().UnixNano())
	return err
}
