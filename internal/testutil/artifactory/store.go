package artifactory

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path"
	"sort"
	"strings"
	"time"
)

// Property is one key/value of an item; a key with several values gives several entries.
type Property struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Item is a file in a physical repository, as the storage and AQL APIs show it.
type Item struct {
	Repo       string
	Path       string // folder relative to the repo root; "." at the root
	Name       string
	Size       int64
	SHA256     string
	SHA1, MD5  string // empty when unknown (blobs seen only by digest)
	Created    time.Time
	Modified   time.Time
	CreatedBy  string
	ModifiedBy string
	Properties []Property

	platforms []Platform // of a list.manifest.json, for its webhooks
}

func (it *Item) fullPath() string {
	if it.Path == "." {
		return it.Name
	}
	return it.Path + "/" + it.Name
}

// folder is a directory node; Artifactory keeps folders as first-class items with timestamps.
type folder struct {
	created  time.Time
	modified time.Time
	by       string
}

// repoStore holds one physical repository's files.
type repoStore struct {
	files   map[string]*Item   // full path -> file
	folders map[string]*folder // full path ("" = root) -> folder
	// images: image path -> tag (or "sha256__<hex>" digest folder) -> manifest file
	images map[string]map[string]*Item
}

func newRepoStore() *repoStore {
	return &repoStore{
		files:   map[string]*Item{},
		folders: map[string]*folder{"": {}},
		images:  map[string]map[string]*Item{},
	}
}

// isManifestName reports whether name is a tag's (or digest folder's) manifest file.
func isManifestName(name string) bool {
	return name == "manifest.json" || name == "list.manifest.json"
}

// isDigestFolder reports a per-digest folder, which is never a tag (spec §3.6).
func isDigestFolder(seg string) bool {
	return strings.HasPrefix(seg, "sha256__") || strings.HasPrefix(seg, "sha256:")
}

func (s *repoStore) put(it *Item, now time.Time) {
	full := it.fullPath()
	if old, ok := s.files[full]; ok {
		it.Created, it.CreatedBy = old.Created, old.CreatedBy
	}
	s.files[full] = it
	// folders up to the root
	dir := it.Path
	if dir == "." {
		dir = ""
	}
	for {
		f, ok := s.folders[dir]
		if !ok {
			f = &folder{created: now, by: it.ModifiedBy}
			s.folders[dir] = f
		}
		f.modified = now
		if dir == "" {
			break
		}
		dir = parentDir(dir)
	}
	if isManifestName(it.Name) && it.Path != "." {
		img, tag := path.Split(it.Path)
		img = strings.TrimSuffix(img, "/")
		if img != "" && !hasUploadsSegment(img) {
			m := s.images[img]
			if m == nil {
				m = map[string]*Item{}
				s.images[img] = m
			}
			m[tag] = it
		}
	}
}

func parentDir(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return ""
	}
	return p[:i]
}

func hasUploadsSegment(p string) bool {
	for _, seg := range strings.Split(p, "/") {
		if seg == "_uploads" {
			return true
		}
	}
	return false
}

// deleteTree removes a file or a folder with everything below it and returns the removed files.
func (s *repoStore) deleteTree(p string) []*Item {
	p = strings.Trim(p, "/")
	var removed []*Item
	if it, ok := s.files[p]; ok {
		removed = append(removed, it)
		delete(s.files, p)
	} else {
		prefix := p + "/"
		if p == "" {
			prefix = ""
		}
		for k, it := range s.files {
			if strings.HasPrefix(k, prefix) {
				removed = append(removed, it)
				delete(s.files, k)
			}
		}
		for k := range s.folders {
			if k != "" && (k == p || strings.HasPrefix(k, prefix)) {
				delete(s.folders, k)
			}
		}
	}
	for _, it := range removed {
		if isManifestName(it.Name) {
			img, tag := path.Split(it.Path)
			img = strings.TrimSuffix(img, "/")
			if m := s.images[img]; m != nil && m[tag] == it {
				delete(m, tag)
				if len(m) == 0 {
					delete(s.images, img)
				}
			}
		}
	}
	sort.Slice(removed, func(i, j int) bool { return removed[i].fullPath() < removed[j].fullPath() })
	return removed
}

// imageNames lists image paths that have at least one tag or digest manifest, sorted.
func (s *repoStore) imageNames() []string {
	out := make([]string, 0, len(s.images))
	for k := range s.images {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// tags lists the tag folders of an image, digest folders excluded, sorted.
func (s *repoStore) tags(image string) []string {
	var out []string
	for t := range s.images[image] {
		if !isDigestFolder(t) {
			out = append(out, t)
		}
	}
	sort.Strings(out)
	return out
}

func checksums(b []byte) (sha256hex, sha1hex, md5hex string) {
	a := sha256.Sum256(b)
	c := sha1.Sum(b)
	d := md5.Sum(b)
	return hex.EncodeToString(a[:]), hex.EncodeToString(c[:]), hex.EncodeToString(d[:])
}

// manifestInfo is what the emulator reads from a pushed manifest or index.
type manifestInfo struct {
	MediaType string `json:"mediaType"`
	Config    *struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int64  `json:"size"`
	} `json:"config"`
	Layers []struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int64  `json:"size"`
	} `json:"layers"`
	Manifests []struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int64  `json:"size"`
		Platform  *struct {
			Architecture string `json:"architecture"`
			OS           string `json:"os"`
			Variant      string `json:"variant"`
		} `json:"platform"`
	} `json:"manifests"`
}

const (
	mtDockerList  = "application/vnd.docker.distribution.manifest.list.v2+json"
	mtOCIIndex    = "application/vnd.oci.image.index.v1+json"
	mtDockerImage = "application/vnd.docker.distribution.manifest.v2+json"
)

func parseManifest(body []byte, contentType string) (manifestInfo, bool) {
	var m manifestInfo
	if err := json.Unmarshal(body, &m); err != nil {
		return m, false
	}
	if m.MediaType == "" {
		m.MediaType = contentType
	}
	if m.MediaType == "" {
		if m.Manifests != nil {
			m.MediaType = mtOCIIndex
		} else {
			m.MediaType = "application/vnd.oci.image.manifest.v1+json"
		}
	}
	return m, true
}

func (m manifestInfo) isIndex() bool {
	return m.MediaType == mtDockerList || m.MediaType == mtOCIIndex || (m.Config == nil && m.Manifests != nil)
}

// Platform is one entry of a docker webhook's platforms list.
type Platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	// Variant is sent when the index names one [?: spec §5.2 does not say].
	Variant string `json:"variant,omitempty"`
}

// platforms lists an index's platforms, skipping attestation entries ("unknown/unknown") that
// BuildKit adds: they are not platforms a user pushed [I].
func (m manifestInfo) platforms() []Platform {
	out := []Platform{}
	for _, d := range m.Manifests {
		if d.Platform == nil || d.Platform.OS == "unknown" || d.Platform.Architecture == "unknown" {
			continue
		}
		out = append(out, Platform{Architecture: d.Platform.Architecture, OS: d.Platform.OS, Variant: d.Platform.Variant})
	}
	return out
}

func digestFolder(digest string) string { return strings.Replace(digest, ":", "__", 1) }
