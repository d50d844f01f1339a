package apk

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract"
)

func read(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "installed"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestInstalledDB(t *testing.T) {
	e := New()
	content := read(t)
	if !e.Required(dbPath, 0o644, int64(len(content))) {
		t.Fatal("db not required")
	}
	res, err := e.Extract(context.Background(), extract.Input{Path: dbPath, Content: content})
	if err != nil {
		t.Fatal(err)
	}
	want := []sbom.Package{
		{Type: "apk", Name: "musl", Version: "1.2.4_git20230717-r4", Arch: "x86_64", Licenses: []string{"MIT"}, Source: &sbom.Source{Name: "musl", Version: "1.2.4_git20230717-r4"}},
		{Type: "apk", Name: "busybox", Version: "1.36.1-r15", Arch: "x86_64", Licenses: []string{"GPL-2.0-only"}, Source: &sbom.Source{Name: "busybox", Version: "1.36.1-r15"}},
		{Type: "apk", Name: "libcrypto3", Version: "3.1.4-r2", Arch: "x86_64", Licenses: []string{"Apache-2.0"}, Source: &sbom.Source{Name: "openssl", Version: "3.1.4-r2"}},
		{Type: "apk", Name: "py3-setuptools", Version: "68.2.2-r0", Arch: "noarch", Licenses: []string{"MIT"}, Source: &sbom.Source{Name: "py3-setuptools", Version: "68.2.2-r0"}},
	}
	if !reflect.DeepEqual(res.Packages, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", res.Packages, want)
	}
	if len(res.Warnings) != 0 {
		t.Fatalf("warnings %q", res.Warnings)
	}
	byOwner := map[string][]string{}
	for _, o := range res.Owned {
		byOwner[o.Owner.Name+"/"+o.Owner.Arch] = append(byOwner[o.Owner.Name+"/"+o.Owner.Arch], o.Path)
	}
	wantOwned := map[string][]string{
		"musl/x86_64":    {"/lib/ld-musl-x86_64.so.1", "/lib/libc.musl-x86_64.so.1"},
		"busybox/x86_64": {"/bin/busybox", "/etc/securetty", "/etc/udhcpd.conf", "/etc/logrotate.d/acpid", "/etc/network/if-up.d/dad", "/usr/share/udhcpc/default.script"},
		"libcrypto3/x86_64": {"/etc/ssl/ct_log_list.cnf", "/etc/ssl/ct_log_list.cnf.dist", "/etc/ssl/openssl.cnf.dist", "/lib/libcrypto.so.3", "/usr/lib/libcrypto.so.3",
			"/usr/lib/engines-3/afalg.so", "/usr/lib/engines-3/capi.so", "/usr/lib/engines-3/loader_attic.so", "/usr/lib/engines-3/padlock.so", "/usr/lib/ossl-modules/legacy.so"},
		"py3-setuptools/noarch": {"/usr/lib/python3.11/site-packages/setuptools-68.2.2-py3.11.egg-info/PKG-INFO", "/usr/lib/python3.11/site-packages/setuptools-68.2.2-py3.11.egg-info/top_level.txt"},
	}
	if !reflect.DeepEqual(byOwner, wantOwned) {
		t.Fatalf("owned\n%v\nwant\n%v", byOwner, wantOwned)
	}
	for _, o := range res.Owned {
		if o.Owner.Type != sbom.TypeAPK {
			t.Fatalf("owner type %q", o.Owner.Type)
		}
	}
}

func TestCRLFAndMissingFields(t *testing.T) {
	content := strings.ReplaceAll(string(read(t)), "\n", "\r\n")
	res := Parse([]byte(content))
	if len(res.Packages) != 4 || res.Packages[2].Source.Name != "openssl" || res.Packages[0].Version != "1.2.4_git20230717-r4" {
		t.Fatalf("CRLF: %+v", res.Packages)
	}
	// No origin, arch or license: source falls back to the package itself; R before F is at /.
	res = Parse([]byte("P:tiny\nV:1.0-r0\nR:rootfile\n"))
	want := []sbom.Package{{Type: "apk", Name: "tiny", Version: "1.0-r0", Source: &sbom.Source{Name: "tiny", Version: "1.0-r0"}}}
	if !reflect.DeepEqual(res.Packages, want) || len(res.Owned) != 1 || res.Owned[0].Path != "/rootfile" {
		t.Fatalf("got %+v %+v", res.Packages, res.Owned)
	}
}

func TestMalformedEntriesSkipped(t *testing.T) {
	content := strings.Join([]string{
		"P:good\nV:1-r0\nF:usr/bin\nR:good",
		"P:noversion\nA:x86_64",
		"garbage line\nP:bad\nV:1",
		"P:twice\nP:again\nV:1",
		"P:huge\nV:1\nT:" + strings.Repeat("x", maxLineLen),
		"P:sp ace\nV:1",
		"P:evil\nV:1\nF:../../etc\nR:..\nR:passwd",
		"P:nul\nV:1\nR:a\x00b",
	}, "\n\n")
	res := Parse([]byte(content))
	var names []string
	for _, p := range res.Packages {
		names = append(names, p.Name)
	}
	if strings.Join(names, ",") != "good,evil" || len(res.Warnings) != 6 {
		t.Fatalf("got %v, warnings %q", names, res.Warnings)
	}
	var paths []string
	for _, o := range res.Owned {
		paths = append(paths, o.Path)
	}
	if strings.Join(paths, " ") != "/usr/bin/good /etc/passwd" {
		t.Fatalf("paths %q", paths)
	}
	if _, err := New().Extract(context.Background(), extract.Input{Path: dbPath, Content: []byte("not a database\x00\xff")}); err == nil || !strings.Contains(err.Error(), dbPath) {
		t.Fatalf("garbage: err %v", err)
	}
	if res, err := New().Extract(context.Background(), extract.Input{Path: dbPath}); err != nil || len(res.Packages) != 0 {
		t.Fatalf("empty db: %v %+v", err, res)
	}
}

func TestRequired(t *testing.T) {
	e := New()
	for p, want := range map[string]bool{
		"/lib/apk/db/installed":     true,
		"/lib/apk/db/installed.new": false,
		"/usr/lib/apk/db/installed": false,
		"/lib/apk/db/triggers":      false,
		"/var/lib/dpkg/status":      false,
		"/lib/apk/db/installed/x":   false,
	} {
		if got := e.Required(p, 0o644, 1); got != want {
			t.Errorf("Required(%q) = %v", p, got)
		}
	}
	if e.Required(dbPath, fs.ModeDir, 0) {
		t.Error("directory required")
	}
	if n := testing.AllocsPerRun(100, func() { e.Required("/usr/lib/libz.so", 0o644, 1) }); n != 0 {
		t.Fatalf("Required allocates %v times", n)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(read(f))
	f.Add([]byte("P:a\r\nV:1\r\nF:..\r\nR:x\r\n\r\nP:b"))
	f.Add([]byte("R:x\nP:\nV:"))
	f.Fuzz(func(t *testing.T, b []byte) {
		res := Parse(b)
		for _, p := range res.Packages {
			if p.Name == "" || p.Version == "" || p.Source == nil || p.Source.Name == "" {
				t.Fatalf("incomplete package %+v", p)
			}
		}
		for _, o := range res.Owned {
			if !strings.HasPrefix(o.Path, "/") || strings.Contains(o.Path, "/../") || strings.HasSuffix(o.Path, "/..") || o.Path == "/" {
				t.Fatalf("unclean path %q", o.Path)
			}
		}
	})
}
