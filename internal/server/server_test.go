package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/findings"
	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/format"
	"github.com/crowsnest-dev/crowsnest/internal/store"
	"github.com/crowsnest-dev/crowsnest/internal/testutil/pgtest"
)

const genuine = "../advisory/testdata/osv"

func backends(t *testing.T) map[string]func(t *testing.T) string {
	return map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "c.db") },
		"postgres": func(t *testing.T) string { return pgtest.DSN(t) },
	}
}

type env struct {
	t                 testing.TB
	st                *store.Store
	svc               *findings.Service
	srv               *Server
	http              *httptest.Server
	read, push, admin string
}

// newEnv opens a store on dsn with the genuine Alpine and npm advisories imported, and serves it.
func newEnv(t testing.TB, dsn string, cfg Config) *env {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc := &findings.Service{Store: st}
	for _, eco := range []string{"Alpine", "npm"} {
		if _, err := svc.Import(ctx, filepath.Join(genuine, eco), "osv:"+eco, false); err != nil {
			t.Fatal(err)
		}
	}
	cfg.Service = svc
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, st: st, svc: svc, srv: srv, http: httptest.NewServer(srv.Handler())}
	t.Cleanup(e.http.Close)
	e.read, e.push, e.admin = e.token(ScopeRead), e.token(ScopePush), e.token(ScopeAdmin)
	return e
}

func (e *env) token(scope string) string {
	secret, tok, err := NewToken("test "+scope, scope, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.st.CreateToken(context.Background(), tok); err != nil {
		e.t.Fatal(err)
	}
	return secret
}

// do sends a request and returns the status and body.
func (e *env) do(method, path, token string, body []byte) (int, []byte, http.Header) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.http.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, data, resp.Header
}

// get decodes a 200 answer into v.
func (e *env) get(path string, v any) {
	e.t.Helper()
	code, data, _ := e.do("GET", path, e.read, nil)
	if code != http.StatusOK {
		e.t.Fatalf("GET %s: %d %s", path, code, data)
	}
	if err := json.Unmarshal(data, v); err != nil {
		e.t.Fatalf("GET %s: %v: %s", path, err, data)
	}
}

func digestOf(s string) string {
	return fmt.Sprintf("sha256:%064x", []byte(s))[:71]
}

func layer(i int, name string) sbom.Layer {
	return sbom.Layer{Index: i, Digest: digestOf("blob " + name), DiffID: digestOf("diff " + name), Size: 1000}
}

// alpineSBOM is an Alpine 3.19 image: musl (on the base layer) and, when npmVersion is set,
// ansi-html on a second layer.
func alpineSBOM(name, muslVersion, npmVersion string) *sbom.SBOM {
	s := &sbom.SBOM{
		SchemaVersion: sbom.SchemaVersion,
		Tool:          sbom.Tool{Name: "crowsnest", Version: "test"},
		Created:       time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
		Image: sbom.Image{Reference: "reg.example/" + name, Name: "reg.example/" + strings.Split(name, ":")[0],
			Digest: digestOf(name + muslVersion + npmVersion), Platform: sbom.Platform{OS: "linux", Architecture: "amd64"},
			Config: sbom.Config{User: "node", EnvNames: []string{"PATH"}},
			Layers: []sbom.Layer{layer(0, "alpine-"+muslVersion)}},
		OS: &sbom.OS{ID: "alpine", VersionID: "3.19.1"},
		Packages: []sbom.Package{{Type: sbom.TypeAPK, Name: "musl", Version: muslVersion, Source: &sbom.Source{Name: "musl", Version: muslVersion},
			PURL:      "pkg:apk/alpine/musl@" + muslVersion,
			Locations: []sbom.Location{{Path: "lib/apk/db/installed", DiffID: digestOf("diff alpine-" + muslVersion)}}}},
	}
	if npmVersion != "" {
		s.Image.Layers = append(s.Image.Layers, layer(1, "app-"+npmVersion))
		s.Packages = append(s.Packages, sbom.Package{Type: sbom.TypeNPM, Name: "ansi-html", Version: npmVersion,
			PURL:      "pkg:npm/ansi-html@" + npmVersion,
			Locations: []sbom.Location{{Path: "app/node_modules/ansi-html/package.json", DiffID: digestOf("diff app-" + npmVersion)}}})
	}
	return s
}

func encode(t testing.TB, s *sbom.SBOM) []byte {
	var b bytes.Buffer
	if err := format.Encode(&b, format.JSON, s, format.Options{}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func (e *env) pushOK(s *sbom.SBOM, tags ...string) PushResult {
	e.t.Helper()
	q := ""
	for i, t := range tags {
		if i == 0 {
			q = "?"
		} else {
			q += "&"
		}
		q += "tag=" + t
	}
	code, data, h := e.do("POST", "/api/v1/images"+q, e.push, encode(e.t, s))
	if code != http.StatusCreated {
		e.t.Fatalf("push %s: %d %s", s.Image.Reference, code, data)
	}
	if h.Get("Location") != "/api/v1/images/"+s.Image.Digest {
		e.t.Errorf("Location %q", h.Get("Location"))
	}
	var res PushResult
	if err := json.Unmarshal(data, &res); err != nil {
		e.t.Fatal(err)
	}
	return res
}

const (
	muslVulnerable = "1.2.4_git20230717-r4"
	muslFixed      = "1.2.4_git20230717-r5"
	alpineCVE      = "ALPINE-CVE-2025-26519"
	ansiGHSA       = "GHSA-whgm-jr23-g3j9"
)

// fixture pushes a base image, a vulnerable app on it and a fixed app on a fixed base.
func (e *env) fixture() (base, app1, app2 *sbom.SBOM) {
	base = alpineSBOM("base:3.19", muslVulnerable, "")
	app1 = alpineSBOM("app:1.0", muslVulnerable, "0.0.7")
	app2 = alpineSBOM("app:1.1", muslFixed, "0.0.8")
	if r := e.pushOK(base, "reg.example/base:3.19"); r.Findings.Total != 1 {
		e.t.Fatalf("base findings %+v", r)
	}
	r := e.pushOK(app1, "reg.example/app:1.0", "reg.example/app:latest")
	if r.Findings.Total != 2 || r.Packages != 2 || len(r.Tags) != 2 {
		e.t.Fatalf("app1 push result %+v", r)
	}
	// No tag parameter: the SBOM's own name and tag are used.
	app2.Image.Tag = "1.1"
	if r := e.pushOK(app2); r.Findings.Total != 0 || len(r.Tags) != 1 || r.Tags[0] != "reg.example/app:1.1" {
		e.t.Fatalf("app2 push result %+v", r)
	}
	return base, app1, app2
}

func TestAPI(t *testing.T) {
	for name, dsn := range backends(t) {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, dsn(t), Config{})
			base, app1, app2 := e.fixture()

			var list ImageList
			count := func(q string, want int) {
				t.Helper()
				e.get("/api/v1/images"+q, &list)
				if list.Total != want || len(list.Images) != min(want, list.Limit) {
					t.Errorf("images%s: total %d, %d rows; want %d", q, list.Total, len(list.Images), want)
				}
			}
			count("", 3)
			count("?repository=reg.example/app", 2)
			count("?repository=reg.example/app&tag=latest", 1)
			count("?tag=3.19", 1)
			count("?registry=reg.example", 3)
			count("?registry=reg", 0)
			count("?severity=unspecified", 2)
			count("?package=ansi-html", 2)
			count("?package=ansi-html&version=0.0.7", 1)
			count("?vulnerability="+ansiGHSA, 1)
			count("?vulnerability="+alpineCVE+"&repository=reg.example/base", 1)
			e.get("/api/v1/images?vulnerability="+ansiGHSA, &list)
			if im := list.Images[0]; im.Digest != app1.Image.Digest || strings.Join(im.Tags, ",") != "reg.example/app:1.0,reg.example/app:latest" ||
				im.Packages != 2 || im.OS != "alpine 3.19.1" || im.Platform != "linux/amd64" {
				t.Errorf("vulnerable image row %+v", im)
			}
			e.get("/api/v1/images?limit=2&sort=-name", &list)
			if len(list.Images) != 2 || list.NextOffset == nil || *list.NextOffset != 2 || list.Images[0].Repository != "reg.example/base" {
				t.Errorf("first page %+v", list)
			}
			list = ImageList{}
			e.get("/api/v1/images?limit=2&offset=2&sort=-name", &list)
			if len(list.Images) != 1 || list.NextOffset != nil || list.Images[0].Repository != "reg.example/app" {
				t.Errorf("last page %+v", list)
			}
			for _, q := range []string{"?severity=urgent", "?limit=0", "?limit=501", "?offset=-1", "?sort=size", "?version=1"} {
				if code, data, _ := e.do("GET", "/api/v1/images"+q, e.read, nil); code != http.StatusBadRequest {
					t.Errorf("images%s: %d %s, want 400", q, code, data)
				}
			}

			var d ImageDetail
			e.get("/api/v1/images/"+app1.Image.Digest, &d)
			if len(d.Layers) != 2 || len(d.Layers[0].Packages) != 1 || d.Layers[0].Packages[0].Name != "musl" ||
				len(d.Layers[1].Packages) != 1 || d.Layers[1].Packages[0].Name != "ansi-html" {
				t.Errorf("packages by layer %+v", d.Layers)
			}
			if d.Layers[0].SharedWith != 1 || d.Layers[1].SharedWith != 0 {
				t.Errorf("layer sharing %d %d, want 1 (the base) and 0", d.Layers[0].SharedWith, d.Layers[1].SharedWith)
			}
			if len(d.BaseImages) != 1 || d.BaseImages[0].Digest != base.Image.Digest || d.BaseImages[0].Tags[0] != "reg.example/base:3.19" {
				t.Errorf("base images %+v", d.BaseImages)
			}
			if len(d.Vulnerabilities) != 2 || d.Config.User != "node" || d.OSRelease.ID != "alpine" || d.Findings[d.Vulnerabilities[0].Severity] == 0 {
				t.Errorf("detail %+v", d)
			}
			if code, _, _ := e.do("GET", "/api/v1/images/"+digestOf("missing"), e.read, nil); code != http.StatusNotFound {
				t.Errorf("missing image: %d", code)
			}
			if code, _, _ := e.do("GET", "/api/v1/images/latest", e.read, nil); code != http.StatusBadRequest {
				t.Errorf("bad digest: %d", code)
			}

			for f, marker := range map[string]string{"json": `"schemaVersion"`, "cyclonedx": `"bomFormat": "CycloneDX"`, "spdx": `"spdxVersion": "SPDX-2.3"`, "": `"schemaVersion"`} {
				code, data, _ := e.do("GET", "/api/v1/images/"+app1.Image.Digest+"/sbom?format="+f, e.read, nil)
				if code != 200 || !bytes.Contains(data, []byte(marker)) {
					t.Errorf("sbom format %q: %d, no %s", f, code, marker)
					continue
				}
				back, err := format.Decode(bytes.NewReader(data), "")
				if err != nil || len(back.Packages) != 2 {
					t.Errorf("sbom format %q does not decode back: %v", f, err)
				}
			}
			if code, _, _ := e.do("GET", "/api/v1/images/"+app1.Image.Digest+"/sbom?format=list", e.read, nil); code != 400 {
				t.Errorf("sbom format list: %d", code)
			}

			var vl VulnList
			e.get("/api/v1/vulnerabilities", &vl)
			if vl.Total != 2 || vl.Vulnerabilities[0].ID != alpineCVE || vl.Vulnerabilities[0].Images != 2 || vl.Vulnerabilities[1].Images != 1 ||
				vl.Vulnerabilities[1].ID != ansiGHSA || vl.Vulnerabilities[1].Aliases[0] != "CVE-2021-23424" {
				t.Errorf("vulnerabilities %+v", vl)
			}
			e.get("/api/v1/vulnerabilities?package=ansi-html", &vl)
			if vl.Total != 1 {
				t.Errorf("vulnerabilities of ansi-html %+v", vl)
			}
			var vd VulnDetail
			e.get("/api/v1/vulnerabilities/"+alpineCVE, &vd)
			if !vd.Known || vd.Total != 2 || len(vd.AffectedImages) != 2 || vd.AffectedImages[0].Package != "musl" {
				t.Errorf("vulnerability detail %+v", vd)
			}
			tags := vd.AffectedImages[0].Tags[0] + vd.AffectedImages[1].Tags[0]
			if !strings.Contains(tags, "reg.example/base:3.19") || !strings.Contains(tags, "reg.example/app:1.0") {
				t.Errorf("affected tags %q", tags)
			}
			vd = VulnDetail{}
			e.get("/api/v1/vulnerabilities/"+alpineCVE+"?limit=1&offset=1", &vd)
			if len(vd.AffectedImages) != 1 || vd.NextOffset != nil {
				t.Errorf("affected page 2 %+v", vd.Paging)
			}
			if code, _, _ := e.do("GET", "/api/v1/vulnerabilities/CVE-1999-0000", e.read, nil); code != 404 {
				t.Errorf("unknown vulnerability: %d", code)
			}

			var pl PackageList
			e.get("/api/v1/packages?name=musl", &pl)
			if pl.Total != 3 {
				t.Errorf("musl holders %+v", pl)
			}
			e.get("/api/v1/packages?name=musl&version="+muslFixed, &pl)
			if pl.Total != 1 || pl.Packages[0].Digest != app2.Image.Digest || pl.Packages[0].Tags[0] != "reg.example/app:1.1" {
				t.Errorf("fixed musl holders %+v", pl)
			}
			if code, _, _ := e.do("GET", "/api/v1/packages", e.read, nil); code != 400 {
				t.Errorf("packages without name: %d", code)
			}

			var c Comparison
			e.get("/api/v1/compare?from=reg.example/app:1.0&to=reg.example/app:1.1", &c)
			if c.From != app1.Image.Digest || c.To != app2.Image.Digest || len(c.Packages.Changed) != 2 || len(c.Packages.Added)+len(c.Packages.Removed) != 0 ||
				len(c.Findings.Removed) != 2 || len(c.Findings.Added) != 0 {
				t.Errorf("compare app 1.0 -> 1.1: %+v", c)
			}
			e.get("/api/v1/compare?from="+base.Image.Digest+"&to="+app1.Image.Digest, &c)
			if len(c.Packages.Added) != 1 || c.Packages.Added[0].Name != "ansi-html" || len(c.Findings.Added) != 1 || c.Findings.Added[0].VulnerabilityID != ansiGHSA {
				t.Errorf("compare base -> app: %+v", c)
			}
			if code, _, _ := e.do("GET", "/api/v1/compare?from=reg.example/app:9&to=reg.example/app:1.1", e.read, nil); code != 404 {
				t.Errorf("compare unknown tag: %d", code)
			}

			var ev EventList
			e.get("/api/v1/events?after=0&limit=2", &ev)
			if len(ev.Events) != 2 || ev.Events[0].Kind != "added" || ev.Events[0].Reason != ReasonPush {
				t.Fatalf("events %+v", ev)
			}
			next := ev.Next
			e.get(fmt.Sprintf("/api/v1/events?after=%d", next), &ev)
			if len(ev.Events) != 1 || ev.Events[0].ID <= next {
				t.Errorf("events after %d: %+v", next, ev)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	for name, dsn := range backends(t) {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, dsn(t), Config{})
			body := encode(t, alpineSBOM("app:1.0", muslVulnerable, "0.0.7"))
			for _, c := range []struct {
				method, path, token string
				body                []byte
				want                int
			}{
				{"GET", "/api/v1/images", "", nil, 401},
				{"GET", "/api/v1/images", "cn_not-a-token", nil, 401},
				{"GET", "/api/v1/images", "abc", nil, 401},
				{"GET", "/api/v1/images", e.read, nil, 200},
				{"GET", "/api/v1/images", e.push, nil, 200},
				{"GET", "/api/v1/images", e.admin, nil, 200},
				{"POST", "/api/v1/images", e.read, body, 403},
				{"POST", "/api/v1/images", "", body, 401},
				{"GET", "/api/v1/tokens", e.push, nil, 403},
				{"GET", "/api/v1/tokens", e.admin, nil, 200},
				{"GET", "/api/v1/events", "", nil, 401},
				{"GET", "/healthz", "", nil, 200},
				{"GET", "/readyz", "", nil, 200},
				{"GET", "/metrics", "", nil, 200},
			} {
				code, data, h := e.do(c.method, c.path, c.token, c.body)
				if code != c.want {
					t.Errorf("%s %s with %.6s: %d %s, want %d", c.method, c.path, c.token, code, data, c.want)
				}
				if code == 401 && !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("401 without WWW-Authenticate")
				}
			}
			// Nothing was stored by the refused push.
			var list ImageList
			e.get("/api/v1/images", &list)
			if list.Total != 0 {
				t.Errorf("refused push stored %d images", list.Total)
			}

			// Token management over the API: create a read token, use it, revoke it.
			code, data, _ := e.do("POST", "/api/v1/tokens", e.admin, []byte(`{"name":"dashboard","scope":"read"}`))
			var created CreatedToken
			if code != 201 || json.Unmarshal(data, &created) != nil || !strings.HasPrefix(created.Token, TokenPrefix) || created.Scope != "read" {
				t.Fatalf("create token: %d %s", code, data)
			}
			if code, _, _ := e.do("GET", "/api/v1/images", created.Token, nil); code != 200 {
				t.Errorf("new token: %d", code)
			}
			code, data, _ = e.do("GET", "/api/v1/tokens", e.admin, nil)
			if code != 200 || !bytes.Contains(data, []byte(`"dashboard"`)) || bytes.Contains(data, []byte(created.Token)) || !bytes.Contains(data, []byte(`"lastUsed"`)) {
				t.Errorf("token list (must name the token, never show it, and record its use): %s", data)
			}
			if code, _, _ := e.do("DELETE", "/api/v1/tokens/"+created.ID, e.admin, nil); code != 204 {
				t.Errorf("revoke: %d", code)
			}
			if code, _, _ := e.do("GET", "/api/v1/images", created.Token, nil); code != 401 {
				t.Errorf("revoked token: %d", code)
			}
			if code, _, _ := e.do("DELETE", "/api/v1/tokens/"+created.ID, e.admin, nil); code != 404 {
				t.Errorf("revoke twice: %d", code)
			}
			if code, _, _ := e.do("POST", "/api/v1/tokens", e.admin, []byte(`{"scope":"root"}`)); code != 400 {
				t.Errorf("bad scope: %d", code)
			}
		})
	}
}

func TestPushRejects(t *testing.T) {
	for name, dsn := range backends(t) {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, dsn(t), Config{MaxBodyBytes: 4096})
			good := alpineSBOM("app:1.0", muslVulnerable, "0.0.7")
			mutate := func(f func(s *sbom.SBOM)) []byte {
				s := alpineSBOM("app:1.0", muslVulnerable, "0.0.7")
				f(s)
				return encode(t, s)
			}
			big := alpineSBOM("app:1.0", muslVulnerable, "0.0.7")
			for i := range 100 {
				big.Packages = append(big.Packages, sbom.Package{Type: "npm", Name: fmt.Sprintf("pkg-%d", i), Version: "1.0.0"})
			}
			for _, c := range []struct {
				name, query string
				body        []byte
				want        int
				reason      string
			}{
				{"empty", "", nil, 400, "empty body"},
				{"not JSON", "", []byte("{not json"), 400, "invalid SBOM"},
				{"other schema", "", []byte(`{"schemaVersion":"9","image":{}}`), 400, "schema version"},
				{"no digest", "", mutate(func(s *sbom.SBOM) { s.Image.Digest = "" }), 400, "image.digest"},
				{"bad digest", "", mutate(func(s *sbom.SBOM) { s.Image.Digest = "sha256:xyz" }), 400, "image.digest"},
				{"no platform", "", mutate(func(s *sbom.SBOM) { s.Image.Platform = sbom.Platform{} }), 400, "platform"},
				{"nameless package", "", mutate(func(s *sbom.SBOM) { s.Packages[1].Name = "" }), 400, "packages[1]"},
				{"layer order", "", mutate(func(s *sbom.SBOM) { s.Image.Layers[1].Index = 5 }), 400, "layers[1]"},
				{"bad tag", "?tag=reg.example/app:-bad", encode(t, good), 400, "not a valid tag"},
				{"tag without repository", "?tag=latest", encode(t, good), 400, "repository:tag"},
				{"too large", "", encode(t, big), 413, "limit"},
			} {
				code, data, _ := e.do("POST", "/api/v1/images"+c.query, e.push, c.body)
				if code != c.want || !strings.Contains(string(data), c.reason) {
					t.Errorf("%s: %d %s, want %d with %q", c.name, code, data, c.want, c.reason)
				}
			}
			// A chunked body (no Content-Length) over the limit is refused while reading.
			req, _ := http.NewRequest("POST", e.http.URL+"/api/v1/images", io.MultiReader(bytes.NewReader(encode(t, big))))
			req.Header.Set("Authorization", "Bearer "+e.push)
			req.ContentLength = -1
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 413 {
				t.Errorf("chunked oversized body: %d", resp.StatusCode)
			}
			st, err := e.st.Stats(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			tags, _ := e.st.Tags(context.Background(), "")
			changes, _ := e.st.Changes(context.Background(), 0, 10)
			if st.Images != 0 || st.Packages != 0 || len(tags) != 0 || len(changes) != 0 {
				t.Errorf("rejected pushes left %d images, %d packages, %d tags, %d changes", st.Images, st.Packages, len(tags), len(changes))
			}
			// The same server still takes a valid push.
			e.pushOK(good)
		})
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, "sqlite://"+filepath.Join(t.TempDir(), "c.db"), Config{})
	if err := e.srv.Metrics().WatchStore(e.st); err != nil {
		t.Fatal(err)
	}
	e.fixture()
	e.srv.Metrics().IndexJobs.WithLabelValues("ok").Inc()
	e.srv.Metrics().WebhookDeliveries.WithLabelValues("rejected").Inc()
	code, data, _ := e.do("GET", "/metrics", "", nil)
	if code != 200 {
		t.Fatalf("metrics: %d", code)
	}
	for _, want := range []string{
		`crowsnest_findings{severity=`,
		`crowsnest_images 3`,
		`crowsnest_index_jobs_total{outcome="ok"} 1`,
		`crowsnest_index_duration_seconds_bucket`,
		`crowsnest_webhook_deliveries_total{result="rejected"} 1`,
		`crowsnest_webhook_deliveries_total{result="accepted"} 0`,
		`crowsnest_api_pushes_total{outcome="stored"} 3`,
		`crowsnest_http_requests_total{code="201",route="POST /api/v1/images"} 3`,
		`crowsnest_store_up 1`,
		`go_goroutines`,
	} {
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// Findings by severity add up to the stored findings (3: base 1, app 2).
	total := 0
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "crowsnest_findings{") {
			var n int
			fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &n)
			total += n
		}
	}
	if total != 3 {
		t.Errorf("findings by severity sum to %d, want 3", total)
	}
}

func TestReadyzFailsWithoutDatabase(t *testing.T) {
	e := newEnv(t, "sqlite://"+filepath.Join(t.TempDir(), "c.db"), Config{})
	e.st.Close()
	if code, _, _ := e.do("GET", "/readyz", "", nil); code != http.StatusServiceUnavailable {
		t.Errorf("readyz on a closed store: %d", code)
	}
	if code, _, _ := e.do("GET", "/healthz", "", nil); code != http.StatusOK {
		t.Errorf("healthz: %d", code)
	}
}
