// Package layercache keeps what each layer contributed to an index, keyed by layer digest and
// extractor-set version, in files under the data directory. A layer any image already contributed
// is never downloaded again.
package layercache

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// maxEntrySize bounds a cache entry once decompressed, so a corrupted or planted file cannot
// exhaust memory.
const maxEntrySize = 256 << 20

var (
	digestPattern  = regexp.MustCompile(`^(sha256|sha384|sha512):[a-f0-9]{32,128}$`)
	versionPattern = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,64}$`)
)

// Cache is a directory of compressed entries. It is safe for concurrent use by several goroutines
// and processes: writes are atomic renames.
type Cache struct {
	dir string
	enc *zstd.Encoder
	dec *zstd.Decoder
}

// Open creates the cache directory if needed.
func Open(dir string) (*Cache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("layer cache: %w", err)
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, fmt.Errorf("layer cache: %w", err)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxEntrySize))
	if err != nil {
		return nil, fmt.Errorf("layer cache: %w", err)
	}
	return &Cache{dir: dir, enc: enc, dec: dec}, nil
}

func (c *Cache) path(digest, version string) (string, error) {
	if !digestPattern.MatchString(digest) {
		return "", fmt.Errorf("layer cache: invalid digest %q", digest)
	}
	if !versionPattern.MatchString(version) {
		return "", fmt.Errorf("layer cache: invalid version %q", version)
	}
	algo, hex, _ := strings.Cut(digest, ":")
	return filepath.Join(c.dir, version, algo, hex[:2], hex+".zst"), nil
}

// Get returns the entry for a layer, or ok=false when there is none. A corrupt entry is reported
// as an error; callers treat it as a miss and overwrite it.
func (c *Cache) Get(digest, version string) (data []byte, ok bool, err error) {
	p, err := c.path(digest, version)
	if err != nil {
		return nil, false, err
	}
	raw, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("layer cache: read %s: %w", digest, err)
	}
	data, err = c.dec.DecodeAll(raw, nil)
	if err != nil {
		return nil, false, fmt.Errorf("layer cache: entry for %s is corrupt: %w", digest, err)
	}
	return data, true, nil
}

// Put stores the entry for a layer, replacing any previous one atomically.
func (c *Cache) Put(digest, version string, data []byte) error {
	if len(data) > maxEntrySize {
		return fmt.Errorf("layer cache: entry for %s is %d bytes, more than %d", digest, len(data), maxEntrySize)
	}
	p, err := c.path(digest, version)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("layer cache: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return fmt.Errorf("layer cache: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := io.Copy(tmp, bytes.NewReader(c.enc.EncodeAll(data, nil))); err != nil {
		tmp.Close()
		return fmt.Errorf("layer cache: write %s: %w", digest, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("layer cache: write %s: %w", digest, err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return fmt.Errorf("layer cache: write %s: %w", digest, err)
	}
	return nil
}
