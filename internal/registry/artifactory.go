package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
)

// Artifactory lists Docker and OCI repositories of a JFrog Artifactory through its REST API.
//
// Repository names are "<repoKey>/<image path>" (e.g. "docker-local/team/app"), the string the
// include/exclude globs match: with the documented example include=*/frontend*, the leading *
// stands for the repository key, so it keeps docker-local/frontend-web whatever the key.
//
// Listing uses AQL (one paged query per repository key gives image, tag and digest of every
// manifest), and falls back to the Docker catalog and tags endpoints of the REST API when AQL is
// refused (JCR/OSS editions, restricted users) or for virtual repositories, which hold no
// files. Remote repositories are listed through their "<key>-cache".
type Artifactory struct {
	cfg    Config
	client *http.Client
	page   int
	filter filter
}

// NewArtifactory returns the lister for an artifactory Config.
func NewArtifactory(cfg Config, opts Options) (*Artifactory, error) {
	if cfg.Type != TypeArtifactory {
		return nil, fmt.Errorf("artifactory lister: config type is %q", cfg.Type)
	}
	if cfg.API == "" || len(cfg.Repositories) == 0 {
		return nil, errors.New("artifactory lister: config has no api or repository")
	}
	return &Artifactory{
		cfg:    cfg,
		client: opts.client(),
		page:   opts.pageSize(),
		filter: filter{cfg.Includes, cfg.Excludes},
	}, nil
}

// RepoInfo is one entry of the repositories API.
type RepoInfo struct {
	Key         string `json:"key"`
	Type        string `json:"type"` // LOCAL, REMOTE, VIRTUAL, FEDERATED (upper-cased)
	PackageType string `json:"packageType"`
	URL         string `json:"url,omitempty"`
}

func (r RepoInfo) aqlKey() string {
	switch r.Type {
	case "VIRTUAL":
		return ""
	case "REMOTE":
		return r.Key + "-cache"
	}
	return r.Key
}

func (a *Artifactory) setAuth(req *http.Request) {
	c := a.cfg.Creds
	switch {
	case c.APIUser != "":
		req.SetBasicAuth(c.APIUser, c.APIPassword.Value())
	case c.APIPassword != "":
		req.Header.Set("Authorization", "Bearer "+c.APIPassword.Value())
	}
}

func (a *Artifactory) get(ctx context.Context, rawURL, endpoint string, v any) (http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", endpoint, err)
	}
	req.Header.Set("Accept", "application/json")
	a.setAuth(req)
	return getJSON(ctx, a.client, req, endpoint, v)
}

// RepoKeys resolves the configured repository keys and key globs through the repositories API
// (package types docker and oci, compared case-insensitively). When that API is refused, literal
// keys are used as local repositories and globs are an error.
func (a *Artifactory) RepoKeys(ctx context.Context) ([]RepoInfo, error) {
	var all []RepoInfo
	var apiErr error
	for _, pt := range []string{"docker", "oci"} {
		var list []RepoInfo
		endpoint := "artifactory repositories (packageType=" + pt + ")"
		if _, err := a.get(ctx, a.cfg.API+"/api/repositories?packageType="+pt, endpoint, &list); err != nil {
			apiErr = err
			break
		}
		for _, r := range list {
			if strings.EqualFold(r.PackageType, "docker") || strings.EqualFold(r.PackageType, "oci") {
				r.Type = strings.ToUpper(r.Type)
				all = append(all, r)
			}
		}
	}
	var out []RepoInfo
	seen := map[string]bool{}
	for _, want := range a.cfg.Repositories {
		glob := strings.ContainsAny(want, `*?[\`)
		if apiErr != nil {
			if glob || !refused(apiErr) {
				return nil, fmt.Errorf("resolve repository %q: %w", want, apiErr)
			}
			if !seen[want] {
				seen[want] = true
				out = append(out, RepoInfo{Key: want, Type: "LOCAL"})
			}
			continue
		}
		found := false
		for _, r := range all {
			if ok, _ := path.Match(want, r.Key); ok || r.Key == want {
				found = true
				if !seen[r.Key] {
					seen[r.Key] = true
					out = append(out, r)
				}
			}
		}
		if !found && !glob {
			return nil, fmt.Errorf("repository %q is not a docker or oci repository visible on %s", want, a.cfg.API)
		}
	}
	return out, nil
}

// refused reports an answer meaning "this API is not for you" rather than a transient failure:
// the listing can then fall back to another API.
func refused(err error) bool {
	var se *StatusError
	if !errors.As(err, &se) {
		return false
	}
	switch se.StatusCode {
	case http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented:
		return true
	}
	return false
}

// Manifests lists every tag of every filtered image with its digest (AQL), or without digests
// through the catalog and tags endpoints.
func (a *Artifactory) Manifests(ctx context.Context) ([]Manifest, error) {
	repos, err := a.RepoKeys(ctx)
	if err != nil {
		return nil, err
	}
	var out []Manifest
	for _, r := range repos {
		ms, err := a.repoManifests(ctx, r)
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
		if len(out) > maxListEntries {
			return nil, fmt.Errorf("artifactory: more than %d manifests", maxListEntries)
		}
	}
	return out, nil
}

func (a *Artifactory) useAQL(r RepoInfo) bool {
	return a.cfg.Listing != ListingCatalog && r.aqlKey() != ""
}

func (a *Artifactory) repoManifests(ctx context.Context, r RepoInfo) ([]Manifest, error) {
	if a.useAQL(r) {
		ms, err := a.aqlManifests(ctx, r, "")
		if err == nil || a.cfg.Listing == ListingAQL || !refused(err) {
			return ms, err
		}
	}
	images, err := a.catalog(ctx, r.Key)
	if err != nil {
		return nil, err
	}
	var out []Manifest
	for _, img := range images {
		tags, err := a.catalogTags(ctx, r.Key, img)
		if err != nil {
			return nil, err
		}
		for _, t := range tags {
			out = append(out, Manifest{Repository: r.Key + "/" + img, RepoKey: r.Key, Image: img, Tag: t})
		}
		if len(out) > maxListEntries {
			return nil, fmt.Errorf("artifactory %s: more than %d tags", r.Key, maxListEntries)
		}
	}
	return out, nil
}

// Repositories lists "<repoKey>/<image>" for every filtered image.
func (a *Artifactory) Repositories(ctx context.Context) ([]string, error) {
	repos, err := a.RepoKeys(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range repos {
		if a.useAQL(r) {
			ms, err := a.aqlManifests(ctx, r, "")
			if err == nil {
				for _, m := range ms {
					out = append(out, m.Repository)
				}
				continue
			}
			if a.cfg.Listing == ListingAQL || !refused(err) {
				return nil, err
			}
		}
		images, err := a.catalog(ctx, r.Key)
		if err != nil {
			return nil, err
		}
		for _, img := range images {
			out = append(out, r.Key+"/"+img)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Tags lists the tags of repo ("<repoKey>/<image>").
func (a *Artifactory) Tags(ctx context.Context, repo string) ([]string, error) {
	key, img, ok := strings.Cut(repo, "/")
	if !ok || key == "" || img == "" {
		return nil, fmt.Errorf("artifactory tags: %q is not <repoKey>/<image>", repo)
	}
	r := RepoInfo{Key: key, Type: "LOCAL"}
	if repos, err := a.RepoKeys(ctx); err == nil {
		for _, ri := range repos {
			if ri.Key == key {
				r = ri
			}
		}
	}
	if a.useAQL(r) {
		ms, err := a.aqlManifests(ctx, r, img)
		if err == nil {
			tags := make([]string, 0, len(ms))
			for _, m := range ms {
				tags = append(tags, m.Tag)
			}
			return tags, nil
		}
		if a.cfg.Listing == ListingAQL || !refused(err) {
			return nil, err
		}
	}
	return a.catalogTags(ctx, key, img)
}

// ImageRef forms the pull reference for the configured access method:
// repository path <registry>/<repoKey>/<image>:<tag>; subdomain <repoKey>.<registry>/<image>:<tag>;
// template <expanded host>/<image>:<tag>; port <registry host>:<port>/<image>:<tag>.
// A tag of the form sha256:<hex> yields a digest reference.
func (a *Artifactory) ImageRef(repo, tag string) string {
	key, img, _ := strings.Cut(repo, "/")
	sep := ":"
	if strings.HasPrefix(tag, "sha256:") {
		sep = "@"
	}
	return a.RegistryHost(key, img) + sep + tag
}

// RegistryHost returns the registry reference prefix of an image: the host, and for the
// repository-path method the repository key, then the image path.
func (a *Artifactory) RegistryHost(key, img string) string {
	c := a.cfg
	switch {
	case c.RegistryTemplate != "":
		server, _, _ := strings.Cut(c.Registry, ".")
		h := strings.NewReplacer("{repo}", key, "{server}", server, "{registry}", c.Registry).Replace(c.RegistryTemplate)
		return h + "/" + img
	case len(c.RegistryPorts) > 0:
		p, ok := c.RegistryPorts[key]
		if !ok {
			p = c.RegistryPorts[""]
		}
		if p == 0 {
			return c.Registry + "/" + key + "/" + img
		}
		host := c.Registry
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		return net.JoinHostPort(host, fmt.Sprint(p)) + "/" + img
	case c.SubdomainMode:
		return key + "." + c.Registry + "/" + img
	}
	return c.Registry + "/" + key + "/" + img
}

// aqlItem is one AQL result row.
type aqlItem struct {
	Repo       string `json:"repo"`
	Path       string `json:"path"`
	Name       string `json:"name"`
	SHA256     string `json:"sha256"`
	Properties []struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	} `json:"properties"`
}

type aqlResponse struct {
	Results []aqlItem `json:"results"`
	Range   struct {
		StartPos int `json:"start_pos"`
		EndPos   int `json:"end_pos"`
		Total    int `json:"total"`
		Limit    int `json:"limit"`
	} `json:"range"`
	Notification string `json:"notification"`
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// aqlQuery lists the tag manifests of repo (optionally of one image) from offset.
func aqlQuery(repo, image string, offset, limit int) string {
	crit := `"repo":` + jsonString(repo) + `,"type":"file","$or":[{"name":"manifest.json"},{"name":"list.manifest.json"}]`
	if image != "" {
		crit += `,"path":{"$match":` + jsonString(image+"/*") + `}`
	}
	return fmt.Sprintf(`items.find({%s}).include("repo","path","name","sha256").sort({"$asc":["path","name"]}).offset(%d).limit(%d)`, crit, offset, limit)
}

// aqlManifests pages through AQL; image "" lists the whole repository.
func (a *Artifactory) aqlManifests(ctx context.Context, r RepoInfo, image string) ([]Manifest, error) {
	endpoint := "artifactory AQL (" + r.aqlKey() + ")"
	byTag := map[[2]string]int{}
	var out []Manifest
	offset := 0
	for page := 0; ; page++ {
		if page >= maxPages {
			return nil, fmt.Errorf("%s: more than %d pages", endpoint, maxPages)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.cfg.API+"/api/search/aql",
			bytes.NewBufferString(aqlQuery(r.aqlKey(), image, offset, a.page)))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", endpoint, err)
		}
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("Accept", "application/json")
		a.setAuth(req)
		var resp aqlResponse
		if _, err := getJSON(ctx, a.client, req, endpoint, &resp); err != nil {
			return nil, err
		}
		for _, it := range resp.Results {
			img, tag, ok := manifestPath(it.Path)
			if !ok || (image != "" && img != image) {
				continue
			}
			name := r.Key + "/" + img
			if !a.filter.allows(name) {
				continue
			}
			m := Manifest{Repository: name, RepoKey: r.Key, Image: img, Tag: tag, Digest: itemDigest(it)}
			k := [2]string{img, tag}
			if i, dup := byTag[k]; dup {
				// A list.manifest.json describes the tag better than a stray manifest.json.
				if it.Name == "list.manifest.json" {
					out[i] = m
				}
				continue
			}
			byTag[k] = len(out)
			out = append(out, m)
		}
		if len(out) > maxListEntries {
			return nil, fmt.Errorf("%s: more than %d manifests", endpoint, maxListEntries)
		}
		n := len(resp.Results)
		offset += n
		// A server-side hard limit trims a page below our limit and says so; keep paging then.
		trimmed := resp.Notification != "" && n > 0
		if n == 0 || (n < a.page && !trimmed) {
			return out, nil
		}
	}
}

// manifestPath splits "<image>/<tag>" (the folder of a tag's manifest). Digest folders of
// multi-platform images and upload areas are not tags.
func manifestPath(p string) (image, tag string, ok bool) {
	p = strings.Trim(p, "/")
	i := strings.LastIndexByte(p, '/')
	if i <= 0 || i == len(p)-1 {
		return "", "", false
	}
	image, tag = p[:i], p[i+1:]
	if isDigestFolder(tag) || !validTag(tag) || !validImage(image) || slices.Contains(strings.Split(image, "/"), "_uploads") {
		return "", "", false
	}
	return image, tag, true
}

func isDigestFolder(s string) bool {
	return strings.HasPrefix(s, "sha256__") || strings.HasPrefix(s, "sha256:")
}

func itemDigest(it aqlItem) string {
	if isHex64(it.SHA256) {
		return "sha256:" + strings.ToLower(it.SHA256)
	}
	for _, p := range it.Properties {
		if p.Key == "docker.manifest.digest" && strings.HasPrefix(p.Value, "sha256:") && isHex64(p.Value[7:]) {
			return strings.ToLower(p.Value)
		}
	}
	return ""
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// catalog lists the filtered images of a repository key through the REST form of the Docker
// catalog.
func (a *Artifactory) catalog(ctx context.Context, key string) ([]string, error) {
	base := a.cfg.API + "/api/docker/" + url.PathEscape(key) + "/v2/_catalog"
	endpoint := "artifactory catalog (" + key + ")"
	names, err := paginate(ctx, endpoint, func(ctx context.Context, last string) ([]string, http.Header, error) {
		var body struct {
			Repositories []string `json:"repositories"`
		}
		h, err := a.get(ctx, pageURL(base, a.page, last), endpoint, &body)
		return body.Repositories, h, err
	})
	if err != nil {
		return nil, err
	}
	out := names[:0]
	for _, n := range names {
		if validImage(n) && !slices.Contains(strings.Split(n, "/"), "_uploads") && a.filter.allows(key+"/"+n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// catalogTags lists the tags of one image through the REST form of tags/list.
func (a *Artifactory) catalogTags(ctx context.Context, key, img string) ([]string, error) {
	if !validImage(img) {
		return nil, fmt.Errorf("artifactory tags: invalid image path %q", img)
	}
	base := a.cfg.API + "/api/docker/" + url.PathEscape(key) + "/v2/" + img + "/tags/list"
	endpoint := "artifactory tags (" + key + "/" + img + ")"
	tags, err := paginate(ctx, endpoint, func(ctx context.Context, last string) ([]string, http.Header, error) {
		var body struct {
			Tags []string `json:"tags"`
		}
		h, err := a.get(ctx, pageURL(base, a.page, last), endpoint, &body)
		return body.Tags, h, err
	})
	if err != nil {
		return nil, err
	}
	out := tags[:0]
	for _, t := range tags {
		if !isDigestFolder(t) && validTag(t) {
			out = append(out, t)
		}
	}
	return out, nil
}

// validImage accepts Docker repository path components only, so a hostile listing cannot
// steer a later URL.
func validImage(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for comp := range strings.SplitSeq(s, "/") {
		if comp == "" || comp == "." || comp == ".." {
			return false
		}
		for i := 0; i < len(comp); i++ {
			c := comp[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c >= 'A' && c <= 'Z') {
				return false
			}
		}
	}
	return true
}

// validTag follows the distribution grammar [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}; "_uploads" is
// Artifactory's upload area, not a tag.
func validTag(s string) bool {
	if s == "" || len(s) > 128 || s == "_uploads" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || (i > 0 && (c == '.' || c == '-'))) {
			return false
		}
	}
	return true
}
