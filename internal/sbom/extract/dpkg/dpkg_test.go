package dpkg

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract"
)

func read(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func run(t *testing.T, p string, content []byte) extract.Result {
	t.Helper()
	e := New()
	if !e.Required(p, 0o644, int64(len(content))) {
		t.Fatalf("%s not required", p)
	}
	res, err := e.Extract(context.Background(), extract.Input{Path: p, Mode: 0o644, Content: content})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func deb(name, version, arch, srcName, srcVersion string) sbom.Package {
	return sbom.Package{Type: sbom.TypeDeb, Name: name, Version: version, Arch: arch, Source: &sbom.Source{Name: srcName, Version: srcVersion}}
}

func TestStatusFile(t *testing.T) {
	res := run(t, "/var/lib/dpkg/status", read(t, "status"))
	want := []sbom.Package{
		deb("adduser", "3.134", "all", "adduser", "3.134"),
		deb("base-files", "12.4+deb12u11", "amd64", "base-files", "12.4+deb12u11"),
		deb("bash", "5.2.15-2+b8", "amd64", "bash", "5.2.15-2"),
		deb("bsdutils", "1:2.38.1-5+deb12u3", "amd64", "util-linux", "2.38.1-5+deb12u3"),
		deb("cpp", "4:12.2.0-3", "amd64", "gcc-defaults", "1.203"),
		deb("libc6", "2.36-9+deb12u14", "amd64", "glibc", "2.36-9+deb12u14"),
		deb("libssl3", "3.0.19-1~deb12u2", "amd64", "openssl", "3.0.19-1~deb12u2"),
		deb("tzdata", "2025b-0+deb12u2", "all", "tzdata", "2025b-0+deb12u2"),
	}
	if !reflect.DeepEqual(res.Packages, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", res.Packages, want)
	}
	if len(res.Warnings) != 0 || len(res.Owned) != 0 || res.OS != nil {
		t.Fatalf("unexpected result parts: %+v", res)
	}
}

func TestStatusCRLFAndBlankLines(t *testing.T) {
	content := strings.ReplaceAll(string(read(t, "status")), "\n\n", "\n\n  \n\t\n\n")
	content = "\n\n" + strings.ReplaceAll(content, "\n", "\r\n")
	content = strings.TrimRight(content, "\r\n") // no final newline
	res := run(t, "/var/lib/dpkg/status", []byte(content))
	if len(res.Packages) != 8 || len(res.Warnings) != 0 {
		t.Fatalf("got %d packages, warnings %q", len(res.Packages), res.Warnings)
	}
	if got := res.Packages[3]; got.Version != "1:2.38.1-5+deb12u3" || got.Source.Version != "2.38.1-5+deb12u3" {
		t.Fatalf("CRLF leaked into values: %+v %+v", got, got.Source)
	}
}

func TestStatusStates(t *testing.T) {
	content := `Package: removed
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: broken
Status: install reinstreq half-installed
Architecture: amd64
Version: 1.0

Package: going
Status: deinstall ok installed
Architecture: amd64
Version: 2.0

Package: held
Status: hold ok installed
Architecture: amd64
Version: 3.0

Package: gone
Status: purge ok not-installed
Architecture: amd64
`
	res := run(t, "/var/lib/dpkg/status", []byte(content))
	var names []string
	for _, p := range res.Packages {
		names = append(names, p.Name)
	}
	if strings.Join(names, ",") != "going,held" || len(res.Warnings) != 0 {
		t.Fatalf("got %v, warnings %q", names, res.Warnings)
	}
}

func TestStatusMalformedStanzasSkipped(t *testing.T) {
	huge := "Description: " + strings.Repeat("x", maxLineLen+1)
	content := strings.Join([]string{
		"Package: good1\nStatus: install ok installed\nVersion: 1.0\nArchitecture: amd64",
		" continuation first\nPackage: orphan\nVersion: 1",
		"Package: nocolon\nthis line has no colon\nVersion: 1",
		"Package: dup\nVersion: 1\nVersion: 2",
		"Package: huge\nVersion: 1\n" + huge,
		"Package: noversion\nStatus: install ok installed",
		"Package: Bad Name\nVersion: 1",
		"Package: badsrc\nVersion: 1\nSource: x (1.0",
		"Package: badstatus\nVersion: 1\nStatus: installed",
		"Package: good2\nVersion: 2:1.0-1\nSource: good-src (1.0-1)\nArchitecture: arm64\nDescription:\n multi\n .\n line",
	}, "\n\n")
	res := run(t, "/var/lib/dpkg/status.d/x", []byte(content))
	want := []sbom.Package{
		deb("good1", "1.0", "amd64", "good1", "1.0"),
		deb("good2", "2:1.0-1", "arm64", "good-src", "1.0-1"),
	}
	if !reflect.DeepEqual(res.Packages, want) {
		t.Fatalf("got %+v", res.Packages)
	}
	if len(res.Warnings) != 8 {
		t.Fatalf("want 8 warnings, got %d: %q", len(res.Warnings), res.Warnings)
	}
	for _, w := range res.Warnings {
		if !strings.HasPrefix(w, "stanza at line ") || len(w) > 300 {
			t.Errorf("warning %q", w)
		}
	}
}

func TestStanzaMultilineValue(t *testing.T) {
	content := "Package: a\nDescription: short\n long line one\n .\n two\nConffiles:\n /etc/a 123\n /etc/b 456\n# comment\nVersion: 1\n"
	var got []string
	readStanzas([]byte(content), func(s *stanza) {
		got = append(got, string(s.get("description")), string(s.get("CONFFILES")), string(s.get("Version")))
	})
	want := []string{"short\n long line one\n .\n two", "/etc/a 123\n /etc/b 456", "1"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q", got)
	}
}

func TestStanzaLimit(t *testing.T) {
	var b strings.Builder
	for i := 0; i < maxStanzas+5; i++ {
		fmt.Fprintf(&b, "P: %d\n\n", i)
	}
	n := 0
	warnings := readStanzas([]byte(b.String()), func(*stanza) { n++ })
	if n != maxStanzas || len(warnings) != 1 {
		t.Fatalf("read %d stanzas, warnings %q", n, warnings)
	}
}

func TestWarningsBounded(t *testing.T) {
	content := strings.Repeat("garbage\n\n", 1000)
	_, warnings := ParseStatus([]byte(content))
	if len(warnings) != maxWarnings+1 || !strings.Contains(warnings[maxWarnings], "900 more") {
		t.Fatalf("got %d warnings, last %q", len(warnings), warnings[len(warnings)-1])
	}
}

func TestDistrolessStatusD(t *testing.T) {
	res := run(t, "/var/lib/dpkg/status.d/libc6", read(t, "status.d/libc6"))
	if want := []sbom.Package{deb("libc6", "2.36-9+deb12u14", "amd64", "glibc", "2.36-9+deb12u14")}; !reflect.DeepEqual(res.Packages, want) {
		t.Fatalf("got %+v", res.Packages)
	}
	res = run(t, "/var/lib/dpkg/status.d/libssl3.md5sums", read(t, "status.d/libssl3.md5sums"))
	if len(res.Packages) != 0 || len(res.Owned) != 9 {
		t.Fatalf("md5sums: %d packages, %d owned", len(res.Packages), len(res.Owned))
	}
	want := extract.Ownership{Path: "/usr/lib/x86_64-linux-gnu/libssl.so.3", Owner: extract.PackageRef{Type: "deb", Name: "libssl3"}}
	if !containsOwned(res.Owned, want) {
		t.Fatalf("missing %+v in %+v", want, res.Owned)
	}
}

func containsOwned(owned []extract.Ownership, o extract.Ownership) bool {
	for _, x := range owned {
		if x == o {
			return true
		}
	}
	return false
}

func TestFileLists(t *testing.T) {
	res := run(t, "/var/lib/dpkg/info/libssl3:amd64.list", read(t, "libssl3:amd64.list"))
	if len(res.Owned) != 17 || len(res.Warnings) != 0 { // 18 lines minus "/."
		t.Fatalf("got %d owned, warnings %q", len(res.Owned), res.Warnings)
	}
	owner := extract.PackageRef{Type: "deb", Name: "libssl3", Arch: "amd64"}
	if !containsOwned(res.Owned, extract.Ownership{Path: "/usr/lib/x86_64-linux-gnu/libcrypto.so.3", Owner: owner}) {
		t.Fatalf("libcrypto missing: %+v", res.Owned)
	}
	res = run(t, "/var/lib/dpkg/info/adduser.list", read(t, "adduser.list"))
	if !containsOwned(res.Owned, extract.Ownership{Path: "/usr/sbin/adduser", Owner: extract.PackageRef{Type: "deb", Name: "adduser"}}) {
		t.Fatalf("adduser missing: %+v", res.Owned[:3])
	}
	for _, o := range res.Owned {
		if o.Path == "/" || !strings.HasPrefix(o.Path, "/") {
			t.Fatalf("bad path %q", o.Path)
		}
	}

	res = run(t, "/var/lib/dpkg/info/evil.list", []byte("/usr/../../etc/passwd\r\nrelative\n/a//b/\n\x00\n"))
	got := []string{}
	for _, o := range res.Owned {
		got = append(got, o.Path)
	}
	if strings.Join(got, " ") != "/etc/passwd /a/b" || len(res.Warnings) != 2 {
		t.Fatalf("got %q, warnings %q", got, res.Warnings)
	}
	if _, err := New().Extract(context.Background(), extract.Input{Path: "/var/lib/dpkg/info/x.list", Content: []byte("junk\n")}); err == nil {
		t.Fatal("list without a path: no error")
	}
	if _, err := New().Extract(context.Background(), extract.Input{Path: "/var/lib/dpkg/info/Bad Name.list", Content: []byte("/x\n")}); err == nil {
		t.Fatal("bad package name in file name: no error")
	}
}

func TestRequired(t *testing.T) {
	e := New()
	yes := []string{
		"/var/lib/dpkg/status", "/var/lib/dpkg/status.d/libc6", "/var/lib/dpkg/status.d/libc6.md5sums",
		"/var/lib/dpkg/info/bash.list", "/var/lib/dpkg/info/libc6:amd64.list",
	}
	no := []string{
		"/var/lib/dpkg/status-old", "/var/lib/dpkg/status.d/", "/var/lib/dpkg/status.d/x/y",
		"/var/lib/dpkg/info/bash.md5sums", "/var/lib/dpkg/info/.list", "/var/lib/dpkg/info/x/y.list",
		"/var/lib/dpkg/available", "/usr/var/lib/dpkg/status", "/var/lib/dpkg/info/bash.conffiles",
	}
	for _, p := range yes {
		if !e.Required(p, 0o644, 10) {
			t.Errorf("%s not required", p)
		}
	}
	for _, p := range no {
		if e.Required(p, 0o644, 10) {
			t.Errorf("%s required", p)
		}
	}
	if e.Required("/var/lib/dpkg/status", fs.ModeDir, 0) {
		t.Error("directory required")
	}
	if n := testing.AllocsPerRun(100, func() { e.Required("/usr/lib/python3/dist-packages/x.py", 0o644, 10) }); n != 0 {
		t.Fatalf("Required allocates %v times", n)
	}
}

func FuzzParseStatus(f *testing.F) {
	f.Add(read(f, "status"))
	f.Add(read(f, "status.d/libc6"))
	f.Add([]byte("Package: a\r\nVersion: 1\r\nSource: b (2)\r\n\r\n \r\n"))
	f.Add([]byte(" x\n\nPackage: a\nStatus: install ok installed\nVersion: 1:2-3\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pkgs, _ := ParseStatus(b)
		for _, p := range pkgs {
			if p.Name == "" || p.Version == "" || p.Source == nil || p.Source.Name == "" || p.Type != sbom.TypeDeb {
				t.Fatalf("incomplete package %+v", p)
			}
		}
	})
}

func FuzzFileList(f *testing.F) {
	f.Add(read(f, "adduser.list"))
	f.Add(read(f, "status.d/libssl3.md5sums"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, p := range []string{"/var/lib/dpkg/info/a:amd64.list", "/var/lib/dpkg/status.d/a.md5sums"} {
			res, _ := New().Extract(context.Background(), extract.Input{Path: p, Content: b})
			for _, o := range res.Owned {
				if !strings.HasPrefix(o.Path, "/") || o.Path == "/" || strings.Contains(o.Path, "/../") {
					t.Fatalf("unclean path %q", o.Path)
				}
			}
		}
	})
}
