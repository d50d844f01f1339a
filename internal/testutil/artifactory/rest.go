package artifactory

import (
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// timeFormat is Artifactory's ISO-8601 with milliseconds and an offset.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

func fmtTime(t time.Time) string { return t.Format(timeFormat) }

func (e *Emulator) baseURL(r *http.Request) string {
	if e.opts.BaseURL != "" {
		return strings.TrimSuffix(e.opts.BaseURL, "/")
	}
	return "http://" + r.Host
}

func (e *Emulator) serveREST(w http.ResponseWriter, r *http.Request, rest string) {
	switch {
	case rest == "system/ping":
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "OK")
	case rest == "system/version":
		if e.restAuth(w, r, true) == nil {
			return
		}
		writeJackson(w, http.StatusOK, struct {
			Version  string   `json:"version"`
			Revision string   `json:"revision"`
			Addons   []string `json:"addons"`
			License  string   `json:"license"`
		}{e.opts.Version, revision(e.opts.Version), []string{"docker", "aql", "webhooks"}, "crowsnest-emulator"})
	case rest == "system/configuration/webServer":
		e.webServer(w, r)
	case rest == "repositories":
		e.listRepositories(w, r)
	case strings.HasPrefix(rest, "repositories/"):
		e.repositoryConfig(w, r, strings.TrimPrefix(rest, "repositories/"))
	case rest == "search/aql":
		e.serveAQL(w, r)
	case strings.HasPrefix(rest, "storage/"):
		e.serveStorage(w, r, strings.TrimPrefix(rest, "storage/"))
	default:
		writeRESTError(w, http.StatusNotFound, "Not Found")
	}
}

func (e *Emulator) webServer(w http.ResponseWriter, r *http.Request) {
	if e.opts.Cloud {
		// "available only in Self-hosted instances" (spec §3.2)
		writeRESTError(w, http.StatusNotFound, "Not Found")
		return
	}
	p := e.restAuth(w, r, false)
	if p == nil {
		return
	}
	host := e.opts.Hostname
	if !p.admin {
		writeJackson(w, http.StatusOK, struct {
			DockerReverseProxyMethod string `json:"dockerReverseProxyMethod"`
			HTTPPort                 int    `json:"httpPort"`
		}{e.opts.ReverseProxyMethod, 80})
		return
	}
	writeJackson(w, http.StatusOK, struct {
		Key                      string `json:"key"`
		WebServerType            string `json:"webServerType"`
		ArtifactoryAppContext    string `json:"artifactoryAppContext"`
		PublicAppContext         string `json:"publicAppContext"`
		ServerName               string `json:"serverName"`
		ServerNameExpression     string `json:"serverNameExpression"`
		ArtifactoryServerName    string `json:"artifactoryServerName"`
		ArtifactoryPort          int    `json:"artifactoryPort"`
		DockerReverseProxyMethod string `json:"dockerReverseProxyMethod"`
		UseHTTPS                 bool   `json:"useHttps"`
		UseHTTP                  bool   `json:"useHttp"`
		SSLPort                  int    `json:"sslPort"`
		HTTPPort                 int    `json:"httpPort"`
	}{"nginx", "NGINX", "artifactory", "artifactory", host, "*." + host, "localhost", 8081,
		e.opts.ReverseProxyMethod, false, true, 443, 80})
}

func capitalise(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

type repoListEntry struct {
	Key         string `json:"key"`
	Type        string `json:"type"`
	Description string `json:"description,omitempty"`
	URL         string `json:"url"`
	PackageType string `json:"packageType"`
}

func (e *Emulator) listRepositories(w http.ResponseWriter, r *http.Request) {
	p := e.restAuth(w, r, true)
	if p == nil {
		return
	}
	q := r.URL.Query()
	typ, pkg, project := q.Get("type"), q.Get("packageType"), q.Get("project")
	out := []repoListEntry{}
	for _, k := range e.order {
		rp := e.repos[k]
		if (typ != "" && !strings.EqualFold(typ, rp.Type)) || (pkg != "" && !strings.EqualFold(pkg, rp.PackageType)) ||
			(project != "" && project != rp.ProjectKey) || !p.canRead(k) {
			continue
		}
		u := e.baseURL(r) + "/artifactory/" + k
		if rp.Type == "remote" && rp.URL != "" {
			u = rp.URL
		}
		out = append(out, repoListEntry{Key: k, Type: strings.ToUpper(rp.Type), Description: rp.Description, URL: u, PackageType: capitalise(rp.PackageType)})
	}
	writeJackson(w, http.StatusOK, out)
}

type repoConfig struct {
	Key                         string   `json:"key"`
	PackageType                 string   `json:"packageType"`
	Description                 string   `json:"description"`
	Notes                       string   `json:"notes"`
	IncludesPattern             string   `json:"includesPattern"`
	ExcludesPattern             string   `json:"excludesPattern"`
	RepoLayoutRef               string   `json:"repoLayoutRef"`
	URL                         string   `json:"url,omitempty"`
	Repositories                []string `json:"repositories,omitempty"`
	DefaultDeploymentRepo       string   `json:"defaultDeploymentRepo,omitempty"`
	EnableDockerSupport         *bool    `json:"enableDockerSupport,omitempty"`
	DockerAPIVersion            string   `json:"dockerApiVersion,omitempty"`
	BlockPushingSchema1         *bool    `json:"blockPushingSchema1,omitempty"`
	MaxUniqueTags               *int     `json:"maxUniqueTags,omitempty"`
	EnableTokenAuthentication   *bool    `json:"enableTokenAuthentication,omitempty"`
	ExternalDependenciesEnabled *bool    `json:"externalDependenciesEnabled,omitempty"`
	BlackedOut                  bool     `json:"blackedOut"`
	XrayIndex                   bool     `json:"xrayIndex"`
	ProjectKey                  string   `json:"projectKey"`
	Rclass                      string   `json:"rclass"`
}

func (e *Emulator) repositoryConfig(w http.ResponseWriter, r *http.Request, key string) {
	p := e.restAuth(w, r, true)
	if p == nil {
		return
	}
	rp, ok := e.repos[key]
	if !ok || !p.canRead(key) {
		// a missing repository is 400, not 404 (spec §3.2)
		writeRESTError(w, http.StatusBadRequest, "Bad Request")
		return
	}
	if !p.admin {
		// non-admin users get partial configuration [I for the exact subset]
		writeJackson(w, http.StatusOK, struct {
			Key         string `json:"key"`
			PackageType string `json:"packageType"`
			Description string `json:"description"`
			Rclass      string `json:"rclass"`
		}{rp.Key, rp.PackageType, rp.Description, rp.Type})
		return
	}
	t, f, zero := true, false, 0
	c := repoConfig{Key: rp.Key, PackageType: rp.PackageType, Description: rp.Description, IncludesPattern: "**/*",
		RepoLayoutRef: "simple-default", ProjectKey: "default", Rclass: rp.Type}
	if rp.ProjectKey != "" {
		c.ProjectKey = rp.ProjectKey
	}
	if rp.PackageType == "docker" || rp.PackageType == "oci" {
		c.EnableDockerSupport, c.DockerAPIVersion, c.BlockPushingSchema1, c.MaxUniqueTags = &t, "V2", &t, &zero
	}
	switch rp.Type {
	case "remote":
		c.URL, c.EnableTokenAuthentication, c.ExternalDependenciesEnabled = rp.URL, &t, &f
	case "virtual":
		c.Repositories = append([]string{}, rp.Repositories...)
		c.DefaultDeploymentRepo = rp.DefaultDeploymentRepo
	}
	writeJackson(w, http.StatusOK, c)
}

// storageTarget resolves a storage API repo key to the physical store holding p.
func (e *Emulator) storageTarget(key, p string) (phys string, st *repoStore, virtual bool) {
	rp := e.repoOfPhysical(key)
	if rp == nil {
		return "", nil, false
	}
	cands := []string{key}
	if _, ok := e.repos[key]; ok {
		cands = e.physicalRead(key, 0)
	}
	for _, c := range cands {
		s := e.stores[c]
		if s == nil {
			continue
		}
		if _, ok := s.files[p]; ok {
			return c, s, rp.Type == "virtual"
		}
		if _, ok := s.folders[p]; ok {
			return c, s, rp.Type == "virtual"
		}
	}
	if len(cands) > 0 && p == "" {
		// an empty repository still has a root folder
		s := e.stores[cands[0]]
		if s == nil {
			s = newRepoStore()
		}
		return cands[0], s, rp.Type == "virtual"
	}
	return "", nil, rp.Type == "virtual"
}

type storageChild struct {
	URI    string `json:"uri"`
	Folder bool   `json:"folder"`
}

func (e *Emulator) serveStorage(w http.ResponseWriter, r *http.Request, rest string) {
	p := e.restAuth(w, r, true)
	if p == nil {
		return
	}
	key, itemPath, _ := strings.Cut(rest, "/")
	itemPath = strings.Trim(itemPath, "/")
	q := r.URL.Query()
	readKey := key
	if rp := e.repoOfPhysical(key); rp != nil {
		readKey = rp.Key
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	phys, st, virtual := e.storageTarget(key, itemPath)
	if !p.canRead(readKey) || st == nil {
		msg := "Unable to find item"
		if virtual {
			msg = "Not Found"
		}
		writeRESTError(w, http.StatusNotFound, msg)
		return
	}
	base := e.baseURL(r) + "/artifactory"
	uri := base + "/api/storage/" + key
	if itemPath != "" {
		uri += "/" + itemPath
	}
	slashPath := "/" + itemPath
	file := st.files[itemPath]
	switch {
	case q.Has("properties"):
		if file == nil {
			writeRESTError(w, http.StatusNotFound, "No properties could be found.")
			return
		}
		want := map[string]bool{}
		for _, k := range strings.Split(q.Get("properties"), ",") {
			if k != "" {
				want[k] = true
			}
		}
		props := map[string][]string{}
		for _, pr := range file.Properties {
			if len(want) == 0 || want[pr.Key] {
				props[pr.Key] = append(props[pr.Key], pr.Value)
			}
		}
		if len(props) == 0 {
			writeRESTError(w, http.StatusNotFound, "No properties could be found.")
			return
		}
		writeJackson(w, http.StatusOK, struct {
			Properties map[string][]string `json:"properties"`
			URI        string              `json:"uri"`
		}{props, uri})
	case q.Has("list"):
		if p.anonymous {
			writeRESTError(w, http.StatusUnauthorized, "Authentication is required")
			return
		}
		e.fileList(w, st, itemPath, uri, q)
	case file != nil:
		checks := map[string]string{"sha256": file.SHA256}
		if file.SHA1 != "" {
			checks["sha1"], checks["md5"] = file.SHA1, file.MD5
		}
		mime := "application/octet-stream"
		if strings.HasSuffix(file.Name, ".json") {
			mime = "application/json"
		}
		writeJackson(w, http.StatusOK, struct {
			URI               string            `json:"uri"`
			DownloadURI       string            `json:"downloadUri"`
			Repo              string            `json:"repo"`
			Path              string            `json:"path"`
			Created           string            `json:"created"`
			CreatedBy         string            `json:"createdBy"`
			LastModified      string            `json:"lastModified"`
			ModifiedBy        string            `json:"modifiedBy"`
			LastUpdated       string            `json:"lastUpdated"`
			Size              string            `json:"size"`
			MimeType          string            `json:"mimeType"`
			Checksums         map[string]string `json:"checksums"`
			OriginalChecksums map[string]string `json:"originalChecksums"`
		}{uri, base + "/" + phys + slashPath, phys, slashPath, fmtTime(file.Created), file.CreatedBy, fmtTime(file.Modified),
			file.ModifiedBy, fmtTime(file.Modified), strconv.FormatInt(file.Size, 10), mime, checks, map[string]string{"sha256": file.SHA256}})
	default:
		f := st.folders[itemPath]
		if f == nil {
			f = &folder{}
		}
		children := []storageChild{}
		for _, c := range st.children(itemPath) {
			children = append(children, storageChild{URI: "/" + c.name, Folder: c.folder})
		}
		writeJackson(w, http.StatusOK, struct {
			URI          string         `json:"uri"`
			Repo         string         `json:"repo"`
			Path         string         `json:"path"`
			Created      string         `json:"created"`
			CreatedBy    string         `json:"createdBy"`
			LastModified string         `json:"lastModified"`
			ModifiedBy   string         `json:"modifiedBy"`
			LastUpdated  string         `json:"lastUpdated"`
			Children     []storageChild `json:"children"`
		}{uri, phys, slashPath, fmtTime(f.created), f.by, fmtTime(f.modified), f.by, fmtTime(f.modified), children})
	}
}

type childEntry struct {
	name   string
	folder bool
}

// children lists the direct children of a folder, sorted by name.
func (s *repoStore) children(dir string) []childEntry {
	prefix := dir + "/"
	if dir == "" {
		prefix = ""
	}
	seen := map[string]bool{}
	var out []childEntry
	add := func(full string, isFile bool) {
		rest, ok := strings.CutPrefix(full, prefix)
		if !ok || rest == "" {
			return
		}
		name, _, deeper := strings.Cut(rest, "/")
		if seen[name] {
			return
		}
		seen[name] = true
		out = append(out, childEntry{name: name, folder: deeper || !isFile})
	}
	for k := range s.folders {
		add(k, false)
	}
	for k := range s.files {
		add(k, true)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

type listFile struct {
	URI          string `json:"uri"`
	Size         int64  `json:"size"`
	LastModified string `json:"lastModified"`
	Folder       bool   `json:"folder"`
	SHA1         string `json:"sha1,omitempty"`
	SHA2         string `json:"sha2,omitempty"`
}

func (e *Emulator) fileList(w http.ResponseWriter, st *repoStore, dir, uri string, q url.Values) {
	if _, isFile := st.files[dir]; isFile {
		writeRESTError(w, http.StatusBadRequest, "Expected a folder but found a file: "+dir)
		return
	}
	deep := q.Get("deep") == "1"
	listFolders := q.Get("listFolders") == "1"
	maxDepth := -1
	if d, err := strconv.Atoi(q.Get("depth")); err == nil && d > 0 {
		maxDepth = d
	}
	if !deep {
		maxDepth = 1
	}
	prefix := dir + "/"
	if dir == "" {
		prefix = ""
	}
	depthOf := func(rel string) int { return strings.Count(rel, "/") + 1 }
	files := []listFile{}
	if listFolders {
		for k, f := range st.folders {
			rel, ok := strings.CutPrefix(k, prefix)
			if !ok || rel == "" || k == "" || (maxDepth > 0 && depthOf(rel) > maxDepth) {
				continue
			}
			files = append(files, listFile{URI: "/" + rel, Size: -1, LastModified: fmtTime(f.modified), Folder: true})
		}
	}
	for k, it := range st.files {
		rel, ok := strings.CutPrefix(k, prefix)
		if !ok || (maxDepth > 0 && depthOf(rel) > maxDepth) {
			continue
		}
		files = append(files, listFile{URI: "/" + rel, Size: it.Size, LastModified: fmtTime(it.Modified), SHA1: it.SHA1, SHA2: it.SHA256})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].URI < files[j].URI })
	writeJackson(w, http.StatusOK, struct {
		URI     string     `json:"uri"`
		Created string     `json:"created"`
		Files   []listFile `json:"files"`
	}{uri, fmtTime(e.opts.Now()), files})
}

// serveArtifact handles {rt}/<repo>/<path>: DELETE removes a file or folder (a tag folder
// deletion is how users delete Docker tags in Artifactory, and it emits docker "deleted").
// Downloads are not emulated: pull through the Docker API instead.
func (e *Emulator) serveArtifact(w http.ResponseWriter, r *http.Request, rest string) {
	p := e.restAuth(w, r, true)
	if p == nil {
		return
	}
	key, itemPath, _ := strings.Cut(rest, "/")
	itemPath = strings.Trim(itemPath, "/")
	rp := e.repoOfPhysical(key)
	if rp == nil || !p.canRead(rp.Key) {
		writeRESTError(w, http.StatusNotFound, "Unable to find item")
		return
	}
	if r.Method != http.MethodDelete {
		writeRESTError(w, http.StatusMethodNotAllowed, "Method Not Allowed")
		return
	}
	if !p.canWrite(rp.Key) || itemPath == "" {
		writeRESTError(w, http.StatusForbidden, "Forbidden")
		return
	}
	phys := key
	if _, ok := e.repos[key]; ok {
		var err error
		if phys, err = e.physicalWrite(key); err != nil {
			writeRESTError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	e.mu.Lock()
	st := e.stores[phys]
	var removed []*Item
	if st != nil {
		removed = st.deleteTree(itemPath)
		for _, it := range removed {
			if isManifestName(it.Name) {
				img, tag := splitImageTag(it.Path)
				if img != "" && !isDigestFolder(tag) {
					e.deleted[deletedKey(phys, img, tag)] = true
				}
			}
		}
		e.gen++
	}
	e.mu.Unlock()
	if len(removed) == 0 {
		writeRESTError(w, http.StatusNotFound, "Unable to find item")
		return
	}
	e.emitRemoved(phys, removed)
	w.WriteHeader(http.StatusNoContent)
}

func splitImageTag(folder string) (image, tag string) {
	i := strings.LastIndexByte(folder, '/')
	if i < 0 {
		return "", folder
	}
	return folder[:i], folder[i+1:]
}
