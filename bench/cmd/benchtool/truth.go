package main

import (
	"archive/zip"
	"bufio"
	"bytes"
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Ground truth is a set of "name version" pairs per ecosystem, taken from each package manager's
// own record of what it installed rather than from any scanner.

// nv is one name and version of ground truth.
type nv struct{ Name, Version string }

func writeTruth(w io.Writer, set []nv) error {
	seen := map[nv]bool{}
	var lines []string
	for _, p := range set {
		if p.Name == "" || p.Version == "" || seen[p] {
			continue
		}
		seen[p] = true
		lines = append(lines, p.Name+" "+p.Version)
	}
	sort.Strings(lines)
	bw := bufio.NewWriter(w)
	for _, l := range lines {
		fmt.Fprintln(bw, l)
	}
	return bw.Flush()
}

// pythonTruth lists the Python distributions installed in root: every *.dist-info/METADATA and
// *.egg-info (file or directory with PKG-INFO) under the interpreter's package directories.
func pythonTruth(root string) ([]nv, error) {
	var out []nv
	for _, pattern := range []string{"usr/lib/python3*/dist-packages", "usr/lib/python3*/site-packages",
		"usr/local/lib/python3*/dist-packages", "usr/local/lib/python3*/site-packages", "usr/lib/python3/dist-packages"} {
		dirs, _ := filepath.Glob(filepath.Join(root, pattern))
		for _, dir := range dirs {
			ents, err := os.ReadDir(dir)
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", dir, err)
			}
			for _, e := range ents {
				var meta string
				switch {
				case strings.HasSuffix(e.Name(), ".dist-info"):
					meta = filepath.Join(dir, e.Name(), "METADATA")
				case strings.HasSuffix(e.Name(), ".egg-info") && e.IsDir():
					meta = filepath.Join(dir, e.Name(), "PKG-INFO")
				case strings.HasSuffix(e.Name(), ".egg-info"):
					meta = filepath.Join(dir, e.Name())
				default:
					continue
				}
				b, err := os.ReadFile(meta)
				if err != nil {
					return nil, fmt.Errorf("read %s: %w", meta, err)
				}
				h := rfc822Headers(b)
				out = append(out, nv{normPyPI(h["name"]), h["version"]})
			}
		}
	}
	return dedupe(out), nil
}

// rfc822Headers returns the first value of each header of a Python metadata file, keys lowercased.
func rfc822Headers(b []byte) map[string]string {
	h := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" {
			break
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		if _, dup := h[k]; !dup {
			h[k] = strings.TrimSpace(v)
		}
	}
	return h
}

// javaTruth lists the Maven artifacts in the jars under root/usr/share/java. A jar's
// pom.properties names it; a jar without one is named by its file name and versioned by the
// Debian package that installed it (upstream part of its version), as Debian builds such jars
// from that upstream release. Debian installs each jar once and points versionless symlinks at
// it, so only regular files are read. Jars neither way can name are returned in unnamed.
func javaTruth(root string) (found []nv, unnamed []string, err error) {
	owners, err := dpkgOwners(root)
	if err != nil {
		return nil, nil, err
	}
	dir := filepath.Join(root, "usr/share/java")
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() || !strings.HasSuffix(p, ".jar") {
			return nil
		}
		arts, err := jarArtifacts(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if len(arts) == 0 {
			if a, ok := jarFromDebian(filepath.Base(p), owners["/"+filepath.ToSlash(rel)]); ok {
				arts = append(arts, a)
			} else {
				unnamed = append(unnamed, rel)
			}
		}
		found = append(found, arts...)
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		return nil, nil, fmt.Errorf("walk %s: %w", dir, err)
	}
	return dedupe(found), unnamed, nil
}

var jarVersionSuffix = regexp.MustCompile(`^(.+?)-([0-9][^-]*)$`)

// jarFromDebian names a jar from its file name and its owning package's Debian version.
func jarFromDebian(file, debVersion string) (nv, bool) {
	base := strings.TrimSuffix(file, ".jar")
	if m := jarVersionSuffix.FindStringSubmatch(base); m != nil {
		return nv{m[1], m[2]}, true
	}
	if debVersion == "" {
		return nv{}, false
	}
	v := debEpoch.ReplaceAllString(debVersion, "")
	if i := strings.LastIndexByte(v, '-'); i > 0 {
		v = v[:i]
	}
	return nv{base, v}, true
}

// dpkgOwners maps each file an installed Debian package owns to that package's version.
func dpkgOwners(root string) (map[string]string, error) {
	versions := map[string]string{}
	status, err := os.ReadFile(filepath.Join(root, "var/lib/dpkg/status"))
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("read dpkg status: %w", err)
	}
	var pkg string
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "Package: "); ok {
			pkg = strings.TrimSpace(v)
		} else if v, ok := strings.CutPrefix(line, "Version: "); ok && pkg != "" {
			versions[pkg] = strings.TrimSpace(v)
		}
	}
	owners := map[string]string{}
	lists, _ := filepath.Glob(filepath.Join(root, "var/lib/dpkg/info/*.list"))
	for _, l := range lists {
		name := strings.TrimSuffix(filepath.Base(l), ".list")
		name, _, _ = strings.Cut(name, ":")
		b, err := os.ReadFile(l)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", l, err)
		}
		for _, f := range strings.Split(string(b), "\n") {
			if f != "" {
				owners[f] = versions[name]
			}
		}
	}
	return owners, nil
}

func jarArtifacts(p string) ([]nv, error) {
	zr, err := zip.OpenReader(p)
	if err != nil {
		return nil, fmt.Errorf("open jar %s: %w", p, err)
	}
	defer zr.Close()
	var out []nv
	for _, f := range zr.File {
		if path.Base(f.Name) != "pom.properties" || !strings.HasPrefix(f.Name, "META-INF/maven/") {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("%s!%s: %w", p, f.Name, err)
		}
		b, err := io.ReadAll(io.LimitReader(rc, 1<<20))
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("%s!%s: %w", p, f.Name, err)
		}
		props := map[string]string{}
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
				props[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		}
		out = append(out, nv{props["artifactId"], props["version"]})
	}
	return out, nil
}

// npmTruth flattens `npm ls --all --json` into every distinct name@version in the tree.
func npmTruth(b []byte) ([]nv, error) {
	type node struct {
		Version      string           `json:"version"`
		Dependencies map[string]*node `json:"dependencies"`
	}
	var root node
	if err := json.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("parse npm ls output: %w", err)
	}
	var out []nv
	var visit func(n *node, depth int)
	visit = func(n *node, depth int) {
		if depth > 200 {
			return
		}
		for name, d := range n.Dependencies {
			if d == nil {
				continue
			}
			out = append(out, nv{name, d.Version})
			visit(d, depth+1)
		}
	}
	visit(&root, 0)
	return dedupe(out), nil
}

// goTruth lists the modules a Go binary was built with, as `go version -m` prints them, with
// replacements applied: the replacing module is what is in the binary.
func goTruth(bin string) ([]nv, error) {
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		return nil, fmt.Errorf("read build info of %s: %w", bin, err)
	}
	var out []nv
	for _, d := range bi.Deps {
		if d.Replace != nil {
			d = d.Replace
		}
		out = append(out, nv{d.Path, d.Version})
	}
	return dedupe(out), nil
}

func dedupe(in []nv) []nv {
	seen := map[nv]bool{}
	out := in[:0]
	for _, p := range in {
		if p.Name == "" || p.Version == "" || seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Name < out[j].Name || out[i].Name == out[j].Name && out[i].Version < out[j].Version
	})
	return out
}

// readTruth reads a "name version" file written by writeTruth.
func readTruth(p string) ([]nv, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var out []nv
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, ver, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if ok {
			out = append(out, nv{name, ver})
		}
	}
	return out, sc.Err()
}
