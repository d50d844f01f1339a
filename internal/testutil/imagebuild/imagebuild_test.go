package imagebuild

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/crowsnest-dev/crowsnest/internal/testutil/registryproc"
)

// got is a tar entry as read back.
type got struct {
	Name     string
	Type     byte
	Mode     int64
	UID, GID int
	Link     string
	Major    int64
	Minor    int64
	Size     int64
	Content  string
}

func readEntries(t *testing.T, l v1.Layer) []got {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out []got
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, got{h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid, h.Linkname, h.Devmajor, h.Devminor, h.Size, string(b)})
	}
}

func allKinds() []Entry {
	return []Entry{
		Dir("/etc"),
		File("/etc/os-release", []byte("ID=debian\nVERSION_ID=\"12\"\n")),
		Exec("/usr/bin/tool", []byte("#!/bin/sh\n")).WithOwner(1000, 1001),
		File("/usr/bin/suid", []byte("x")).WithMode(0o4755),
		Symlink("/usr/bin/alias", "tool"),
		Hardlink("/usr/bin/tool2", "/usr/bin/tool"),
		Whiteout("/var/cache/apt"),
		Dir("/opt/app"),
		OpaqueDir("/opt/app"),
		CharDevice("/dev/null", 1, 3),
		BlockDevice("/dev/sda", 8, 0),
		FIFO("/run/fifo"),
	}
}

func wantAllKinds() []got {
	return []got{
		{Name: "etc/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "etc/os-release", Type: tar.TypeReg, Mode: 0o644, Size: 26, Content: "ID=debian\nVERSION_ID=\"12\"\n"},
		{Name: "usr/bin/tool", Type: tar.TypeReg, Mode: 0o755, UID: 1000, GID: 1001, Size: 10, Content: "#!/bin/sh\n"},
		{Name: "usr/bin/suid", Type: tar.TypeReg, Mode: 0o4755, Size: 1, Content: "x"},
		{Name: "usr/bin/alias", Type: tar.TypeSymlink, Mode: 0o777, Link: "tool"},
		{Name: "usr/bin/tool2", Type: tar.TypeLink, Mode: 0o644, Link: "usr/bin/tool"},
		{Name: "var/cache/.wh.apt", Type: tar.TypeReg, Mode: 0o644},
		{Name: "opt/app/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "opt/app/.wh..wh..opq", Type: tar.TypeReg, Mode: 0o644},
		{Name: "dev/null", Type: tar.TypeChar, Mode: 0o666, Major: 1, Minor: 3},
		{Name: "dev/sda", Type: tar.TypeBlock, Mode: 0o660, Major: 8},
		{Name: "run/fifo", Type: tar.TypeFifo, Mode: 0o644},
	}
}

func TestImagePushedAndReadBack(t *testing.T) {
	reg := registryproc.Start(t)
	cfg := Config{
		OS: "linux", Architecture: "arm64", Variant: "v8",
		User: "1000:1000", Env: []string{"PATH=/usr/bin", "API_TOKEN=secret"},
		Labels:       map[string]string{"maintainer": "crowsnest"},
		ExposedPorts: []string{"8080/tcp", "53/udp"},
		Entrypoint:   []string{"/usr/bin/tool"}, Cmd: []string{"--serve"}, WorkingDir: "/opt/app",
	}
	layers := []Layer{
		{Entries: allKinds(), CreatedBy: "COPY rootfs /"},
		HistoryOnly("ENV API_TOKEN=secret"),
		{Entries: []Entry{File("a", []byte("zstd layer"))}, Compression: Zstd, CreatedBy: "RUN zstd"},
		{Entries: []Entry{File("b", []byte("plain layer"))}, Compression: Uncompressed, CreatedBy: "RUN plain"},
	}
	img := ImageWithConfig(t, cfg, layers...)
	ref := Push(t, reg.Ref("fixture/app:v1"), img)
	if !strings.HasPrefix(ref, reg.Addr()+"/fixture/app@sha256:") {
		t.Fatalf("Push returned %q", ref)
	}

	reg.Reset()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	mt, _ := pulled.MediaType()
	if mt != types.OCIManifestSchema1 {
		t.Errorf("manifest media type %s", mt)
	}
	cf, err := pulled.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "arm64" || cf.Variant != "v8" || cf.Config.User != "1000:1000" ||
		!reflect.DeepEqual(cf.Config.Env, cfg.Env) || cf.Config.Labels["maintainer"] != "crowsnest" ||
		!reflect.DeepEqual(cf.Config.Entrypoint, cfg.Entrypoint) || !reflect.DeepEqual(cf.Config.Cmd, cfg.Cmd) ||
		cf.Config.WorkingDir != "/opt/app" || len(cf.Config.ExposedPorts) != 2 {
		t.Errorf("config read back: %+v", cf)
	}
	var history []string
	for _, h := range cf.History {
		s := h.CreatedBy
		if h.EmptyLayer {
			s += " (empty)"
		}
		history = append(history, s)
	}
	wantHistory := []string{"COPY rootfs /", "ENV API_TOKEN=secret (empty)", "RUN zstd", "RUN plain"}
	if !reflect.DeepEqual(history, wantHistory) {
		t.Errorf("history %q, want %q", history, wantHistory)
	}

	pl, err := pulled.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(pl) != 3 || len(cf.RootFS.DiffIDs) != 3 {
		t.Fatalf("%d layers, %d diffIDs; want 3", len(pl), len(cf.RootFS.DiffIDs))
	}
	wantMT := []types.MediaType{types.OCILayer, types.OCILayerZStd, types.OCIUncompressedLayer}
	for i, l := range pl {
		mt, _ := l.MediaType()
		if mt != wantMT[i] {
			t.Errorf("layer %d media type %s, want %s", i, mt, wantMT[i])
		}
		// The config's diffID is the digest of what the blob decompresses to.
		d, _ := l.DiffID()
		if d != cf.RootFS.DiffIDs[i] {
			t.Errorf("layer %d diffID %s, config says %s", i, d, cf.RootFS.DiffIDs[i])
		}
	}
	if g := readEntries(t, pl[0]); !reflect.DeepEqual(g, wantAllKinds()) {
		t.Errorf("layer 0 entries:\n got %+v\nwant %+v", g, wantAllKinds())
	}
	if g := readEntries(t, pl[1]); len(g) != 1 || g[0].Content != "zstd layer" {
		t.Errorf("zstd layer entries %+v", g)
	}
	if g := readEntries(t, pl[2]); len(g) != 1 || g[0].Content != "plain layer" {
		t.Errorf("uncompressed layer entries %+v", g)
	}
	// The registry saw exactly the blobs this client pulled: 3 layers and the config.
	if n := reg.CountBlobGETs("fixture/app"); n != 4 {
		t.Errorf("registry logged %d blob GETs, want 4", n)
	}
}

func TestSameSpecSameDigest(t *testing.T) {
	a, _ := Image(t, NewLayer(allKinds()...)).Digest()
	b, _ := Image(t, NewLayer(allKinds()...)).Digest()
	if a != b {
		t.Errorf("same spec built twice: %s != %s", a, b)
	}
}

func TestDockerImageAndTarball(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Docker = true
	img := ImageWithConfig(t, cfg, NewLayer(File("/hello", []byte("hi"))), Layer{
		Entries: []Entry{File("/plain", nil)}, Compression: Uncompressed})
	file := filepath.Join(t.TempDir(), "save.tar")
	WriteDockerTarball(t, file, "example.com/app:1.0", img)

	back, err := tarball.ImageFromPath(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantDigests := layerDigests(t, img)
	if g := layerDigests(t, back); !reflect.DeepEqual(g, wantDigests) {
		t.Errorf("tarball layers %v, want %v", g, wantDigests)
	}
	mt, _ := img.MediaType()
	if mt != types.DockerManifestSchema2 {
		t.Errorf("manifest media type %s", mt)
	}
	ls, _ := img.Layers()
	if mt, _ := ls[0].MediaType(); mt != types.DockerLayer {
		t.Errorf("docker layer media type %s", mt)
	}
	if mt, _ := ls[1].MediaType(); mt != types.DockerUncompressedLayer {
		t.Errorf("docker uncompressed layer media type %s", mt)
	}
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return openFile(file) })
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 || len(m[0].RepoTags) != 1 || m[0].RepoTags[0] != "example.com/app:1.0" {
		t.Errorf("manifest.json %+v", m)
	}
}

func layerDigests(t *testing.T, img v1.Image) []string {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range ls {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d.String())
	}
	return out
}

func TestIndexPushAndLayout(t *testing.T) {
	amd := Image(t, NewLayer(File("/arch", []byte("amd64"))))
	armCfg := DefaultConfig()
	armCfg.Architecture, armCfg.Variant = "arm64", "v8"
	arm := ImageWithConfig(t, armCfg, NewLayer(File("/arch", []byte("arm64"))))
	idx := Index(t, map[Platform]v1.Image{
		{OS: "linux", Architecture: "arm64", Variant: "v8"}: arm,
		{OS: "linux", Architecture: "amd64"}:                amd,
	})

	check := func(t *testing.T, idx v1.ImageIndex) {
		t.Helper()
		m, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		if m.MediaType != types.OCIImageIndex || len(m.Manifests) != 2 {
			t.Fatalf("index %+v", m)
		}
		var plats []string
		for _, d := range m.Manifests {
			plats = append(plats, d.Platform.String())
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			ls, _ := img.Layers()
			e := readEntries(t, ls[0])
			if !strings.HasPrefix(d.Platform.Architecture, e[0].Content) {
				t.Errorf("platform %s has the layer of %s", d.Platform, e[0].Content)
			}
		}
		if !reflect.DeepEqual(plats, []string{"linux/amd64", "linux/arm64/v8"}) {
			t.Errorf("platforms %v", plats)
		}
	}

	reg := registryproc.Start(t)
	ref := PushIndex(t, reg.Ref("multi/app:latest"), idx)
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Index(r)
	if err != nil {
		t.Fatal(err)
	}
	check(t, pulled)

	dir := filepath.Join(t.TempDir(), "layout")
	WriteOCILayoutIndex(t, dir, "multi", idx)
	WriteOCILayout(t, dir, "single", amd)
	root, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	rm, err := root.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(rm.Manifests) != 2 || rm.Manifests[0].Annotations[refNameAnnotation] != "multi" ||
		rm.Manifests[1].Annotations[refNameAnnotation] != "single" {
		t.Fatalf("layout index.json %+v", rm)
	}
	inner, err := root.ImageIndex(rm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	check(t, inner)
	single, err := root.Image(rm.Manifests[1].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := layerDigests(t, single), layerDigests(t, amd); !reflect.DeepEqual(g, w) {
		t.Errorf("layout image layers %v, want %v", g, w)
	}
}

func TestHostileEntriesKeptVerbatim(t *testing.T) {
	for _, c := range []Compression{Gzip, Zstd, Uncompressed} {
		// One layer per group: DeviceEntries reuses names of SymlinkEntries.
		names := map[string]got{}
		for _, group := range [][]Entry{TraversalEntries(), SymlinkEntries(), DeviceEntries()} {
			for _, e := range readEntries(t, HostileLayer(t, c, group...)) {
				if _, dup := names[e.Name]; !dup {
					names[e.Name] = e
				}
			}
		}
		for _, n := range []string{"../../etc/passwd", "/abs/path", "a/../../b"} {
			if names[n].Type != tar.TypeReg || names[n].Content == "" {
				t.Errorf("%v: entry %q missing or empty: %+v", c, n, names[n])
			}
		}
		if e := names["hardlink-out"]; e.Type != tar.TypeLink || e.Link != "../../etc/shadow" {
			t.Errorf("%v: hardlink-out %+v", c, e)
		}
		if names["a"].Link != "b" || names["b"].Link != "a" || names["etc/os-release"].Link != "../../../../host/file" {
			t.Errorf("%v: symlinks %+v %+v %+v", c, names["a"], names["b"], names["etc/os-release"])
		}
		if e := names["var/lib/dpkg/status"]; e.Type != tar.TypeChar || e.Major != 1 || e.Minor != 5 {
			t.Errorf("%v: device status %+v", c, e)
		}
	}
}

func TestTruncatedLayers(t *testing.T) {
	for _, c := range []Compression{Gzip, Zstd} {
		l := TruncatedEntryLayer(t, c)
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		h, err := tr.Next()
		if err != nil || h.Size != 10<<30 || h.Name != "var/lib/dpkg/status" {
			t.Fatalf("%v: header %+v, %v", c, h, err)
		}
		if n, err := io.Copy(io.Discard, tr); !errors.Is(err, io.ErrUnexpectedEOF) || n != 0 {
			t.Errorf("%v: reading the promised 10 GiB: %d bytes, %v; want unexpected EOF", c, n, err)
		}
		rc.Close()

		l = TruncatedStreamLayer(t, c)
		rc, err = l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(io.Discard, rc)
		if err == nil {
			t.Errorf("%v: truncated stream decompressed without error", c)
		}
		rc.Close()
	}
}

func TestZeroBombDecodesToWhatItDeclares(t *testing.T) {
	files := []SizedFile{
		{"small", 1000},
		{"var/lib/dpkg/status", primeZeros + 3*bombChunk + 12345},
		{"exact", primeZeros + bombChunk},
		{"zeros/big", 40*bombChunk + 7},
	}
	for _, c := range []Compression{Gzip, Zstd} {
		blob, err := ZeroBomb(c, files...)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := Decompress(c, bytes.NewReader(blob))
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for _, f := range files {
			h, err := tr.Next()
			if err != nil {
				t.Fatalf("%v: %v", c, err)
			}
			if h.Name != f.Path || h.Size != f.Size {
				t.Errorf("%v: header %s %d, want %s %d", c, h.Name, h.Size, f.Path, f.Size)
			}
			n, err := io.Copy(zeroChecker{t}, tr)
			if err != nil || n != f.Size {
				t.Errorf("%v: %s: read %d, %v", c, f.Path, n, err)
			}
		}
		if _, err := tr.Next(); err != io.EOF {
			t.Errorf("%v: after the files: %v, want EOF", c, err)
		}
		// gzip checks its CRC-32 and length trailer at the end of the stream.
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Errorf("%v: stream end: %v", c, err)
		}
		rc.Close()
		if len(blob) > 100<<10 {
			t.Errorf("%v: %d bytes compressed for 45 MiB of zeros", c, len(blob))
		}
	}
}

type zeroChecker struct{ t *testing.T }

func (z zeroChecker) Write(p []byte) (int, error) {
	for _, b := range p {
		if b != 0 {
			return 0, errors.New("non-zero byte in a zero bomb")
		}
	}
	return len(p), nil
}

func TestBombsAreBigInsideSmallOutside(t *testing.T) {
	for _, tc := range []struct {
		l       v1.Layer
		c       Compression
		maxBlob int64
	}{{GzipBomb(t), Gzip, 16 << 20}, {ZstdBomb(t), Zstd, 1 << 20}} {
		size, _ := tc.l.Size()
		if size > tc.maxBlob {
			t.Errorf("%v bomb is %d bytes", tc.c, size)
		}
		rc, err := tc.l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		var total int64
		for i := 0; ; i++ {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			total += h.Size
			if i == 0 {
				// Read a few MiB of the first file to see the stream really is zeros.
				if n, err := io.CopyN(zeroChecker{t}, tr, 4<<20); err != nil || n != 4<<20 {
					t.Fatalf("%v bomb: %d, %v", tc.c, n, err)
				}
			}
			if i == 0 {
				break // skipping the rest means inflating 11 GiB: too slow for a unit test
			}
		}
		rc.Close()
		want := int64(0)
		for _, f := range BombFiles() {
			want += f.Size
		}
		if want <= 10<<30 || total != BombFiles()[0].Size {
			t.Errorf("%v bomb: first entry %d bytes, all files %d", tc.c, total, want)
		}
	}
}

func TestMismatchRegistry(t *testing.T) {
	h, repoTag := MismatchRegistry(t)
	srv := httptest.NewServer(h)
	defer srv.Close()
	ref, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://")+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("manifest and config are honest, pull should start: %v", err)
	}
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := ls[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	served, err := io.ReadAll(rc)
	rc.Close()
	wantDigest, _ := ls[0].Digest()
	if err == nil || !strings.Contains(err.Error(), wantDigest.String()) {
		t.Errorf("reading the tampered blob: err = %v, want a digest mismatch", err)
	}
	// The served bytes still decompress to the honest tar: only the digest gives it away.
	zr, err := gzip.NewReader(bytes.NewReader(served))
	if err != nil {
		t.Fatal(err)
	}
	tb, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	if sha(tb) != cf.RootFS.DiffIDs[0] {
		t.Errorf("tampered blob decompresses to other content")
	}
}

func TestDpkgStatusMatchesDpkgFormat(t *testing.T) {
	// Stanza as dpkg wrote it on Debian 12 (/var/lib/dpkg/status), shortened description.
	want := `Package: adduser
Status: install ok installed
Priority: important
Section: admin
Installed-Size: 686
Maintainer: Debian Adduser Developers <adduser@packages.debian.org>
Architecture: all
Multi-Arch: foreign
Version: 3.134
Depends: passwd
Suggests: liblocale-gettext-perl, perl, cron, quota
Conffiles:
 /etc/adduser.conf cc3493ecd2d09837ffdcc3e25fdfff18
 /etc/deluser.conf 11a06baf8245fd8d690b99024d228c1f
Description: add and remove users and groups
 This package includes the 'adduser' and 'deluser' commands for creating
 and removing users.
 .
 Adding users with 'adduser' is much easier than adding them manually.

Package: libc6
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 12987
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u4
Depends: libgcc-s1
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.
Homepage: https://www.gnu.org/software/libc/libc.html

`
	got := DpkgStatus(DebPkg{
		Package: "adduser", Priority: "important", Section: "admin", InstalledSize: 686,
		Maintainer: "Debian Adduser Developers <adduser@packages.debian.org>", Architecture: "all",
		MultiArch: "foreign", Version: "3.134", Depends: "passwd", Suggests: "liblocale-gettext-perl, perl, cron, quota",
		Conffiles: []string{"/etc/adduser.conf cc3493ecd2d09837ffdcc3e25fdfff18", "/etc/deluser.conf 11a06baf8245fd8d690b99024d228c1f"},
		Description: "add and remove users and groups\nThis package includes the 'adduser' and 'deluser' commands for creating\n" +
			"and removing users.\n\nAdding users with 'adduser' is much easier than adding them manually.",
	}, DebPkg{
		Package: "libc6", Priority: "optional", Section: "libs", InstalledSize: 12987,
		Maintainer: "GNU Libc Maintainers <debian-glibc@lists.debian.org>", Architecture: "amd64", MultiArch: "same",
		Source: "glibc", Version: "2.36-9+deb12u4", Depends: "libgcc-s1",
		Description: "GNU C Library: Shared libraries\nContains the standard libraries that are used by nearly all programs on\nthe system.",
		Homepage:    "https://www.gnu.org/software/libc/libc.html",
	})
	if string(got) != want {
		t.Errorf("DpkgStatus:\n%s\nwant:\n%s", got, want)
	}
}

func TestAPKInstalledFormat(t *testing.T) {
	got := string(APKInstalled(APKPkg{
		Name: "musl", Version: "1.2.4-r2", Arch: "x86_64", Size: 383152, InstalledSize: 622592,
		Description: "the musl c library (libc) implementation", URL: "https://musl.libc.org/", License: "MIT",
		Origin: "musl", Maintainer: "Timo Teräs <timo.teras@iki.fi>", BuildTime: 1697467353,
		Commit: "7f4f8ba71e1b2dd0e4a4e18d8d4a1ce1ee73b4c0", Provides: []string{"so:libc.musl-x86_64.so.1=1"},
		Files: []string{"lib/ld-musl-x86_64.so.1", "lib/libc.musl-x86_64.so.1"},
	}, APKPkg{Name: "zlib", Version: "1.3.1-r0", Arch: "x86_64", License: "Zlib", Origin: "zlib",
		Depends: []string{"so:libc.musl-x86_64.so.1"}, Files: []string{"/usr/lib/libz.so.1", "/usr/lib/libz.so.1.3.1"}}))
	// apk-tools' field order; checksums are Q1 + base64(SHA-1): 28 base64 characters.
	want := regexpLines(t, got, []string{
		`C:Q1[A-Za-z0-9+/]{27}=`, `P:musl`, `V:1.2.4-r2`, `A:x86_64`, `S:383152`, `I:622592`,
		`T:the musl c library \(libc\) implementation`, `U:https://musl.libc.org/`, `L:MIT`, `o:musl`,
		`m:Timo Teräs <timo.teras@iki.fi>`, `t:1697467353`, `c:7f4f8ba71e1b2dd0e4a4e18d8d4a1ce1ee73b4c0`,
		`p:so:libc.musl-x86_64.so.1=1`, `F:lib`, `R:ld-musl-x86_64.so.1`, `Z:Q1[A-Za-z0-9+/]{27}=`,
		`R:libc.musl-x86_64.so.1`, `Z:Q1[A-Za-z0-9+/]{27}=`, ``,
		`C:Q1[A-Za-z0-9+/]{27}=`, `P:zlib`, `V:1.3.1-r0`, `A:x86_64`, `L:Zlib`, `o:zlib`,
		`D:so:libc.musl-x86_64.so.1`, `F:usr/lib`, `R:libz.so.1`, `Z:Q1[A-Za-z0-9+/]{27}=`, `R:libz.so.1.3.1`,
		`Z:Q1[A-Za-z0-9+/]{27}=`, ``,
	})
	if want != "" {
		t.Error(want)
	}
}

func TestGoBinaryHasBuildInfo(t *testing.T) {
	bin := GoBinary(t, "")
	bi, err := buildinfo.Read(bytes.NewReader(bin))
	if err != nil {
		t.Fatalf("buildinfo: %v", err)
	}
	if bi.Main.Path != GoFixtureModule || len(bi.Deps) != 1 || bi.Deps[0].Path != GoFixtureDep ||
		bi.Deps[0].Version != GoFixtureDepVersion || bi.Deps[0].Replace == nil || bi.Deps[0].Replace.Path != "./dep" {
		t.Errorf("build info: main %+v deps %+v", bi.Main, bi.Deps)
	}
	if !bytes.HasPrefix(bin, []byte("\x7fELF")) {
		t.Errorf("not an ELF binary")
	}
	// A second request for the same module is served from the cache.
	dir := t.TempDir()
	WriteGoFixtureModule(t, dir)
	if again := GoBinary(t, dir); &again[0] != &bin[0] {
		t.Errorf("second build of the same module was not cached")
	}
}

func openFile(p string) (io.ReadCloser, error) { return os.Open(p) }

// regexpLines matches text line by line against anchored patterns and describes the first
// difference ("" if none).
func regexpLines(t *testing.T, text string, patterns []string) string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != len(patterns) {
		return fmt.Sprintf("%d lines, want %d:\n%s", len(lines), len(patterns), text)
	}
	for i, p := range patterns {
		if !regexp.MustCompile(`^` + p + `$`).MatchString(lines[i]) {
			return fmt.Sprintf("line %d %q does not match %q:\n%s", i+1, lines[i], p, text)
		}
	}
	return ""
}
