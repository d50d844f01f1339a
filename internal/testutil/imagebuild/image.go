package imagebuild

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Config is the image configuration of a fixture. Zero fields get the defaults of DefaultConfig.
type Config struct {
	OS, Architecture, Variant string
	User                      string
	Env                       []string // "KEY=value"
	Labels                    map[string]string
	ExposedPorts              []string // "8080/tcp"
	Entrypoint, Cmd           []string
	WorkingDir                string
	Created                   time.Time
	// Docker makes a Docker v2 schema 2 image (manifest, config and layer media types) instead
	// of an OCI one.
	Docker bool
	// Layers are prepended to the ones given to ImageWithConfig (handy for a shared base).
	Layers []Layer
}

// DefaultConfig is the configuration Image uses: linux/amd64, a PATH, one label and a command.
func DefaultConfig() Config {
	return Config{
		OS:           "linux",
		Architecture: "amd64",
		Env:          []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Labels:       map[string]string{"org.opencontainers.image.title": "crowsnest-fixture"},
		Cmd:          []string{"/bin/sh"},
		Created:      fixedTime,
	}
}

// Image builds an OCI image of the layers with DefaultConfig.
func Image(t testing.TB, layers ...Layer) v1.Image {
	t.Helper()
	return ImageWithConfig(t, DefaultConfig(), layers...)
}

// ImageWithConfig builds an image of cfg.Layers then layers, with cfg as its configuration and
// one history entry per Layer (empty-layer steps included).
func ImageWithConfig(t testing.TB, cfg Config, layers ...Layer) v1.Image {
	t.Helper()
	def := DefaultConfig()
	if cfg.OS == "" {
		cfg.OS = def.OS
	}
	if cfg.Architecture == "" {
		cfg.Architecture = def.Architecture
	}
	if cfg.Created.IsZero() {
		cfg.Created = def.Created
	}
	all := append(append([]Layer(nil), cfg.Layers...), layers...)

	var img v1.Image = empty.Image
	if cfg.Docker {
		img = mutate.MediaType(img, types.DockerManifestSchema2)
		img = mutate.ConfigMediaType(img, types.DockerConfigJSON)
	} else {
		img = mutate.MediaType(img, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	}
	adds := make([]mutate.Addendum, 0, len(all))
	for i, l := range all {
		created := l.CreatedBy
		if created == "" {
			created = fmt.Sprintf("imagebuild: layer %d", i)
		}
		h := v1.History{CreatedBy: created, Created: v1.Time{Time: cfg.Created}, EmptyLayer: l.EmptyLayer}
		if l.EmptyLayer {
			if len(l.Entries) > 0 {
				t.Fatalf("imagebuild: layer %d is an empty-layer history step but has entries", i)
			}
			adds = append(adds, mutate.Addendum{History: h})
			continue
		}
		layer := buildLayer(t, l, cfg.Docker)
		adds = append(adds, mutate.Addendum{Layer: layer, History: h, MediaType: l.Compression.MediaType(cfg.Docker)})
	}
	img, err := mutate.Append(img, adds...)
	if err != nil {
		t.Fatalf("imagebuild: append layers: %v", err)
	}
	img = withConfig(t, img, cfg)
	return img
}

// ImageOfLayers builds an image from ready v1.Layers (e.g. hostile RawLayer blobs) with cfg.
// cfg.Layers is ignored.
func ImageOfLayers(t testing.TB, cfg Config, layers ...v1.Layer) v1.Image {
	t.Helper()
	var img v1.Image = mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	if cfg.Created.IsZero() {
		cfg.Created = fixedTime
	}
	adds := make([]mutate.Addendum, len(layers))
	for i, l := range layers {
		adds[i] = mutate.Addendum{Layer: l, History: v1.History{
			CreatedBy: fmt.Sprintf("imagebuild: layer %d", i), Created: v1.Time{Time: cfg.Created}}}
	}
	img, err := mutate.Append(img, adds...)
	if err != nil {
		t.Fatalf("imagebuild: append layers: %v", err)
	}
	return withConfig(t, img, cfg)
}

func withConfig(t testing.TB, img v1.Image, cfg Config) v1.Image {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatalf("imagebuild: config: %v", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = cfg.OS, cfg.Architecture, cfg.Variant
	if cf.OS == "" {
		cf.OS = "linux"
	}
	if cf.Architecture == "" {
		cf.Architecture = "amd64"
	}
	cf.Created = v1.Time{Time: cfg.Created}
	cf.Config.User = cfg.User
	cf.Config.Env = cfg.Env
	cf.Config.Labels = cfg.Labels
	cf.Config.Entrypoint = cfg.Entrypoint
	cf.Config.Cmd = cfg.Cmd
	cf.Config.WorkingDir = cfg.WorkingDir
	cf.Config.ExposedPorts = nil
	if len(cfg.ExposedPorts) > 0 {
		cf.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range cfg.ExposedPorts {
			cf.Config.ExposedPorts[p] = struct{}{}
		}
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatalf("imagebuild: set config: %v", err)
	}
	return img
}

// Platform keys Index's map (v1.Platform has slices and cannot be a map key).
type Platform struct {
	OS, Architecture, Variant string
}

func (p Platform) String() string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// Index builds an image index (OCI, or a Docker manifest list when the images are Docker ones)
// with one manifest per platform, in platform-string order. The descriptor's platform is the
// map key even if the image config says otherwise, so tests can build lying indexes.
func Index(t testing.TB, images map[Platform]v1.Image) v1.ImageIndex {
	t.Helper()
	plats := make([]Platform, 0, len(images))
	for p := range images {
		plats = append(plats, p)
	}
	sort.Slice(plats, func(i, j int) bool { return plats[i].String() < plats[j].String() })
	var idx v1.ImageIndex = empty.Index
	idx = mutate.IndexMediaType(idx, types.OCIImageIndex)
	for i, p := range plats {
		img := images[p]
		mt, err := img.MediaType()
		if err != nil {
			t.Fatalf("imagebuild: index: %v", err)
		}
		if i == 0 && mt == types.DockerManifestSchema2 {
			idx = mutate.IndexMediaType(idx, types.DockerManifestList)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			MediaType: mt,
			Platform:  &v1.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant},
		}})
	}
	return idx
}

// Push writes img to ref ("127.0.0.1:5000/repo:tag"; plain HTTP is allowed) and returns the
// pushed reference by digest ("127.0.0.1:5000/repo@sha256:...").
func Push(t testing.TB, ref string, img v1.Image, opts ...remote.Option) string {
	t.Helper()
	r := parseRef(t, ref)
	if err := remote.Write(r, img, opts...); err != nil {
		t.Fatalf("imagebuild: push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatalf("imagebuild: digest: %v", err)
	}
	return r.Context().Digest(d.String()).String()
}

// PushIndex writes an index and all its images to ref and returns the reference by digest.
func PushIndex(t testing.TB, ref string, idx v1.ImageIndex, opts ...remote.Option) string {
	t.Helper()
	r := parseRef(t, ref)
	if err := remote.WriteIndex(r, idx, opts...); err != nil {
		t.Fatalf("imagebuild: push index %s: %v", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatalf("imagebuild: digest: %v", err)
	}
	return r.Context().Digest(d.String()).String()
}

func parseRef(t testing.TB, ref string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatalf("imagebuild: reference %q: %v", ref, err)
	}
	return r
}

// refNameAnnotation tags a manifest in an OCI layout's index.json.
const refNameAnnotation = "org.opencontainers.image.ref.name"

// WriteOCILayout writes img into the OCI image layout at dir (created if needed), tagged tag
// (empty: no tag annotation). Several images may be written into one layout.
func WriteOCILayout(t testing.TB, dir, tag string, img v1.Image) {
	t.Helper()
	p := openLayout(t, dir)
	if err := p.AppendImage(img, layoutOpts(tag)...); err != nil {
		t.Fatalf("imagebuild: write OCI layout %s: %v", dir, err)
	}
}

// WriteOCILayoutIndex writes an index (and its images) into the OCI layout at dir.
func WriteOCILayoutIndex(t testing.TB, dir, tag string, idx v1.ImageIndex) {
	t.Helper()
	p := openLayout(t, dir)
	if err := p.AppendIndex(idx, layoutOpts(tag)...); err != nil {
		t.Fatalf("imagebuild: write OCI layout %s: %v", dir, err)
	}
}

func layoutOpts(tag string) []layout.Option {
	if tag == "" {
		return nil
	}
	return []layout.Option{layout.WithAnnotations(map[string]string{refNameAnnotation: tag})}
}

func openLayout(t testing.TB, dir string) layout.Path {
	t.Helper()
	if p, err := layout.FromPath(dir); err == nil {
		return p
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatalf("imagebuild: create OCI layout %s: %v", dir, err)
	}
	return p
}

// WriteDockerTarball writes img as a `docker save` tarball (manifest.json with RepoTags) at
// file, tagged ref ("repo:tag").
func WriteDockerTarball(t testing.TB, file, ref string, img v1.Image) {
	t.Helper()
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatalf("imagebuild: tag %q: %v", ref, err)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatalf("imagebuild: %v", err)
	}
	if err := tarball.WriteToFile(file, tag, img); err != nil {
		t.Fatalf("imagebuild: write docker tarball %s: %v", file, err)
	}
}
