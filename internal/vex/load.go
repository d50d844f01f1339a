package vex

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Bounds on what Load reads from the paths it is given.
const (
	MaxFiles      = 4096
	MaxDepth      = 16
	MaxTotalStmts = 1 << 20
)

// Load reads the OpenVEX documents at paths (what --vex-location names). A file is read whatever
// its name and must be OpenVEX. A directory is searched for *.json files down to MaxDepth; there,
// JSON files that are not OpenVEX (other tools' output next to the VEX files) are skipped, while
// an OpenVEX document that is broken is an error. Documents come back in path order, so that
// "the later statement wins" ties break the same way on every run.
func Load(ctx context.Context, paths []string) ([]*Document, error) {
	var (
		docs  []*Document
		files int
		stmts int
	)
	add := func(path string, explicit bool) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if files++; files > MaxFiles {
			return fmt.Errorf("VEX locations hold more than %d files", MaxFiles)
		}
		doc, err := loadFile(path)
		if err != nil {
			if !explicit && errors.Is(err, ErrNotOpenVEX) {
				return nil
			}
			return err
		}
		if stmts += len(doc.Statements); stmts > MaxTotalStmts {
			return fmt.Errorf("VEX documents hold more than %d statements", MaxTotalStmts)
		}
		docs = append(docs, doc)
		return nil
	}
	for _, root := range paths {
		info, err := os.Stat(root)
		if err != nil {
			return nil, fmt.Errorf("VEX location: %w", err)
		}
		if !info.IsDir() {
			if err := add(root, true); err != nil {
				return nil, err
			}
			continue
		}
		var found []string
		err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return fmt.Errorf("VEX location %s: %w", root, err)
			}
			if d.IsDir() {
				rel, _ := filepath.Rel(root, path)
				if rel != "." && strings.Count(rel, string(filepath.Separator))+1 > MaxDepth {
					return fs.SkipDir
				}
				return nil
			}
			// Symlinks are not followed: a link could lead the walk out of the tree or in a loop.
			if d.Type().IsRegular() && strings.EqualFold(filepath.Ext(path), ".json") {
				if len(found) >= MaxFiles {
					return fmt.Errorf("VEX location %s holds more than %d JSON files", root, MaxFiles)
				}
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		sort.Strings(found)
		for _, path := range found {
			if err := add(path, false); err != nil {
				return nil, err
			}
		}
	}
	return docs, nil
}

func loadFile(path string) (*Document, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("VEX document: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("VEX document %s: %w", path, err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("VEX document %s: not a regular file", path)
	}
	if info.Size() > MaxDocumentSize {
		return nil, fmt.Errorf("VEX document %s: larger than %d bytes", path, MaxDocumentSize)
	}
	doc, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("VEX document %s: %w", path, err)
	}
	doc.Source = path
	return doc, nil
}

// ParseBytes is Parse for a document already in memory (an attestation's predicate, a file
// found in an image).
func ParseBytes(data []byte) (*Document, error) {
	return Parse(bytes.NewReader(data))
}
