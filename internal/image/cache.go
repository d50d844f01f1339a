package image

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// blobCache keeps manifests and config blobs by digest so that re-indexing a known image fetches
// nothing but (for tags) the tag's manifest. Content is addressed by its sha256, so a corrupt or
// tampered file is detected on read and treated as a miss.
type blobCache struct {
	dir string // empty: caching disabled
}

func (c blobCache) path(h v1.Hash) (string, bool) {
	if c.dir == "" || !validSHA256(h) {
		return "", false
	}
	return filepath.Join(c.dir, "blobs", "sha256", h.Hex), true
}

// get returns the cached content of h, or nil when it is not cached (or no longer valid).
func (c blobCache) get(h v1.Hash, limit int64) []byte {
	p, ok := c.path(h)
	if !ok {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil || int64(len(b)) > limit || !matches(b, h) {
		// A damaged entry is dropped so the next write replaces it.
		_ = os.Remove(p)
		return nil
	}
	return b
}

// put stores verified content atomically: readers never see a partial file.
func (c blobCache) put(h v1.Hash, b []byte) error {
	p, ok := c.path(h)
	if !ok {
		return nil
	}
	if !matches(b, h) {
		return fmt.Errorf("cache %s: content does not match digest", h)
	}
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cache %s: %w", h, err)
	}
	tmp, err := os.CreateTemp(dir, ".tmp-"+h.Hex[:12]+"-*")
	if err != nil {
		return fmt.Errorf("cache %s: %w", h, err)
	}
	_, werr := tmp.Write(b)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("cache %s: %w", h, err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("cache %s: %w", h, err)
	}
	return nil
}

func validSHA256(h v1.Hash) bool {
	if h.Algorithm != "sha256" || len(h.Hex) != 64 {
		return false
	}
	_, err := hex.DecodeString(h.Hex)
	return err == nil
}

// matches reports whether b has digest h. Only sha256 is supported: it is the only algorithm
// registries use in practice, and accepting others would let an attacker pick a weaker one.
func matches(b []byte, h v1.Hash) bool {
	if !validSHA256(h) {
		return false
	}
	sum := sha256.Sum256(b)
	want, _ := hex.DecodeString(h.Hex)
	return bytes.Equal(sum[:], want)
}

// readVerified reads at most limit bytes from r and checks them against h.
func readVerified(r io.Reader, h v1.Hash, limit int64, what string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", what, h, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s %s is larger than %d bytes", what, h, limit)
	}
	if !matches(b, h) {
		return nil, fmt.Errorf("%s %s: %w", what, h, ErrDigestMismatch)
	}
	return b, nil
}
