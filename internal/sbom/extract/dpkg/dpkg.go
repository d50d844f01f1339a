// Package dpkg reads Debian's package database: the status file, distroless images' status.d
// directory and the per-package file lists that say which files each package installed.
package dpkg

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract"
)

const (
	statusPath   = "/var/lib/dpkg/status"
	statusDDir   = "/var/lib/dpkg/status.d/"
	infoDir      = "/var/lib/dpkg/info/"
	listSuffix   = ".list"
	md5sumSuffix = ".md5sums"

	// maxFileSize: a status file of a big system is about 5 MB; the largest .list files
	// (kernel modules, texlive) are a few MB.
	maxFileSize = 64 << 20
	// maxOwned bounds the paths taken from one file list (a kernel image lists ~6,000).
	maxOwned = 500_000
)

// Extractor reads dpkg databases. Its Result for the status file and status.d files holds
// packages; for info/*.list and status.d/*.md5sums files it holds only Owned.
type Extractor struct{}

// New returns the dpkg extractor.
func New() *Extractor { return &Extractor{} }

var _ extract.Extractor = (*Extractor)(nil)
var _ extract.MaxSizer = (*Extractor)(nil)

// Name implements extract.Extractor.
func (*Extractor) Name() string { return "dpkg" }

// Version implements extract.Extractor.
func (*Extractor) Version() int { return 1 }

// MaxFileSize implements extract.MaxSizer.
func (*Extractor) MaxFileSize() int64 { return maxFileSize }

// Required implements extract.Extractor. status-old and the other info/* files are not read.
func (*Extractor) Required(p string, mode fs.FileMode, _ int64) bool {
	if !mode.IsRegular() && mode&fs.ModeSymlink == 0 {
		return false
	}
	if p == statusPath {
		return true
	}
	if rest, ok := strings.CutPrefix(p, statusDDir); ok {
		return rest != "" && strings.IndexByte(rest, '/') < 0
	}
	if rest, ok := strings.CutPrefix(p, infoDir); ok {
		return len(rest) > len(listSuffix) && strings.HasSuffix(rest, listSuffix) && strings.IndexByte(rest, '/') < 0
	}
	return false
}

// Extract implements extract.Extractor.
func (*Extractor) Extract(ctx context.Context, in extract.Input) (extract.Result, error) {
	if err := ctx.Err(); err != nil {
		return extract.Result{}, err
	}
	base := path.Base(in.Path)
	switch {
	case strings.HasPrefix(in.Path, infoDir) && strings.HasSuffix(base, listSuffix):
		return ownedFromList(in.Path, strings.TrimSuffix(base, listSuffix), in.Content)
	case strings.HasPrefix(in.Path, statusDDir) && strings.HasSuffix(base, md5sumSuffix):
		return ownedFromMD5Sums(in.Path, strings.TrimSuffix(base, md5sumSuffix), in.Content)
	case in.Path == statusPath || strings.HasPrefix(in.Path, statusDDir):
		pkgs, warnings := ParseStatus(in.Content)
		return extract.Result{Packages: pkgs, Warnings: warnings}, nil
	}
	return extract.Result{}, fmt.Errorf("dpkg: unexpected file %s", in.Path)
}

// ParseStatus reads packages from dpkg status text (the status file or one status.d file).
// Only installed packages are returned: stanzas whose Status state is not "installed"
// (config-files, half-installed, not-installed, ...) are dropped silently. A package whose
// selection is "deinstall" or "hold" but whose state is still "installed" is kept: its files are
// on disk. Stanzas without Status (distroless status.d files have none) are taken as installed.
// Malformed stanzas are skipped and reported in the warnings.
func ParseStatus(content []byte) ([]sbom.Package, []string) {
	var pkgs []sbom.Package
	w := extract.Warnings{Max: maxWarnings}
	parseWarnings := readStanzas(content, func(s *stanza) {
		p, skip, err := packageFrom(s)
		switch {
		case err != nil:
			w.Addf("stanza at line %d: %v; skipped", s.line, err)
		case !skip:
			pkgs = append(pkgs, p)
		}
	})
	return pkgs, append(parseWarnings, w.List()...)
}

func packageFrom(s *stanza) (p sbom.Package, skip bool, err error) {
	if status := s.get("Status"); status != nil {
		words := bytes.Fields(status)
		if len(words) != 3 {
			return p, false, fmt.Errorf("malformed Status %q", clip(status))
		}
		if string(words[2]) != "installed" {
			return p, true, nil
		}
	}
	name := s.get("Package")
	if !validName(name) {
		return p, false, fmt.Errorf("invalid Package %q", clip(name))
	}
	version := s.get("Version")
	if !validVersion(version) {
		return p, false, fmt.Errorf("package %s: invalid Version %q", name, clip(version))
	}
	p = sbom.Package{
		Type:    sbom.TypeDeb,
		Name:    string(name),
		Version: string(version),
		Source:  &sbom.Source{Name: string(name), Version: string(version)},
	}
	if arch := s.get("Architecture"); validName(arch) {
		p.Arch = string(arch)
	}
	if src := s.get("Source"); src != nil {
		srcName, srcVersion, ok := parseSource(src)
		if !ok {
			return p, false, fmt.Errorf("package %s: invalid Source %q", name, clip(src))
		}
		p.Source.Name = srcName
		if srcVersion != "" {
			p.Source.Version = srcVersion
		}
	}
	return p, false, nil
}

// parseSource reads the Source field: "name" or "name (version)", the latter when the source
// version differs from the binary's (binNMUs, packages built from another source version).
func parseSource(v []byte) (name, version string, ok bool) {
	n, rest, _ := bytes.Cut(v, []byte{' '})
	if !validName(n) {
		return "", "", false
	}
	rest = bytes.TrimSpace(rest)
	if len(rest) == 0 {
		return string(n), "", true
	}
	if len(rest) < 3 || rest[0] != '(' || rest[len(rest)-1] != ')' {
		return "", "", false
	}
	ver := bytes.TrimSpace(rest[1 : len(rest)-1])
	if !validVersion(ver) {
		return "", "", false
	}
	return string(n), string(ver), true
}

// validName accepts Debian package and architecture names: lowercase letters, digits and
// "+-.", as Debian policy 5.6.1 requires (uppercase tolerated for old or local packages).
func validName(b []byte) bool {
	if len(b) == 0 || len(b) > 256 {
		return false
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// validVersion accepts "[epoch:]upstream[-revision]" loosely: printable, no blanks. Ordering is
// the matcher's business; this only keeps garbage out.
func validVersion(b []byte) bool {
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

func clip(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "..."
	}
	return string(b)
}

// ownerFromFileName turns "libc6:amd64" into {deb, libc6, amd64}. Files of packages that are
// not "Multi-Arch: same" carry no arch in their name, so their Owner has an empty Arch and must
// be matched by name.
func ownerFromFileName(file, stem string) (extract.PackageRef, error) {
	name, arch, _ := strings.Cut(stem, ":")
	if !validName([]byte(name)) || (arch != "" && !validName([]byte(arch))) {
		return extract.PackageRef{}, fmt.Errorf("parse %s: file name is not a package name", file)
	}
	return extract.PackageRef{Type: sbom.TypeDeb, Name: name, Arch: arch}, nil
}

// ownedFromList reads info/<pkg>[:arch].list: one absolute path per line, directories included.
func ownedFromList(file, stem string, content []byte) (extract.Result, error) {
	owner, err := ownerFromFileName(file, stem)
	if err != nil {
		return extract.Result{}, err
	}
	return ownedPaths(file, owner, content, func(line []byte) []byte {
		if line[0] != '/' {
			return nil
		}
		return line
	})
}

// ownedFromMD5Sums reads status.d/<pkg>.md5sums of distroless images: "<md5>  <relative path>"
// per line, regular files only.
func ownedFromMD5Sums(file, stem string, content []byte) (extract.Result, error) {
	owner, err := ownerFromFileName(file, stem)
	if err != nil {
		return extract.Result{}, err
	}
	return ownedPaths(file, owner, content, func(line []byte) []byte {
		_, p, ok := bytes.Cut(line, []byte{' '})
		if !ok {
			return nil
		}
		// md5sum separates with two spaces, or " *" for binary mode.
		if len(p) > 0 && (p[0] == ' ' || p[0] == '*') {
			p = p[1:]
		}
		return p
	})
}

func ownedPaths(file string, owner extract.PackageRef, content []byte, pathOf func([]byte) []byte) (extract.Result, error) {
	var res extract.Result
	w := extract.Warnings{Max: maxWarnings}
	lineNo := 0
	for len(content) > 0 {
		var line []byte
		if i := bytes.IndexByte(content, '\n'); i >= 0 {
			line, content = content[:i], content[i+1:]
		} else {
			line, content = content, nil
		}
		lineNo++
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) == 0 {
			continue
		}
		if len(res.Owned) >= maxOwned {
			w.Addf("more than %d paths; rest ignored", maxOwned)
			break
		}
		p := pathOf(line)
		if len(p) == 0 || len(p) > 4096 || bytes.IndexByte(p, 0) >= 0 {
			w.Addf("line %d: not a path", lineNo)
			continue
		}
		clean := path.Clean("/" + string(p))
		if clean == "/" {
			continue // "/." opens every list
		}
		res.Owned = append(res.Owned, extract.Ownership{Path: clean, Owner: owner})
	}
	res.Warnings = w.List()
	if len(res.Owned) == 0 && len(res.Warnings) > 0 {
		return res, fmt.Errorf("parse %s: no valid path", file)
	}
	return res, nil
}
