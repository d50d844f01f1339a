package artifactory

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func pushedEvent(repo, p string) Event {
	return Event{Domain: "docker", EventType: "pushed", Data: DockerData{RepoKey: repo, Path: p, Name: "manifest.json",
		SHA256: strings.Repeat("1", 64), Size: 1, ImageName: "x", Tag: "t", Platforms: []Platform{}, ImageType: "docker"}}
}

func TestWebhookRetriesAndDrops(t *testing.T) {
	e := Start(t, Options{BaseURL: "https://acme.jfrog.io/", Webhook: WebhookOptions{Attempts: 3, Backoff: []time.Duration{10 * time.Millisecond}}})
	rc := newReceiver(t)
	subscribe(t, e, "hook", rc.srv.URL, "", false, "pushed")
	rc.status = http.StatusBadGateway
	e.Emit(pushedEvent("docker-local", "a/1/manifest.json"))
	waitHooks(t, e)
	if n := len(rc.all()); n != 3 {
		t.Errorf("5xx: %d attempts, want 3", n)
	}
	att := e.Deliveries()
	if len(att) != 3 || att[2].Request.RetriesAttempted != 2 || att[0].Response.Status != 502 ||
		att[0].Errors[0] != "error executing webhook: unexpected HTTP response status" {
		t.Errorf("troubleshooting log %+v", att)
	}
	if h := rc.all()[0].header; h.Get("X-JFrog-Event-Auth") != "" {
		t.Errorf("no secret, but header %q", h.Get("X-JFrog-Event-Auth"))
	}
	if !strings.Contains(string(rc.all()[0].body), `"jpd_origin":"https://acme.jfrog.io"`) {
		t.Errorf("jpd_origin missing: %s", rc.all()[0].body)
	}
	rc.mu.Lock()
	rc.got, rc.status = nil, http.StatusUnauthorized
	rc.mu.Unlock()
	e.Emit(pushedEvent("docker-local", "a/2/manifest.json"))
	waitHooks(t, e)
	if n := len(rc.all()); n != 1 {
		t.Errorf("4xx retried: %d attempts", n)
	}
	rc.mu.Lock()
	rc.got, rc.status = nil, http.StatusOK
	rc.mu.Unlock()
	e.DropWebhooks(1)
	e.Emit(pushedEvent("docker-local", "a/3/manifest.json"))
	e.Emit(pushedEvent("docker-local", "a/4/manifest.json"))
	waitHooks(t, e)
	got := rc.all()
	if len(got) != 1 || !strings.Contains(string(got[0].body), "a/4/") {
		t.Errorf("drop: %d deliveries", len(got))
	}
}

func TestWebhookCriteria(t *testing.T) {
	e := Start(t, Options{})
	rc := newReceiver(t)
	err := e.Subscribe(Subscription{Key: "crit", EventFilter: EventFilter{Domain: "docker", EventTypes: []string{"pushed"},
		Criteria: Criteria{RepoKeys: []string{"docker-local", "docker-remote"}, IncludePatterns: []string{"team/**"}, ExcludePatterns: []string{"team/legacy/**"}}},
		Handlers: []Handler{{URL: rc.srv.URL}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ repo, path string }{
		{"docker-local", "team/app/1/manifest.json"},           // yes
		{"docker-local", "team/legacy/app/1/manifest.json"},    // excluded
		{"docker-local", "other/app/1/manifest.json"},          // not included
		{"oci-local", "team/app/1/manifest.json"},              // other repo
		{"docker-remote-cache", "team/x/latest/manifest.json"}, // the remote's cache: yes
	} {
		e.Emit(pushedEvent(c.repo, c.path))
	}
	e.Emit(Event{Domain: "docker", EventType: "deleted", Data: pushedEvent("docker-local", "team/a/1/manifest.json").Data})
	waitHooks(t, e)
	var paths []string
	for _, r := range rc.all() {
		var env struct {
			Data DockerData `json:"data"`
		}
		_ = json.Unmarshal(r.body, &env)
		paths = append(paths, env.Data.RepoKey+":"+env.Data.Path)
	}
	if strings.Join(paths, ",") != "docker-local:team/app/1/manifest.json,docker-remote-cache:team/x/latest/manifest.json" &&
		strings.Join(paths, ",") != "docker-remote-cache:team/x/latest/manifest.json,docker-local:team/app/1/manifest.json" {
		t.Errorf("delivered %v", paths)
	}
	for _, c := range []struct {
		pat, p string
		want   bool
	}{{"team/**", "team/a/b", true}, {"**/manifest.json", "a/b/manifest.json", true}, {"a/*/c", "a/b/c", true},
		{"a/*/c", "a/b/x/c", false}, {"a/?", "a/bb", false}, {"**", "", true}} {
		if antMatch(c.pat, c.p) != c.want {
			t.Errorf("antMatch(%q, %q) != %v", c.pat, c.p, c.want)
		}
	}
}

func TestSubscriptionAPI(t *testing.T) {
	e := Start(t, Options{})
	rc := newReceiver(t)
	sub := `{"key":"image-indexer","event_filter":{"domain":"docker","event_types":["pushed","deleted"],"criteria":{"anyLocal":true,"anyRemote":false,"repoKeys":[]}},
	  "handlers":[{"handler_type":"webhook","url":"` + rc.srv.URL + `","secret":"abc","use_secret_for_signing":true}]}`
	code, body, _ := do(t, e, http.MethodPost, "/event/api/v1/subscriptions", DefaultUser, DefaultPassword, sub)
	if code != 201 || !strings.Contains(body, `"secret":"********"`) {
		t.Fatalf("create: %d %s", code, body)
	}
	if code, _, _ := do(t, e, http.MethodPost, "/event/api/v1/subscriptions", DefaultUser, DefaultPassword, sub); code != 409 {
		t.Errorf("duplicate: %d", code)
	}
	if code, body, _ := do(t, e, http.MethodPost, "/event/api/v1/subscriptions", DefaultUser, DefaultPassword,
		`{"key":"bad","event_filter":{"domain":"docker","event_types":["deployed"]},"handlers":[{"url":"http://x"}]}`); code != 400 {
		t.Errorf("bad event type: %d %s", code, body)
	}
	code, body, _ = do(t, e, http.MethodGet, "/event/api/v1/subscriptions/image-indexer", DefaultUser, DefaultPassword, "")
	if code != 200 || !strings.Contains(body, `"enabled":true`) {
		t.Errorf("get: %d %s", code, body)
	}
	code, body, _ = do(t, e, http.MethodPost, "/event/api/v1/subscriptions/test", DefaultUser, DefaultPassword, sub)
	if code != 200 || body != `{"message":"Test is successful","result":"success"}` {
		t.Errorf("test: %d %s", code, body)
	}
	if got := rc.all(); len(got) != 1 || got[0].header.Get("X-JFrog-Event-Auth") != Sign("abc", got[0].body) {
		t.Errorf("test delivery %v", got)
	}
	if len(e.Deliveries()) != 0 {
		t.Error("test deliveries must stay out of the troubleshooting log")
	}
	e.Emit(pushedEvent("docker-local", "a/1/manifest.json"))
	waitHooks(t, e)
	if n := len(rc.all()); n != 2 {
		t.Errorf("after create: %d deliveries", n)
	}
	if code, _, _ := do(t, e, http.MethodDelete, "/event/api/v1/subscriptions/image-indexer", DefaultUser, DefaultPassword, ""); code != 204 {
		t.Errorf("delete: %d", code)
	}
	if code, body, _ := do(t, e, http.MethodGet, "/event/api/v1/subscriptions/image-indexer", DefaultUser, DefaultPassword, ""); code != 404 || !strings.Contains(body, "Subscription does not exist") {
		t.Errorf("get deleted: %d %s", code, body)
	}
}

func TestFaults(t *testing.T) {
	e := Start(t, Options{})
	seed(t, e, 3)
	e.FailNext("aql", 2, http.StatusTooManyRequests)
	for i := 0; i < 2; i++ {
		code, body, h := do(t, e, http.MethodPost, "/artifactory/api/search/aql", DefaultUser, DefaultPassword, `items.find()`)
		if code != 429 || h.Get("Retry-After") != "1" || !strings.Contains(body, `"status" : 429`) {
			t.Errorf("429: %d %v %s", code, h, body)
		}
	}
	if code, _, _ := do(t, e, http.MethodPost, "/artifactory/api/search/aql", DefaultUser, DefaultPassword, `items.find()`); code != 200 {
		t.Errorf("after faults: %d", code)
	}
	if e.Count("aql") != 3 {
		t.Errorf("aql count %d", e.Count("aql"))
	}
	e.Inject(Fault{Endpoint: "docker.tags", Status: http.StatusBadGateway})
	code, body, _ := do(t, e, http.MethodGet, "/v2/docker-local/team/app/tags/list", DefaultUser, DefaultPassword, "")
	if code != 502 || !strings.Contains(body, `"errors":[{"code"`) {
		t.Errorf("502: %d %s", code, body)
	}
	e.Inject(Fault{PathPrefix: "/artifactory/api/repositories", Delay: 200 * time.Millisecond})
	start := time.Now()
	if code, _, _ := do(t, e, http.MethodGet, "/artifactory/api/repositories", DefaultUser, DefaultPassword, ""); code != 200 || time.Since(start) < 200*time.Millisecond {
		t.Errorf("slow: %d after %v", code, time.Since(start))
	}
	e.Inject(Fault{Endpoint: "repositories.list", TruncateAfter: 10})
	req, _ := http.NewRequest(http.MethodGet, e.URL()+"/artifactory/api/repositories", nil)
	req.SetBasicAuth(DefaultUser, DefaultPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || len(b) != 10 {
		t.Errorf("truncated: read %d bytes, err %v", len(b), err)
	}
	e.Inject(Fault{Endpoint: "system.ping", Times: -1, Status: 500})
	for i := 0; i < 3; i++ {
		if code, _, _ := do(t, e, http.MethodGet, "/artifactory/api/system/ping", "", "", ""); code != 500 {
			t.Errorf("forever fault: %d", code)
		}
	}
	e.ClearFaults()
	if code, _, _ := do(t, e, http.MethodGet, "/artifactory/api/system/ping", "", "", ""); code != 200 {
		t.Errorf("cleared: %d", code)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.WaitWebhooks(ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Error(err)
	}
}
