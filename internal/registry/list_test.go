package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
)

func hexOf(s string) string { return fmt.Sprintf("%064x", []byte(s))[:64] }

// fakeArtifactory answers the REST API shaped like the spec's examples (§3.1, §3.3, §3.4).
type fakeArtifactory struct {
	items    map[string][]map[string]any // AQL rows per physical repo key
	catalog  map[string][]string         // images per repo key
	tags     map[string][]string         // "<key>/<image>" -> tags
	aqlCode  int                         // non-zero: AQL answers with this status
	hardCap  int                         // AQL trims each page to this many rows, with a notification
	quirk    string                      // "", "rtfact18971", "numeric", "repeat", "wrongn"
	aqlCalls atomic.Int32
	user     string
	pass     string
}

var (
	reRepo   = regexp.MustCompile(`"repo":"([^"]+)"`)
	reMatch  = regexp.MustCompile(`"path":\{"\$match":"([^"]+)/\*"\}`)
	reOffset = regexp.MustCompile(`\.offset\((\d+)\)\.limit\((\d+)\)`)
)

func (f *fakeArtifactory) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if u, p, ok := r.BasicAuth(); !ok || u != f.user || p != f.pass {
		w.Header().Set("WWW-Authenticate", `Basic realm="Artifactory Realm"`)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(401)
		io.WriteString(w, "{\n  \"errors\" : [ {\n    \"status\" : 401,\n    \"message\" : \"Bad credentials\"\n  } ]\n}")
		return
	}
	p := strings.TrimPrefix(r.URL.Path, "/artifactory")
	switch {
	case p == "/api/repositories":
		repos := map[string]string{
			"docker": `[{"key" : "docker-local","type" : "LOCAL","url" : "x","packageType" : "Docker"},
				{"key" : "docker-remote","type" : "REMOTE","url" : "https://registry-1.docker.io/","packageType" : "Docker"},
				{"key" : "docker","type" : "VIRTUAL","packageType" : "Docker"}]`,
			"oci": `[{"key" : "oci-local","type" : "local","packageType" : "oci"},{"key" : "maven","type" : "LOCAL","packageType" : "Maven"}]`,
		}
		w.Header().Set("Content-Type", "application/vnd.org.jfrog.artifactory.repositories.RepositoryDetailsList+json")
		io.WriteString(w, repos[r.URL.Query().Get("packageType")])
	case p == "/api/search/aql" && r.Method == http.MethodPost:
		f.aqlCalls.Add(1)
		if f.aqlCode != 0 {
			w.WriteHeader(f.aqlCode)
			io.WriteString(w, `{"errors":[{"status":400,"message":"This REST API is available only in Artifactory Pro"}]}`)
			return
		}
		q, _ := io.ReadAll(r.Body)
		repo := reRepo.FindSubmatch(q)
		m := reOffset.FindSubmatch(q)
		if repo == nil || m == nil {
			w.WriteHeader(400)
			return
		}
		off, _ := strconv.Atoi(string(m[1]))
		lim, _ := strconv.Atoi(string(m[2]))
		rows := f.items[string(repo[1])]
		if mm := reMatch.FindSubmatch(q); mm != nil {
			var sel []map[string]any
			for _, it := range rows {
				if strings.HasPrefix(it["path"].(string), string(mm[1])+"/") {
					sel = append(sel, it)
				}
			}
			rows = sel
		}
		page := rows[min(off, len(rows)):min(off+lim, len(rows))]
		resp := map[string]any{"results": page, "range": map[string]any{"start_pos": off, "end_pos": off + len(page), "total": len(page), "limit": lim}}
		if f.hardCap > 0 && len(page) > f.hardCap {
			page = page[:f.hardCap]
			resp["results"] = page
			resp["notification"] = "AQL query reached the search hard limit, results are trimmed."
		}
		json.NewEncoder(w).Encode(resp)
	case strings.HasPrefix(p, "/api/docker/"):
		rest := strings.TrimPrefix(p, "/api/docker/")
		key, rest, _ := strings.Cut(rest, "/v2/")
		var list []string
		var field, linkPath string
		if rest == "_catalog" {
			list, field = f.catalog[key], "repositories"
			linkPath = "/v2/" + key + "/_catalog"
		} else if img, ok := strings.CutSuffix(rest, "/tags/list"); ok {
			list, field = f.tags[key+"/"+img], "tags"
			linkPath = "/v2/" + key + "/" + img + "/tags/list"
			if f.quirk == "rtfact18971" {
				linkPath = "/v2/" + img + "/tags/list" // the repo key goes missing
			}
		} else {
			w.WriteHeader(400)
			io.WriteString(w, `{"errors":[{"status":400,"message":"Unsupported docker repository request for 'v2'"}]}`)
			return
		}
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		last := r.URL.Query().Get("last")
		start := 0
		if f.quirk == "numeric" {
			start, _ = strconv.Atoi(last)
		} else if last != "" {
			start = len(list)
			for i, v := range list {
				if v == last {
					start = i + 1
				}
			}
		}
		end := len(list)
		if n > 0 {
			end = min(start+n, len(list))
		}
		page := list[start:end]
		if end < len(list) {
			next := page[len(page)-1]
			switch f.quirk {
			case "numeric":
				next = strconv.Itoa(end)
			case "repeat":
				next = last // the cursor never moves
			}
			nn := n
			if f.quirk == "wrongn" {
				nn = 10000
			}
			w.Header().Set("Link", fmt.Sprintf(`<%s?last=%s&n=%d>; rel="next"`, linkPath, next, nn))
		}
		json.NewEncoder(w).Encode(map[string]any{field: page})
	default:
		w.WriteHeader(404)
		io.WriteString(w, `{"errors":[{"status":404,"message":"Not Found"}]}`)
	}
}

func aqlRow(repo, path, name string) map[string]any {
	return map[string]any{"repo": repo, "path": path, "name": name, "type": "file", "size": 1166,
		"created": "2025-08-26T10:21:17.488Z", "sha256": hexOf(path + "/" + name)}
}

func newFake() *fakeArtifactory {
	f := &fakeArtifactory{user: "ci", pass: "pw", items: map[string][]map[string]any{}, catalog: map[string][]string{}, tags: map[string][]string{}}
	f.items["docker-local"] = []map[string]any{
		aqlRow("docker-local", "frontend-web/1.0", "manifest.json"),
		aqlRow("docker-local", "frontend-web/2.0", "list.manifest.json"),
		aqlRow("docker-local", "frontend-web/sha256__"+hexOf("p1"), "manifest.json"), // per-platform folder
		aqlRow("docker-local", "frontend-web/_uploads", "manifest.json"),
		aqlRow("docker-local", "team/frontend/1.0", "manifest.json"),
		aqlRow("docker-local", "dta/frontend-x/1.0", "manifest.json"),
		aqlRow("docker-local", "backend/1.0", "manifest.json"),
		aqlRow("docker-local", ".", "manifest.json"),
	}
	f.items["docker-remote-cache"] = []map[string]any{aqlRow("docker-remote-cache", "frontend-ubuntu/latest", "list.manifest.json")}
	f.catalog["docker"] = []string{"frontend-virt", "other"}
	f.tags["docker/frontend-virt"] = []string{"v1", "v2"}
	return f
}

func artCfg(url string, extra string) Config {
	c, err := ParseConfigEnv("type=artifactory,registry=rt.example.com,api="+url+"/artifactory,"+extra,
		env(map[string]string{"CROWSNEST_ARTIFACTORY_API_USER": "ci", "CROWSNEST_ARTIFACTORY_API_PASSWORD": "pw"}))
	if err != nil {
		panic(err)
	}
	return c
}

func TestArtifactoryManifestsAQL(t *testing.T) {
	f := newFake()
	srv := httptest.NewServer(f)
	defer srv.Close()
	// The canonical filters: */frontend* keeps top-level frontend images of any key;
	// */dta/* drops the dta namespace.
	a, err := NewArtifactory(artCfg(srv.URL, `"repository=docker-*,docker",include=*/frontend*,exclude=*/dta/*`), Options{PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := a.Manifests(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []Manifest{
		{Repository: "docker-local/frontend-web", RepoKey: "docker-local", Image: "frontend-web", Tag: "1.0", Digest: "sha256:" + hexOf("frontend-web/1.0/manifest.json")},
		{Repository: "docker-local/frontend-web", RepoKey: "docker-local", Image: "frontend-web", Tag: "2.0", Digest: "sha256:" + hexOf("frontend-web/2.0/list.manifest.json")},
		// Globs' * crosses '/': */frontend* takes nested images too.
		{Repository: "docker-local/team/frontend", RepoKey: "docker-local", Image: "team/frontend", Tag: "1.0", Digest: "sha256:" + hexOf("team/frontend/1.0/manifest.json")},
		// Remote repositories are listed through <key>-cache but keep their key for pulls.
		{Repository: "docker-remote/frontend-ubuntu", RepoKey: "docker-remote", Image: "frontend-ubuntu", Tag: "latest", Digest: "sha256:" + hexOf("frontend-ubuntu/latest/list.manifest.json")},
	}
	// The virtual repository holds no files: catalog+tags, no digests.
	want = append(want,
		Manifest{Repository: "docker/frontend-virt", RepoKey: "docker", Image: "frontend-virt", Tag: "v1"},
		Manifest{Repository: "docker/frontend-virt", RepoKey: "docker", Image: "frontend-virt", Tag: "v2"})
	if !reflect.DeepEqual(ms, want) {
		t.Fatalf("got  %+v\nwant %+v", ms, want)
	}
	// 8 rows in pages of 2 for docker-local (5 calls incl. the empty tail... or 4 full + 1 empty), 1 for the cache.
	if c := f.aqlCalls.Load(); c < 5 {
		t.Errorf("AQL calls %d: paging did not happen", c)
	}
	repos, err := a.Repositories(context.Background())
	if err != nil || !reflect.DeepEqual(repos, []string{"docker-local/frontend-web", "docker-local/team/frontend", "docker-remote/frontend-ubuntu", "docker/frontend-virt"}) {
		t.Errorf("repositories %v %v", repos, err)
	}
	tags, err := a.Tags(context.Background(), "docker-local/frontend-web")
	if err != nil || !reflect.DeepEqual(tags, []string{"1.0", "2.0"}) {
		t.Errorf("tags %v %v", tags, err)
	}
	if got := a.ImageRef(ms[3].Repository, ms[3].Tag); got != "rt.example.com/docker-remote/frontend-ubuntu:latest" {
		t.Errorf("ImageRef %s", got)
	}
}

func TestArtifactoryAQLHardLimit(t *testing.T) {
	f := newFake()
	f.hardCap = 1
	srv := httptest.NewServer(f)
	defer srv.Close()
	a, _ := NewArtifactory(artCfg(srv.URL, "repository=docker-local"), Options{PageSize: 3})
	ms, err := a.Manifests(context.Background())
	if err != nil || len(ms) != 5 {
		t.Fatalf("trimmed pages lost rows: %d %v %+v", len(ms), err, ms)
	}
}

func TestArtifactoryFallbackToCatalog(t *testing.T) {
	f := newFake()
	f.aqlCode = 400 // JCR/OSS: AQL is Pro-only
	f.catalog["docker-local"] = []string{"frontend-web", "team/frontend", "backend"}
	f.tags["docker-local/frontend-web"] = []string{"1.0", "2.0", "sha256__" + hexOf("x")}
	srv := httptest.NewServer(f)
	defer srv.Close()
	a, _ := NewArtifactory(artCfg(srv.URL, "repository=docker-local,include=*/frontend*"), Options{})
	ms, err := a.Manifests(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// team/frontend matches */frontend* (globs cross '/') but has no tags in this fake.
	if len(ms) != 2 || ms[0].Tag != "1.0" || ms[1].Tag != "2.0" || ms[0].Digest != "" {
		t.Fatalf("fallback %+v", ms)
	}
	// listing=aql refuses to fall back.
	a, _ = NewArtifactory(artCfg(srv.URL, "repository=docker-local,listing=aql"), Options{})
	var se *StatusError
	if _, err := a.Manifests(context.Background()); !errors.As(err, &se) || se.StatusCode != 400 || !strings.Contains(err.Error(), "only in Artifactory Pro") {
		t.Errorf("listing=aql: %v", err)
	}
	// A server error is not a refusal: no silent fallback.
	f.aqlCode = 502
	a, _ = NewArtifactory(artCfg(srv.URL, "repository=docker-local"), Options{})
	if _, err := a.Manifests(context.Background()); !errors.As(err, &se) || se.StatusCode != 502 || !IsRetryable(err) {
		t.Errorf("5xx: %v", err)
	}
}

func TestCatalogPaginationQuirks(t *testing.T) {
	var tags []string
	for i := range 23 {
		tags = append(tags, fmt.Sprintf("t%02d", i))
	}
	for _, quirk := range []string{"", "rtfact18971", "numeric", "repeat", "wrongn"} {
		t.Run("quirk="+quirk, func(t *testing.T) {
			f := newFake()
			f.quirk = quirk
			f.tags["docker-local/team/app"] = tags
			srv := httptest.NewServer(f)
			defer srv.Close()
			a, _ := NewArtifactory(artCfg(srv.URL, "repository=docker-local,listing=catalog"), Options{PageSize: 5})
			got, err := a.Tags(context.Background(), "docker-local/team/app")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tags) {
				t.Errorf("got %d tags %v", len(got), got)
			}
		})
	}
}

func TestPaginateStopsOnLoop(t *testing.T) {
	calls := 0
	// A server that ignores `last` and always links to the same page.
	got, err := paginate(context.Background(), "loop", func(ctx context.Context, last string) ([]string, http.Header, error) {
		calls++
		h := http.Header{}
		h.Set("Link", `</v2/_catalog?last=zzz&n=2>; rel="next"`)
		return []string{"a", "b"}, h, nil
	})
	if err != nil || !reflect.DeepEqual(got, []string{"a", "b"}) || calls > 3 {
		t.Errorf("got %v %v after %d calls", got, err, calls)
	}
}

func TestRetryAfter(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	a, _ := NewArtifactory(artCfg(srv.URL, "repository=docker-local"), Options{})
	_, err := a.Manifests(context.Background())
	var ra *RetryAfterError
	if !errors.As(err, &ra) || ra.After != 7*time.Second || ra.StatusCode != 429 || !strings.Contains(err.Error(), "repositories") {
		t.Fatalf("got %v", err)
	}
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	if d := parseRetryAfter(now.Add(90*time.Second).Format(http.TimeFormat), now); d != 90*time.Second {
		t.Errorf("http-date: %s", d)
	}
	if d := parseRetryAfter("99999999999", now); d != maxRetryAfter {
		t.Errorf("bound: %s", d)
	}
}

func TestArtifactoryBadCredentials(t *testing.T) {
	srv := httptest.NewServer(newFake())
	defer srv.Close()
	c := artCfg(srv.URL, "repository=docker-local")
	c.Creds.APIPassword = "wrong"
	a, _ := NewArtifactory(c, Options{})
	_, err := a.Manifests(context.Background())
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != 401 || !strings.Contains(err.Error(), "Bad credentials") || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("got %v", err)
	}
	if IsRetryable(err) {
		t.Error("401 must not be retried")
	}
	a, _ = NewArtifactory(artCfg(srv.URL, "repository=no-such-repo"), Options{})
	if _, err := a.Manifests(context.Background()); err == nil || !strings.Contains(err.Error(), `"no-such-repo"`) {
		t.Errorf("missing repo: %v", err)
	}
}

// fakeOCI is a distribution registry with Basic auth and RFC 5988 Link pagination.
func fakeOCI(t *testing.T, repos []string, tags map[string][]string) *httptest.Server {
	page := func(w http.ResponseWriter, r *http.Request, list []string, field string) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		last := r.URL.Query().Get("last")
		start := 0
		if last != "" {
			start, _ = slices.BinarySearch(list, last)
			if start < len(list) && list[start] == last {
				start++
			}
		}
		end := len(list)
		if n > 0 {
			end = min(start+n, len(list))
		}
		if end < len(list) {
			w.Header().Set("Link", fmt.Sprintf(`<%s?last=%s&n=%d>; rel="next"`, r.URL.Path, list[end-1], n))
		}
		json.NewEncoder(w).Encode(map[string]any{field: list[start:end]})
	}
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "u" || p != "p" {
			w.Header().Set("WWW-Authenticate", `Basic realm="registry"`)
			w.WriteHeader(401)
			return
		}
		switch {
		case r.URL.Path == "/v2/":
			w.WriteHeader(200)
		case r.URL.Path == "/v2/_catalog":
			page(w, r, repos, "repositories")
		case strings.HasSuffix(r.URL.Path, "/tags/list"):
			name := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v2/"), "/tags/list")
			if tags[name] == nil {
				w.WriteHeader(404)
				io.WriteString(w, `{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}`)
				return
			}
			page(w, r, tags[name], "tags")
		default:
			w.WriteHeader(404)
		}
	}))
}

func TestOCILister(t *testing.T) {
	var repos []string
	for i := range 12 {
		repos = append(repos, fmt.Sprintf("team/svc%02d", i))
	}
	repos = append(repos, "zlegacy/old")
	tags := map[string][]string{"team/svc03": {"1.0", "1.1", "2.0", "latest"}}
	srv := fakeOCI(t, repos, tags)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	c, err := ParseConfigEnv("type=oci,registry="+host+",insecure=true,exclude=zlegacy/*",
		env(map[string]string{"CROWSNEST_REGISTRY_USER": "u", "CROWSNEST_REGISTRY_PASSWORD": "p"}))
	if err != nil {
		t.Fatal(err)
	}
	l, err := New(c, Options{PageSize: 5})
	if err != nil {
		t.Fatal(err)
	}
	got, err := l.Repositories(context.Background())
	if err != nil || !reflect.DeepEqual(got, repos[:12]) {
		t.Fatalf("repositories %v %v", got, err)
	}
	tl, err := l.Tags(context.Background(), "team/svc03")
	if err != nil || !reflect.DeepEqual(tl, tags["team/svc03"]) {
		t.Fatalf("tags %v %v", tl, err)
	}
	_, err = l.Tags(context.Background(), "team/svc04")
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != 404 || !strings.Contains(err.Error(), "NAME_UNKNOWN") || !strings.Contains(err.Error(), "team/svc04") {
		t.Errorf("unknown repo: %v", err)
	}
	if ref := l.ImageRef("team/svc03", "1.0"); ref != host+"/team/svc03:1.0" {
		t.Errorf("ref %s", ref)
	}
	// A bare host with the environment's credentials lists too.
	bare, _ := ParseConfigEnv(host, env(map[string]string{"DOCKER_SCOUT_REGISTRY_USER": "u", "DOCKER_SCOUT_REGISTRY_PASSWORD": "p"}))
	l2, _ := New(bare, Options{})
	if got, err := l2.Repositories(context.Background()); err != nil || len(got) != 13 {
		t.Errorf("bare host: %v %v", got, err)
	}
}

// FuzzPaginate feeds arbitrary Link headers and pages: pagination must end without panicking,
// and never repeat a name.
func FuzzPaginate(f *testing.F) {
	f.Add(`</v2/_catalog?last=b&n=2>; rel="next"`, "a,b", "c,d")
	f.Add(`<http://x/v2/a/tags/list?last=10000&n=10000>; rel="next", <x>; rel=prev`, "a", "a")
	f.Add(`<%zz>; rel=next`, "", "x")
	f.Add(`<?last=a>;rel="first next"`, "a,a,a", "b")
	f.Fuzz(func(t *testing.T, link, page1, page2 string) {
		calls := 0
		got, err := paginate(context.Background(), "fuzz", func(ctx context.Context, last string) ([]string, http.Header, error) {
			calls++
			h := http.Header{}
			h.Set("Link", link)
			if calls%2 == 1 {
				return strings.Split(page1, ","), h, nil
			}
			return strings.Split(page2, ","), h, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if calls > 4 {
			t.Fatalf("%d calls for two distinct pages", calls)
		}
		seen := map[string]bool{}
		for _, g := range got {
			if seen[g] {
				t.Fatalf("repeated %q", g)
			}
			seen[g] = true
		}
	})
}

// FuzzAQLPaths checks that no AQL row path yields a tag or image that later URLs would trip on.
func FuzzAQLPaths(f *testing.F) {
	for _, s := range []string{"team/app/1.2.3", ".", "a/_uploads/x", "a/sha256__00", "/a//b/", "a/../b/c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		img, tag, ok := manifestPath(p)
		if !ok {
			return
		}
		if !validImage(img) || tag == "" || strings.Contains(tag, "/") || isDigestFolder(tag) || !validTag(tag) {
			t.Fatalf("%q -> %q %q", p, img, tag)
		}
	})
}

// Distribution refuses n above its catalog.maxentries with 400 PAGINATION_NUMBER_INVALID; the
// lister then lets the registry choose the page size and follows its Link pages.
func TestOCIPageSizeAboveRegistryMaximum(t *testing.T) {
	repos := []string{"a", "b", "c", "d", "e", "f", "g"}
	var withN, withoutN int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		q := r.URL.Query()
		if n, _ := strconv.Atoi(q.Get("n")); n > 3 {
			withN++
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"errors":[{"code":"PAGINATION_NUMBER_INVALID","message":"invalid number of results requested","detail":{"n":%d}}]}`, n)
			return
		}
		withoutN++
		start := 0
		if last := q.Get("last"); last != "" {
			start = slices.Index(repos, last) + 1
		}
		end := min(start+3, len(repos))
		if end < len(repos) {
			w.Header().Set("Link", fmt.Sprintf(`</v2/_catalog?last=%s&n=3>; rel="next"`, repos[end-1]))
		}
		json.NewEncoder(w).Encode(map[string]any{"repositories": repos[start:end]})
	}))
	defer srv.Close()
	c, err := ParseConfigEnv("type=oci,registry="+strings.TrimPrefix(srv.URL, "http://")+",insecure=true", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	l, err := New(c, Options{PageSize: 100, Keychain: authn.NewMultiKeychain()})
	if err != nil {
		t.Fatal(err)
	}
	got, err := l.Repositories(context.Background())
	if err != nil || !reflect.DeepEqual(got, repos) {
		t.Fatalf("repositories %v %v", got, err)
	}
	if withN != 1 || withoutN != 3 {
		t.Errorf("%d refused requests and %d pages; want 1 and 3", withN, withoutN)
	}
}
