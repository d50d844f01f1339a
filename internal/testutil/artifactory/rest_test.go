package artifactory

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestJacksonPrettyPrinter(t *testing.T) {
	in := `{"errors":[{"status":401,"message":"Bad credentials"}]}`
	want := "{\n  \"errors\" : [ {\n    \"status\" : 401,\n    \"message\" : \"Bad credentials\"\n  } ]\n}"
	if got := string(jackson([]byte(in))); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	in = `{"a":[],"b":{},"c":[1,"x,y:]}",{"d":null}],"e":"q\"}"}`
	got := jackson([]byte(in))
	var x, y any
	if err := json.Unmarshal(got, &x); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, got)
	}
	_ = json.Unmarshal([]byte(in), &y)
	if fmt.Sprint(x) != fmt.Sprint(y) {
		t.Errorf("value changed: %s", got)
	}
	if !strings.Contains(string(got), `"a" : [ ]`) || !strings.Contains(string(got), `"b" : { }`) || !strings.Contains(string(got), `[ 1, "x,y:]}", {`) {
		t.Errorf("shape: %s", got)
	}
}

func TestSignTestVector(t *testing.T) {
	// spec §5.3 test vector, and the emulator's own serialisation of the same event
	body := `{"domain":"docker","event_type":"pushed","data":{"repo_key":"docker-local","path":"team/app/1.2.3/manifest.json","name":"manifest.json","sha256":"6aed41d43187f94e2bcab5ed0b3f1d53ba20b2f2076a2e261bb11bbab8846491","size":1166,"image_name":"app","tag":"1.2.3","platforms":[],"image_type":"docker"},"subscription_key":"image-indexer","jpd_origin":"https://acme.jfrog.io","source":"jfrog/jfrt@01jzq1wpac4msw1djjwqwh09w0"}`
	if len(body) != 416 || Sign("s3cr3t", []byte(body)) != "1528d9f3fa05f9d144728f7e538db28b5bcbb34b27f0a0d99507f576ae9d9bc1" {
		t.Fatalf("test vector mismatch (len %d)", len(body))
	}
	env := envelope{Domain: "docker", EventType: "pushed", SubscriptionKey: "image-indexer", JPDOrigin: "https://acme.jfrog.io",
		Source: "jfrog/jfrt@01jzq1wpac4msw1djjwqwh09w0", Data: DockerData{RepoKey: "docker-local", Path: "team/app/1.2.3/manifest.json",
			Name: "manifest.json", SHA256: "6aed41d43187f94e2bcab5ed0b3f1d53ba20b2f2076a2e261bb11bbab8846491", Size: 1166,
			ImageName: "app", Tag: "1.2.3", Platforms: []Platform{}, ImageType: "docker"}}
	b, _ := marshalCompact(env)
	if string(b) != body {
		t.Errorf("serialisation differs:\n%s\n%s", b, body)
	}
}

func TestRESTAuthentication(t *testing.T) {
	e := Start(t, Options{Users: []User{{Name: "admin", Password: "pw", Admin: true}, {Name: "dev", Password: "devpw", Repos: []string{"docker-local"}}}})
	code, body, h := do(t, e, http.MethodGet, "/artifactory/api/repositories", "", "", "")
	if code != 401 || h.Get("WWW-Authenticate") != `Basic realm="Artifactory Realm"` ||
		body != "{\n  \"errors\" : [ {\n    \"status\" : 401,\n    \"message\" : \"Authentication is required\"\n  } ]\n}" {
		t.Errorf("no credentials: %d %q %v", code, body, h)
	}
	code, body, _ = do(t, e, http.MethodGet, "/artifactory/api/repositories", "admin", "wrong", "")
	if code != 401 || !strings.Contains(body, `"message" : "Bad credentials"`) {
		t.Errorf("bad credentials: %d %s", code, body)
	}
	// ping works without credentials
	if code, body, _ := do(t, e, http.MethodGet, "/artifactory/api/system/ping", "", "", ""); code != 200 || body != "OK" {
		t.Errorf("ping %d %q", code, body)
	}
	tok := e.IssueAccessToken("admin")
	ref := e.IssueReferenceToken("admin")
	key := e.IssueAPIKey("admin")
	if len(ref) != 64 || !strings.HasPrefix(ref, "cmVmdGtu") || len(key) != 73 || !strings.HasPrefix(key, "AKCp8") {
		t.Errorf("token shapes %q %q", ref, key)
	}
	try := func(set func(*http.Request)) int {
		req, _ := http.NewRequest(http.MethodGet, e.URL()+"/artifactory/api/repositories", nil)
		set(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	cases := []struct {
		name string
		set  func(*http.Request)
		want int
	}{
		{"bearer access token", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }, 200},
		{"basic with access token", func(r *http.Request) { r.SetBasicAuth("admin", tok) }, 200},
		{"bearer reference token", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+ref) }, 200},
		{"reference token in X-JFrog-Art-Api", func(r *http.Request) { r.Header.Set("X-JFrog-Art-Api", ref) }, 200},
		{"api key disabled by default", func(r *http.Request) { r.Header.Set("X-JFrog-Art-Api", key) }, 401},
		{"api key as basic disabled", func(r *http.Request) { r.SetBasicAuth("admin", key) }, 401},
		{"token of another user", func(r *http.Request) { r.SetBasicAuth("dev", tok) }, 401},
		{"unknown bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer nope") }, 401},
	}
	for _, c := range cases {
		if got := try(c.set); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	// the user restricted to docker-local sees only it
	code, body, _ = do(t, e, http.MethodGet, "/artifactory/api/repositories", "dev", "devpw", "")
	var list []repoListEntry
	if err := json.Unmarshal([]byte(body), &list); err != nil || code != 200 || len(list) != 1 || list[0].Key != "docker-local" {
		t.Errorf("filtered list: %d %s", code, body)
	}
	// the Event API needs an admin
	if code, _, _ := do(t, e, http.MethodGet, "/event/api/v1/subscriptions", "dev", "devpw", ""); code != 403 {
		t.Errorf("non-admin subscriptions: %d", code)
	}
}

func TestAPIKeysAndAnonymous(t *testing.T) {
	e := Start(t, Options{EnableAPIKeys: true, AllowAnonymous: true})
	key := e.IssueAPIKey(DefaultUser)
	req, _ := http.NewRequest(http.MethodGet, e.URL()+"/artifactory/api/system/version", nil)
	req.Header.Set("X-JFrog-Art-Api", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("api key: %v %v", err, resp)
	}
	resp.Body.Close()
	if code, _, _ := do(t, e, http.MethodGet, "/artifactory/api/repositories", "", "", ""); code != 200 {
		t.Errorf("anonymous list: %d", code)
	}
	// AQL needs an authenticated user even with anonymous access on
	if code, _, _ := do(t, e, http.MethodPost, "/artifactory/api/search/aql", "", "", `items.find()`); code != 401 {
		t.Errorf("anonymous AQL: %d", code)
	}
	// anonymous Docker token, 405 on POST
	code, body, _ := do(t, e, http.MethodGet, "/artifactory/api/docker/docker-local/v2/token", "", "", "")
	var tk struct {
		Token     string `json:"token"`
		ExpiresIn int    `json:"expires_in"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &tk) != nil || tk.Token == "" || tk.ExpiresIn != 3600 {
		t.Errorf("anonymous token: %d %s", code, body)
	}
	code, body, _ = do(t, e, http.MethodPost, "/v2/token", DefaultUser, DefaultPassword, "grant_type=password")
	if code != 405 || !strings.Contains(body, "Method Not Allowed") {
		t.Errorf("POST token: %d %s", code, body)
	}
}

func TestRepositories(t *testing.T) {
	e := Start(t, Options{})
	keys := func(q string) string {
		code, body, h := do(t, e, http.MethodGet, "/artifactory/api/repositories"+q, DefaultUser, DefaultPassword, "")
		if code != 200 || h.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %d", q, code)
		}
		var list []repoListEntry
		if err := json.Unmarshal([]byte(body), &list); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range list {
			out = append(out, r.Key+":"+r.Type+":"+r.PackageType)
		}
		return strings.Join(out, ",")
	}
	if got := keys("?packageType=docker"); got != "docker-local:LOCAL:Docker,docker-remote:REMOTE:Docker,docker:VIRTUAL:Docker" {
		t.Errorf("docker: %s", got)
	}
	if got := keys("?packageType=OCI"); got != "oci-local:LOCAL:Oci" {
		t.Errorf("oci: %s", got)
	}
	if got := keys("?type=local&packageType=Docker"); got != "docker-local:LOCAL:Docker" {
		t.Errorf("local docker: %s", got)
	}
	cfg := getJSON(t, e, "/artifactory/api/repositories/docker", DefaultUser, DefaultPassword)
	if cfg["rclass"] != "virtual" || cfg["packageType"] != "docker" || cfg["defaultDeploymentRepo"] != "docker-local" || cfg["dockerApiVersion"] != "V2" {
		t.Errorf("config %v", cfg)
	}
	code, body, _ := do(t, e, http.MethodGet, "/artifactory/api/repositories/nope", DefaultUser, DefaultPassword, "")
	if code != 400 || !strings.Contains(body, `"status" : 400`) {
		t.Errorf("missing repo: %d %s", code, body)
	}
	ws := getJSON(t, e, "/artifactory/api/system/configuration/webServer", DefaultUser, DefaultPassword)
	if ws["dockerReverseProxyMethod"] != "REPOPATHPREFIX" {
		t.Errorf("webServer %v", ws)
	}
}

// seed records n tags of team/app and one other image, without an upstream.
func seed(t *testing.T, e *Emulator, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:%064x","size":10},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"sha256:%064x","size":20}]}`, mtDockerImage, i, i+1)
		if err := e.AddManifest("docker-local", "team/app", fmt.Sprintf("1.0.%03d", i), []byte(m), mtDockerImage); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.AddManifest("docker-local", "other", "latest", []byte(`{"schemaVersion":2,"mediaType":"`+mtOCIIndex+`","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:`+strings.Repeat("a", 64)+`","size":5,"platform":{"architecture":"arm64","os":"linux","variant":"v8"}},{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:`+strings.Repeat("b", 64)+`","size":5,"platform":{"architecture":"unknown","os":"unknown"}}]}`), mtOCIIndex); err != nil {
		t.Fatal(err)
	}
}

func aql(t *testing.T, e *Emulator, q string) (int, map[string]any) {
	t.Helper()
	code, body, _ := do(t, e, http.MethodPost, "/artifactory/api/search/aql", DefaultUser, DefaultPassword, q)
	var m map[string]any
	if code == 200 {
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatalf("AQL body: %v\n%s", err, body)
		}
	} else {
		_ = json.Unmarshal([]byte(body), &m)
	}
	return code, m
}

func TestAQLPaging(t *testing.T) {
	e := Start(t, Options{})
	seed(t, e, 25)
	const q = `items.find({
  "repo": "docker-local",
  "type": "file",
  "$or": [ {"name": "manifest.json"}, {"name": "list.manifest.json"} ]
}).include("repo","path","name","sha256","size","created","modified","updated","property.*")
  .sort({"$asc": ["path"]})
  .offset(%d).limit(10)`
	var paths []string
	for off := 0; ; off += 10 {
		code, m := aql(t, e, fmt.Sprintf(q, off))
		if code != 200 {
			t.Fatalf("offset %d: %d %v", off, code, m)
		}
		res := m["results"].([]any)
		rng := m["range"].(map[string]any)
		// range.total counts this page only
		if rng["total"] != float64(len(res)) || rng["start_pos"] != float64(off) || rng["limit"] != float64(10) {
			t.Errorf("range %v for %d results", rng, len(res))
		}
		for _, r := range res {
			it := r.(map[string]any)
			paths = append(paths, it["path"].(string)+"/"+it["name"].(string))
			if _, ok := it["size"].(float64); !ok {
				t.Errorf("size is not a number: %v", it["size"])
			}
			props := map[string]string{}
			for _, p := range it["properties"].([]any) {
				pm := p.(map[string]any)
				props[pm["key"].(string)] = pm["value"].(string)
			}
			if props["docker.manifest.digest"] != "sha256:"+it["sha256"].(string) || props["docker.repoName"] == "" {
				t.Errorf("properties %v", props)
			}
		}
		if len(res) < 10 {
			break
		}
	}
	if len(paths) != 26 || paths[0] != "other/latest/list.manifest.json" || paths[1] != "team/app/1.0.000/manifest.json" || paths[25] != "team/app/1.0.024/manifest.json" {
		t.Errorf("paths %d %v", len(paths), paths)
	}
	// default fields, files only, $match / $nmatch and a property criterion
	code, m := aql(t, e, `items.find({"repo":"docker-local","path":{"$match":"team/app/1.0.00*"},"name":{"$nmatch":"sha256__*"},"@docker.manifest":{"$ne":"1.0.003"}})`)
	if code != 200 {
		t.Fatalf("%d %v", code, m)
	}
	res := m["results"].([]any)
	if len(res) != 9 {
		t.Errorf("want 9 results, got %d", len(res))
	}
	first := res[0].(map[string]any)
	for _, f := range defaultFields {
		if _, ok := first[f]; !ok {
			t.Errorf("default field %s missing: %v", f, first)
		}
	}
	if _, ok := m["range"].(map[string]any)["limit"]; ok {
		t.Error("range.limit without .limit()")
	}
	// dates: everything was created just now
	code, m = aql(t, e, `items.find({"repo":"docker-local","name":"manifest.json","created":{"$gt":"2000-01-01T00:00:00.000Z"},"modified":{"$last":"1d"}}).limit(3)`)
	if code != 200 || len(m["results"].([]any)) != 3 {
		t.Errorf("date query: %d %v", code, m)
	}
	// syntax errors are 400 in the REST envelope
	for _, bad := range []string{`items.find(`, `items.find({"repo":{"$bogus":1}})`, `builds.find()`, `items.find({"nope":1})`, `items.find().limit(-1)`} {
		if code, m := aql(t, e, bad); code != 400 || m["errors"] == nil {
			t.Errorf("%s: %d %v", bad, code, m)
		}
	}
}

func TestAQLHardLimitAndFolders(t *testing.T) {
	e := Start(t, Options{AQLMaxLimit: 5})
	seed(t, e, 8)
	code, m := aql(t, e, `items.find({"repo":"docker-local","name":"manifest.json"})`)
	rng := m["range"].(map[string]any)
	if code != 200 || len(m["results"].([]any)) != 5 || !strings.Contains(fmt.Sprint(rng["notification"]), "hard limit") {
		t.Errorf("hard limit: %d %v", code, rng)
	}
	code, m = aql(t, e, `items.find({"repo":"docker-local","type":"folder","path":"team/app"}).include("name","type")`)
	if code != 200 || len(m["results"].([]any)) != 5 {
		t.Fatalf("folders: %d %v", code, m)
	}
	if r := m["results"].([]any)[0].(map[string]any); r["type"] != "folder" || r["name"] != "1.0.000" {
		t.Errorf("folder item %v", r)
	}
}

func TestCatalogAndTagsPagination(t *testing.T) {
	for _, c := range []struct {
		name   string
		quirks Quirks
		path   string
		link   func(last string) string
	}{
		{"spec", Quirks{}, "/artifactory/api/docker/docker-local/v2/team/app/tags/list",
			func(l string) string {
				return `</artifactory/api/docker/docker-local/v2/team/app/tags/list?last=` + l + `&n=10>; rel="next"`
			}},
		{"repo path", Quirks{}, "/v2/docker-local/team/app/tags/list",
			func(l string) string { return `</v2/docker-local/team/app/tags/list?last=` + l + `&n=10>; rel="next"` }},
		{"RTFACT-18971", Quirks{RTFACT18971: true}, "/v2/docker-local/team/app/tags/list",
			func(l string) string { return `</v2/team/app/tags/list?last=` + l + `&n=10>; rel="next"` }},
		{"numeric last", Quirks{NumericLast: true, RTFACT18971: true}, "/v2/docker-local/team/app/tags/list",
			func(l string) string { return `</v2/team/app/tags/list?last=` + l + `&n=10>; rel="next"` }},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := Start(t, Options{Quirks: c.quirks})
			seed(t, e, 25)
			// without n, everything at once and no Link
			code, body, h := do(t, e, http.MethodGet, c.path, DefaultUser, DefaultPassword, "")
			if code != 200 || h.Get("Link") != "" || strings.Count(body, "1.0.") != 25 {
				t.Fatalf("no n: %d %s %v", code, body, h)
			}
			var all []string
			q := "?n=10"
			for page := 0; page < 10; page++ {
				code, body, h := do(t, e, http.MethodGet, c.path+q, DefaultUser, DefaultPassword, "")
				if code != 200 {
					t.Fatalf("%s: %d %s", q, code, body)
				}
				var tl struct {
					Tags []string `json:"tags"`
				}
				_ = json.Unmarshal([]byte(body), &tl)
				all = append(all, tl.Tags...)
				link := h.Get("Link")
				if link == "" {
					break
				}
				// follow our own URL with the Link's last/n, as the spec's client rule says
				lu, err := url.Parse(strings.TrimSuffix(strings.TrimPrefix(strings.SplitN(link, ";", 2)[0], "<"), ">"))
				if err != nil {
					t.Fatal(err)
				}
				last := lu.Query().Get("last")
				if link != c.link(last) {
					t.Errorf("Link %q, want %q", link, c.link(last))
				}
				if c.quirks.NumericLast && last != fmt.Sprint(len(all)) {
					t.Errorf("numeric last %q after %d tags", last, len(all))
				}
				q = "?n=" + lu.Query().Get("n") + "&last=" + url.QueryEscape(last)
			}
			if len(all) != 25 || all[0] != "1.0.000" || all[24] != "1.0.024" {
				t.Errorf("tags %v", all)
			}
			// the catalog of the REST form, paged
			code, body, h = do(t, e, http.MethodGet, "/artifactory/api/docker/docker-local/v2/_catalog?n=1", DefaultUser, DefaultPassword, "")
			if code != 200 || body != `{"repositories":["other"]}` || h.Get("Link") == "" {
				t.Errorf("catalog: %d %s %v", code, body, h.Get("Link"))
			}
			// virtual repository lists its members' images
			code, body, _ = do(t, e, http.MethodGet, "/artifactory/api/docker/docker/v2/_catalog", DefaultUser, DefaultPassword, "")
			if code != 200 || body != `{"repositories":["other","team/app"]}` {
				t.Errorf("virtual catalog: %d %s", code, body)
			}
		})
	}
}

func TestDockerRESTPathErrors(t *testing.T) {
	e := Start(t, Options{})
	code, body, _ := do(t, e, http.MethodGet, "/artifactory/api/docker/v2/docker-local/_catalog", DefaultUser, DefaultPassword, "")
	if code != 400 || !strings.Contains(body, "Unsupported docker repository request for 'v2'") {
		t.Errorf("swapped path: %d %s", code, body)
	}
	// unauthenticated Docker request: challenge with scope, Docker envelope, exact bytes
	code, body, h := do(t, e, http.MethodGet, "/v2/docker-local/team/app/manifests/1.0", "", "", "")
	wantRealm := `Bearer realm="http://` + e.Addr() + `/artifactory/api/docker/docker-local/v2/token",service="` + e.Addr() + `",scope="repository:team/app:pull"`
	if code != 401 || h.Get("Www-Authenticate") != wantRealm || body != `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}`+"\n" ||
		h.Get("Content-Type") != "application/json;charset=ISO-8859-1" {
		t.Errorf("challenge: %d %q %q", code, h.Get("Www-Authenticate"), body)
	}
	// the root ping has no scope
	_, _, h = do(t, e, http.MethodGet, "/v2/", "", "", "")
	if h.Get("Www-Authenticate") != `Bearer realm="http://`+e.Addr()+`/v2/token",service="`+e.Addr()+`"` {
		t.Errorf("ping challenge %q", h.Get("Www-Authenticate"))
	}
}

func TestStorageAPI(t *testing.T) {
	e := Start(t, Options{})
	seed(t, e, 2)
	fi := getJSON(t, e, "/artifactory/api/storage/docker-local/team/app/1.0.001/manifest.json", DefaultUser, DefaultPassword)
	if fi["repo"] != "docker-local" || fi["path"] != "/team/app/1.0.001/manifest.json" || fi["mimeType"] != "application/json" {
		t.Errorf("file info %v", fi)
	}
	if _, ok := fi["size"].(string); !ok {
		t.Errorf("file info size must be a string: %v", fi["size"])
	}
	if _, err := time.Parse(timeFormat, fi["created"].(string)); err != nil {
		t.Error(err)
	}
	fo := getJSON(t, e, "/artifactory/api/storage/docker-local/team/app", DefaultUser, DefaultPassword)
	if fmt.Sprint(fo["children"]) != "[map[folder:true uri:/1.0.000] map[folder:true uri:/1.0.001]]" || fo["path"] != "/team/app" {
		t.Errorf("folder info %v", fo)
	}
	root := getJSON(t, e, "/artifactory/api/storage/docker-local", DefaultUser, DefaultPassword)
	if root["path"] != "/" {
		t.Errorf("root path %v", root["path"])
	}
	list := getJSON(t, e, "/artifactory/api/storage/docker-local/team?list&deep=1&listFolders=1", DefaultUser, DefaultPassword)
	files := list["files"].([]any)
	// app, 2 tag folders, 2 x (manifest + config + layer)
	if len(files) != 9 {
		t.Errorf("list: %d %v", len(files), files)
	}
	props := getJSON(t, e, "/artifactory/api/storage/docker-local/team/app/1.0.000/manifest.json?properties", DefaultUser, DefaultPassword)
	if fmt.Sprint(props["properties"].(map[string]any)["docker.manifest"]) != "[1.0.000]" {
		t.Errorf("properties %v", props)
	}
	code, body, _ := do(t, e, http.MethodGet, "/artifactory/api/storage/docker-local/nope", DefaultUser, DefaultPassword, "")
	if code != 404 || !strings.Contains(body, "Unable to find item") {
		t.Errorf("missing: %d %s", code, body)
	}
	code, body, _ = do(t, e, http.MethodGet, "/artifactory/api/storage/docker/nope", DefaultUser, DefaultPassword, "")
	if code != 404 || !strings.Contains(body, `"Not Found"`) {
		t.Errorf("missing in virtual: %d %s", code, body)
	}
}
