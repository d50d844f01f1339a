package artifactory

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
)

type dockerForm int

const (
	dockerPathForm dockerForm = iota // /v2/<repoKey>/<image>/... on the main host
	dockerHostForm                   // /v2/<image>/... on a repo subdomain or port
	dockerRESTForm                   // /artifactory/api/docker/<repoKey>/v2/<image>/...
)

// maxManifest bounds a pushed manifest the emulator buffers to observe (the registry's own cap).
const maxManifest = 4 << 20

// maxVirtualDepth bounds nested virtual repositories.
const maxVirtualDepth = 8

// dockerReq is a parsed Docker API request.
type dockerReq struct {
	form    dockerForm
	key     string // repository key the client addressed
	image   string // image path without the repository key
	kind    string // "manifests", "blobs", "uploads", "tags"
	ref     string // tag/digest, blob digest, or upload id+rest
	rawName string // the name as the client sent it (with the key in path form)
}

func (e *Emulator) serveDocker(w http.ResponseWriter, r *http.Request, key, rest string, form dockerForm) {
	w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
	switch rest {
	case "":
		e.dockerPing(w, r, key, form)
		return
	case "token":
		e.issueDockerToken(w, r)
		return
	case "_catalog":
		e.dockerCatalog(w, r, key, form)
		return
	case "promote":
		if form == dockerRESTForm {
			e.dockerPromote(w, r, key)
			return
		}
	}
	d, ok := parseDockerPath(rest)
	if !ok {
		writeDockerError(w, http.StatusNotFound, "NAME_UNKNOWN", "repository name not known to registry")
		return
	}
	d.form, d.rawName = form, d.image
	if form == dockerPathForm {
		k, img, ok := strings.Cut(d.image, "/")
		if !ok {
			// a one-segment name has no image under a repository key
			img, k = k, ""
		}
		d.key, d.image = k, img
	} else {
		d.key = key
	}
	write := r.Method != http.MethodGet && r.Method != http.MethodHead
	actions := "pull"
	if write {
		actions = "pull,push"
	}
	p, res := e.authenticate(r, true)
	if res == authNone && e.opts.AllowAnonymous && !write {
		p, res = &principal{name: "anonymous", anonymous: true}, authOK
	}
	if res != authOK || p == nil {
		e.challenge(w, r, d.key, "repository:"+d.image+":"+actions)
		return
	}
	repo, ok := e.repos[d.key]
	if !ok || (repo.PackageType != "docker" && repo.PackageType != "oci") {
		writeDockerError(w, http.StatusNotFound, "NAME_UNKNOWN", "repository name not known to registry")
		return
	}
	if (write && !p.canWrite(d.key)) || !p.canRead(d.key) {
		writeDockerError(w, http.StatusForbidden, "DENIED", "requested access to the resource is denied")
		return
	}
	if d.kind == "tags" {
		e.dockerTags(w, r, d)
		return
	}
	e.proxy(w, r, d, p, write)
}

// parseDockerPath splits "<name>/manifests/<ref>" and friends; name may hold slashes.
func parseDockerPath(rest string) (dockerReq, bool) {
	if name, ok := strings.CutSuffix(rest, "/tags/list"); ok && name != "" {
		return dockerReq{image: name, kind: "tags"}, true
	}
	if i := strings.LastIndex(rest, "/blobs/uploads"); i > 0 {
		return dockerReq{image: rest[:i], kind: "uploads", ref: rest[i+len("/blobs/uploads"):]}, true
	}
	for _, k := range []string{"manifests", "blobs"} {
		if i := strings.LastIndex(rest, "/"+k+"/"); i > 0 {
			ref := rest[i+len(k)+2:]
			if ref == "" || strings.Contains(ref, "/") {
				return dockerReq{}, false
			}
			return dockerReq{image: rest[:i], kind: k, ref: ref}, true
		}
	}
	return dockerReq{}, false
}

// baseHost strips a repository subdomain: the token realm lives on the platform host (spec §4).
func (e *Emulator) baseHost(host string) string {
	h, port, err := net.SplitHostPort(host)
	if err != nil {
		h, port = host, ""
	}
	if e.subdomainRepo(host) != "" {
		h = e.opts.Hostname
	}
	if port != "" {
		return net.JoinHostPort(h, port)
	}
	return h
}

func (e *Emulator) realm(r *http.Request, key string) string {
	host := e.baseHost(r.Host)
	if key == "" {
		return "http://" + host + "/v2/token"
	}
	return "http://" + host + "/artifactory/api/docker/" + key + "/v2/token"
}

// challenge answers 401 with Artifactory's Bearer challenge (spec §1.2).
func (e *Emulator) challenge(w http.ResponseWriter, r *http.Request, key, scope string) {
	v := `Bearer realm="` + e.realm(r, key) + `",service="` + r.Host + `"`
	if scope != "" {
		v += `,scope="` + scope + `"`
	}
	w.Header().Set("Www-Authenticate", v)
	writeDockerError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
}

func (e *Emulator) dockerPing(w http.ResponseWriter, r *http.Request, key string, form dockerForm) {
	p, res := e.authenticate(r, true)
	if res == authNone && e.opts.AllowAnonymous {
		res = authOK
	} else if p == nil {
		res = authBad
	}
	if res != authOK {
		k := key
		if form == dockerPathForm {
			k = ""
		}
		e.challenge(w, r, k, "")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, "{}")
}

// physicalRead lists the physical repositories a read of key looks in, in order.
func (e *Emulator) physicalRead(key string, depth int) []string {
	repo, ok := e.repos[key]
	if !ok || depth > maxVirtualDepth {
		return nil
	}
	switch repo.Type {
	case "remote":
		return []string{key + "-cache"}
	case "virtual":
		var out []string
		for _, m := range repo.Repositories {
			for _, p := range e.physicalRead(m, depth+1) {
				if !slices.Contains(out, p) {
					out = append(out, p)
				}
			}
		}
		return out
	}
	return []string{key}
}

// physicalWrite is where a push to key lands: a virtual's default deployment repository, or a
// remote's cache (a push there stands for content being cached [I]).
func (e *Emulator) physicalWrite(key string) (string, error) {
	for depth := 0; depth <= maxVirtualDepth; depth++ {
		repo, ok := e.repos[key]
		if !ok {
			return "", fmt.Errorf("no repository %q", key)
		}
		switch repo.Type {
		case "remote":
			return key + "-cache", nil
		case "virtual":
			if repo.DefaultDeploymentRepo == "" {
				return "", fmt.Errorf("virtual repository %q has no default deployment repository", key)
			}
			key = repo.DefaultDeploymentRepo
			continue
		}
		return key, nil
	}
	return "", errors.New("virtual repositories nest too deep")
}

// repoOfPhysical maps "<remote>-cache" back to the remote key.
func (e *Emulator) repoOfPhysical(phys string) *Repository {
	if r, ok := e.repos[phys]; ok {
		return r
	}
	if k, ok := strings.CutSuffix(phys, "-cache"); ok {
		if r, ok := e.repos[k]; ok && r.Type == "remote" {
			return r
		}
	}
	return nil
}

// clientPrefix is the path under which the client sees an image's API.
func clientPrefix(d dockerReq) string {
	switch d.form {
	case dockerPathForm:
		return "/v2/" + d.key + "/" + d.image + "/"
	case dockerRESTForm:
		return "/artifactory/api/docker/" + d.key + "/v2/" + d.image + "/"
	}
	return "/v2/" + d.image + "/"
}

var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func (e *Emulator) proxy(w http.ResponseWriter, r *http.Request, d dockerReq, p *principal, write bool) {
	if e.upstream == nil {
		writeDockerError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "emulator has no upstream registry")
		return
	}
	var physs []string
	if write {
		ph, err := e.physicalWrite(d.key)
		if err != nil {
			writeDockerError(w, http.StatusForbidden, "DENIED", err.Error())
			return
		}
		physs = []string{ph}
	} else {
		physs = e.physicalRead(d.key, 0)
	}
	if d.kind == "manifests" && !strings.HasPrefix(d.ref, "sha256:") && r.Method == http.MethodDelete {
		// Artifactory deletes tags itself; distribution 2.x cannot delete by tag.
		e.deleteTag(w, physs[0], d)
		return
	}
	var body []byte
	if d.kind == "manifests" && r.Method == http.MethodPut {
		b, err := io.ReadAll(io.LimitReader(r.Body, maxManifest+1))
		if err != nil {
			writeDockerError(w, http.StatusBadRequest, "MANIFEST_INVALID", "read manifest: "+err.Error())
			return
		}
		if len(b) > maxManifest {
			writeDockerError(w, http.StatusRequestEntityTooLarge, "SIZE_INVALID", "manifest too large")
			return
		}
		body = b
	}
	for i, phys := range physs {
		if d.kind == "manifests" && (r.Method == http.MethodGet || r.Method == http.MethodHead) && e.isDeleted(phys, d.image, d.ref) {
			if i == len(physs)-1 {
				writeDockerError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest unknown")
				return
			}
			continue
		}
		resp, err := e.upstreamDo(r, d, phys, body)
		if err != nil {
			e.opts.Logf("artifactory emulator: upstream %s %s: %v", r.Method, r.URL.Path, err)
			writeDockerError(w, http.StatusBadGateway, "UNAVAILABLE", "upstream registry: "+err.Error())
			return
		}
		if resp.StatusCode == http.StatusNotFound && i < len(physs)-1 {
			_ = resp.Body.Close()
			continue
		}
		e.relay(w, r, resp, d, phys)
		_ = resp.Body.Close()
		switch {
		case d.kind == "manifests" && r.Method == http.MethodPut && resp.StatusCode == http.StatusCreated:
			e.recordManifest(phys, d.image, d.ref, body, r.Header.Get("Content-Type"), p.name)
		case d.kind == "manifests" && r.Method == http.MethodDelete && resp.StatusCode/100 == 2:
			e.deleteDigest(phys, d.image, d.ref)
		}
		return
	}
	writeDockerError(w, http.StatusNotFound, "NAME_UNKNOWN", "repository name not known to registry")
}

func (e *Emulator) upstreamDo(r *http.Request, d dockerReq, phys string, body []byte) (*http.Response, error) {
	u := *e.upstream
	suffix := d.kind + "/" + d.ref
	if d.kind == "uploads" {
		suffix = "blobs/uploads" + d.ref
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/v2/" + phys + "/" + d.image + "/" + suffix
	q := r.URL.Query()
	if from := q.Get("from"); from != "" {
		if up, ok := e.mapFrom(d, from); ok {
			q.Set("from", up)
		} else {
			q.Del("from")
			q.Del("mount")
		}
	}
	u.RawQuery = q.Encode()
	var rd io.Reader = r.Body
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	for k, vs := range r.Header {
		if k == "Authorization" || k == "X-Jfrog-Art-Api" || slices.Contains(hopHeaders, k) {
			continue
		}
		req.Header[k] = vs
	}
	if body != nil {
		req.ContentLength = int64(len(body))
	} else {
		req.ContentLength = r.ContentLength
	}
	if e.opts.UpstreamUser != "" {
		req.SetBasicAuth(e.opts.UpstreamUser, e.opts.UpstreamPassword)
	}
	return e.client.Do(req)
}

// mapFrom turns a cross-repository mount source, as the client names it, into the upstream name.
func (e *Emulator) mapFrom(d dockerReq, from string) (string, bool) {
	key, img := d.key, from
	if d.form == dockerPathForm {
		var ok bool
		key, img, ok = strings.Cut(from, "/")
		if !ok {
			return "", false
		}
	}
	if _, ok := e.repos[key]; !ok {
		return "", false
	}
	phys := e.physicalRead(key, 0)
	if len(phys) == 0 {
		return "", false
	}
	return phys[0] + "/" + img, true
}

func (e *Emulator) relay(w http.ResponseWriter, r *http.Request, resp *http.Response, d dockerReq, phys string) {
	h := w.Header()
	for k, vs := range resp.Header {
		if slices.Contains(hopHeaders, k) || k == "Docker-Distribution-Api-Version" {
			continue
		}
		h[k] = vs
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		h.Set("Location", e.rewriteLocation(loc, d, phys))
	}
	if d.kind == "manifests" && (r.Method == http.MethodGet || r.Method == http.MethodHead) && resp.StatusCode == http.StatusOK {
		reg := phys
		if rp := e.repoOfPhysical(phys); rp != nil {
			reg = rp.Key
		}
		h.Set("X-Artifactory-Docker-Registry", reg)
	}
	w.WriteHeader(resp.StatusCode)
	if r.Method != http.MethodHead {
		_, _ = io.Copy(w, resp.Body)
	}
}

// rewriteLocation maps an upstream Location back to the path the client used, as a relative URL.
func (e *Emulator) rewriteLocation(loc string, d dockerReq, phys string) string {
	u, err := url.Parse(loc)
	if err != nil {
		return loc
	}
	up := strings.TrimSuffix(e.upstream.Path, "/") + "/v2/" + phys + "/" + d.image + "/"
	if rest, ok := strings.CutPrefix(u.Path, up); ok {
		out := clientPrefix(d) + rest
		if u.RawQuery != "" {
			out += "?" + u.RawQuery
		}
		return out
	}
	if u.IsAbs() && u.Host == e.upstream.Host {
		u.Scheme, u.Host = "", ""
		return u.String()
	}
	return loc
}

func deletedKey(phys, image, ref string) string { return phys + "/" + image + ":" + ref }

func (e *Emulator) isDeleted(phys, image, ref string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.deleted[deletedKey(phys, image, ref)]
}

func (e *Emulator) deleteTag(w http.ResponseWriter, phys string, d dockerReq) {
	e.mu.Lock()
	st := e.stores[phys]
	var removed []*Item
	if st != nil && st.images[d.image][d.ref] != nil {
		removed = st.deleteTree(d.image + "/" + d.ref)
		e.deleted[deletedKey(phys, d.image, d.ref)] = true
		e.gen++
	}
	e.mu.Unlock()
	if len(removed) == 0 {
		writeDockerError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest unknown")
		return
	}
	e.emitRemoved(phys, removed)
	w.WriteHeader(http.StatusAccepted)
}

// deleteDigest retires every tag of image whose manifest has digest, and the digest folder.
func (e *Emulator) deleteDigest(phys, image, digest string) {
	hexd := strings.TrimPrefix(digest, "sha256:")
	e.mu.Lock()
	st := e.stores[phys]
	var removed []*Item
	if st != nil {
		for tag, it := range st.images[image] {
			if it.SHA256 == hexd {
				removed = append(removed, st.deleteTree(image+"/"+tag)...)
				if !isDigestFolder(tag) {
					e.deleted[deletedKey(phys, image, tag)] = true
				}
			}
		}
		removed = append(removed, st.deleteTree(image+"/"+digestFolder(digest))...)
		e.gen++
	}
	e.mu.Unlock()
	e.emitRemoved(phys, removed)
}

func (e *Emulator) dockerTags(w http.ResponseWriter, r *http.Request, d dockerReq) {
	e.mu.Lock()
	var tags []string
	found := false
	for _, phys := range e.physicalRead(d.key, 0) {
		if st := e.stores[phys]; st != nil {
			if _, ok := st.images[d.image]; ok {
				found = true
				tags = append(tags, st.tags(d.image)...)
			}
		}
	}
	e.mu.Unlock()
	if !found {
		writeDockerError(w, http.StatusNotFound, "NAME_UNKNOWN", "repository name not known to registry")
		return
	}
	sort.Strings(tags)
	tags = slices.Compact(tags)
	link := clientPrefix(d) + "tags/list"
	if e.opts.Quirks.RTFACT18971 {
		link = "/v2/" + d.image + "/tags/list"
	}
	page, next, err := e.paginate(tags, r.URL.Query(), link)
	if err != nil {
		writeDockerError(w, http.StatusBadRequest, "PAGINATION_NUMBER_INVALID", err.Error())
		return
	}
	name := d.image
	if d.form == dockerPathForm {
		name = d.key + "/" + d.image
	}
	if next != "" {
		w.Header().Set("Link", next)
	}
	b, _ := marshalCompact(struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{name, page})
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func (e *Emulator) dockerCatalog(w http.ResponseWriter, r *http.Request, key string, form dockerForm) {
	p, res := e.authenticate(r, true)
	if res == authNone && e.opts.AllowAnonymous {
		p, res = &principal{name: "anonymous", anonymous: true}, authOK
	}
	if res != authOK || p == nil {
		k := key
		if form == dockerPathForm {
			k = ""
		}
		e.challenge(w, r, k, "registry:catalog:*")
		return
	}
	var names []string
	e.mu.Lock()
	if key == "" {
		// The host-root catalog of the repository-path method names images with their key [I].
		for _, k := range e.order {
			rp := e.repos[k]
			if (rp.PackageType != "docker" && rp.PackageType != "oci") || rp.Type == "virtual" || !p.canRead(k) {
				continue
			}
			for _, phys := range e.physicalRead(k, 0) {
				if st := e.stores[phys]; st != nil {
					for _, n := range st.imageNames() {
						names = append(names, k+"/"+n)
					}
				}
			}
		}
	} else if p.canRead(key) {
		for _, phys := range e.physicalRead(key, 0) {
			if st := e.stores[phys]; st != nil {
				names = append(names, st.imageNames()...)
			}
		}
	}
	e.mu.Unlock()
	sort.Strings(names)
	names = slices.Compact(names)
	link := "/v2/_catalog"
	if form == dockerRESTForm && !e.opts.Quirks.RTFACT18971 {
		link = "/artifactory/api/docker/" + key + "/v2/_catalog"
	}
	page, next, err := e.paginate(names, r.URL.Query(), link)
	if err != nil {
		writeDockerError(w, http.StatusBadRequest, "PAGINATION_NUMBER_INVALID", err.Error())
		return
	}
	if next != "" {
		w.Header().Set("Link", next)
	}
	b, _ := marshalCompact(struct {
		Repositories []string `json:"repositories"`
	}{page})
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// paginate applies n/last (spec §3.3). Without n everything comes back. last is the last name
// returned (Docker spec) or, with Quirks.NumericLast, the count already returned. A Link to the
// next page is sent only while entries remain.
func (e *Emulator) paginate(all []string, q url.Values, linkPath string) ([]string, string, error) {
	if all == nil {
		all = []string{}
	}
	ns := q.Get("n")
	if ns == "" {
		return all, "", nil
	}
	n, err := strconv.Atoi(ns)
	if err != nil || n < 0 {
		return nil, "", fmt.Errorf("invalid n %q", ns)
	}
	start := 0
	if last := q.Get("last"); last != "" {
		if e.opts.Quirks.NumericLast {
			start, err = strconv.Atoi(last)
			if err != nil || start < 0 {
				return nil, "", fmt.Errorf("invalid last %q", last)
			}
			start = min(start, len(all))
		} else {
			start = sort.SearchStrings(all, last)
			if start < len(all) && all[start] == last {
				start++
			}
		}
	}
	end := min(start+n, len(all))
	page := all[start:end]
	if end >= len(all) || n == 0 {
		return page, "", nil
	}
	cursor := page[len(page)-1]
	if e.opts.Quirks.NumericLast {
		cursor = strconv.Itoa(end)
	}
	return page, "<" + linkPath + "?last=" + url.QueryEscape(cursor) + "&n=" + strconv.Itoa(n) + `>; rel="next"`, nil
}
