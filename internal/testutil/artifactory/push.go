package artifactory

import (
	"fmt"
	"strings"
)

// recordManifest stores a manifest pushed through the proxy in Artifactory's layout (spec §3.6)
// and emits the events a push causes: artifact "deployed" per new file and one docker "pushed"
// for a tag's manifest.json or list.manifest.json (none for per-digest manifests [I]).
func (e *Emulator) recordManifest(phys, image, ref string, body []byte, contentType, user string) {
	sha, sha1hex, md5hex := checksums(body)
	info, _ := parseManifest(body, contentType)
	now := e.opts.Now()
	folder := image + "/" + ref
	tag := ref
	byDigest := strings.HasPrefix(ref, "sha256:")
	if byDigest {
		folder = image + "/" + digestFolder(ref)
		tag = ""
	}
	name := "manifest.json"
	if info.isIndex() {
		name = "list.manifest.json"
	}
	props := []Property{}
	if tag != "" {
		props = append(props, Property{"docker.manifest", tag})
	}
	props = append(props,
		Property{"docker.repoName", image},
		Property{"docker.manifest.digest", "sha256:" + sha},
		Property{"docker.manifest.type", info.MediaType},
		Property{"sha256", sha},
		Property{"artifactory.content-type", info.MediaType})
	if !info.isIndex() && info.Config != nil && info.Config.MediaType != "" {
		props = append(props, Property{"oci.artifact.type", info.Config.MediaType})
	}
	manifest := &Item{Repo: phys, Path: folder, Name: name, Size: int64(len(body)), SHA256: sha, SHA1: sha1hex, MD5: md5hex,
		Created: now, Modified: now, CreatedBy: user, ModifiedBy: user, Properties: props}
	if info.isIndex() {
		manifest.platforms = info.platforms()
	}
	files := []*Item{manifest}
	if !info.isIndex() {
		blobs := info.Layers
		if info.Config != nil {
			blobs = append([]struct {
				MediaType string `json:"mediaType"`
				Digest    string `json:"digest"`
				Size      int64  `json:"size"`
			}{{info.Config.MediaType, info.Config.Digest, info.Config.Size}}, blobs...)
		}
		for _, b := range blobs {
			if !strings.HasPrefix(b.Digest, "sha256:") {
				continue
			}
			files = append(files, &Item{Repo: phys, Path: folder, Name: digestFolder(b.Digest), Size: b.Size,
				SHA256: strings.TrimPrefix(b.Digest, "sha256:"), Created: now, Modified: now, CreatedBy: user, ModifiedBy: user,
				Properties: []Property{{"sha256", strings.TrimPrefix(b.Digest, "sha256:")}}})
		}
	}
	e.mu.Lock()
	st := e.stores[phys]
	if st == nil {
		st = newRepoStore()
		e.stores[phys] = st
	}
	if !byDigest {
		// a re-pushed tag replaces its folder (an image may have become an index)
		if old := st.images[image][tag]; old != nil && old.Name != name {
			st.deleteTree(folder + "/" + old.Name)
		}
		delete(e.deleted, deletedKey(phys, image, tag))
	}
	for _, f := range files {
		st.put(f, now)
	}
	e.gen++
	e.mu.Unlock()
	for _, f := range files {
		e.Emit(Event{Domain: "artifact", EventType: "deployed", Data: ArtifactData{RepoKey: phys, Path: f.fullPath(), Name: f.Name, SHA256: f.SHA256, Size: f.Size}})
	}
	if tag != "" {
		e.Emit(Event{Domain: "docker", EventType: "pushed", Data: e.dockerData(phys, "pushed", manifest, image, tag, manifest.platforms)})
	}
}

// AddManifest records a manifest as if it had been pushed to repoKey as image:tag (or
// image@sha256:... when tag is a digest), without touching the upstream registry: for listing
// tests and benchmarks that need many tags. It emits the same webhooks as a push.
func (e *Emulator) AddManifest(repoKey, image, tag string, manifest []byte, mediaType string) error {
	phys, err := e.physicalWrite(repoKey)
	if err != nil {
		return fmt.Errorf("add manifest: %w", err)
	}
	if image == "" || tag == "" || strings.Contains(tag, "/") {
		return fmt.Errorf("add manifest: bad image %q or tag %q", image, tag)
	}
	e.recordManifest(phys, image, tag, manifest, mediaType, DefaultUser)
	return nil
}
