package image

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// testRegistry is ggcr's in-process registry behind a handler that counts requests and lets a
// test rewrite responses.
type testRegistry struct {
	srv       *httptest.Server
	host      string
	blobs     atomic.Int64
	manifests atomic.Int64
	mu        sync.Mutex
	intercept func(w http.ResponseWriter, r *http.Request) bool // true: handled
}

func newTestRegistry(t *testing.T) *testRegistry {
	t.Helper()
	tr := &testRegistry{}
	reg := registry.New(registry.Logger(nopLogger()))
	tr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			switch {
			case strings.Contains(r.URL.Path, "/blobs/"):
				tr.blobs.Add(1)
			case strings.Contains(r.URL.Path, "/manifests/"):
				tr.manifests.Add(1)
			}
		}
		tr.mu.Lock()
		f := tr.intercept
		tr.mu.Unlock()
		if f != nil && f(w, r) {
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(tr.srv.Close)
	tr.host = strings.TrimPrefix(tr.srv.URL, "http://")
	return tr
}

func (tr *testRegistry) setIntercept(f func(w http.ResponseWriter, r *http.Request) bool) {
	tr.mu.Lock()
	tr.intercept = f
	tr.mu.Unlock()
}

func (tr *testRegistry) resetCounts() {
	tr.blobs.Store(0)
	tr.manifests.Store(0)
}

func (tr *testRegistry) push(t *testing.T, ref string, img v1.Image) name.Reference {
	t.Helper()
	r, err := name.ParseReference(tr.host+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	return r
}

func (tr *testRegistry) pushIndex(t *testing.T, ref string, idx v1.ImageIndex) name.Reference {
	t.Helper()
	r, err := name.ParseReference(tr.host+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	return r
}

type file struct {
	name, body string
}

func tarBytes(t testing.TB, files ...file) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: tar.TypeReg, ModTime: time.Unix(1700000000, 0)}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(f.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func layerOf(t testing.TB, comp compression.Compression, files ...file) v1.Layer {
	t.Helper()
	b := tarBytes(t, files...)
	opts := []tarball.LayerOption{tarball.WithCompression(comp)}
	if comp == compression.ZStd {
		opts = append(opts, tarball.WithMediaType(types.OCILayerZStd))
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// handmade builds a two-layer image with known files, config facts and history (including an
// empty_layer entry that must be skipped when matching history to layers).
func handmade(t testing.TB, arch string, comp compression.Compression) v1.Image {
	t.Helper()
	img, err := mutate.Append(empty.Image,
		mutate.Addendum{Layer: layerOf(t, comp, file{"etc/os-release", "ID=test\n"}), History: v1.History{CreatedBy: "ADD rootfs /"}},
		mutate.Addendum{Layer: layerOf(t, comp, file{"app/" + arch, "binary"}), History: v1.History{CreatedBy: "COPY app /app"}},
	)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = v1.Time{Time: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)}
	cf.History = []v1.History{cf.History[0], {CreatedBy: "ENV SECRET=x", EmptyLayer: true}, cf.History[1]}
	cf.Config = v1.Config{
		User:         "app",
		Env:          []string{"PATH=/usr/bin", "SECRET=hunter2"},
		Labels:       map[string]string{"org.opencontainers.image.source": "https://example.test/app"},
		ExposedPorts: map[string]struct{}{"8080/tcp": {}, "443/tcp": {}},
		Entrypoint:   []string{"/app/run"},
		Cmd:          []string{"--serve"},
		WorkingDir:   "/app",
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func readAllLayer(t *testing.T, img *Image, idx int) map[string]string {
	t.Helper()
	rc, err := img.OpenLayer(context.Background(), idx)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("layer %d: %v", idx, err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = string(b)
	}
	// Verification completes at EOF of the stream, after the tar trailer.
	if _, err := io.Copy(io.Discard, rc); err != nil {
		t.Fatalf("layer %d: drain: %v", idx, err)
	}
	return files
}

func nopLogger() *log.Logger { return log.New(io.Discard, "", 0) }

func readAll(t *testing.T, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readAllErr(r io.Reader) ([]byte, error) { return io.ReadAll(r) }
