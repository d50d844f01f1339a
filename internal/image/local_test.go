package image

import (
	"archive/tar"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestDockerSaveSingle(t *testing.T) {
	img := handmade(t, "amd64", compression.GZip)
	file := filepath.Join(t.TempDir(), "app.tar")
	tag, _ := name.NewTag("example.test/team/app:2.0")
	if err := tarball.WriteToFile(file, tag, img); err != nil {
		t.Fatal(err)
	}
	target, err := Open(ctx, "archive://"+file, Options{})
	if err != nil {
		t.Fatal(err)
	}
	im, err := target.Image(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d := im.Describe()
	cfgName, _ := img.ConfigName()
	layers, _ := img.Layers()
	if d.Name != "example.test/team/app" || d.Tag != "2.0" || d.ConfigDigest != cfgName.String() || d.Digest == "" {
		t.Errorf("describe = %+v", d)
	}
	for i, l := range layers {
		dg, _ := l.Digest()
		diff, _ := l.DiffID()
		if d.Layers[i].Digest != dg.String() || d.Layers[i].DiffID != diff.String() || d.Layers[i].CreatedBy == "" {
			t.Errorf("layer %d = %+v", i, d.Layers[i])
		}
	}
	if got := readAllLayer(t, im, 0); got["etc/os-release"] != "ID=test\n" {
		t.Errorf("files = %v", got)
	}
	// The synthesized manifest digest is stable across opens: it keys the image's work.
	again, err := Open(ctx, "archive://"+file, Options{})
	if err != nil {
		t.Fatal(err)
	}
	im2, _ := again.Image(ctx)
	if im2.Describe().Digest != d.Digest {
		t.Error("archive digest is not stable")
	}
}

func TestDockerSaveMulti(t *testing.T) {
	a := handmade(t, "amd64", compression.GZip)
	b := handmade(t, "arm64", compression.GZip)
	ta, _ := name.NewTag("alpine:3.19")
	tb, _ := name.NewTag("example.test/b:1")
	tc, _ := name.NewTag("example.test/b:latest")
	file := filepath.Join(t.TempDir(), "multi.tar")
	if err := tarball.MultiWriteToFile(file, map[name.Tag]v1.Image{ta: a, tb: b, tc: b}); err != nil {
		t.Fatal(err)
	}
	_, err := Open(ctx, "archive://"+file, Options{})
	if err == nil || !strings.Contains(err.Error(), "choose one with --ref") ||
		!strings.Contains(err.Error(), "alpine:3.19") || !strings.Contains(err.Error(), "example.test/b:1") {
		t.Fatalf("err = %v", err)
	}
	// Docker's normalization: the archive says "alpine:3.19" (ggcr writes index.docker.io/...).
	target, err := Open(ctx, "archive://"+file, Options{Ref: "docker.io/library/alpine:3.19"})
	if err != nil {
		t.Fatal(err)
	}
	im, err := target.Image(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ad, _ := a.ConfigName()
	if d := im.Describe(); d.ConfigDigest != ad.String() || d.Name != "docker.io/library/alpine" || d.Tag != "3.19" {
		t.Errorf("describe = %s %s %s", d.ConfigDigest, d.Name, d.Tag)
	}
	target, err = Open(ctx, "archive://"+file, Options{Ref: "example.test/b:latest"})
	if err != nil {
		t.Fatal(err)
	}
	im, _ = target.Image(ctx)
	if got := readAllLayer(t, im, 1); got["app/arm64"] != "binary" {
		t.Errorf("files = %v", got)
	}
	if _, err := Open(ctx, "archive://"+file, Options{Ref: "nope:1"}); err == nil || !strings.Contains(err.Error(), "available") {
		t.Errorf("err = %v", err)
	}
}

// A classic `docker save`: uncompressed layer.tar files in per-layer directories (one a symlink
// to another), config named by image ID. Layer digests are the diffIDs.
func TestDockerSaveLegacyLayout(t *testing.T) {
	img := handmade(t, "amd64", compression.GZip)
	cfg, _ := img.RawConfigFile()
	layers, _ := img.Layers()
	var entries []tarEntryT
	var paths []string
	for i, l := range layers {
		rc, _ := l.Uncompressed()
		p := []string{"aaa", "bbb"}[i] + "/layer.tar"
		entries = append(entries, tarEntryT{name: p, body: readAll(t, rc)})
		paths = append(paths, p)
	}
	entries = append(entries,
		tarEntryT{name: "ccc/layer.tar", link: "../bbb/layer.tar"},
		tarEntryT{name: "0123.json", body: cfg},
		tarEntryT{name: "manifest.json", body: []byte(`[{"Config":"0123.json","RepoTags":["app:1"],"Layers":["` + paths[0] + `","ccc/layer.tar"]}]`)},
	)
	file := filepath.Join(t.TempDir(), "legacy.tar")
	writeTar(t, file, entries)
	target, err := Open(ctx, "archive://"+file, Options{})
	if err != nil {
		t.Fatal(err)
	}
	im, err := target.Image(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d := im.Describe()
	for i, l := range layers {
		diff, _ := l.DiffID()
		if d.Layers[i].Digest != diff.String() || d.Layers[i].MediaType != "application/vnd.docker.image.rootfs.diff.tar" {
			t.Errorf("layer %d = %+v", i, d.Layers[i])
		}
	}
	if got := readAllLayer(t, im, 1); got["app/amd64"] != "binary" {
		t.Errorf("files = %v", got)
	}
}

func TestOCILayoutAndArchive(t *testing.T) {
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	idx, _, arm := twoPlatformIndex(t)
	amdOnly := handmade(t, "amd64", compression.ZStd)
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		annotationRefName: "multi", annotationImageName: "docker.io/library/multi:1"})); err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(amdOnly, layout.WithAnnotations(map[string]string{annotationRefName: "single"})); err != nil {
		t.Fatal(err)
	}

	_, err = Open(ctx, "oci-dir://"+dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "docker.io/library/multi:1") || !strings.Contains(err.Error(), "single") {
		t.Fatalf("err = %v", err)
	}
	if _, err := Open(ctx, "oci-dir://"+dir+":missing", Options{}); err == nil || !strings.Contains(err.Error(), `no image tagged "missing"`) {
		t.Fatalf("err = %v", err)
	}

	check := func(input string, opts Options) {
		t.Helper()
		opts.Platform = &v1.Platform{OS: "linux", Architecture: "arm64"}
		target, err := Open(ctx, input, opts)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(target.Platforms()); n != 2 {
			t.Errorf("%s: %d platforms", input, n)
		}
		im, err := target.Image(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := arm.Digest()
		idxDigest, _ := idx.Digest()
		d := im.Describe()
		if d.Digest != want.String() || d.IndexDigest != idxDigest.String() || d.Name != "docker.io/library/multi" || d.Tag != "1" {
			t.Errorf("%s: describe = %s %s %s %s", input, d.Digest, d.IndexDigest, d.Name, d.Tag)
		}
		if got := readAllLayer(t, im, 1); got["app/arm64"] != "binary" {
			t.Errorf("%s: files = %v", input, got)
		}
	}
	check("oci-dir://"+dir+":multi", Options{})
	check("oci-dir://"+dir+":docker.io/library/multi:1", Options{})

	target, err := Open(ctx, "oci-dir://"+dir+":single", Options{})
	if err != nil {
		t.Fatal(err)
	}
	im, err := target.Image(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := im.Describe(); d.Tag != "single" || readAllLayer(t, im, 0)["etc/os-release"] != "ID=test\n" {
		t.Errorf("single: %+v", d)
	}

	// The same layout as a tar: an OCI archive.
	file := filepath.Join(t.TempDir(), "oci.tar")
	tarDir(t, dir, file)
	check("archive://"+file, Options{Ref: "multi:1"})
	if _, err := Open(ctx, "archive://"+file, Options{}); err == nil {
		t.Error("ambiguous OCI archive opened without --ref")
	}
}

func TestLayoutCorruptLayer(t *testing.T) {
	dir := t.TempDir()
	p, _ := layout.Write(dir, empty.Index)
	img := handmade(t, "amd64", compression.GZip)
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	blob := filepath.Join(dir, "blobs", "sha256", ld.Hex)
	b, _ := os.ReadFile(blob)
	if err := os.WriteFile(blob, b[:len(b)-10], 0o644); err != nil {
		t.Fatal(err)
	}
	target, err := Open(ctx, "oci-dir://"+dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	im, err := target.Image(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := im.OpenLayer(ctx, 0)
	if err == nil {
		_, err = io.ReadAll(rc)
		rc.Close()
	}
	if !errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), ld.String()) {
		t.Errorf("err = %v", err)
	}
}

func TestCompressedArchiveRejected(t *testing.T) {
	file := filepath.Join(t.TempDir(), "x.tar.gz")
	os.WriteFile(file, []byte{0x1f, 0x8b, 8, 0, 0, 0}, 0o644)
	if _, err := Open(ctx, "archive://"+file, Options{}); err == nil || !strings.Contains(err.Error(), "decompress it first") {
		t.Errorf("err = %v", err)
	}
}

type tarEntryT struct {
	name string
	body []byte
	link string
}

func writeTar(t testing.TB, file string, entries []tarEntryT) {
	t.Helper()
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		if e.link != "" {
			h = &tar.Header{Name: e.name, Linkname: e.link, Typeflag: tar.TypeSymlink}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

func tarDir(t *testing.T, dir, file string) {
	t.Helper()
	var entries []tarEntryT
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		entries = append(entries, tarEntryT{name: filepath.ToSlash(rel), body: b})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	writeTar(t, file, entries)
}
