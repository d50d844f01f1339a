package index

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crowsnest-dev/crowsnest/internal/layercache"
	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract"
)

// listExtractor reads /pkgs/*.list files holding "name version" lines, a stand-in for a package
// database that is rewritten by every layer that installs something, and /etc/os-release.
type listExtractor struct{}

func (listExtractor) Name() string { return "list" }
func (listExtractor) Version() int { return 1 }
func (listExtractor) Required(p string, _ fs.FileMode, _ int64) bool {
	return strings.HasPrefix(p, "/pkgs/") && strings.HasSuffix(p, ".list") || p == "/etc/os-release" || p == "/usr/lib/os-release"
}
func (listExtractor) MaxFileSize() int64 { return 1 << 20 }
func (listExtractor) Extract(_ context.Context, in extract.Input) (extract.Result, error) {
	var res extract.Result
	if strings.HasSuffix(in.Path, "os-release") {
		res.OS = &sbom.OS{ID: strings.TrimSpace(string(in.Content))}
		return res, nil
	}
	if bytes.HasPrefix(in.Content, []byte("PANIC")) {
		panic("hostile input")
	}
	for _, line := range strings.Split(strings.TrimSpace(string(in.Content)), "\n") {
		name, ver, ok := strings.Cut(line, " ")
		if !ok {
			return res, fmt.Errorf("malformed line %q", line)
		}
		res.Packages = append(res.Packages, sbom.Package{Type: sbom.TypeNPM, Name: name, Version: ver})
	}
	return res, nil
}

type entry struct {
	name, body, link string
	typ              byte
}

func file(name, body string) entry       { return entry{name: name, body: body, typ: tar.TypeReg} }
func symlink(name, target string) entry  { return entry{name: name, link: target, typ: tar.TypeSymlink} }
func hardlink(name, target string) entry { return entry{name: name, link: target, typ: tar.TypeLink} }
func whiteout(dir, name string) entry    { return file(dir+"/.wh."+name, "") }
func opaque(dir string) entry            { return file(dir+"/.wh..wh..opq", "") }
func device(name string) entry           { return entry{name: name, typ: tar.TypeChar} }
func layerTar(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o644, Linkname: e.link, Size: int64(len(e.body))}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// memImage serves layers from memory and counts how often each is opened.
type memImage struct {
	layers [][]byte
	opened []int
}

func newMemImage(layers ...[]byte) *memImage {
	return &memImage{layers: layers, opened: make([]int, len(layers))}
}

func (m *memImage) Describe() sbom.Image {
	img := sbom.Image{Reference: "mem"}
	for i, l := range m.layers {
		d := fmt.Sprintf("sha256:%x", sha256.Sum256(l))
		img.Layers = append(img.Layers, sbom.Layer{Index: i, Digest: d, DiffID: d})
	}
	return img
}
func (m *memImage) Dir() string { return "" }
func (m *memImage) OpenLayer(_ context.Context, i int) (io.ReadCloser, error) {
	m.opened[i]++
	return io.NopCloser(bytes.NewReader(m.layers[i])), nil
}

func newIndexer(t testing.TB, cache LayerCache) *Indexer {
	t.Helper()
	set, err := extract.NewSet(listExtractor{})
	if err != nil {
		t.Fatal(err)
	}
	return &Indexer{Extractors: set, Cache: cache}
}

func index(t *testing.T, img Image) *sbom.SBOM {
	t.Helper()
	s, _, err := newIndexer(t, nil).Index(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func names(s *sbom.SBOM) string {
	var out []string
	for _, p := range s.Packages {
		out = append(out, p.Name+"@"+p.Version)
	}
	return strings.Join(out, " ")
}

func TestAttributionFollowsTheLayerThatIntroducedEachPackage(t *testing.T) {
	img := newMemImage(
		layerTar(t, file("pkgs/db.list", "a 1\nb 1")),
		layerTar(t, file("pkgs/db.list", "a 1\nb 2\nc 1")), // b upgraded, c added
		layerTar(t, file("etc/motd", "hello")),
	)
	s := index(t, img)
	if got := names(s); got != "a@1 b@2 c@1" {
		t.Fatalf("packages = %s", got)
	}
	want := map[string]int{"a": 0, "b": 1, "c": 1}
	for _, p := range s.Packages {
		if got := p.Locations[0].DiffID; got != s.Image.Layers[want[p.Name]].DiffID {
			t.Errorf("%s attributed to %s, want layer %d", p.Name, got, want[p.Name])
		}
		if p.Locations[0].Path != "/pkgs/db.list" {
			t.Errorf("%s location %q", p.Name, p.Locations[0].Path)
		}
	}
}

func TestRemovedAndReAddedPackageBelongsToTheLayerThatReAddedIt(t *testing.T) {
	img := newMemImage(
		layerTar(t, file("pkgs/db.list", "a 1")),
		layerTar(t, whiteout("pkgs", "db.list")),
		layerTar(t, file("pkgs/db.list", "a 1")),
	)
	s := index(t, img)
	if got := s.Packages[0].Locations[0].DiffID; got != s.Image.Layers[2].DiffID {
		t.Fatalf("attributed to %s, want layer 2", got)
	}
}

func TestWhiteoutsAndOpaqueDirectoriesHideLowerContent(t *testing.T) {
	img := newMemImage(
		layerTar(t, file("pkgs/a.list", "a 1"), file("pkgs/b.list", "b 1"),
			file("pkgs/sub/c.list", "c 1"), file("pkgs/sub/d.list", "d 1")),
		layerTar(t, whiteout("pkgs", "a.list"), opaque("pkgs/sub"), file("pkgs/sub/e.list", "e 1")),
	)
	if got := names(index(t, img)); got != "b@1 e@1" {
		t.Fatalf("packages = %s, want b@1 e@1", got)
	}
}

func TestWhiteoutOfADirectoryRemovesEverythingBelowIt(t *testing.T) {
	img := newMemImage(
		layerTar(t, file("pkgs/app/x.list", "x 1"), file("pkgs/keep.list", "k 1")),
		layerTar(t, whiteout("pkgs", "app")),
	)
	if got := names(index(t, img)); got != "k@1" {
		t.Fatalf("packages = %s", got)
	}
}

func TestSymlinksResolveInsideTheImage(t *testing.T) {
	img := newMemImage(
		layerTar(t, file("usr/lib/os-release", "debian"), symlink("etc/os-release", "../usr/lib/os-release"),
			symlink("pkgs/loop1.list", "loop2.list"), symlink("pkgs/loop2.list", "loop1.list"),
			symlink("pkgs/escape.list", "../../../../../host/pkgs/x.list")),
	)
	s := index(t, img)
	if s.OS == nil || s.OS.ID != "debian" {
		t.Fatalf("OS = %+v", s.OS)
	}
	var loop bool
	for _, w := range s.Warnings {
		loop = loop || strings.Contains(w, "loop")
	}
	if !loop {
		t.Errorf("no warning for the symlink loop: %q", s.Warnings)
	}
	if len(s.Packages) != 0 {
		t.Errorf("packages from links: %s", names(s))
	}
}

func TestOSReleaseSymlinkedAcrossLayers(t *testing.T) {
	img := newMemImage(
		layerTar(t, file("usr/lib/os-release", "alpine")),
		layerTar(t, symlink("etc/os-release", "/usr/lib/os-release")),
	)
	if s := index(t, img); s.OS == nil || s.OS.ID != "alpine" {
		t.Fatalf("OS = %+v", s.OS)
	}
}

func TestHardLinks(t *testing.T) {
	img := newMemImage(layerTar(t, file("pkgs/a.list", "a 1"), hardlink("pkgs/b.list", "pkgs/a.list"),
		hardlink("pkgs/c.list", "pkgs/missing.list")))
	s := index(t, img)
	if len(s.Packages) != 1 || len(s.Packages[0].Locations) != 2 {
		t.Fatalf("packages = %+v", s.Packages)
	}
	if !strings.Contains(strings.Join(s.Warnings, "\n"), "did not retain") {
		t.Errorf("no warning for a dangling hard link: %q", s.Warnings)
	}
}

func TestHostileEntriesAreWarnedAboutAndNeverTrusted(t *testing.T) {
	img := newMemImage(layerTar(t,
		file("../../pkgs/evil.list", "evil 1"),
		file("/pkgs/abs.list", "abs 1"),
		file("pkgs/../../../pkgs/evil2.list", "evil 2"),
		device("pkgs/dev.list"),
		file("pkgs/panic.list", "PANIC"),
		file("pkgs/bad.list", "no-version-here"),
		file("pkgs/ok.list", "ok 1"),
	))
	s := index(t, img)
	if got := names(s); got != "abs@1 ok@1" {
		t.Fatalf("packages = %s", got)
	}
	all := strings.Join(s.Warnings, "\n")
	for _, want := range []string{"../../pkgs/evil.list: entry name climbs above the root", "/pkgs/abs.list: absolute entry name",
		"/pkgs/dev.list: a device", "/pkgs/panic.list: list: extractor failed", "/pkgs/bad.list: list: malformed", "layer 0 (sha256:"} {
		if !strings.Contains(all, want) {
			t.Errorf("warnings lack %q:\n%s", want, all)
		}
	}
}

func TestOversizedFileIsSkippedAndTheRestRead(t *testing.T) {
	big := strings.Repeat("x 1\n", (2<<20)/4) // above listExtractor's 1 MiB limit
	s := index(t, newMemImage(layerTar(t, file("pkgs/huge.list", big), file("pkgs/ok.list", "ok 1"))))
	if !strings.Contains(strings.Join(s.Warnings, "\n"), "/pkgs/huge.list: declared size 2097152 bytes exceeds") {
		t.Fatalf("warnings = %q", s.Warnings)
	}
	if names(s) != "ok@1" {
		t.Fatalf("packages = %s", names(s))
	}
}

func TestDeclaredHugeFileWithNoDataIsAnError(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	// A 10 GiB file that is not there: the header alone must not make us allocate or hang.
	tw.WriteHeader(&tar.Header{Name: "pkgs/huge.list", Typeflag: tar.TypeReg, Mode: 0o644, Size: 10 << 30})
	tw.Flush()
	_, _, err := newIndexer(t, nil).Index(context.Background(), newMemImage(buf.Bytes()))
	if err == nil || !strings.Contains(err.Error(), "layer 0 (sha256:") || !strings.Contains(err.Error(), "pkgs/huge.list") {
		t.Fatalf("err = %v", err)
	}
}

func TestTruncatedLayerIsAnErrorNamingLayerAndFile(t *testing.T) {
	full := layerTar(t, file("pkgs/a.list", strings.Repeat("a 1\n", 1000)))
	_, _, err := newIndexer(t, nil).Index(context.Background(), newMemImage(full[:1024]))
	if err == nil || !strings.Contains(err.Error(), "layer 0") || !strings.Contains(err.Error(), "/pkgs/a.list") {
		t.Fatalf("err = %v", err)
	}
}

func TestLayerCacheAvoidsReadingKnownLayers(t *testing.T) {
	cache, err := layercache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	base := layerTar(t, file("pkgs/db.list", "a 1"))
	first := newMemImage(base, layerTar(t, file("pkgs/db.list", "a 1\nb 1")))
	ix := newIndexer(t, cache)
	s1, st, err := ix.Index(context.Background(), first)
	if err != nil || st.LayersRead != 2 {
		t.Fatalf("first index: %v %+v", err, st)
	}
	s2, st, err := ix.Index(context.Background(), first)
	if err != nil || st.LayersRead != 0 || st.LayersCached != 2 || first.opened[0] != 1 {
		t.Fatalf("second index: %v %+v opened=%v", err, st, first.opened)
	}
	if names(s1) != names(s2) || s1.Packages[1].Locations[0] != s2.Packages[1].Locations[0] {
		t.Fatalf("cached result differs: %s vs %s", names(s1), names(s2))
	}
	// Another image sharing the base layer reads only its own layer.
	second := newMemImage(base, layerTar(t, file("pkgs/db.list", "a 1\nc 1")))
	_, st, err = ix.Index(context.Background(), second)
	if err != nil || st.LayersRead != 1 || second.opened[0] != 0 {
		t.Fatalf("shared base: %v %+v opened=%v", err, st, second.opened)
	}
}

func TestDirectoryInput(t *testing.T) {
	root := t.TempDir()
	mustWrite := func(p, body string) {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mustWrite("pkgs/a.list", "a 1")
	mustWrite("usr/lib/os-release", "wolfi")
	os.Symlink("../usr/lib/os-release", filepath.Join(root, "etc/os-release"))
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	if err := os.Symlink("../usr/lib/os-release", filepath.Join(root, "etc/os-release")); err != nil {
		t.Fatal(err)
	}
	s := index(t, dirImage(root))
	if names(s) != "a@1" || s.OS == nil || s.OS.ID != "wolfi" {
		t.Fatalf("packages = %s, os = %+v", names(s), s.OS)
	}
}

type dirImage string

func (d dirImage) Describe() sbom.Image { return sbom.Image{Reference: "fs://" + string(d)} }
func (d dirImage) Dir() string          { return string(d) }
func (d dirImage) OpenLayer(context.Context, int) (io.ReadCloser, error) {
	return nil, fmt.Errorf("no layers")
}

func FuzzWalkTar(f *testing.F) {
	f.Add(layerTar(f, file("pkgs/a.list", "a 1"), whiteout("pkgs", "b.list"), symlink("etc/os-release", "x")))
	f.Add(layerTar(f, hardlink("pkgs/b.list", "pkgs/a.list"), opaque("pkgs"), file("../x", "")))
	f.Add([]byte("not a tar"))
	set, err := extract.NewSet(listExtractor{})
	if err != nil {
		f.Fatal(err)
	}
	limits := Limits{MaxEntries: 1000, MaxReadBytes: 1 << 20, MaxWarnings: 10}
	f.Fuzz(func(t *testing.T, data []byte) {
		lr, err := newWalker(set, limits, "layer 0").walkTar(context.Background(), bytes.NewReader(data))
		if err != nil {
			return
		}
		m := mergeLayers([]*LayerResult{lr, lr})
		m.packages(nil)
		for _, f := range lr.Files {
			if !strings.HasPrefix(f.Path, "/") || strings.Contains(f.Path, "/../") {
				t.Fatalf("unclean path %q", f.Path)
			}
		}
	})
}
