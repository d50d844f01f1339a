// Package image opens the inputs crowsnest indexes -- registry references, OCI layouts, docker
// save / OCI archives and plain directories -- and hands out image descriptions and verified,
// decompressed layer streams. Layers are read once, streaming; manifests and configs fetched by
// digest are cached so that re-indexing a known image downloads no blob.
package image

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
)

// Options for opening inputs.
type Options struct {
	Platform  *v1.Platform      // nil = host platform (runtime.GOOS/GOARCH, variant for arm)
	Ref       string            // archive:// with several images: which one (--ref)
	Insecure  []string          // registry hosts allowed over plain HTTP; localhost/127.0.0.1/[::1] always
	CacheDir  string            // data-dir subfolder for cached manifests-by-digest and config blobs
	Keychain  authn.Keychain    // nil = DefaultKeychain(): env creds, then Docker config + helpers
	Transport http.RoundTripper // nil = default; tests inject counters
	UserAgent string
	// MaxLayerSize bounds the uncompressed size of one layer; 0 = DefaultMaxLayerSize.
	MaxLayerSize int64
	// Transports, when set, keeps each repository's authenticated transport for the next Open
	// of that repository (a long-running watcher); nil authenticates once per Open.
	Transports *TransportCache
}

// Input prefixes (Docker Scout's).
const (
	PrefixRegistry = "registry://"
	PrefixOCIDir   = "oci-dir://"
	PrefixArchive  = "archive://"
	PrefixFS       = "fs://"
)

// Bounds on metadata read from hostile sources.
const (
	maxManifestSize = 4 << 20 // the OCI distribution spec's limit for manifests
	maxConfigSize   = 16 << 20
	maxIndexEntries = 4096
	maxLayers       = 1024
	maxIndexDepth   = 3
)

// backend reads the content of one input. manifest and config return verified bytes; blob returns
// the raw, unverified stream (OpenLayer verifies it while it is read).
type backend interface {
	manifest(ctx context.Context, d v1.Descriptor) ([]byte, error)
	config(ctx context.Context, d v1.Descriptor) ([]byte, error)
	blob(ctx context.Context, d v1.Descriptor) (io.ReadCloser, error)
}

// Target is an opened input: one image, or an index of several platforms.
type Target struct {
	input string
	opts  Options
	b     backend
	name  string // repository name, when known
	tag   string
	dir   string // fs:// inputs

	root     v1.Descriptor
	indexDig string          // digest of the index when root is one (empty for synthetic ones)
	children []v1.Descriptor // platform manifests of an index
	single   *Image          // root is a single image manifest
}

// Open resolves an input string into a Target. It reads manifests (and, for a single image, its
// config), not layers.
func Open(ctx context.Context, input string, opts Options) (*Target, error) {
	t, err := open(ctx, input, opts)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", input, err)
	}
	return t, nil
}

// root is what an input resolves to before platforms are considered: one manifest or index
// (desc with its bytes), or a set of manifests that an OCI layout tags alike (a synthetic index).
type root struct {
	desc     v1.Descriptor
	bytes    []byte
	children []v1.Descriptor
}

func open(ctx context.Context, input string, opts Options) (*Target, error) {
	t := &Target{input: input, opts: opts}
	var (
		r   root
		err error
	)
	switch {
	case strings.HasPrefix(input, PrefixFS):
		dir := strings.TrimPrefix(input, PrefixFS)
		fi, err := os.Stat(dir)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("%s is not a directory", dir)
		}
		t.dir = dir
		return t, nil
	case strings.HasPrefix(input, PrefixOCIDir):
		r, err = t.openLayout(ctx, strings.TrimPrefix(input, PrefixOCIDir))
	case strings.HasPrefix(input, PrefixArchive):
		r, err = t.openArchive(ctx, strings.TrimPrefix(input, PrefixArchive))
	case strings.HasPrefix(input, PrefixRegistry) || !strings.Contains(input, "://"):
		r, err = t.openRegistry(ctx, strings.TrimPrefix(input, PrefixRegistry))
	default:
		return nil, fmt.Errorf("unknown input kind; expected %s, %s, %s, %s or a bare image reference",
			PrefixRegistry, PrefixOCIDir, PrefixArchive, PrefixFS)
	}
	if err != nil {
		return nil, err
	}
	if err := t.resolve(ctx, r); err != nil {
		return nil, err
	}
	return t, nil
}

// ParseReference parses an image reference, allowing plain HTTP for loopback registries and the
// ones listed in insecure.
func ParseReference(s string, insecure []string) (name.Reference, error) {
	ref, err := name.ParseReference(s)
	if err != nil {
		return nil, err
	}
	if insecureAllowed(ref.Context().RegistryStr(), insecure) {
		return name.ParseReference(s, name.Insecure)
	}
	return ref, nil
}

func (t *Target) openRegistry(ctx context.Context, s string) (root, error) {
	ref, err := ParseReference(s, t.opts.Insecure)
	if err != nil {
		return root{}, fmt.Errorf("not an image reference: %w", err)
	}
	rb := newRegistryBackend(ref.Context(), t.opts)
	t.b = rb
	t.setName(ref)
	d, b, err := rb.root(ctx, ref)
	if err != nil {
		return root{}, err
	}
	return root{desc: d, bytes: b}, nil
}

func (t *Target) setName(ref name.Reference) {
	t.name = canonicalName(ref.Context())
	if tag, ok := ref.(name.Tag); ok {
		t.tag = tag.TagStr()
	}
}

// canonicalName spells Docker Hub as users and containerd do ("docker.io/library/alpine").
func canonicalName(repo name.Repository) string {
	n := repo.Name()
	if rest, ok := strings.CutPrefix(n, name.DefaultRegistry+"/"); ok {
		return "docker.io/" + rest
	}
	return n
}

func (t *Target) resolve(ctx context.Context, r root) error {
	if r.children != nil {
		children, err := t.expand(ctx, r.children, 1)
		if err != nil {
			return err
		}
		t.children = children
		return t.checkChildren()
	}
	t.root = r.desc
	if r.bytes == nil {
		b, err := t.b.manifest(ctx, r.desc)
		if err != nil {
			return err
		}
		r.bytes = b
	}
	mt := mediaTypeOf(r.desc.MediaType, r.bytes)
	switch {
	case mt.IsIndex():
		im, err := v1.ParseIndexManifest(strings.NewReader(string(r.bytes)))
		if err != nil {
			return fmt.Errorf("parse index %s: %w", r.desc.Digest, err)
		}
		t.indexDig = r.desc.Digest.String()
		children, err := t.expand(ctx, im.Manifests, 1)
		if err != nil {
			return err
		}
		t.children = children
		return t.checkChildren()
	case mt.IsSchema1():
		return fmt.Errorf("manifest %s is Docker schema 1, which is not supported", r.desc.Digest)
	default:
		img, err := t.load(ctx, r.desc, r.bytes)
		if err != nil {
			return err
		}
		t.single = img
		return nil
	}
}

func (t *Target) checkChildren() error {
	if len(t.children) == 0 {
		return fmt.Errorf("index %s has no image for any known platform", t.indexDig)
	}
	return nil
}

// expand flattens an index's entries into platform image manifests, following nested indexes
// and dropping attestations, signatures and other artifacts.
func (t *Target) expand(ctx context.Context, descs []v1.Descriptor, depth int) ([]v1.Descriptor, error) {
	if len(descs) > maxIndexEntries {
		return nil, fmt.Errorf("index has %d entries, more than %d", len(descs), maxIndexEntries)
	}
	var out []v1.Descriptor
	for _, d := range descs {
		switch {
		case d.MediaType.IsIndex():
			if depth >= maxIndexDepth {
				return nil, fmt.Errorf("indexes nested deeper than %d", maxIndexDepth)
			}
			b, err := t.b.manifest(ctx, d)
			if err != nil {
				return nil, err
			}
			im, err := v1.ParseIndexManifest(strings.NewReader(string(b)))
			if err != nil {
				return nil, fmt.Errorf("parse index %s: %w", d.Digest, err)
			}
			sub, err := t.expand(ctx, im.Manifests, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
		case d.MediaType.IsImage() || d.MediaType == "":
			if d.Platform == nil && d.Annotations["vnd.docker.reference.type"] == "" {
				// OCI layouts may list images without a platform; their config has it.
				p, err := t.platformOf(ctx, d)
				if err != nil {
					return nil, err
				}
				d.Platform = p
			}
			if isAttestation(d) {
				continue
			}
			out = append(out, d)
		}
	}
	return out, nil
}

func (t *Target) platformOf(ctx context.Context, d v1.Descriptor) (*v1.Platform, error) {
	b, err := t.b.manifest(ctx, d)
	if err != nil {
		return nil, err
	}
	m, err := v1.ParseManifest(strings.NewReader(string(b)))
	if err != nil {
		return nil, fmt.Errorf("parse manifest %s: %w", d.Digest, err)
	}
	if cmt := m.Config.MediaType; cmt != "" && cmt != types.DockerConfigJSON && cmt != types.OCIConfigJSON {
		return nil, nil // an artifact, not an image: skipped as an attestation would be
	}
	cb, err := t.b.config(ctx, m.Config)
	if err != nil {
		return nil, err
	}
	cf, err := v1.ParseConfigFile(strings.NewReader(string(cb)))
	if err != nil {
		return nil, fmt.Errorf("parse config %s: %w", m.Config.Digest, err)
	}
	return cf.Platform(), nil
}

// isAttestation recognises BuildKit's attestation manifests (platform unknown/unknown).
func isAttestation(d v1.Descriptor) bool {
	if d.Annotations["vnd.docker.reference.type"] == "attestation-manifest" {
		return true
	}
	return d.Platform == nil || d.Platform.OS == "unknown" || d.Platform.Architecture == "unknown"
}

// Platforms lists all platforms of an index, or the single image's one (none for fs:// inputs).
func (t *Target) Platforms() []v1.Platform {
	if t.single != nil {
		return []v1.Platform{toV1Platform(t.single.desc.Platform)}
	}
	var out []v1.Platform
	for _, c := range t.children {
		out = append(out, *c.Platform)
	}
	return out
}

// Image returns the image for the platform chosen by Options (the host's by default).
func (t *Target) Image(ctx context.Context) (*Image, error) {
	img, err := t.image(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.input, err)
	}
	return img, nil
}

func (t *Target) image(ctx context.Context) (*Image, error) {
	if t.dir != "" {
		return t.dirImage(), nil
	}
	want, explicit := t.wantPlatform()
	if t.single != nil {
		// A single-platform image is what the user asked for unless they named another platform.
		if have := toV1Platform(t.single.desc.Platform); explicit && !platformMatches(want, have) {
			return nil, fmt.Errorf("image %s is %s, not %s", t.single.desc.Digest, platformString(have), platformString(want))
		}
		return t.single, nil
	}
	var best *v1.Descriptor
	for i := range t.children {
		c := &t.children[i]
		if !platformMatches(want, *c.Platform) {
			continue
		}
		if best == nil || (c.Platform.Variant == want.Variant && best.Platform.Variant != want.Variant) {
			best = c
		}
	}
	if best == nil {
		avail := make([]string, 0, len(t.children))
		for _, c := range t.children {
			avail = append(avail, platformString(*c.Platform))
		}
		where := "index " + t.indexDig
		if t.indexDig == "" {
			where = "the images tagged alike"
		}
		return nil, fmt.Errorf("no platform %s in %s; available: %s", platformString(want), where, strings.Join(avail, ", "))
	}
	return t.loadChild(ctx, *best)
}

// Images returns the image of every platform.
func (t *Target) Images(ctx context.Context) ([]*Image, error) {
	if t.dir != "" {
		return []*Image{t.dirImage()}, nil
	}
	if t.single != nil {
		return []*Image{t.single}, nil
	}
	out := make([]*Image, 0, len(t.children))
	for _, c := range t.children {
		img, err := t.loadChild(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.input, err)
		}
		out = append(out, img)
	}
	return out, nil
}

func (t *Target) loadChild(ctx context.Context, d v1.Descriptor) (*Image, error) {
	b, err := t.b.manifest(ctx, d)
	if err != nil {
		return nil, err
	}
	return t.load(ctx, d, b)
}

func (t *Target) dirImage() *Image {
	return &Image{t: t, dir: t.dir, desc: sbom.Image{Reference: t.input, Layers: []sbom.Layer{}}}
}

func (t *Target) wantPlatform() (v1.Platform, bool) {
	if t.opts.Platform != nil {
		return *t.opts.Platform, true
	}
	return HostPlatform(), false
}

// HostPlatform is the platform images are chosen for by default.
func HostPlatform() v1.Platform {
	goos := runtime.GOOS
	if goos == "darwin" {
		// Docker Desktop runs Linux containers on macOS.
		goos = "linux"
	}
	p := v1.Platform{OS: goos, Architecture: runtime.GOARCH}
	if runtime.GOARCH == "arm" {
		p.Variant = "v7"
	}
	return p
}

// platformMatches compares OS, architecture and (if wanted) variant, treating a missing variant
// as the architecture's default, as containerd does (arm64 = v8, arm = v7, amd64 = v1).
func platformMatches(want, have v1.Platform) bool {
	if want.OS != have.OS || want.Architecture != have.Architecture {
		return false
	}
	return want.Variant == "" || normVariant(want) == normVariant(have)
}

func normVariant(p v1.Platform) string {
	if p.Variant != "" {
		return p.Variant
	}
	switch p.Architecture {
	case "arm64":
		return "v8"
	case "arm":
		return "v7"
	case "amd64":
		return "v1"
	}
	return ""
}

func platformString(p v1.Platform) string {
	return sbom.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}.String()
}

func toV1Platform(p sbom.Platform) v1.Platform {
	return v1.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}
}

// Image is one platform's image.
type Image struct {
	t      *Target
	dir    string
	desc   sbom.Image
	layers []v1.Descriptor
}

// load builds an Image from its manifest bytes (already verified by the backend) and config.
func (t *Target) load(ctx context.Context, d v1.Descriptor, b []byte) (*Image, error) {
	m, err := v1.ParseManifest(strings.NewReader(string(b)))
	if err != nil {
		return nil, fmt.Errorf("parse manifest %s: %w", d.Digest, err)
	}
	mt := m.MediaType
	if mt == "" {
		mt = mediaTypeOf(d.MediaType, b)
	}
	if mt.IsSchema1() {
		return nil, fmt.Errorf("manifest %s is Docker schema 1, which is not supported", d.Digest)
	}
	if cmt := m.Config.MediaType; cmt != "" && cmt != types.DockerConfigJSON && cmt != types.OCIConfigJSON {
		return nil, fmt.Errorf("manifest %s is not a container image (config media type %s)", d.Digest, cmt)
	}
	if len(m.Layers) > maxLayers {
		return nil, fmt.Errorf("manifest %s has %d layers, more than %d", d.Digest, len(m.Layers), maxLayers)
	}
	cb, err := t.b.config(ctx, m.Config)
	if err != nil {
		return nil, err
	}
	cf, err := v1.ParseConfigFile(strings.NewReader(string(cb)))
	if err != nil {
		return nil, fmt.Errorf("parse config %s: %w", m.Config.Digest, err)
	}
	if len(cf.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("manifest %s has %d layers but its config lists %d diff IDs", d.Digest, len(m.Layers), len(cf.RootFS.DiffIDs))
	}
	img := &Image{t: t, layers: m.Layers}
	img.desc = describe(t, d, mt, m, cf)
	return img, nil
}

func describe(t *Target, d v1.Descriptor, mt types.MediaType, m *v1.Manifest, cf *v1.ConfigFile) sbom.Image {
	si := sbom.Image{
		Reference:    t.input,
		Name:         t.name,
		Tag:          t.tag,
		Digest:       d.Digest.String(),
		IndexDigest:  t.indexDig,
		MediaType:    string(mt),
		ConfigDigest: m.Config.Digest.String(),
		Platform:     sbom.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant},
		Layers:       make([]sbom.Layer, len(m.Layers)),
	}
	if si.Platform.OS == "" && d.Platform != nil {
		si.Platform = sbom.Platform{OS: d.Platform.OS, Architecture: d.Platform.Architecture, Variant: d.Platform.Variant}
	}
	if !cf.Created.IsZero() {
		c := cf.Created.UTC()
		si.Created = &c
	}
	c := cf.Config
	si.Config = sbom.Config{
		User:       c.User,
		Labels:     maps.Clone(c.Labels),
		Entrypoint: slices.Clone(c.Entrypoint),
		Cmd:        slices.Clone(c.Cmd),
		WorkingDir: c.WorkingDir,
	}
	seen := map[string]bool{}
	for _, e := range c.Env {
		// Values often carry secrets: keep names only.
		n, _, _ := strings.Cut(e, "=")
		if n != "" && !seen[n] {
			seen[n] = true
			si.Config.EnvNames = append(si.Config.EnvNames, n)
		}
	}
	for p := range c.ExposedPorts {
		si.Config.ExposedPorts = append(si.Config.ExposedPorts, p)
	}
	sort.Strings(si.Config.ExposedPorts)

	var createdBy []string
	for _, h := range cf.History {
		if !h.EmptyLayer {
			createdBy = append(createdBy, h.CreatedBy)
		}
	}
	for i, l := range m.Layers {
		sl := sbom.Layer{
			Index:     i,
			Digest:    l.Digest.String(),
			DiffID:    cf.RootFS.DiffIDs[i].String(),
			Size:      l.Size,
			MediaType: string(l.MediaType),
		}
		// History that does not line up with the layers (hand-edited configs) is only a hint,
		// so it is used when the counts agree.
		if len(createdBy) == len(m.Layers) {
			sl.CreatedBy = createdBy[i]
		}
		si.Layers[i] = sl
	}
	return si
}

// Describe returns the image's description (layers empty for fs:// inputs).
func (i *Image) Describe() sbom.Image {
	d := i.desc
	d.Layers = slices.Clone(d.Layers)
	d.Config.Labels = maps.Clone(d.Config.Labels)
	d.Config.EnvNames = slices.Clone(d.Config.EnvNames)
	d.Config.ExposedPorts = slices.Clone(d.Config.ExposedPorts)
	d.Config.Entrypoint = slices.Clone(d.Config.Entrypoint)
	d.Config.Cmd = slices.Clone(d.Config.Cmd)
	return d
}

// Dir is the directory to walk for fs:// inputs (which have no layers); empty otherwise.
func (i *Image) Dir() string { return i.dir }

// OpenLayer returns the uncompressed tar stream of layer idx (0 = base). The blob is read once,
// streaming; its sha256 and size are checked as it passes, and Read returns an error wrapping
// ErrDigestMismatch or ErrTruncated (naming the layer digest) instead of the final io.EOF when
// they do not match. Callers must read to io.EOF -- past the tar end-of-archive marker -- for
// the check to complete.
func (i *Image) OpenLayer(ctx context.Context, idx int) (io.ReadCloser, error) {
	if idx < 0 || idx >= len(i.layers) {
		return nil, fmt.Errorf("layer %d: image %s has %d layers", idx, i.desc.Digest, len(i.layers))
	}
	d := i.layers[idx]
	raw, err := i.t.b.blob(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("layer %d (%s): %w", idx, d.Digest, err)
	}
	lr, err := newLayerReader(raw, d.Digest, d.Size, i.t.opts.MaxLayerSize)
	if err != nil {
		return nil, fmt.Errorf("layer %d (%s): %w", idx, d.Digest, err)
	}
	return lr, nil
}

// mediaTypeOf returns mt, or when it is missing or generic, the mediaType the document declares
// or its shape suggests (OCI layouts and some registries leave it out).
func mediaTypeOf(mt types.MediaType, b []byte) types.MediaType {
	if mt.IsIndex() || mt.IsImage() || mt.IsSchema1() {
		return mt
	}
	var probe struct {
		MediaType types.MediaType `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
		Config    json.RawMessage `json:"config"`
		FSLayers  json.RawMessage `json:"fsLayers"`
	}
	if json.Unmarshal(b, &probe) != nil {
		return mt
	}
	switch {
	case probe.MediaType != "":
		return probe.MediaType
	case probe.Manifests != nil:
		return types.OCIImageIndex
	case probe.Config != nil:
		return types.OCIManifestSchema1
	case probe.FSLayers != nil:
		return types.DockerManifestSchema1
	}
	return mt
}

// descriptorFor describes manifest bytes found in the cache.
func descriptorFor(h v1.Hash, b []byte) v1.Descriptor {
	return v1.Descriptor{Digest: h, Size: int64(len(b)), MediaType: mediaTypeOf("", b)}
}
