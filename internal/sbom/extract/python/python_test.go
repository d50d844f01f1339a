package python

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract"
)

// testdata holds metadata files copied from this machine's Debian dist-packages and pyenv
// site-packages, under their original directory names.

func read(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRealMetadata(t *testing.T) {
	cases := []struct {
		file, name, version, licenses string
	}{
		{"pip-24.2.dist-info/METADATA", "pip", "24.2", "MIT"},
		{"PyYAML-6.0.dist-info/METADATA", "PyYAML", "6.0", "MIT"},
		{"cryptography-38.0.4.dist-info/METADATA", "cryptography", "38.0.4", "BSD-3-Clause OR Apache-2.0"},
		// No License field: the classifier names the license.
		{"pyparsing-3.0.9.dist-info/METADATA", "pyparsing", "3.0.9", "MIT License"},
		// PEP 639 License-Expression.
		{"urllib3-2.7.0.dist-info/METADATA", "urllib3", "2.7.0", "MIT"},
		// License holds the license text over several lines: the classifier is used instead.
		{"traitlets-5.15.0.dist-info/METADATA", "traitlets", "5.15.0", "BSD License"},
		{"oauthlib-3.2.2.egg-info/PKG-INFO", "oauthlib", "3.2.2", "BSD"},
		// Single-file egg-info with a Description header continued over many lines.
		{"Python-2.7.18-py2.7.egg-info", "Python", "2.7.18", "PSF license"},
	}
	for _, c := range cases {
		path := "/usr/lib/python3/dist-packages/" + c.file
		res, err := New().Extract(context.Background(), extract.Input{Path: path, Mode: 0o644, Content: read(t, c.file)})
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		if len(res.Packages) != 1 {
			t.Fatalf("%s: got %+v", c.file, res.Packages)
		}
		p := res.Packages[0]
		if p.Type != sbom.TypePyPI || p.Name != c.name || p.Version != c.version || strings.Join(p.Licenses, "|") != c.licenses {
			t.Errorf("%s: got %s %s %q, want %s %s %q", c.file, p.Name, p.Version, p.Licenses, c.name, c.version, c.licenses)
		}
	}
}

func TestHeaderFormat(t *testing.T) {
	cases := map[string]struct {
		in, want, licenses string
	}{
		"crlf": {"Metadata-Version: 2.1\r\nName: a\r\nVersion: 1.0\r\nLicense: ISC\r\n\r\nbody", "a 1.0", "ISC"},
		// Fields after the first blank line are the description, not metadata.
		"body ignored": {"Name: a\nVersion: 1.0\n\nVersion: 9.9\nLicense: GPL\n", "a 1.0", ""},
		"unknown":      {"Name: a\nVersion: 1.0\nLicense: UNKNOWN\nClassifier: License :: OSI Approved\nClassifier: License :: OSI Approved :: Apache Software License\nClassifier: License :: OSI Approved :: Apache Software License\nClassifier: License :: Other/Proprietary License\n", "a 1.0", "Apache Software License|Other/Proprietary License"},
		"case":         {"name: a\nversion: 2\nlicense-expression: MIT OR Apache-2.0\nLicense: MIT\n", "a 2", "MIT OR Apache-2.0"},
		"junk lines":   {"Name: a\nthis line is not a header\nVersion: 3\n", "a 3", ""},
		"long license": {"Name: a\nVersion: 1\nLicense: " + strings.Repeat("x", 200) + "\n", "a 1", ""},
		"no newline":   {"Name: a\nVersion: 1", "a 1", ""},
	}
	for name, c := range cases {
		p, err := Parse([]byte(c.in))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := p.Name + " " + p.Version; got != c.want || strings.Join(p.Licenses, "|") != c.licenses {
			t.Errorf("%s: got %q %q, want %q %q", name, got, p.Licenses, c.want, c.licenses)
		}
	}
}

func TestMalformed(t *testing.T) {
	for name, in := range map[string]string{
		"no version":         "Metadata-Version: 1.0\nName: a\n",
		"no name":            "Version: 1.0\n",
		"empty":              "",
		"name in body":       "Metadata-Version: 2.1\n\nName: a\nVersion: 1\n",
		"multi-line version": "Name: a\nVersion: 1\n 2\n",
		"huge header":        "Name: a\nVersion: 1\nSummary: " + strings.Repeat("y", maxHeaderBytes) + "\n",
	} {
		path := "/site-packages/a.dist-info/METADATA"
		_, err := New().Extract(context.Background(), extract.Input{Path: path, Content: []byte(in)})
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func TestRequired(t *testing.T) {
	e := New()
	cases := []struct {
		path string
		want bool
	}{
		{"/usr/lib/python3/dist-packages/PyYAML-6.0.dist-info/METADATA", true},
		{"/app/.venv/lib/python3.12/site-packages/requests-2.31.0.dist-info/METADATA", true},
		{"/usr/lib/python3/dist-packages/oauthlib-3.2.2.egg-info/PKG-INFO", true},
		{"/usr/lib/python2.7/lib-dynload/Python-2.7.18-py2.7.egg-info", true},
		{"/usr/lib/python3/dist-packages/PyYAML-6.0.dist-info/RECORD", false},
		{"/usr/lib/python3/dist-packages/.dist-info/METADATA", false},
		{"/usr/lib/python3/dist-packages/.egg-info", false},
		{"/src/project-1.0/PKG-INFO", false},
		{"/src/METADATA", false},
		{"METADATA", false},
		{"/usr/share/doc/python3/README", false},
	}
	for _, c := range cases {
		if got := e.Required(c.path, 0o644, 100); got != c.want {
			t.Errorf("Required(%q) = %v, want %v", c.path, got, c.want)
		}
	}
	// An egg-info directory is not a file; symlinks and oversized files are not read either.
	if e.Required("/x/a.egg-info", fs.ModeDir|0o755, 100) || e.Required("/x/a.egg-info", fs.ModeSymlink|0o777, 10) ||
		e.Required("/x/a.dist-info/METADATA", 0o644, maxSize+1) || e.Required("/x/a.dist-info/METADATA", 0o644, 0) {
		t.Error("mode or size not checked")
	}
	if n := testing.AllocsPerRun(100, func() {
		e.Required("/usr/lib/python3/dist-packages/PyYAML-6.0.dist-info/METADATA", 0o644, 1000)
		e.Required("/usr/lib/python3/dist-packages/yaml/__init__.py", 0o644, 1000)
	}); n != 0 {
		t.Errorf("Required allocates %v times", n)
	}
}

func FuzzParse(f *testing.F) {
	for _, n := range []string{"traitlets-5.15.0.dist-info/METADATA", "Python-2.7.18-py2.7.egg-info", "urllib3-2.7.0.dist-info/METADATA"} {
		f.Add(read(f, n))
	}
	f.Add([]byte("Name: a\r\nVersion: 1\r\n\tcontinued\r\n:\r\nClassifier: License ::\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		if p.Name == "" || p.Version == "" || strings.Contains(p.Name+p.Version, "\n") {
			t.Fatalf("bad package %+v", p)
		}
	})
}
