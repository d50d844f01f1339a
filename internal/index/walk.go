package index

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract"
)

// LayerResult is what one layer contributed: the results of the files some extractor read, and
// the paths the layer removed from the layers below it. It is what the layer cache stores.
type LayerResult struct {
	Files      []FileResult `json:"files,omitempty"`
	Whiteouts  []string     `json:"whiteouts,omitempty"`
	OpaqueDirs []string     `json:"opaqueDirs,omitempty"`
	// Symlinks whose own path some extractor would read (e.g. /etc/os-release -> ../usr/lib/os-release).
	Symlinks []Symlink `json:"symlinks,omitempty"`
	Warnings []string  `json:"warnings,omitempty"`
}

// FileResult holds what each extractor found in one file. A file with no results is still
// recorded: it hides the same path in lower layers.
type FileResult struct {
	Path    string            `json:"path"`
	Results []ExtractorResult `json:"results,omitempty"`
}

// ExtractorResult is one extractor's result for one file.
type ExtractorResult struct {
	Extractor string `json:"extractor"`
	extract.Result
}

// Symlink is a symbolic link as written in the layer.
type Symlink struct {
	Path   string `json:"path"`
	Target string `json:"target"`
}

// Limits bound the work one layer can cause, so hostile layers cost bounded memory and time.
type Limits struct {
	// MaxEntries is the most tar entries read from one layer.
	MaxEntries int
	// MaxReadBytes is the most file content handed to extractors from one layer.
	MaxReadBytes int64
	// MaxWarnings caps warnings kept per layer; the rest are counted.
	MaxWarnings int
}

// DefaultLimits are generous for real images and small next to the machine.
var DefaultLimits = Limits{MaxEntries: 2_000_000, MaxReadBytes: 8 << 30, MaxWarnings: 100}

// walker turns the entries of one layer (a tar stream or a directory) into a LayerResult.
type walker struct {
	set     *extract.Set
	limits  Limits
	layer   string // names the layer in warnings
	result  LayerResult
	byPath  map[string]int // index into result.Files, for hard links
	buf     []byte
	read    int64
	entries int
	dropped int
}

func newWalker(set *extract.Set, limits Limits, layer string) *walker {
	return &walker{set: set, limits: limits, layer: layer, byPath: map[string]int{}}
}

func (w *walker) warn(format string, args ...any) {
	if len(w.result.Warnings) >= w.limits.MaxWarnings {
		w.dropped++
		return
	}
	w.result.Warnings = append(w.result.Warnings, w.layer+": "+fmt.Sprintf(format, args...))
}

func (w *walker) finish() *LayerResult {
	w.keepRelevantOwnership()
	if w.dropped > 0 {
		w.result.Warnings = append(w.result.Warnings, fmt.Sprintf("%s: %d more warnings not shown", w.layer, w.dropped))
	}
	return &w.result
}

// cleanPath turns a tar entry name into a clean absolute path. Names that climb above the root
// are refused: a layer that tries it is hostile, and nothing it says about that path is trusted.
func cleanPath(name string) (p string, absolute, ok bool) {
	absolute = strings.HasPrefix(name, "/")
	depth := 0
	for _, part := range strings.Split(strings.Trim(name, "/"), "/") {
		switch part {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return "", absolute, false
			}
		default:
			depth++
		}
	}
	return path.Clean("/" + name), absolute, true
}

// walkTar reads every entry of a layer tar stream.
func (w *walker) walkTar(ctx context.Context, r io.Reader) (*LayerResult, error) {
	tr := tar.NewReader(r)
	var last string
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return w.finish(), nil
		}
		if err != nil {
			if last == "" {
				return nil, fmt.Errorf("%s: read tar header: %w", w.layer, err)
			}
			return nil, fmt.Errorf("%s: read tar header after %q: %w", w.layer, last, err)
		}
		last = hdr.Name
		if err := w.countEntry(ctx); err != nil {
			return nil, err
		}
		p, absolute, ok := cleanPath(hdr.Name)
		if !ok {
			w.warn("%s: entry name climbs above the root; ignored", hdr.Name)
			continue
		}
		if absolute {
			w.warn("%s: absolute entry name; read as %s", hdr.Name, p)
		}
		if w.whiteout(p) {
			continue
		}
		mode := hdr.FileInfo().Mode()
		switch hdr.Typeflag {
		case tar.TypeReg:
			if err := w.file(ctx, p, mode, hdr.Size, tr); err != nil {
				return nil, err
			}
		case tar.TypeSymlink:
			w.symlink(p, hdr.Linkname)
		case tar.TypeLink:
			w.hardlink(p, hdr.Linkname, mode)
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			if w.set.Required(p, 0o644, 1) != 0 {
				w.warn("%s: a device or fifo where a file was expected; ignored", p)
			}
		}
	}
}

func (w *walker) countEntry(ctx context.Context) error {
	w.entries++
	if w.entries > w.limits.MaxEntries {
		return fmt.Errorf("%s: more than %d entries; refusing the layer", w.layer, w.limits.MaxEntries)
	}
	if w.entries%4096 == 0 {
		return ctx.Err()
	}
	return nil
}

// whiteout records whiteout markers; it reports whether the entry was one.
func (w *walker) whiteout(p string) bool {
	dir, base := path.Split(p)
	if !strings.HasPrefix(base, ".wh.") {
		return false
	}
	dir = path.Clean(dir)
	if base == ".wh..wh..opq" {
		w.result.OpaqueDirs = append(w.result.OpaqueDirs, dir)
	} else if name := base[len(".wh."):]; name != "" && name != "." && name != ".." {
		w.result.Whiteouts = append(w.result.Whiteouts, path.Join(dir, name))
	}
	return true
}

// file reads a regular file if some extractor needs it and runs those extractors.
func (w *walker) file(ctx context.Context, p string, mode fs.FileMode, size int64, r io.Reader) error {
	mask := w.set.Required(p, mode, size)
	if mask == 0 {
		return nil
	}
	if limit := w.set.MaxFileSize(mask); size > limit || size < 0 {
		w.warn("%s: declared size %d bytes exceeds the %d-byte limit for this kind of file; skipped", p, size, limit)
		return nil
	}
	if w.read+size > w.limits.MaxReadBytes {
		w.warn("%s: the layer already gave %d bytes to extractors (limit %d); skipped", p, w.read, w.limits.MaxReadBytes)
		return nil
	}
	w.read += size
	if int64(cap(w.buf)) < size {
		w.buf = make([]byte, size)
	}
	content := w.buf[:size]
	if _, err := io.ReadFull(r, content); err != nil {
		return fmt.Errorf("%s: read %s: %w", w.layer, p, err)
	}
	w.extract(ctx, p, mode, content, mask)
	return nil
}

func (w *walker) extract(ctx context.Context, p string, mode fs.FileMode, content []byte, mask extract.Mask) {
	fr := FileResult{Path: p}
	w.set.Each(mask, func(e extract.Extractor) {
		res, err := safeExtract(ctx, e, extract.Input{Path: p, Mode: mode, Content: content})
		for _, msg := range res.Warnings {
			w.warn("%s: %s: %s", p, e.Name(), msg)
		}
		res.Warnings = nil
		if err != nil {
			w.warn("%s: %s: %v", p, e.Name(), err)
		}
		if len(res.Packages) > 0 || res.OS != nil || len(res.Owned) > 0 {
			fr.Results = append(fr.Results, ExtractorResult{Extractor: e.Name(), Result: res})
		}
	})
	w.addFile(fr)
}

func (w *walker) addFile(fr FileResult) {
	if i, ok := w.byPath[fr.Path]; ok {
		w.result.Files[i] = fr // a later entry of the same layer wins, as on extraction
		return
	}
	w.byPath[fr.Path] = len(w.result.Files)
	w.result.Files = append(w.result.Files, fr)
}

// safeExtract turns an extractor panic on hostile input into an error, so one bad file cannot
// take down a watcher that indexes thousands of images.
func safeExtract(ctx context.Context, e extract.Extractor, in extract.Input) (res extract.Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, err = extract.Result{}, fmt.Errorf("extractor failed: %v", r)
		}
	}()
	return e.Extract(ctx, in)
}

// keepRelevantOwnership drops ownership records of files that gave no package in this layer.
// Package databases list every installed file, and only the owners of language packages decide
// anything. An OS package manager writes a package's files and its file list in the same layer,
// so a file that gave packages in this layer is where its owner record is found.
func (w *walker) keepRelevantOwnership() {
	found := map[string]bool{}
	for _, fr := range w.result.Files {
		for _, er := range fr.Results {
			if len(er.Packages) > 0 {
				found[fr.Path] = true
			}
		}
	}
	for i := range w.result.Files {
		fr := &w.result.Files[i]
		results := fr.Results[:0]
		for _, er := range fr.Results {
			owned := er.Owned[:0]
			for _, o := range er.Owned {
				if found[o.Path] {
					owned = append(owned, o)
				}
			}
			er.Owned = nil
			if len(owned) > 0 {
				er.Owned = owned
			}
			if len(er.Packages) > 0 || er.OS != nil || len(er.Owned) > 0 {
				results = append(results, er)
			}
		}
		fr.Results = nil
		if len(results) > 0 {
			fr.Results = results
		}
	}
}

func (w *walker) symlink(p, target string) {
	if w.set.Required(p, 0o644, 1) == 0 {
		return
	}
	w.result.Symlinks = append(w.result.Symlinks, Symlink{Path: p, Target: target})
}

// hardlink gives the link the results of its target, which an earlier entry of the same layer
// must have written (that is how tar stores hard links).
func (w *walker) hardlink(p, target string, mode fs.FileMode) {
	if w.set.Required(p, mode, 1) == 0 {
		return
	}
	t, _, ok := cleanPath(target)
	if !ok {
		w.warn("%s: hard link target %q climbs above the root; ignored", p, target)
		return
	}
	i, ok := w.byPath[t]
	if !ok {
		w.warn("%s: hard link to %s, which this layer did not retain; ignored", p, t)
		return
	}
	fr := w.result.Files[i]
	w.addFile(FileResult{Path: p, Results: fr.Results})
}

// walkDir reads a directory tree (fs:// inputs) with the same rules as a layer. Symbolic links
// are recorded, never followed, so nothing outside root is read.
func (w *walker) walkDir(ctx context.Context, root string) (*LayerResult, error) {
	err := filepath.WalkDir(root, func(full string, d fs.DirEntry, err error) error {
		if err != nil {
			w.warn("%s: %v", full, err)
			if d != nil && d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if err := w.countEntry(ctx); err != nil {
			return err
		}
		rel, err := filepath.Rel(root, full)
		if err != nil {
			return err
		}
		p := path.Clean("/" + filepath.ToSlash(rel))
		switch t := d.Type(); {
		case t.IsRegular():
			info, err := d.Info()
			if err != nil {
				w.warn("%s: %v", p, err)
				return nil
			}
			return w.dirFile(ctx, full, p, info)
		case t&fs.ModeSymlink != 0:
			if target, err := os.Readlink(full); err == nil {
				w.symlink(p, target)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk %s: %w", root, err)
	}
	return w.finish(), nil
}

func (w *walker) dirFile(ctx context.Context, full, p string, info fs.FileInfo) error {
	f, err := os.Open(full)
	if err != nil {
		w.warn("%s: %v", p, err)
		return nil
	}
	defer f.Close()
	// The size can change while we read; the reader is bounded by what was declared.
	if err := w.file(ctx, p, info.Mode(), info.Size(), f); err != nil {
		w.warn("%v", err)
	}
	return nil
}
