package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Annotations naming an image in an OCI layout index.json.
const (
	annotationRefName    = "org.opencontainers.image.ref.name"
	annotationImageName  = "io.containerd.image.name"
	maxArchiveManifest   = 4 << 20
	maxDockerSaveEntries = 4096
)

// openLayout opens oci-dir://PATH[:TAG]. Both may contain colons (TAG can be a whole reference,
// "docker.io/library/alpine:3"), so PATH is the shortest prefix that is a layout directory.
func (t *Target) openLayout(_ context.Context, spec string) (root, error) {
	dir, tag := spec, ""
	if !isLayoutDir(spec) {
		for i := 0; i < len(spec); i++ {
			if spec[i] == ':' && isLayoutDir(spec[:i]) {
				dir, tag = spec[:i], spec[i+1:]
				break
			}
		}
	}
	if tag == "" {
		tag = t.opts.Ref
	}
	f, err := os.Open(filepath.Join(dir, "index.json"))
	if err != nil {
		return root{}, fmt.Errorf("not an OCI image layout: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxManifestSize+1))
	if err != nil {
		return root{}, fmt.Errorf("read index.json: %w", err)
	}
	if len(b) > maxManifestSize {
		return root{}, fmt.Errorf("index.json is larger than %d bytes", maxManifestSize)
	}
	im, err := v1.ParseIndexManifest(strings.NewReader(string(b)))
	if err != nil {
		return root{}, fmt.Errorf("parse index.json: %w", err)
	}
	t.b = layoutBackend{p: layout.Path(dir)}
	return t.pickTagged(im, tag)
}

// pickTagged chooses the entries of an OCI layout's index.json that tag names (by ref.name
// annotation, containerd image name, or the same normalized reference); with no tag, the layout
// must hold one image.
func (t *Target) pickTagged(im *v1.IndexManifest, tag string) (root, error) {
	if len(im.Manifests) > maxIndexEntries {
		return root{}, fmt.Errorf("index.json has %d entries, more than %d", len(im.Manifests), maxIndexEntries)
	}
	var cands []v1.Descriptor
	for _, d := range im.Manifests {
		if d.MediaType.IsIndex() || d.MediaType.IsImage() || d.MediaType == "" {
			cands = append(cands, d)
		}
	}
	if len(cands) == 0 {
		return root{}, fmt.Errorf("index.json lists no image")
	}
	var picked []v1.Descriptor
	if tag == "" {
		if len(cands) > 1 && !sameName(cands) {
			return root{}, fmt.Errorf("the layout holds %d images; name one of: %s", len(cands), strings.Join(layoutNames(cands), ", "))
		}
		picked = cands
	} else {
		for _, d := range cands {
			if layoutEntryMatches(d, tag) {
				picked = append(picked, d)
			}
		}
		if len(picked) == 0 {
			return root{}, fmt.Errorf("no image tagged %q; available: %s", tag, strings.Join(layoutNames(cands), ", "))
		}
	}
	t.nameFromAnnotations(picked[0], tag)
	if len(picked) == 1 {
		return root{desc: picked[0], bytes: nil}, nil
	}
	return root{children: picked}, nil
}

// sameName reports whether all entries carry the same name, as when a tool writes one entry per
// platform of one image.
func sameName(ds []v1.Descriptor) bool {
	n := layoutNames(ds[:1])[0]
	for _, d := range ds[1:] {
		if layoutNames([]v1.Descriptor{d})[0] != n || n == d.Digest.String() {
			return false
		}
	}
	return true
}

func layoutNames(ds []v1.Descriptor) []string {
	out := make([]string, 0, len(ds))
	for _, d := range ds {
		switch {
		case d.Annotations[annotationImageName] != "":
			out = append(out, d.Annotations[annotationImageName])
		case d.Annotations[annotationRefName] != "":
			out = append(out, d.Annotations[annotationRefName])
		default:
			out = append(out, d.Digest.String())
		}
	}
	return out
}

func layoutEntryMatches(d v1.Descriptor, want string) bool {
	for _, n := range []string{d.Annotations[annotationRefName], d.Annotations[annotationImageName]} {
		if n != "" && (n == want || sameReference(n, want)) {
			return true
		}
	}
	return d.Digest.String() == want
}

// sameReference compares two references after Docker's normalization ("alpine:3" equals
// "docker.io/library/alpine:3").
func sameReference(a, b string) bool {
	ra, err := name.ParseReference(a)
	if err != nil {
		return false
	}
	rb, err := name.ParseReference(b)
	if err != nil {
		return false
	}
	return ra.Name() == rb.Name()
}

func (t *Target) nameFromAnnotations(d v1.Descriptor, tag string) {
	if n := d.Annotations[annotationImageName]; n != "" {
		if ref, err := name.ParseReference(n); err == nil {
			t.setName(ref)
			return
		}
	}
	n := d.Annotations[annotationRefName]
	if n == "" {
		n = tag
	}
	if n == "" {
		return
	}
	// ref.name is usually a bare tag, sometimes a whole reference.
	if strings.ContainsAny(n, "/:@") {
		if ref, err := name.ParseReference(n); err == nil {
			t.setName(ref)
			return
		}
	}
	t.tag = n
}

// dockerSaveEntry is one image of a docker save manifest.json.
type dockerSaveEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// openArchive opens archive://FILE: an OCI layout in a tar, or a docker save tarball.
func (t *Target) openArchive(ctx context.Context, file string) (root, error) {
	a, err := scanArchive(file)
	if err != nil {
		return root{}, err
	}
	t.b = a
	if a.has("index.json") && a.has("oci-layout") {
		b, err := a.readFile("index.json", maxManifestSize)
		if err != nil {
			return root{}, err
		}
		im, err := v1.ParseIndexManifest(strings.NewReader(string(b)))
		if err != nil {
			return root{}, fmt.Errorf("parse index.json: %w", err)
		}
		return t.pickTagged(im, t.opts.Ref)
	}
	if !a.has("manifest.json") {
		return root{}, fmt.Errorf("neither a docker save tarball (manifest.json) nor an OCI archive (index.json, oci-layout)")
	}
	return t.openDockerSave(ctx, a)
}

func (t *Target) openDockerSave(_ context.Context, a *archiveBackend) (root, error) {
	b, err := a.readFile("manifest.json", maxArchiveManifest)
	if err != nil {
		return root{}, err
	}
	var entries []dockerSaveEntry
	if err := json.Unmarshal(b, &entries); err != nil {
		return root{}, fmt.Errorf("parse manifest.json: %w", err)
	}
	if len(entries) == 0 || len(entries) > maxDockerSaveEntries {
		return root{}, fmt.Errorf("manifest.json lists %d images", len(entries))
	}
	var all []string
	for _, e := range entries {
		all = append(all, e.RepoTags...)
	}
	var chosen *dockerSaveEntry
	chosenTag := ""
	switch {
	case t.opts.Ref != "":
		for i := range entries {
			for _, rt := range entries[i].RepoTags {
				if rt == t.opts.Ref || sameReference(rt, t.opts.Ref) {
					chosen, chosenTag = &entries[i], rt
				}
			}
		}
		if chosen == nil {
			return root{}, fmt.Errorf("no image tagged %q; available: %s", t.opts.Ref, strings.Join(all, ", "))
		}
	case len(entries) == 1:
		chosen = &entries[0]
		if len(chosen.RepoTags) > 0 {
			chosenTag = chosen.RepoTags[0]
		}
	default:
		return root{}, fmt.Errorf("the archive holds %d images; choose one with --ref: %s", len(entries), strings.Join(all, ", "))
	}
	if chosenTag != "" {
		if ref, err := name.ParseReference(chosenTag); err == nil {
			t.setName(ref)
		}
	}
	return a.synthesize(*chosen)
}

// synthesize writes the image manifest docker save does not keep, so that archives go through
// the same path as every other input. Its digest is a stable content key, not one a registry
// would know.
func (a *archiveBackend) synthesize(e dockerSaveEntry) (root, error) {
	if len(e.Layers) > maxLayers {
		return root{}, fmt.Errorf("image has %d layers, more than %d", len(e.Layers), maxLayers)
	}
	cb, err := a.readFile(e.Config, maxConfigSize)
	if err != nil {
		return root{}, fmt.Errorf("config: %w", err)
	}
	cd := sha256Hash(cb)
	a.byDigest[cd] = e.Config
	cf, err := v1.ParseConfigFile(strings.NewReader(string(cb)))
	if err != nil {
		return root{}, fmt.Errorf("parse config %s: %w", e.Config, err)
	}
	if len(cf.RootFS.DiffIDs) != len(e.Layers) {
		return root{}, fmt.Errorf("manifest.json lists %d layers but the config %d diff IDs", len(e.Layers), len(cf.RootFS.DiffIDs))
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.DockerManifestSchema2,
		Config:        v1.Descriptor{MediaType: types.DockerConfigJSON, Size: int64(len(cb)), Digest: cd},
	}
	for i, p := range e.Layers {
		d, err := a.layerDescriptor(p, cf.RootFS.DiffIDs[i])
		if err != nil {
			return root{}, fmt.Errorf("layer %s: %w", p, err)
		}
		a.byDigest[d.Digest] = p
		m.Layers = append(m.Layers, d)
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return root{}, err
	}
	md := sha256Hash(mb)
	a.synth[md] = mb
	return root{desc: v1.Descriptor{MediaType: m.MediaType, Size: int64(len(mb)), Digest: md}, bytes: mb}, nil
}

// layerDescriptor works out the digest and media type of a docker save layer file. Docker keeps
// layers uncompressed, so the digest is the diffID; newer Docker and ggcr name files by digest;
// anything else is hashed (local, once, at open).
func (a *archiveBackend) layerDescriptor(p string, diffID v1.Hash) (v1.Descriptor, error) {
	rc, size, err := a.open(p)
	if err != nil {
		return v1.Descriptor{}, err
	}
	defer rc.Close()
	head := make([]byte, 4)
	n, _ := io.ReadFull(rc, head)
	head = head[:n]
	d := v1.Descriptor{Size: size, MediaType: types.DockerUncompressedLayer}
	compressed := true
	switch {
	case strings.HasPrefix(string(head), string(magicGzip)):
		d.MediaType = types.DockerLayer
	case strings.HasPrefix(string(head), string(magicZstd)):
		d.MediaType = types.OCILayerZStd
	default:
		compressed = false
	}
	if !compressed {
		// The sha256 of an uncompressed layer is its diffID, whatever the file is called.
		d.Digest = diffID
		return d, nil
	}
	if h, ok := digestFromPath(p); ok {
		d.Digest = h
		return d, nil
	}
	h := sha256.New()
	h.Write(head)
	if _, err := io.Copy(h, rc); err != nil {
		return v1.Descriptor{}, err
	}
	d.Digest = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
	return d, nil
}

// digestFromPath recognises blobs/sha256/<hex> (Docker 25+) and <hex>.tar[.gz] (ggcr).
func digestFromPath(p string) (v1.Hash, bool) {
	dir, base := path.Split(p)
	if dir == "blobs/sha256/" {
		h := v1.Hash{Algorithm: "sha256", Hex: base}
		return h, validSHA256(h)
	}
	if dir == "" {
		hx, _, _ := strings.Cut(base, ".")
		h := v1.Hash{Algorithm: "sha256", Hex: hx}
		if strings.HasPrefix(base, "sha256:") {
			h.Hex = strings.TrimPrefix(base, "sha256:")
		}
		return h, validSHA256(h)
	}
	return v1.Hash{}, false
}

func sha256Hash(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

func isLayoutDir(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, "index.json"))
	return err == nil && fi.Mode().IsRegular()
}
