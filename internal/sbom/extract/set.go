package extract

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"sort"
)

// Set is an ordered collection of extractors with one combined version.
type Set struct {
	extractors []Extractor
	version    string
}

// NewSet builds a set. Names must be unique.
func NewSet(extractors ...Extractor) (*Set, error) {
	if len(extractors) > 64 {
		return nil, fmt.Errorf("extractor set: %d extractors, at most 64", len(extractors))
	}
	seen := map[string]bool{}
	parts := make([]string, 0, len(extractors))
	for _, e := range extractors {
		if seen[e.Name()] {
			return nil, fmt.Errorf("extractor set: duplicate extractor %q", e.Name())
		}
		seen[e.Name()] = true
		parts = append(parts, fmt.Sprintf("%s@%d", e.Name(), e.Version()))
	}
	sort.Strings(parts)
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return &Set{extractors: extractors, version: hex.EncodeToString(h.Sum(nil))[:16]}, nil
}

// Version identifies the set's names and versions; layer cache entries are keyed by it.
func (s *Set) Version() string { return s.version }

// Extractors returns the extractors in order.
func (s *Set) Extractors() []Extractor { return s.extractors }

// Mask is a bit set of extractor positions in a Set.
type Mask uint64

// Required returns which extractors need the file; 0 means none.
func (s *Set) Required(path string, mode fs.FileMode, size int64) Mask {
	var m Mask
	for i, e := range s.extractors {
		if e.Required(path, mode, size) {
			m |= 1 << uint(i)
		}
	}
	return m
}

// MaxFileSize is the largest file any extractor in m will accept.
func (s *Set) MaxFileSize(m Mask) int64 {
	var max int64
	for i, e := range s.extractors {
		if m&(1<<uint(i)) == 0 {
			continue
		}
		limit := int64(MaxFileSize)
		if ms, ok := e.(MaxSizer); ok {
			limit = ms.MaxFileSize()
		}
		if limit > max {
			max = limit
		}
	}
	return max
}

// Each calls fn for each extractor in m.
func (s *Set) Each(m Mask, fn func(Extractor)) {
	for i, e := range s.extractors {
		if m&(1<<uint(i)) != 0 {
			fn(e)
		}
	}
}
