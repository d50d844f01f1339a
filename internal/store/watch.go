package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"time"
)

// TagDigest returns the digest repository:tag points at, or "" when the tag is unknown.
func (s *Store) TagDigest(ctx context.Context, repository, tag string) (string, error) {
	var digest string
	err := s.db.QueryRowContext(ctx, `SELECT digest FROM tags WHERE repository = $1 AND tag = $2`, repository, tag).Scan(&digest)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("tag %s:%s: %w", repository, tag, err)
	}
	return digest, nil
}

// Indexed reports whether digest was indexed: an image manifest stored under it, or an index
// (multi-platform manifest list) whose platforms were stored.
func (s *Store) Indexed(ctx context.Context, digest string) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM images WHERE digest = $1 OR index_digest = $2`, digest, digest).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("is %s indexed: %w", digest, err)
	}
	return n > 0, nil
}

// Failure is an image that could not be indexed after every retry.
type Failure struct {
	Digest, Repository, Tag, Error string
	Attempts                       int
	FailedAt                       time.Time
}

// MarkFailed records that digest (pulled as repository:tag) failed to index.
func (s *Store) MarkFailed(ctx context.Context, digest, repository, tag, reason string, attempts int) error {
	err := s.write(ctx, func(tx *txw) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO failures (digest, repository, tag, error, attempts, failed_at)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (digest) DO UPDATE SET repository = excluded.repository, tag = excluded.tag,
				error = excluded.error, attempts = excluded.attempts, failed_at = excluded.failed_at`,
			digest, repository, tag, reason, attempts, time.Now().UnixNano())
		return err
	})
	if err != nil {
		return fmt.Errorf("record failure of %s: %w", digest, err)
	}
	return nil
}

// ClearFailed forgets a failure once the image indexed.
func (s *Store) ClearFailed(ctx context.Context, digest string) error {
	err := s.write(ctx, func(tx *txw) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM failures WHERE digest = $1`, digest)
		return err
	})
	if err != nil {
		return fmt.Errorf("clear failure of %s: %w", digest, err)
	}
	return nil
}

// TagIndexed points repository:tag at digest, which has just been indexed, and forgets any
// recorded failure of digest: SetTag and ClearFailed in one commit (one per image on a burst).
func (s *Store) TagIndexed(ctx context.Context, repository, tag, digest string) error {
	err := s.write(ctx, func(tx *txw) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO tags (repository, tag, digest, updated_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (repository, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at`,
			repository, tag, digest, time.Now().UnixNano()); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM failures WHERE digest = $1`, digest)
		return err
	})
	if err != nil {
		return fmt.Errorf("tag %s:%s as indexed: %w", repository, tag, err)
	}
	return nil
}

// Failures lists images that failed to index, newest first.
func (s *Store) Failures(ctx context.Context) ([]Failure, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT digest, repository, tag, error, attempts, failed_at FROM failures ORDER BY failed_at DESC`)
	if err != nil {
		return nil, fmt.Errorf("failures: %w", err)
	}
	return scanFailures(rows)
}

// scanFailures reads rows of (digest, repository, tag, error, attempts, failed_at) and closes them.
func scanFailures(rows *sql.Rows) ([]Failure, error) {
	defer rows.Close()
	var out []Failure
	for rows.Next() {
		var f Failure
		var ns int64
		if err := rows.Scan(&f.Digest, &f.Repository, &f.Tag, &f.Error, &f.Attempts, &ns); err != nil {
			return nil, fmt.Errorf("failures: %w", err)
		}
		f.FailedAt = time.Unix(0, ns)
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("failures: %w", err)
	}
	return out, nil
}

// State returns the value of a progress marker, "" when unset.
func (s *Store) State(ctx context.Context, key string) (string, error) {
	var v string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM state WHERE key = $1`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("state %s: %w", key, err)
	}
	return v, nil
}

// SetState sets a progress marker.
func (s *Store) SetState(ctx context.Context, key, value string) error {
	err := s.write(ctx, func(tx *txw) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO state (key, value, updated_at) VALUES ($1, $2, $3)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
			key, value, time.Now().UnixNano())
		return err
	})
	if err != nil {
		return fmt.Errorf("set state %s: %w", key, err)
	}
	return nil
}

// ImageRow is one tagged image as `crowsnest images` lists it: a tag and one platform image.
type ImageRow struct {
	Repository, Tag string
	// Digest is the platform image's manifest digest; TagDigest what the tag points at (an index
	// for multi-platform images).
	Digest, TagDigest string
	Platform          string
	Packages          int
	// Findings counts findings by severity rating.
	Findings  map[string]int
	IndexedAt time.Time
}

// Images lists tagged, indexed images (repository "" = all), by repository, tag and platform.
func (s *Store) Images(ctx context.Context, repository string) ([]ImageRow, error) {
	q := `SELECT t.repository, t.tag, i.digest, t.digest, i.platform, i.package_count, i.indexed_at
		FROM tags t JOIN images i ON i.digest = t.digest OR i.index_digest = t.digest`
	var args []any
	if repository != "" {
		q += ` WHERE t.repository = $1`
		args = append(args, repository)
	}
	q += ` ORDER BY t.repository, t.tag, i.platform`
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	var out []ImageRow
	digests := map[string]bool{}
	for rows.Next() {
		var r ImageRow
		var ns int64
		if err := rows.Scan(&r.Repository, &r.Tag, &r.Digest, &r.TagDigest, &r.Platform, &r.Packages, &ns); err != nil {
			rows.Close()
			return nil, fmt.Errorf("images: %w", err)
		}
		r.IndexedAt = time.Unix(0, ns)
		digests[r.Digest] = true
		out = append(out, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	counts, err := s.findingCounts(ctx, digests)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Findings = counts[out[i].Digest]
	}
	return out, nil
}

// findingCounts counts findings by severity for each of digests.
func (s *Store) findingCounts(ctx context.Context, digests map[string]bool) (map[string]map[string]int, error) {
	list := make([]string, 0, len(digests))
	for d := range digests {
		list = append(list, d)
	}
	sort.Strings(list)
	out := map[string]map[string]int{}
	for start := 0; start < len(list); start += digestBatch {
		batch := list[start:min(start+digestBatch, len(list))]
		q, args := idInQuery(s.dialect, `SELECT image_digest, severity, COUNT(*) FROM findings WHERE image_digest IN (`, batch)
		rows, err := s.db.QueryContext(ctx, q+`) GROUP BY image_digest, severity`, args...)
		if err != nil {
			return nil, fmt.Errorf("finding counts: %w", err)
		}
		for rows.Next() {
			var d, sev string
			var n int
			if err := rows.Scan(&d, &sev, &n); err != nil {
				rows.Close()
				return nil, fmt.Errorf("finding counts: %w", err)
			}
			if out[d] == nil {
				out[d] = map[string]int{}
			}
			out[d][sev] = n
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// PlatformDigests returns the digests of the stored images indexed under digest: the image itself,
// or every platform of an index.
func (s *Store) PlatformDigests(ctx context.Context, digest string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT digest FROM images WHERE digest = $1 OR index_digest = $2 ORDER BY digest`, digest, digest)
	if err != nil {
		return nil, fmt.Errorf("images of %s: %w", digest, err)
	}
	out, err := scanStrings(rows)
	if err != nil {
		return nil, fmt.Errorf("images of %s: %w", digest, err)
	}
	return out, nil
}

// LockKey holds a lock on key shared by every process on the database until release is called:
// several watchers on one PostgreSQL index each image once. On SQLite one process owns the
// database (the watcher holds a file lock), so in-process locking is enough and this is a no-op.
func (s *Store) LockKey(ctx context.Context, key string) (release func(), err error) {
	if s.dialect != dialectPostgres {
		return func() {}, nil
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", key, err)
	}
	id := lockID(key)
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, id); err != nil {
		conn.Close()
		return nil, fmt.Errorf("lock %s: %w", key, err)
	}
	return func() {
		// A fresh context: the lock must be released even when the caller's work was canceled.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, id)
		conn.Close()
	}, nil
}

// lockID maps a key to PostgreSQL's 64-bit advisory lock space (FNV-1a), apart from the
// migration lock.
func lockID(key string) int64 {
	h := fnv.New64a()
	h.Write([]byte("crowsnest-key:"))
	h.Write([]byte(key))
	return int64(h.Sum64())
}
