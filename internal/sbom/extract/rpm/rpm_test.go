package rpm

import (
	"context"
	"database/sql"
	"encoding/binary"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	rpmdb "github.com/knqyf263/go-rpmdb/pkg"
	"github.com/knqyf263/go-rpmdb/pkg/bdb"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract"
)

const (
	bdbFile    = "testdata/bdb/Packages"
	ndbFile    = "testdata/ndb/Packages.db"
	sqliteFile = "testdata/sqlite/rpmdb.sqlite"
)

func read(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// extractIn runs the extractor with a fresh TempDir and checks that nothing is left in it.
func extractIn(t testing.TB, p string, content []byte) (extract.Result, error) {
	t.Helper()
	tmp := t.TempDir()
	res, err := New(Options{TempDir: tmp}).Extract(context.Background(), extract.Input{Path: p, Content: content})
	left, derr := os.ReadDir(tmp)
	if derr != nil || len(left) != 0 {
		t.Fatalf("temp dir not cleaned: %v %v", left, derr)
	}
	return res, err
}

func owns(res extract.Result, o extract.Ownership) bool {
	for _, x := range res.Owned {
		if x == o {
			return true
		}
	}
	return false
}

func TestBerkeleyDB(t *testing.T) {
	res, err := extractIn(t, "/var/lib/rpm/Packages", read(t, bdbFile))
	if err != nil {
		t.Fatal(err)
	}
	want := []sbom.Package{{
		Type: "rpm", Name: "libuuid", Version: "2.32.1-42.el8_8", Arch: "x86_64", Licenses: []string{"BSD"},
		Source: &sbom.Source{Name: "util-linux", Version: "2.32.1-42.el8_8"},
	}}
	if !reflect.DeepEqual(res.Packages, want) || len(res.Warnings) != 0 {
		t.Fatalf("got %+v, warnings %q", res.Packages, res.Warnings)
	}
	if len(res.Owned) != 7 || !owns(res, extract.Ownership{Path: "/usr/lib64/libuuid.so.1.3.0", Owner: extract.PackageRef{Type: "rpm", Name: "libuuid", Arch: "x86_64"}}) {
		t.Fatalf("owned %+v", res.Owned)
	}
}

func TestNDB(t *testing.T) {
	res, err := extractIn(t, "/usr/lib/sysimage/rpm/Packages.db", read(t, ndbFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Packages) != 35 || len(res.Warnings) != 0 {
		t.Fatalf("got %d packages, warnings %q", len(res.Packages), res.Warnings)
	}
	byName := map[string]sbom.Package{}
	for _, p := range res.Packages {
		byName[p.Name] = p
	}
	pcre := byName["libpcre1"]
	if pcre.Version != "8.45-20.10.1" || pcre.Arch != "x86_64" || *pcre.Source != (sbom.Source{Name: "pcre", Version: "8.45-20.10.1"}) ||
		!reflect.DeepEqual(pcre.Licenses, []string{"BSD-3-Clause"}) {
		t.Fatalf("libpcre1: %+v %+v", pcre, pcre.Source)
	}
	if !owns(res, extract.Ownership{Path: "/usr/lib/sysusers.d/system-user-root.conf", Owner: extract.PackageRef{Type: "rpm", Name: "system-user-root", Arch: "noarch"}}) {
		t.Fatal("system-user-root file missing")
	}
}

func TestSQLite(t *testing.T) {
	// The file is in WAL mode, as rpm writes it: SQLite creates -wal/-shm files next to the
	// copy, which must go with it (extractIn checks).
	res, err := extractIn(t, "/var/lib/rpm/rpmdb.sqlite", read(t, sqliteFile))
	if err != nil {
		t.Fatal(err)
	}
	// Expected values as `rpm -qa --qf '%{NAME} %{EPOCH} %{VERSION}-%{RELEASE} %{ARCH}
	// %{SOURCERPM} %{LICENSE}'` prints them for this database.
	want := []string{
		"mariner-release 2.0-4.cm2 noarch mariner-release 2.0-4.cm2 MIT",
		"filesystem 1.1-8.cm2 x86_64 filesystem 1.1-8.cm2 GPLv3",
		"glibc 2.34-2.cm2 x86_64 glibc 2.34-2.cm2 BSD AND GPLv2+ AND Inner-Net AND ISC AND LGPLv2+ AND MIT",
		"zlib 1.2.11-5.cm2 x86_64 zlib 1.2.11-5.cm2 zlib",
		"openssl-libs 1.1.1k-7.cm2 x86_64 openssl 1.1.1k-7.cm2 OpenSSL",
		"openssl 1.1.1k-7.cm2 x86_64 openssl 1.1.1k-7.cm2 OpenSSL",
		"bash 5.1.8-1.cm2 x86_64 bash 5.1.8-1.cm2 GPLv3",
	}
	var got []string
	for _, p := range res.Packages {
		got = append(got, strings.Join([]string{p.Name, p.Version, p.Arch, p.Source.Name, p.Source.Version, strings.Join(p.Licenses, "|")}, " "))
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%s", strings.Join(got, "\n"))
	}
	if !owns(res, extract.Ownership{Path: "/bin/bash", Owner: extract.PackageRef{Type: "rpm", Name: "bash", Arch: "x86_64"}}) {
		t.Fatal("/bin/bash not owned by bash")
	}
}

func TestConvertEpochAndSource(t *testing.T) {
	zero, two := 0, 2
	infos := []*rpmdb.PackageInfo{
		{Name: "openssl-libs", Epoch: &two, Version: "3.0.7", Release: "27.el9", Arch: "x86_64", SourceRpm: "openssl-3.0.7-27.el9.src.rpm", License: "ASL 2.0",
			BaseNames: []string{"libssl.so.3", "x"}, DirNames: []string{"/usr/lib64/", "/usr/lib64/../../etc/"}, DirIndexes: []int32{0, 1}},
		{Name: "zero", Epoch: &zero, Version: "1", Release: "1", Arch: "noarch", SourceRpm: "zero-1-1.src.rpm", Modularitylabel: "perl:5.32:8040020210115161920:9fe1d287"},
		{Name: "gpg-pubkey", Version: "fd431d51", Release: "4ae0493b"},
		{Name: "nosource", Version: "1", Release: "2", SourceRpm: "garbage"},
		{Name: "", Version: "1"},
		{Name: "badfiles", Version: "1", Release: "1", BaseNames: []string{"a"}, DirNames: []string{"/"}, DirIndexes: []int32{7}},
	}
	res := convert(infos)
	want := []sbom.Package{
		{Type: "rpm", Name: "openssl-libs", Version: "2:3.0.7-27.el9", Arch: "x86_64", Licenses: []string{"ASL 2.0"},
			Source: &sbom.Source{Name: "openssl", Version: "2:3.0.7-27.el9"}, Metadata: map[string]string{"epoch": "2"}},
		{Type: "rpm", Name: "zero", Version: "1-1", Arch: "noarch", Source: &sbom.Source{Name: "zero", Version: "1-1"},
			Metadata: map[string]string{"epoch": "0", "modularitylabel": "perl:5.32:8040020210115161920:9fe1d287"}},
		{Type: "rpm", Name: "nosource", Version: "1-2"},
		{Type: "rpm", Name: "badfiles", Version: "1-1"},
	}
	if !reflect.DeepEqual(res.Packages, want) {
		t.Fatalf("got %+v", res.Packages)
	}
	owner := extract.PackageRef{Type: "rpm", Name: "openssl-libs", Arch: "x86_64"}
	if wantOwned := []extract.Ownership{{Path: "/usr/lib64/libssl.so.3", Owner: owner}, {Path: "/etc/x", Owner: owner}}; !reflect.DeepEqual(res.Owned, wantOwned) {
		t.Fatalf("owned %+v", res.Owned)
	}
	if len(res.Warnings) != 3 {
		t.Fatalf("warnings %q", res.Warnings)
	}
}

func TestParseSourceRPM(t *testing.T) {
	tests := []struct{ in, name, vr string }{
		{"util-linux-2.32.1-42.el8_8.src.rpm", "util-linux", "2.32.1-42.el8_8"},
		{"glibc-2.34-2.cm2.src.rpm", "glibc", "2.34-2.cm2"},
		{"kernel-rt-5.14.0-70.13.1.rt21.83.el9_0.src.rpm", "kernel-rt", "5.14.0-70.13.1.rt21.83.el9_0"},
		{"texlive-base-20210325-52.el9.nosrc.rpm", "texlive-base", "20210325-52.el9"},
		{"glibc-2.34.src.rpm", "", ""},
		{"glibc-2.34-1.rpm", "", ""},
		{"-1-2.src.rpm", "", ""},
		{"a--2.src.rpm", "", ""},
		{"a-1-.src.rpm", "", ""},
		{"", "", ""},
	}
	for _, tt := range tests {
		name, vr, ok := ParseSourceRPM(tt.in)
		if name != tt.name || vr != tt.vr || ok != (tt.name != "") {
			t.Errorf("ParseSourceRPM(%q) = %q, %q, %v", tt.in, name, vr, ok)
		}
	}
}

// firstBDBOverflowPage returns the page size and the first page of the first package's
// overflow chain, as go-rpmdb would find it.
func firstBDBOverflowPage(t *testing.T, b []byte) (int, int) {
	t.Helper()
	meta, err := bdb.ParseHashMetadataPage(b[:512])
	if err != nil {
		t.Fatal(err)
	}
	ps := int(meta.PageSize)
	for n := 0; n <= int(meta.LastPageNo); n++ {
		p := b[n*ps : (n+1)*ps]
		hp, _ := bdb.ParseHashPage(p, false)
		if hp.PageType != bdb.HashPageType && hp.PageType != bdb.HashUnsortedPageType {
			continue
		}
		idx, _ := bdb.HashPageValueIndexes(p, hp.NumEntries, false)
		for _, off := range idx {
			if p[off] == bdb.HashOffIndexPageType {
				e, _ := bdb.ParseHashOffPageEntry(p[off:off+bdb.HashOffPageSize], false)
				return ps, int(e.PageNo)
			}
		}
	}
	t.Fatal("no package in test database")
	return 0, 0
}

func TestHostileBerkeleyDB(t *testing.T) {
	orig := read(t, bdbFile)
	ps, first := firstBDBOverflowPage(t, orig)
	patch := func(fn func(b []byte)) []byte {
		b := append([]byte(nil), orig...)
		fn(b)
		return b
	}
	pageOff := first * ps
	cases := map[string][]byte{
		// go-rpmdb v0.1.1 would spin forever on a chain page that is not an overflow page.
		"not an overflow page": patch(func(b []byte) { b[pageOff+25] = 13 }),
		// ... and on a chain that points back at itself.
		"chain cycle":       patch(func(b []byte) { binary.LittleEndian.PutUint32(b[pageOff+16:], uint32(first)) }),
		"chain beyond file": patch(func(b []byte) { binary.LittleEndian.PutUint32(b[pageOff+16:], 1<<30) }),
		// A header claiming 2^31-1 tags makes go-rpmdb allocate 32 GB.
		"huge header": patch(func(b []byte) { binary.BigEndian.PutUint32(b[pageOff+bdb.PageHeaderSize:], 0x7fffffff) }),
		// 16-bit wrap-around of the free-area offset would panic in go-rpmdb's goroutine.
		"free offset wraps": patch(func(b []byte) {
			binary.LittleEndian.PutUint32(b[pageOff+16:], 0)
			binary.LittleEndian.PutUint16(b[pageOff+22:], 0xfff0)
		}),
		"last page beyond file": patch(func(b []byte) { binary.LittleEndian.PutUint32(b[32:], 1<<20) }),
		"truncated":             orig[:len(orig)-100],
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				_, err := extractIn(t, "/var/lib/rpm/Packages", b)
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), "/var/lib/rpm/Packages") {
					t.Fatalf("err = %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("extraction hangs")
			}
		})
	}
}

func TestHostileNDB(t *testing.T) {
	orig := read(t, ndbFile)
	// The first used slot follows the 32-byte header; its block offset is in 16-byte units.
	var blk int
	for off := 32; off < 4096; off += 16 {
		if binary.LittleEndian.Uint32(orig[off+4:]) != 0 {
			blk = int(binary.LittleEndian.Uint32(orig[off+8:])) * 16
			break
		}
	}
	patch := func(fn func(b []byte)) []byte {
		b := append([]byte(nil), orig...)
		fn(b)
		return b
	}
	cases := map[string][]byte{
		"huge blob length": patch(func(b []byte) { binary.LittleEndian.PutUint32(b[blk+12:], 0xffffffff) }),
		"huge header":      patch(func(b []byte) { binary.BigEndian.PutUint32(b[blk+16:], 0x7fffffff) }),
		"bad blob magic":   patch(func(b []byte) { b[blk] = 'X' }),
		"bad slot magic":   patch(func(b []byte) { b[32] = 'X' }),
		"too many slots":   patch(func(b []byte) { binary.LittleEndian.PutUint32(b[12:], 5000) }),
		"truncated":        orig[:4000],
	}
	for name, b := range cases {
		if _, err := extractIn(t, "/var/lib/rpm/Packages.db", b); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestHostileSQLite(t *testing.T) {
	build := func(t *testing.T, stmts ...string) []byte {
		file := filepath.Join(t.TempDir(), "rpmdb.sqlite")
		db, err := sql.Open("sqlite", file)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for _, s := range stmts {
			if _, err := db.Exec(s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
		db.Close()
		return read(t, file)
	}
	cases := map[string][]string{
		// go-rpmdb's query has no deadline: a recursive view would never end.
		"endless view": {"CREATE VIEW Packages AS WITH RECURSIVE c(hnum, blob) AS (SELECT 1, x'00' UNION ALL SELECT hnum+1, blob FROM c) SELECT hnum, blob FROM c"},
		"huge header":  {"CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob BLOB NOT NULL)", "INSERT INTO Packages VALUES (1, x'7fffffff0000000000000000')"},
		"null blob":    {"CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob BLOB)", "INSERT INTO Packages VALUES (1, NULL)"},
		"no table":     {"CREATE TABLE Other (x)"},
	}
	for name, stmts := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := extractIn(t, "/var/lib/rpm/rpmdb.sqlite", build(t, stmts...)); err == nil {
				t.Fatal("no error")
			}
		})
	}
	// A corrupt header the guard lets through reaches go-rpmdb's own checks: error, no panic.
	b := build(t, "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob BLOB NOT NULL)",
		"INSERT INTO Packages VALUES (1, x'00000001000000100000003f0000000700000000000000010000000000000000')")
	if _, err := extractIn(t, "/var/lib/rpm/rpmdb.sqlite", b); err == nil {
		t.Fatal("corrupt header: no error")
	}
}

func TestGarbageAndOptions(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("hello"), make([]byte, 4096)} {
		if _, err := extractIn(t, "/var/lib/rpm/Packages", b); err == nil {
			t.Errorf("garbage %q...: no error", b[:min(len(b), 8)])
		}
	}
	if _, err := New(Options{}).Extract(context.Background(), extract.Input{Path: "/var/lib/rpm/Packages", Content: read(t, bdbFile)}); err == nil {
		t.Fatal("no TempDir: no error")
	}
}

func TestRequired(t *testing.T) {
	e := New(Options{TempDir: t.TempDir()})
	for p, want := range map[string]bool{
		"/var/lib/rpm/Packages":              true,
		"/var/lib/rpm/Packages.db":           true,
		"/var/lib/rpm/rpmdb.sqlite":          true,
		"/usr/lib/sysimage/rpm/Packages":     true,
		"/usr/lib/sysimage/rpm/Packages.db":  true,
		"/usr/lib/sysimage/rpm/rpmdb.sqlite": true,
		"/var/lib/rpm/Name":                  false,
		"/var/lib/rpm/rpmdb.sqlite-shm":      false,
		"/var/lib/rpm/x/Packages":            false,
		"/usr/lib/sysimage/rpm/Index.db":     false,
		"/root/var/lib/rpm/Packages":         false,
	} {
		if got := e.Required(p, 0o644, 1); got != want {
			t.Errorf("Required(%q) = %v", p, got)
		}
	}
	if e.Required("/var/lib/rpm/Packages", fs.ModeDir, 0) {
		t.Error("directory required")
	}
	if n := testing.AllocsPerRun(100, func() { e.Required("/var/lib/rpm/Basenames", 0o644, 1) }); n != 0 {
		t.Fatalf("Required allocates %v times", n)
	}
}

// FuzzExtract runs slowly (a few executions a second): the fuzzing engine scans the coverage
// counters of every linked package on each run, and modernc.org/sqlite is very large. The guard's
// BDB/NDB paths are also covered by the hand-built hostile cases above.
func FuzzExtract(f *testing.F) {
	f.Add(read(f, bdbFile))
	f.Add(read(f, sqliteFile))
	f.Add(read(f, ndbFile)[:64<<10])
	tmp := f.TempDir()
	e := New(Options{TempDir: tmp})
	f.Fuzz(func(t *testing.T, b []byte) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			res, err := e.Extract(context.Background(), extract.Input{Path: "/var/lib/rpm/Packages", Content: b})
			if err == nil {
				for _, p := range res.Packages {
					if p.Name == "" || p.Version == "" || p.Type != sbom.TypeRPM {
						t.Errorf("incomplete package %+v", p)
					}
				}
			}
		}()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("extraction hangs")
		}
	})
}
