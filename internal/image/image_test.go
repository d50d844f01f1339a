package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
)

var ctx = context.Background()

func noAuth() Options {
	// Tests must not read the developer's Docker config.
	return Options{Keychain: EnvKeychain{Getenv: func(string) string { return "" }}}
}

func TestRegistryDescribeAndLayers(t *testing.T) {
	reg := newTestRegistry(t)
	img := handmade(t, "amd64", compression.GZip)
	reg.push(t, "team/app:1.2", img)

	target, err := Open(ctx, "registry://"+reg.host+"/team/app:1.2", noAuth())
	if err != nil {
		t.Fatal(err)
	}
	if got := target.Platforms(); len(got) != 1 || got[0].Architecture != "amd64" {
		t.Fatalf("platforms = %v", got)
	}
	im, err := target.Image(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d := im.Describe()
	digest, _ := img.Digest()
	cfgName, _ := img.ConfigName()
	layers, _ := img.Layers()
	if d.Reference != "registry://"+reg.host+"/team/app:1.2" || d.Name != reg.host+"/team/app" || d.Tag != "1.2" {
		t.Errorf("naming = %q %q %q", d.Reference, d.Name, d.Tag)
	}
	if d.Digest != digest.String() || d.ConfigDigest != cfgName.String() || d.IndexDigest != "" {
		t.Errorf("digests = %s %s %s", d.Digest, d.ConfigDigest, d.IndexDigest)
	}
	if d.MediaType != string(types.DockerManifestSchema2) {
		t.Errorf("media type %s", d.MediaType)
	}
	if d.Platform != (sbom.Platform{OS: "linux", Architecture: "amd64"}) {
		t.Errorf("platform %v", d.Platform)
	}
	if d.Created == nil || d.Created.Year() != 2024 {
		t.Errorf("created %v", d.Created)
	}
	wantCfg := sbom.Config{
		User:         "app",
		EnvNames:     []string{"PATH", "SECRET"},
		Labels:       map[string]string{"org.opencontainers.image.source": "https://example.test/app"},
		ExposedPorts: []string{"443/tcp", "8080/tcp"},
		Entrypoint:   []string{"/app/run"},
		Cmd:          []string{"--serve"},
		WorkingDir:   "/app",
	}
	if !reflect.DeepEqual(d.Config, wantCfg) {
		t.Errorf("config = %+v\nwant %+v", d.Config, wantCfg)
	}
	if len(d.Layers) != 2 {
		t.Fatalf("layers = %+v", d.Layers)
	}
	for i, l := range layers {
		dg, _ := l.Digest()
		diff, _ := l.DiffID()
		size, _ := l.Size()
		want := sbom.Layer{Index: i, Digest: dg.String(), DiffID: diff.String(), Size: size, MediaType: string(types.DockerLayer),
			CreatedBy: []string{"ADD rootfs /", "COPY app /app"}[i]}
		if d.Layers[i] != want {
			t.Errorf("layer %d = %+v, want %+v", i, d.Layers[i], want)
		}
	}
	if got := readAllLayer(t, im, 1); got["app/amd64"] != "binary" {
		t.Errorf("layer 1 files = %v", got)
	}
	if _, err := im.OpenLayer(ctx, 2); err == nil {
		t.Error("layer 2 of 2 opened")
	}
	if strings.Contains(fmt.Sprint(d), "hunter2") {
		t.Error("env value leaked into the description")
	}
}

func TestZstdLayers(t *testing.T) {
	reg := newTestRegistry(t)
	img := handmade(t, "amd64", compression.ZStd)
	layers, _ := img.Layers()
	rc, _ := layers[0].Compressed()
	if blob := readAll(t, rc); !bytes.HasPrefix(blob, magicZstd) {
		t.Fatalf("test layer is not zstd: % x", blob[:4])
	}
	reg.push(t, "z:1", img)
	target, err := Open(ctx, reg.host+"/z:1", noAuth())
	if err != nil {
		t.Fatal(err)
	}
	im, err := target.Image(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if mt := im.Describe().Layers[0].MediaType; mt != string(types.OCILayerZStd) {
		t.Fatalf("media type %s", mt)
	}
	if got := readAllLayer(t, im, 0); got["etc/os-release"] != "ID=test\n" {
		t.Errorf("files = %v", got)
	}
}

func twoPlatformIndex(t *testing.T) (v1.ImageIndex, v1.Image, v1.Image) {
	amd := handmade(t, "amd64", compression.GZip)
	arm := handmade(t, "arm64", compression.GZip)
	att, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
		mutate.IndexAddendum{Add: att, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "unknown", Architecture: "unknown"},
			Annotations: map[string]string{"vnd.docker.reference.type": "attestation-manifest"}}},
	)
	return idx, amd, arm
}

func TestIndexPlatforms(t *testing.T) {
	reg := newTestRegistry(t)
	idx, amd, arm := twoPlatformIndex(t)
	reg.pushIndex(t, "multi:latest", idx)
	idxDigest, _ := idx.Digest()

	opts := noAuth()
	opts.Platform = &v1.Platform{OS: "linux", Architecture: "arm64"}
	target, err := Open(ctx, reg.host+"/multi", opts)
	if err != nil {
		t.Fatal(err)
	}
	var ps []string
	for _, p := range target.Platforms() {
		ps = append(ps, p.String())
	}
	if strings.Join(ps, " ") != "linux/amd64 linux/arm64/v8" {
		t.Errorf("platforms = %v", ps)
	}
	im, err := target.Image(ctx)
	if err != nil {
		t.Fatal(err)
	}
	armDigest, _ := arm.Digest()
	d := im.Describe()
	if d.Digest != armDigest.String() || d.IndexDigest != idxDigest.String() || d.Platform.Architecture != "arm64" || d.Tag != "latest" {
		t.Errorf("describe = %s %s %v %s", d.Digest, d.IndexDigest, d.Platform, d.Tag)
	}
	if got := readAllLayer(t, im, 1); got["app/arm64"] != "binary" {
		t.Errorf("arm64 layer = %v", got)
	}

	all, err := target.Images(ctx)
	if err != nil {
		t.Fatal(err)
	}
	amdDigest, _ := amd.Digest()
	if len(all) != 2 || all[0].Describe().Digest != amdDigest.String() || all[1].Describe().Digest != armDigest.String() {
		t.Errorf("images = %d", len(all))
	}

	opts.Platform = &v1.Platform{OS: "linux", Architecture: "s390x"}
	target, err = Open(ctx, reg.host+"/multi", opts)
	if err != nil {
		t.Fatal(err)
	}
	_, err = target.Image(ctx)
	want := fmt.Sprintf("no platform linux/s390x in index %s; available: linux/amd64, linux/arm64/v8", idxDigest)
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), reg.host+"/multi") {
		t.Errorf("err = %v\nwant it to contain %q and the input", err, want)
	}
}

func TestDigestMismatchAndTruncation(t *testing.T) {
	reg := newTestRegistry(t)
	img := handmade(t, "amd64", compression.GZip)
	reg.push(t, "bad:1", img)
	layers, _ := img.Layers()
	l := layers[0]
	ld, _ := l.Digest()
	rc, _ := l.Compressed()
	blob := readAll(t, rc)

	cases := []struct {
		name  string
		serve func(w http.ResponseWriter)
		want  error
	}{
		{"corrupt", func(w http.ResponseWriter) {
			bad := append([]byte(nil), blob...)
			bad[len(bad)/2] ^= 0xff
			w.Write(bad)
		}, ErrDigestMismatch},
		{"corrupt trailer", func(w http.ResponseWriter) {
			bad := append([]byte(nil), blob...)
			bad[len(bad)-1] ^= 0xff // the gzip size field: decompression may still succeed
			w.Write(bad)
		}, ErrDigestMismatch},
		{"short with honest length", func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", fmt.Sprint(len(blob)/2))
			w.Write(blob[:len(blob)/2])
		}, ErrTruncated},
		{"connection cut", func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", fmt.Sprint(len(blob)))
			w.Write(blob[:len(blob)/2])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}, ErrTruncated},
		{"too long", func(w http.ResponseWriter) {
			w.Write(append(append([]byte(nil), blob...), make([]byte, 1024)...))
		}, ErrDigestMismatch},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reg.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
				if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+ld.String()) {
					c.serve(w)
					return true
				}
				return false
			})
			defer reg.setIntercept(nil)
			target, err := Open(ctx, reg.host+"/bad:1", noAuth())
			if err != nil {
				t.Fatal(err)
			}
			im, err := target.Image(ctx)
			if err != nil {
				t.Fatal(err)
			}
			rc, err := im.OpenLayer(ctx, 0)
			if err == nil {
				_, err = readAllErr(rc)
				rc.Close()
			}
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), ld.String()) {
				t.Errorf("err = %v, want %v naming %s", err, c.want, ld)
			}
		})
	}
}

func TestEnvCredentials(t *testing.T) {
	reg := newTestRegistry(t)
	reg.push(t, "private:1", handmade(t, "amd64", compression.GZip))
	var lastAuth string
	reg.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		lastAuth = r.Header.Get("Authorization")
		u, p, ok := r.BasicAuth()
		if (ok && u == "ci" && p == "s3cret") || lastAuth == "Bearer tok-123" {
			return false
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		w.WriteHeader(http.StatusUnauthorized)
		return true
	})
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // no Docker credentials from the developer's machine
	for _, k := range []string{"CROWSNEST_REGISTRY_TOKEN", "CROWSNEST_REGISTRY_USER", "CROWSNEST_REGISTRY_PASSWORD",
		"DOCKER_SCOUT_REGISTRY_TOKEN", "DOCKER_SCOUT_REGISTRY_USER", "DOCKER_SCOUT_REGISTRY_PASSWORD"} {
		t.Setenv(k, "")
	}
	open := func() error {
		target, err := Open(ctx, reg.host+"/private:1", Options{})
		if err != nil {
			return err
		}
		im, err := target.Image(ctx)
		if err != nil {
			return err
		}
		rc, err := im.OpenLayer(ctx, 0)
		if err != nil {
			return err
		}
		defer rc.Close()
		_, err = readAllErr(rc)
		return err
	}
	if err := open(); err == nil {
		t.Fatal("anonymous access to a private registry succeeded")
	}
	t.Setenv("DOCKER_SCOUT_REGISTRY_USER", "ci")
	t.Setenv("DOCKER_SCOUT_REGISTRY_PASSWORD", "s3cret")
	if err := open(); err != nil {
		t.Fatalf("scout alias: %v", err)
	}
	// crowsnest's names win over Scout's.
	t.Setenv("DOCKER_SCOUT_REGISTRY_PASSWORD", "wrong")
	t.Setenv("CROWSNEST_REGISTRY_USER", "ci")
	t.Setenv("CROWSNEST_REGISTRY_PASSWORD", "s3cret")
	if err := open(); err != nil {
		t.Fatalf("crowsnest creds: %v", err)
	}
	t.Setenv("CROWSNEST_REGISTRY_USER", "")
	t.Setenv("DOCKER_SCOUT_REGISTRY_USER", "")
	t.Setenv("CROWSNEST_REGISTRY_TOKEN", "tok-123")
	if err := open(); err != nil {
		t.Fatalf("token: %v", err)
	}
	if lastAuth != "Bearer tok-123" {
		t.Errorf("authorization = %q", lastAuth)
	}
}

func TestCacheAvoidsBlobDownloads(t *testing.T) {
	reg := newTestRegistry(t)
	idx, _, _ := twoPlatformIndex(t)
	reg.pushIndex(t, "cached:1", idx)
	cache := t.TempDir()
	opts := noAuth()
	opts.CacheDir = cache
	opts.Platform = &v1.Platform{OS: "linux", Architecture: "amd64"}

	describe := func(input string) sbom.Image {
		t.Helper()
		target, err := Open(ctx, input, opts)
		if err != nil {
			t.Fatal(err)
		}
		im, err := target.Image(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return im.Describe()
	}
	reg.resetCounts()
	first := describe(reg.host + "/cached:1")
	if reg.blobs.Load() != 1 || reg.manifests.Load() != 2 {
		t.Errorf("first run: %d blob, %d manifest requests; want 1 config and index + image", reg.blobs.Load(), reg.manifests.Load())
	}
	reg.resetCounts()
	second := describe(reg.host + "/cached:1")
	if reg.blobs.Load() != 0 || reg.manifests.Load() != 1 {
		t.Errorf("second run: %d blob, %d manifest requests; want 0 and the tag's manifest", reg.blobs.Load(), reg.manifests.Load())
	}
	if !reflect.DeepEqual(first, second) {
		t.Errorf("cached description differs:\n%+v\n%+v", first, second)
	}
	reg.resetCounts()
	byDigest := describe(reg.host + "/cached@" + first.IndexDigest)
	if n := reg.blobs.Load() + reg.manifests.Load(); n != 0 {
		t.Errorf("by digest: %d requests, want none", n)
	}
	if byDigest.Digest != first.Digest {
		t.Errorf("by digest resolved %s", byDigest.Digest)
	}

	// A tampered cache entry is detected and fetched again.
	cfg := filepath.Join(cache, "blobs", "sha256", strings.TrimPrefix(first.ConfigDigest, "sha256:"))
	if err := os.WriteFile(cfg, []byte(`{"os":"evil"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	reg.resetCounts()
	if d := describe(reg.host + "/cached:1"); d.Platform.OS != "linux" || reg.blobs.Load() != 1 {
		t.Errorf("tampered cache: platform %v, %d blob requests", d.Platform, reg.blobs.Load())
	}
}

func TestMaxLayerSize(t *testing.T) {
	reg := newTestRegistry(t)
	reg.push(t, "big:1", handmade(t, "amd64", compression.GZip))
	opts := noAuth()
	opts.MaxLayerSize = 1000 // a tar of one file is at least 1536 bytes
	target, err := Open(ctx, reg.host+"/big:1", opts)
	if err != nil {
		t.Fatal(err)
	}
	im, err := target.Image(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := im.OpenLayer(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := readAllErr(rc); !errors.Is(err, ErrLayerTooLarge) {
		t.Errorf("err = %v", err)
	}
}

func TestFSInput(t *testing.T) {
	dir := t.TempDir()
	target, err := Open(ctx, "fs://"+dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	im, err := target.Image(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if im.Dir() != dir {
		t.Errorf("dir = %q", im.Dir())
	}
	d := im.Describe()
	if d.Reference != "fs://"+dir || d.Layers == nil || len(d.Layers) != 0 || d.Digest != "" {
		t.Errorf("describe = %+v", d)
	}
	if _, err := im.OpenLayer(ctx, 0); err == nil {
		t.Error("fs input has a layer")
	}
	if _, err := Open(ctx, "fs://"+filepath.Join(dir, "missing"), Options{}); err == nil {
		t.Error("missing dir opened")
	}
}

func TestUnknownPrefix(t *testing.T) {
	_, err := Open(ctx, "ftp://x/y", Options{})
	if err == nil || !strings.Contains(err.Error(), "ftp://x/y") || !strings.Contains(err.Error(), "oci-dir://") {
		t.Errorf("err = %v", err)
	}
}

func TestInsecureAllowed(t *testing.T) {
	for _, c := range []struct {
		reg  string
		list []string
		want bool
	}{
		{"localhost:5000", nil, true},
		{"127.0.0.1:5000", nil, true},
		{"[::1]:5000", nil, true},
		{"10.0.0.5:5000", nil, false},
		{"registry.local", nil, false},
		{"10.0.0.5:5000", []string{"10.0.0.5"}, true},
		{"reg.test:5000", []string{"reg.test:5000"}, true},
		{"reg.test:5001", []string{"reg.test:5000"}, false},
	} {
		if got := insecureAllowed(c.reg, c.list); got != c.want {
			t.Errorf("insecureAllowed(%q, %v) = %v", c.reg, c.list, got)
		}
	}
	// ggcr would fall back to plain HTTP for private addresses; the guard refuses.
	g := &plainHTTPGuard{inner: http.DefaultTransport}
	req, _ := http.NewRequest(http.MethodGet, "http://10.0.0.5:5000/v2/", nil)
	if _, err := g.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "plain HTTP") {
		t.Errorf("guard err = %v", err)
	}
}

// A watcher's TransportCache authenticates once per repository: later images of the same
// repository skip the registry ping (and the token exchange that follows it).
func TestTransportCacheReusesAuthentication(t *testing.T) {
	reg := newTestRegistry(t)
	reg.push(t, "team/app:1", handmade(t, "amd64", compression.GZip))
	reg.push(t, "team/app:2", handmade(t, "arm64", compression.GZip))
	reg.push(t, "team/other:1", handmade(t, "amd64", compression.GZip))
	var pings int
	reg.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/v2/" {
			pings++
		}
		return false
	})
	count := func(opts Options, refs ...string) int {
		t.Helper()
		pings = 0
		for _, ref := range refs {
			target, err := Open(ctx, reg.host+"/"+ref, opts)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := target.Images(ctx); err != nil {
				t.Fatal(err)
			}
		}
		return pings
	}
	if n := count(Options{}, "team/app:1", "team/app:2"); n != 2 {
		t.Fatalf("without a cache: %d pings for two opens, want 2", n)
	}
	cache := NewTransportCache(8)
	if n := count(Options{Transports: cache}, "team/app:1", "team/app:2", "team/other:1", "team/app:1"); n != 2 {
		t.Fatalf("with a cache: %d pings for two repositories, want 2", n)
	}
}
