// Package apk reads Alpine's installed-package database, /lib/apk/db/installed.
package apk

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"path"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract"
)

const (
	dbPath = "/lib/apk/db/installed"

	// maxFileSize: an Alpine image with a thousand packages has a database of a few MB.
	maxFileSize = 64 << 20
	maxPackages = 100_000
	maxOwned    = 2_000_000
	maxLineLen  = 64 << 10
	maxWarnings = 100
)

// Extractor reads /lib/apk/db/installed.
type Extractor struct{}

// New returns the apk extractor.
func New() *Extractor { return &Extractor{} }

var _ extract.Extractor = (*Extractor)(nil)
var _ extract.MaxSizer = (*Extractor)(nil)

// Name implements extract.Extractor.
func (*Extractor) Name() string { return "apk" }

// Version implements extract.Extractor.
func (*Extractor) Version() int { return 1 }

// MaxFileSize implements extract.MaxSizer.
func (*Extractor) MaxFileSize() int64 { return maxFileSize }

// Required implements extract.Extractor.
func (*Extractor) Required(p string, mode fs.FileMode, _ int64) bool {
	return p == dbPath && (mode.IsRegular() || mode&fs.ModeSymlink != 0)
}

// Extract implements extract.Extractor.
func (*Extractor) Extract(ctx context.Context, in extract.Input) (extract.Result, error) {
	if err := ctx.Err(); err != nil {
		return extract.Result{}, err
	}
	res := Parse(in.Content)
	if len(res.Packages) == 0 && len(res.Warnings) > 0 {
		return res, fmt.Errorf("parse %s: no valid package entry", in.Path)
	}
	return res, nil
}

// entry accumulates one package block of the database.
type entry struct {
	line                          int
	name, version, arch, origin   string
	license                       string
	files                         []string
	bad                           string
	seenName, seenVer, seenOrigin bool
}

// Parse reads an apk installed database: blocks of "X:value" lines separated by blank lines,
// where P is the name, V the version, A the arch, o the origin (source) package, L the license,
// F a directory and each following R a file in it (paths relative to /). Blocks without name or
// version, or with lines that are not "X:value", are skipped with a warning.
func Parse(content []byte) extract.Result {
	var (
		res    extract.Result
		w      extract.Warnings
		cur    entry
		lineNo int
		dir    string
		owned  int
	)
	flush := func() {
		defer func() { cur, dir = entry{}, "" }()
		switch {
		case cur.line == 0:
			return
		case cur.bad != "":
			w.Addf("entry at line %d: %s; skipped", cur.line, cur.bad)
			return
		case cur.name == "" || cur.version == "":
			w.Addf("entry at line %d: no name or version; skipped", cur.line)
			return
		case len(res.Packages) >= maxPackages:
			w.Addf("more than %d packages; entry at line %d skipped", maxPackages, cur.line)
			return
		}
		p := sbom.Package{
			Type:    sbom.TypeAPK,
			Name:    cur.name,
			Version: cur.version,
			Arch:    cur.arch,
			Source:  &sbom.Source{Name: cur.name, Version: cur.version},
		}
		if cur.origin != "" {
			p.Source.Name = cur.origin
		}
		if cur.license != "" {
			p.Licenses = []string{cur.license}
		}
		res.Packages = append(res.Packages, p)
		owner := extract.PackageRef{Type: sbom.TypeAPK, Name: cur.name, Arch: cur.arch}
		for _, f := range cur.files {
			if owned >= maxOwned {
				w.Addf("more than %d owned files; rest ignored", maxOwned)
				break
			}
			owned++
			res.Owned = append(res.Owned, extract.Ownership{Path: f, Owner: owner})
		}
	}
	for len(content) > 0 {
		var line []byte
		if i := bytes.IndexByte(content, '\n'); i >= 0 {
			line, content = content[:i], content[i+1:]
		} else {
			line, content = content, nil
		}
		lineNo++
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(bytes.TrimSpace(line)) == 0 {
			flush()
			continue
		}
		if cur.line == 0 {
			cur.line = lineNo
		}
		if cur.bad != "" {
			continue
		}
		if len(line) > maxLineLen {
			cur.bad = fmt.Sprintf("line %d longer than %d bytes", lineNo, maxLineLen)
			continue
		}
		if len(line) < 2 || line[1] != ':' {
			cur.bad = fmt.Sprintf("line %d: not a \"X:value\" line", lineNo)
			continue
		}
		value := line[2:]
		switch line[0] {
		case 'P':
			cur.name = setOnce(&cur, &cur.seenName, value, lineNo, "P")
		case 'V':
			cur.version = setOnce(&cur, &cur.seenVer, value, lineNo, "V")
		case 'o':
			cur.origin = setOnce(&cur, &cur.seenOrigin, value, lineNo, "o")
		case 'A':
			cur.arch = string(value)
		case 'L':
			cur.license = string(bytes.TrimSpace(value))
		case 'F':
			dir = string(value)
		case 'R':
			if len(value) == 0 || bytes.IndexByte(value, 0) >= 0 {
				cur.bad = fmt.Sprintf("line %d: invalid file name", lineNo)
				continue
			}
			// A hostile "F:../.." cannot escape: Clean of an absolute path stays under /.
			if p := path.Clean("/" + dir + "/" + string(value)); p != "/" && len(cur.files) < maxOwned {
				cur.files = append(cur.files, p)
			}
		}
	}
	flush()
	res.Warnings = w.List()
	return res
}

// setOnce rejects a block naming its package or version twice: such a block merges two
// packages and neither can be trusted.
func setOnce(e *entry, seen *bool, value []byte, lineNo int, key string) string {
	if *seen {
		e.bad = fmt.Sprintf("line %d: second %s line", lineNo, key)
		return ""
	}
	*seen = true
	if !validToken(value) {
		e.bad = fmt.Sprintf("line %d: invalid %s value", lineNo, key)
		return ""
	}
	return string(value)
}

// validToken accepts apk names and versions: printable ASCII without blanks.
func validToken(b []byte) bool {
	if len(b) == 0 || len(b) > 256 {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}
