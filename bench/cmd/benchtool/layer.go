package main

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"syscall"
)

// skipContents are directories kept in a layer but whose contents never belong in an image: a
// chroot's kernel filesystems and device nodes.
var skipContents = map[string]bool{"proc": true, "sys": true, "dev": true}

// layerEntry is one path that goes into a layer, or a whiteout for one that was removed.
type layerEntry struct {
	rel      string // slash-separated, relative to the root, no leading "./"
	whiteout bool
}

// writeLayer writes the filesystem tree at root as an uncompressed layer tar. With a lower tree it
// writes only the difference, the way a container build's layer is made: entries new or changed in
// root, their parent directories, and a whiteout for each path that root no longer has.
func writeLayer(w io.Writer, root, lower string) error {
	var entries []layerEntry
	if lower == "" {
		err := walk(root, func(rel string, _ fs.FileInfo) error {
			entries = append(entries, layerEntry{rel: rel})
			return nil
		})
		if err != nil {
			return err
		}
	} else {
		var err error
		entries, err = diffTrees(root, lower)
		if err != nil {
			return err
		}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].rel < entries[j].rel })

	bw := bufio.NewWriterSize(w, 1<<20)
	tw := tar.NewWriter(bw)
	// Hard links inside the layer stay hard links, as docker writes them.
	links := map[[2]uint64]string{}
	for _, e := range entries {
		if e.whiteout {
			dir, base := path.Split(e.rel)
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: dir + ".wh." + base, Mode: 0o644, Format: tar.FormatPAX}); err != nil {
				return fmt.Errorf("write whiteout for %s: %w", e.rel, err)
			}
			continue
		}
		if err := writeEntry(tw, root, e.rel, links); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("close layer tar: %w", err)
	}
	return bw.Flush()
}

func writeEntry(tw *tar.Writer, root, rel string, links map[[2]uint64]string) error {
	full := filepath.Join(root, filepath.FromSlash(rel))
	fi, err := os.Lstat(full)
	if err != nil {
		return fmt.Errorf("stat %s: %w", full, err)
	}
	var target string
	if fi.Mode()&fs.ModeSymlink != 0 {
		if target, err = os.Readlink(full); err != nil {
			return fmt.Errorf("readlink %s: %w", full, err)
		}
	}
	hdr, err := tar.FileInfoHeader(fi, target)
	if err != nil {
		return fmt.Errorf("tar header for %s: %w", full, err)
	}
	hdr.Name = rel
	if fi.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uname, hdr.Gname = "", ""
	hdr.Format = tar.FormatPAX
	hdr.AccessTime, hdr.ChangeTime = hdr.ModTime, hdr.ModTime
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && fi.Mode().IsRegular() && st.Nlink > 1 {
		key := [2]uint64{uint64(st.Dev), st.Ino}
		if first, seen := links[key]; seen {
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
			return tw.WriteHeader(hdr)
		}
		links[key] = rel
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write header %s: %w", rel, err)
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(full)
	if err != nil {
		return fmt.Errorf("open %s: %w", full, err)
	}
	defer f.Close()
	if _, err := io.Copy(tw, f); err != nil {
		return fmt.Errorf("copy %s: %w", full, err)
	}
	return nil
}

// walk calls fn for every path under root (not root itself) that may go into an image, in lexical
// order. Device nodes, sockets and pipes are left out, as are the contents of proc, sys and dev.
func walk(root string, fn func(rel string, fi fs.FileInfo) error) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("walk %s: %w", p, err)
		}
		if p == root {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		fi, err := d.Info()
		if err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		if fi.Mode()&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeSocket|fs.ModeNamedPipe) != 0 {
			return nil
		}
		if err := fn(rel, fi); err != nil {
			return err
		}
		if fi.IsDir() && skipContents[rel] {
			return filepath.SkipDir
		}
		return nil
	})
}

// diffTrees lists what a layer on top of lower needs so that the merged view equals upper.
func diffTrees(upper, lower string) ([]layerEntry, error) {
	changed := map[string]bool{}
	err := walk(upper, func(rel string, fi fs.FileInfo) error {
		lfi, err := os.Lstat(filepath.Join(lower, filepath.FromSlash(rel)))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			changed[rel] = true
		case err != nil:
			return fmt.Errorf("stat lower %s: %w", rel, err)
		case !sameEntry(fi, lfi, upper, lower, rel):
			changed[rel] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var removed []string
	err = walk(lower, func(rel string, fi fs.FileInfo) error {
		if _, err := os.Lstat(filepath.Join(upper, filepath.FromSlash(rel))); errors.Is(err, fs.ErrNotExist) {
			removed = append(removed, rel)
			if fi.IsDir() {
				return filepath.SkipDir
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// A layer carries the parent directories of everything it changes, so that the merged
	// directory has the upper's metadata.
	need := map[string]bool{}
	addParents := func(rel string) {
		for d := path.Dir(rel); d != "." && !need[d]; d = path.Dir(d) {
			need[d] = true
		}
	}
	for rel := range changed {
		need[rel] = true
		addParents(rel)
	}
	for _, rel := range removed {
		addParents(rel)
	}
	out := make([]layerEntry, 0, len(need)+len(removed))
	for rel := range need {
		out = append(out, layerEntry{rel: rel})
	}
	for _, rel := range removed {
		out = append(out, layerEntry{rel: rel, whiteout: true})
	}
	return out, nil
}

// sameEntry reports whether a path is unchanged between lower and upper. Regular files with equal
// size and modification time are taken as equal, as dpkg and cp -a keep times; a file rewritten
// in place with new contents gets a new mtime.
func sameEntry(u, l fs.FileInfo, upper, lower, rel string) bool {
	if u.Mode() != l.Mode() {
		return false
	}
	us, uok := u.Sys().(*syscall.Stat_t)
	ls, lok := l.Sys().(*syscall.Stat_t)
	if uok && lok && (us.Uid != ls.Uid || us.Gid != ls.Gid) {
		return false
	}
	switch {
	case u.Mode()&fs.ModeSymlink != 0:
		ut, err1 := os.Readlink(filepath.Join(upper, filepath.FromSlash(rel)))
		lt, err2 := os.Readlink(filepath.Join(lower, filepath.FromSlash(rel)))
		return err1 == nil && err2 == nil && ut == lt
	case u.IsDir():
		// Directory mtimes change with their contents; what matters is covered by the
		// entries inside and by addParents.
		return true
	default:
		return u.Size() == l.Size() && u.ModTime().Equal(l.ModTime())
	}
}
