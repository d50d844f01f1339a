package advisory

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

// Bounds on an archive or directory tree. osv.dev's largest all.zip (npm, with the malicious
// package reports) holds a few hundred thousand records in about 1.5 GB of JSON.
const (
	MaxEntries           = 2_000_000
	MaxTotalUncompressed = 16 << 30
	// maxErrors is how many record errors Stats keeps for the message.
	maxErrors = 5
)

// ErrBrokenArchive is returned (wrapped) when an archive cannot be read: not a zip, truncated,
// corrupt, or a decompression bomb. Nothing of it should be imported.
var ErrBrokenArchive = errors.New("broken archive")

// Stats counts what a Walk read.
type Stats struct {
	// Read is the number of records parsed and handed to the callback (withdrawn ones
	// included).
	Read int
	// Skipped is the number of malformed records left out.
	Skipped int
	// Withdrawn is the number of withdrawn records among Read.
	Withdrawn int
	// Errors holds the first few errors of skipped records, each naming its file.
	Errors []string
}

func (s *Stats) skip(name string, err error) {
	s.Skipped++
	if len(s.Errors) < maxErrors {
		s.Errors = append(s.Errors, fmt.Sprintf("%s: %v", name, err))
	}
}

// Walk reads the OSV records at path - a single .json file, a directory tree of .json files,
// or a zip archive such as osv.dev's all.zip - and calls fn with each, in archive or lexical
// order. Withdrawn records are passed too, with Withdrawn set, so the caller can delete them.
// Malformed records are skipped and counted; an unreadable archive (not a zip, truncated,
// corrupt entry, bomb) is an error wrapping ErrBrokenArchive. An error from fn stops the walk
// and is returned as is.
func Walk(ctx context.Context, path string, fn func(*vuln.Advisory) error) (Stats, error) {
	return walk(ctx, path, limits{record: MaxRecordSize, total: MaxTotalUncompressed, entries: MaxEntries}, fn)
}

// limits are Walk's bounds; tests lower them.
type limits struct {
	record, total int64
	entries       int
}

func walk(ctx context.Context, path string, lim limits, fn func(*vuln.Advisory) error) (Stats, error) {
	var st Stats
	fi, err := os.Stat(path)
	if err != nil {
		return st, fmt.Errorf("read advisories: %w", err)
	}
	if fi.IsDir() {
		return walkDir(ctx, path, lim, fn)
	}
	f, err := os.Open(path)
	if err != nil {
		return st, fmt.Errorf("read advisories: %w", err)
	}
	defer f.Close()
	var magic [4]byte
	n, _ := io.ReadFull(f, magic[:])
	if strings.EqualFold(filepath.Ext(path), ".zip") || (n == 4 && string(magic[:]) == "PK\x03\x04") {
		return walkZip(ctx, f, fi.Size(), path, lim, fn)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return st, fmt.Errorf("read %s: %w", path, err)
	}
	if err := handleFile(f, fi.Size(), path, lim.record, &st, fn); err != nil {
		return st, err
	}
	if st.Read == 0 && st.Skipped > 0 {
		return st, fmt.Errorf("%s: %s", path, strings.Join(st.Errors, "; "))
	}
	return st, nil
}

// errCallback marks errors that come from the caller's fn, to return them unwrapped.
type errCallback struct{ err error }

func (e errCallback) Error() string { return e.err.Error() }
func (e errCallback) Unwrap() error { return e.err }

func handleFile(r io.Reader, size int64, name string, maxRecord int64, st *Stats, fn func(*vuln.Advisory) error) error {
	if size > maxRecord {
		st.skip(name, fmt.Errorf("record of %d bytes exceeds %d", size, maxRecord))
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(r, maxRecord+1))
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(data)) > maxRecord {
		st.skip(name, fmt.Errorf("record exceeds %d bytes", maxRecord))
		return nil
	}
	return handleRecord(data, name, st, fn)
}

func handleRecord(data []byte, name string, st *Stats, fn func(*vuln.Advisory) error) error {
	a, err := Parse(data)
	if err != nil {
		st.skip(name, err)
		return nil
	}
	if a.Source == "" {
		a.Source = name
	}
	st.Read++
	if a.Withdrawn != nil {
		st.Withdrawn++
	}
	if err := fn(a); err != nil {
		return errCallback{err}
	}
	return nil
}

func walkDir(ctx context.Context, root string, lim limits, fn func(*vuln.Advisory) error) (Stats, error) {
	var st Stats
	files := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		if d.IsDir() || !strings.EqualFold(filepath.Ext(p), ".json") || !d.Type().IsRegular() {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		files++
		if files > lim.entries {
			return fmt.Errorf("%s: more than %d files", root, lim.entries)
		}
		fi, err := d.Info()
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		defer f.Close()
		rel, _ := filepath.Rel(root, p)
		return handleFile(f, fi.Size(), rel, lim.record, &st, fn)
	})
	var cb errCallback
	if errors.As(err, &cb) {
		return st, cb.err
	}
	return st, err
}

func walkZip(ctx context.Context, f *os.File, size int64, path string, lim limits, fn func(*vuln.Advisory) error) (Stats, error) {
	var st Stats
	zr, err := zip.NewReader(f, size)
	if err != nil {
		return st, fmt.Errorf("%w: %s: %w", ErrBrokenArchive, path, err)
	}
	if len(zr.File) > lim.entries {
		return st, fmt.Errorf("%w: %s: %d entries exceed %d", ErrBrokenArchive, path, len(zr.File), lim.entries)
	}
	var total int64
	buf := new(bytes.Buffer)
	for _, zf := range zr.File {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		if zf.FileInfo().IsDir() || !strings.EqualFold(filepath.Ext(zf.Name), ".json") {
			continue
		}
		name := path + "!" + zf.Name
		// The declared size may lie; the limited read below is what holds.
		if zf.UncompressedSize64 > uint64(lim.record) {
			return st, fmt.Errorf("%w: %s: entry declares %d bytes, over the %d limit (zip bomb?)", ErrBrokenArchive, name, zf.UncompressedSize64, lim.record)
		}
		rc, err := zf.Open()
		if err != nil {
			return st, fmt.Errorf("%w: %s: %w", ErrBrokenArchive, name, err)
		}
		buf.Reset()
		n, err := io.Copy(buf, io.LimitReader(rc, lim.record+1))
		rc.Close()
		if err != nil {
			return st, fmt.Errorf("%w: %s: %w", ErrBrokenArchive, name, err)
		}
		if n > lim.record {
			return st, fmt.Errorf("%w: %s: entry inflates past %d bytes (zip bomb?)", ErrBrokenArchive, name, lim.record)
		}
		total += n
		if total > lim.total {
			return st, fmt.Errorf("%w: %s: archive inflates past %d bytes (zip bomb?)", ErrBrokenArchive, path, lim.total)
		}
		if err := handleRecord(buf.Bytes(), name, &st, fn); err != nil {
			var cb errCallback
			if errors.As(err, &cb) {
				return st, cb.err
			}
			return st, err
		}
	}
	return st, nil
}
