package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/crowsnest-dev/crowsnest/internal/cli"
	"github.com/crowsnest-dev/crowsnest/internal/image"
	"github.com/crowsnest-dev/crowsnest/internal/index"
	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract/catalog"
	ib "github.com/crowsnest-dev/crowsnest/internal/testutil/imagebuild"
	"github.com/crowsnest-dev/crowsnest/internal/testutil/registryproc"
)

func runCLI(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := cli.Main(context.Background(), args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

// onlyDataDir fails if anything but the data directory appeared in parent.
func onlyDataDir(t *testing.T, parent string) {
	t.Helper()
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "data" {
			t.Errorf("something was written outside the data directory: %s", filepath.Join(parent, e.Name()))
		}
	}
}

// TestHostileEntriesGiveWarningsAndTheRestOfTheSBOM pushes a layer of traversal names, symlink
// loops, links out of the root and device files to a real registry, between two sound layers.
func TestHostileEntriesGiveWarningsAndTheRestOfTheSBOM(t *testing.T) {
	reg := registryproc.Start(t)
	var hostile []ib.Entry
	hostile = append(hostile, ib.TraversalEntries()...)
	hostile = append(hostile, ib.SymlinkEntries()...)
	hostile = append(hostile, ib.DeviceEntries()...)
	img := ib.ImageOfLayers(t, ib.DefaultConfig(),
		ib.BuildLayer(t, debianBase),
		ib.HostileLayer(t, ib.Gzip, hostile...),
		ib.BuildLayer(t, ib.NewLayer(ib.File("app/node_modules/express/package.json", []byte(`{"name":"express","version":"4.18.2"}`)))),
	)
	ref := ib.Push(t, reg.Ref("hostile/app:1"), img)
	parent := t.TempDir()
	code, out, errOut := runCLI("sbom", "--data-dir", filepath.Join(parent, "data"), "--format", "json", ref)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var s sbom.SBOM
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatal(err)
	}
	warnings := strings.Join(s.Warnings, "\n")
	for _, want := range []string{
		"layer 1 (sha256:",
		"../../etc/passwd: entry name climbs above the root",
		"/var/lib/dpkg/status: a device or fifo",
		"/etc/os-release: a device or fifo",
	} {
		if !strings.Contains(warnings, want) {
			t.Errorf("warnings lack %q:\n%s", want, warnings)
		}
	}
	if !strings.Contains(errOut, "climbs above the root") {
		t.Errorf("warnings are not logged: %s", errOut)
	}
	// The hostile layer replaced /etc/os-release with a FIFO it could not read: the symlink of the
	// base layer is gone, so no OS is claimed, but the base's packages and the top layer's remain.
	if pkgByName(&s, "libc6") == nil || pkgByName(&s, "express") == nil {
		t.Fatalf("packages of the sound layers missing: %+v", s.Packages)
	}
	onlyDataDir(t, parent)
}

// TestBrokenBlobsAreErrorsNamingTheLayer covers a truncated tar entry, a cut compressed stream and
// a blob that does not match its digest: each fails with an error naming the layer, nothing is
// cached, and the next run reads the layer again.
func TestBrokenBlobsAreErrorsNamingTheLayer(t *testing.T) {
	reg := registryproc.Start(t)
	cases := []struct {
		name string
		ref  string
		want string
	}{
		{"truncated-entry", ib.Push(t, reg.Ref("broken/entry:1"), ib.ImageOfLayers(t, ib.DefaultConfig(), ib.TruncatedEntryLayer(t, ib.Gzip))), "layer 0 (sha256:"},
		{"truncated-stream", ib.Push(t, reg.Ref("broken/stream:1"), ib.ImageOfLayers(t, ib.DefaultConfig(), ib.BuildLayer(t, debianBase), ib.TruncatedStreamLayer(t, ib.Zstd))), "layer 1 (sha256:"},
	}
	srv := httptest.NewServer(func() (h http.Handler) { h, _ = ib.MismatchRegistry(t); return }())
	t.Cleanup(srv.Close)
	cases = append(cases, struct{ name, ref, want string }{"digest-mismatch", strings.TrimPrefix(srv.URL, "http://") + "/mismatch/app:v1", "digest"})

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			parent := t.TempDir()
			dataDir := filepath.Join(parent, "data")
			for attempt := 0; attempt < 2; attempt++ {
				code, out, errOut := runCLI("sbom", "--data-dir", dataDir, "--format", "json", c.ref)
				if code != 1 || out != "" {
					t.Fatalf("attempt %d: exit %d, stdout %q", attempt, code, out)
				}
				if !strings.Contains(errOut, c.want) {
					t.Fatalf("attempt %d: error does not name the layer (%q): %s", attempt, c.want, errOut)
				}
			}
			onlyDataDir(t, parent)
		})
	}
}

// TestDecompressionBombIsBounded reads 11 GiB gzip and zstd bombs with a small layer bound: the
// error names the layer and memory stays bounded (the bomb is never held).
func TestDecompressionBombIsBounded(t *testing.T) {
	reg := registryproc.Start(t)
	ctx := context.Background()
	set, err := catalog.Default(catalog.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for name, layer := range map[string]func(testing.TB) v1.Layer{"gzip": ib.GzipBomb, "zstd": ib.ZstdBomb} {
		t.Run(name, func(t *testing.T) {
			ref := ib.Push(t, reg.Ref("bomb/"+name+":1"), ib.ImageOfLayers(t, ib.DefaultConfig(), layer(t)))
			target, err := image.Open(ctx, ref, image.Options{MaxLayerSize: 256 << 20, CacheDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			img, err := target.Image(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = (&index.Indexer{Extractors: set}).Index(ctx, img)
			if !errors.Is(err, image.ErrLayerTooLarge) || !strings.Contains(err.Error(), "layer 0 (sha256:") {
				t.Fatalf("err = %v", err)
			}
		})
	}
}
