// Package npm reports Node.js packages: those installed under node_modules (each package root's
// package.json) and those pinned by lock files (package-lock.json and npm-shrinkwrap.json of
// lockfileVersion 1, 2 and 3; yarn.lock of Yarn 1 and Yarn 2+), for applications copied into an
// image without their node_modules.
//
// Installed packages are the truth. Lock-file packages carry Metadata "fromLockfile":"true"
// (and "lockfile", the lock file's format), and the merge step must drop them when the same
// application also has installed packages: a lock-file package is superseded when some installed
// package.json has the same AppDir as the lock file (AppDir of /app/yarn.lock and of
// /app/node_modules/x/package.json is "/app"). Lock files inside node_modules (npm's hidden
// node_modules/.package-lock.json, lock files shipped in published packages) are not read.
//
// Dev dependencies are skipped where the lock file records them ("dev": true in package-lock;
// "devOptional" packages are kept, they may be installed in production). Yarn lock files do not
// record which dependencies are dev-only, so every entry of a yarn.lock is reported. The project's
// own entry (the "" package of a package-lock, workspace packages, "link:"/"file:"/"workspace:"
// references) is not a dependency and is skipped.
package npm

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract"
)

const (
	// maxManifest bounds a package.json; old npm versions copied the README into it, so a few
	// megabytes are legitimate.
	maxManifest = 8 << 20
	// maxLockfile bounds lock files; monorepo lock files reach tens of megabytes.
	maxLockfile = 64 << 20
	// maxLockDepth bounds nesting of lockfileVersion 1 "dependencies".
	maxLockDepth = 256
	// maxLicenses bounds the licenses kept from one package.json.
	maxLicenses = 16
)

// Extractor reads installed npm packages and lock files.
type Extractor struct{}

var (
	_ extract.Extractor = (*Extractor)(nil)
	_ extract.MaxSizer  = (*Extractor)(nil)
)

// New returns an npm extractor.
func New() *Extractor { return &Extractor{} }

// Name implements extract.Extractor.
func (*Extractor) Name() string { return "npm" }

// Version implements extract.Extractor.
func (*Extractor) Version() int { return 1 }

// MaxFileSize implements extract.MaxSizer.
func (*Extractor) MaxFileSize() int64 { return maxLockfile }

type fileKind int

const (
	kindNone fileKind = iota
	kindManifest
	kindPackageLock
	kindYarnLock
)

// classify decides from the path alone, without allocating, what kind of file this is.
func classify(path string) fileKind {
	slash := strings.LastIndexByte(path, '/')
	base := path[slash+1:]
	switch base {
	case "package.json":
		if slash < 0 || !isPackageRoot(path[:slash]) {
			return kindNone
		}
		return kindManifest
	case "package-lock.json", "npm-shrinkwrap.json":
		if strings.Contains(path, "/node_modules/") || strings.HasPrefix(path, "node_modules/") {
			return kindNone
		}
		return kindPackageLock
	case "yarn.lock":
		if strings.Contains(path, "/node_modules/") || strings.HasPrefix(path, "node_modules/") {
			return kindNone
		}
		return kindYarnLock
	}
	return kindNone
}

// isPackageRoot reports whether dir is node_modules/<name> or node_modules/@scope/<name>.
func isPackageRoot(dir string) bool {
	parent, name := splitDir(dir)
	if name == "" || name[0] == '.' {
		return false
	}
	if name[0] != '@' && isNodeModules(parent) {
		return true
	}
	grand, scope := splitDir(parent)
	return name[0] != '@' && len(scope) > 1 && scope[0] == '@' && isNodeModules(grand)
}

func splitDir(p string) (dir, base string) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", p
	}
	return p[:i], p[i+1:]
}

func isNodeModules(dir string) bool {
	return dir == "node_modules" || strings.HasSuffix(dir, "/node_modules")
}

// Required implements extract.Extractor.
func (*Extractor) Required(path string, mode fs.FileMode, size int64) bool {
	if !mode.IsRegular() || size <= 0 {
		return false
	}
	switch classify(path) {
	case kindManifest:
		return size <= maxManifest
	case kindPackageLock, kindYarnLock:
		return size <= maxLockfile
	}
	return false
}

// AppDir is the application directory a package file belongs to: the directory holding the
// outermost node_modules for installed packages, the lock file's directory for lock files.
// The merge step compares them to drop lock-file packages of applications that have
// node_modules (see the package documentation).
func AppDir(path string) string {
	if i := strings.Index(path, "/node_modules/"); i >= 0 {
		if i == 0 {
			return "/"
		}
		return path[:i]
	}
	if strings.HasPrefix(path, "node_modules/") {
		return "."
	}
	dir, _ := splitDir(path)
	if dir == "" && strings.HasPrefix(path, "/") {
		return "/"
	}
	return dir
}

// Extract implements extract.Extractor.
func (*Extractor) Extract(ctx context.Context, in extract.Input) (extract.Result, error) {
	if err := ctx.Err(); err != nil {
		return extract.Result{}, err
	}
	var (
		res extract.Result
		err error
	)
	switch classify(in.Path) {
	case kindManifest:
		res, err = ParsePackageJSON(in.Content)
	case kindPackageLock:
		res, err = ParsePackageLock(in.Content)
	case kindYarnLock:
		res, err = ParseYarnLock(in.Content)
	default:
		return extract.Result{}, nil
	}
	if err != nil {
		return extract.Result{}, fmt.Errorf("parse %s: %w", in.Path, err)
	}
	return res, nil
}

type manifest struct {
	Name     string          `json:"name"`
	Version  string          `json:"version"`
	License  json.RawMessage `json:"license"`
	Licenses json.RawMessage `json:"licenses"`
}

// ParsePackageJSON reads an installed package's package.json. One without name or version (a
// package root that is not a published package) yields an empty Result.
func ParsePackageJSON(content []byte) (extract.Result, error) {
	var m manifest
	if err := json.Unmarshal(content, &m); err != nil {
		return extract.Result{}, err
	}
	name, version := strings.TrimSpace(m.Name), strings.TrimSpace(m.Version)
	if name == "" || version == "" {
		return extract.Result{}, nil
	}
	lic := licenses(m.License)
	if len(lic) == 0 {
		lic = licenses(m.Licenses)
	}
	return extract.Result{Packages: []sbom.Package{{Type: sbom.TypeNPM, Name: name, Version: version, Licenses: lic}}}, nil
}

// licenses reads the forms package.json has used: "MIT", {"type": "MIT", "url": ...}, and
// arrays of either (the legacy "licenses" field).
func licenses(raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		if one = strings.TrimSpace(one); one != "" {
			return []string{one}
		}
		return nil
	}
	var obj struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(raw, &obj) == nil {
		if t := strings.TrimSpace(obj.Type); t != "" {
			return []string{t}
		}
		return nil
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil {
		return nil
	}
	var out []string
	for _, item := range list {
		if len(out) == maxLicenses {
			break
		}
		// Nested arrays are not a known form; licenses of one level only.
		if len(item) > 0 && item[0] == '[' {
			continue
		}
		for _, l := range licenses(item) {
			if !contains(out, l) {
				out = append(out, l)
			}
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

type packageLock struct {
	LockfileVersion int                    `json:"lockfileVersion"`
	Packages        map[string]lockPackage `json:"packages"`
	Dependencies    map[string]lockDep     `json:"dependencies"`
}

type lockPackage struct {
	Name    string          `json:"name"`
	Version string          `json:"version"`
	Dev     bool            `json:"dev"`
	Link    bool            `json:"link"`
	License json.RawMessage `json:"license"`
}

type lockDep struct {
	Version      string             `json:"version"`
	Dev          bool               `json:"dev"`
	Dependencies map[string]lockDep `json:"dependencies"`
}

// lockSet collects lock-file packages once per name and version, in a stable order.
type lockSet struct {
	format  string
	seen    map[string]bool
	pkgs    []sbom.Package
	skipped int
}

func (s *lockSet) add(name, version string, lic []string) {
	name, version = resolveAlias(name, version)
	if name == "" || version == "" {
		return
	}
	if !registryVersion(version) {
		s.skipped++
		return
	}
	key := name + "@" + version
	if s.seen[key] {
		return
	}
	s.seen[key] = true
	s.pkgs = append(s.pkgs, sbom.Package{
		Type: sbom.TypeNPM, Name: name, Version: version, Licenses: lic,
		Metadata: map[string]string{"fromLockfile": "true", "lockfile": s.format},
	})
}

func (s *lockSet) result() extract.Result {
	sort.Slice(s.pkgs, func(i, j int) bool {
		if s.pkgs[i].Name != s.pkgs[j].Name {
			return s.pkgs[i].Name < s.pkgs[j].Name
		}
		return s.pkgs[i].Version < s.pkgs[j].Version
	})
	res := extract.Result{Packages: s.pkgs}
	if s.skipped > 0 {
		res.Warnings = []string{fmt.Sprintf("%d dependencies not from a registry (git, URL or local) skipped", s.skipped)}
	}
	return res
}

// resolveAlias turns npm aliases ("npm:lodash@4.17.21", as lockfileVersion 1 and yarn ranges
// record them) into the real package name and version.
func resolveAlias(name, version string) (string, string) {
	rest, ok := strings.CutPrefix(version, "npm:")
	if !ok {
		return name, version
	}
	if at := strings.LastIndexByte(rest, '@'); at > 0 {
		return rest[:at], rest[at+1:]
	}
	return name, rest
}

// registryVersion reports whether version is a plain version rather than a git, URL or local
// reference ("github:user/repo#sha", "file:../lib", "https://host/x.tgz").
func registryVersion(v string) bool {
	return !strings.ContainsAny(v, ":/")
}

// ParsePackageLock reads package-lock.json or npm-shrinkwrap.json, lockfileVersion 1 to 3.
func ParsePackageLock(content []byte) (extract.Result, error) {
	var lock packageLock
	if err := json.Unmarshal(content, &lock); err != nil {
		return extract.Result{}, err
	}
	set := &lockSet{format: "package-lock", seen: map[string]bool{}}
	// Version 2 carries both forms; "packages" is the complete one.
	if len(lock.Packages) > 0 {
		keys := make([]string, 0, len(lock.Packages))
		for k := range lock.Packages {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, key := range keys {
			p := lock.Packages[key]
			i := strings.LastIndex(key, "node_modules/")
			if i < 0 || p.Dev || p.Link {
				continue // the project itself, a workspace directory, or a symlink to one
			}
			name := key[i+len("node_modules/"):]
			if p.Name != "" {
				name = p.Name // an alias: the directory is named after the alias
			}
			set.add(name, p.Version, licenses(p.License))
		}
		return set.result(), nil
	}
	var walk func(deps map[string]lockDep, depth int) error
	walk = func(deps map[string]lockDep, depth int) error {
		if depth > maxLockDepth {
			return fmt.Errorf("dependencies nested deeper than %d", maxLockDepth)
		}
		names := make([]string, 0, len(deps))
		for n := range deps {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			d := deps[n]
			if d.Dev {
				continue
			}
			set.add(n, d.Version, nil)
			if err := walk(d.Dependencies, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(lock.Dependencies, 0); err != nil {
		return extract.Result{}, err
	}
	return set.result(), nil
}

// ParseYarnLock reads a yarn.lock of Yarn 1 (its own format) or Yarn 2+ (YAML). Both are read
// line by line: an unindented line ending in ':' starts an entry whose first specifier gives the
// name, and the entry's indented "version" line gives the version.
func ParseYarnLock(content []byte) (extract.Result, error) {
	set := &lockSet{format: "yarn", seen: map[string]bool{}}
	var name, version string
	inEntry := false
	flush := func() {
		if inEntry && name != "" {
			set.add(name, version, nil)
		}
		name, version, inEntry = "", "", false
	}
	text := string(content)
	for len(text) > 0 {
		var line string
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			line, text = text, ""
		}
		line = strings.TrimRight(line, "\r")
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || trimmed[0] == '#' {
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			flush()
			if !strings.HasSuffix(trimmed, ":") {
				return extract.Result{}, fmt.Errorf("unexpected line %q", abbreviate(trimmed))
			}
			inEntry = true
			name = entryName(strings.TrimSuffix(trimmed, ":"))
			continue
		}
		// Only the entry's own fields (two-space indent), not its dependency lists.
		if !inEntry || strings.HasPrefix(line, "   ") || strings.HasPrefix(line, "\t\t") {
			continue
		}
		if v, ok := strings.CutPrefix(trimmed, "version"); ok && len(v) > 0 && (v[0] == ' ' || v[0] == ':') {
			version = unquote(strings.TrimSpace(strings.TrimPrefix(v, ":")))
		}
	}
	flush()
	return set.result(), nil
}

// entryName returns the package name of a yarn.lock entry header such as
// `"@babel/core@^7.0.0", "@babel/core@^7.1.0"` or `lodash-alias@npm:lodash@4.17.21`, or "" for
// entries that are not registry packages (Yarn 2+ metadata, workspaces, patches, links).
func entryName(header string) string {
	first := header
	if i := strings.IndexByte(header, ','); i >= 0 {
		first = header[:i]
	}
	first = strings.Trim(first, "\"' ") // a Yarn 2+ header quotes the whole list
	start := 0
	if strings.HasPrefix(first, "@") {
		start = 1 // a scope's '@' is part of the name
	}
	at := strings.IndexByte(first[start:], '@')
	if at < 0 {
		return "" // "__metadata" and anything else without a range
	}
	at += start
	name, rng := first[:at], first[at+1:]
	if strings.HasPrefix(rng, "npm:") {
		if real, _ := resolveAlias(name, rng); real != "" {
			return real
		}
	}
	for _, p := range []string{"workspace:", "patch:", "link:", "portal:", "file:", "exec:"} {
		if strings.HasPrefix(rng, p) {
			return ""
		}
	}
	return name
}

func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' && s[len(s)-1] == '"' || s[0] == '\'' && s[len(s)-1] == '\'') {
		return s[1 : len(s)-1]
	}
	return s
}

func abbreviate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
