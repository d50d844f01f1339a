package artifactory

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/crowsnest-dev/crowsnest/internal/testutil/registryproc"
)

// receiver records webhook deliveries.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []received
	status int
}

type received struct {
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{status: http.StatusOK}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.got = append(rc.got, received{r.Header.Clone(), b})
		st := rc.status
		rc.mu.Unlock()
		w.WriteHeader(st)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) all() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

func startPair(t *testing.T, o Options) (*Emulator, *registryproc.Registry) {
	t.Helper()
	reg := registryproc.Start(t, registryproc.WithEnv("REGISTRY_STORAGE_DELETE_ENABLED=true"))
	o.Upstream = "http://" + reg.Addr()
	o.Webhook.Backoff = []time.Duration{20 * time.Millisecond}
	return Start(t, o), reg
}

var adminAuth = remote.WithAuth(&authn.Basic{Username: DefaultUser, Password: DefaultPassword})

func waitHooks(t *testing.T, e *Emulator) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.WaitWebhooks(ctx); err != nil {
		t.Fatalf("webhooks still pending: %v", err)
	}
}

func subscribe(t *testing.T, e *Emulator, key, url, secret string, signing bool, types ...string) {
	t.Helper()
	err := e.Subscribe(Subscription{Key: key, EventFilter: EventFilter{Domain: "docker", EventTypes: types,
		Criteria: Criteria{AnyLocal: true, AnyRemote: true}},
		Handlers: []Handler{{URL: url, Secret: secret, UseSecretForSigning: signing,
			CustomHTTPHeaders: []KeyValue{{Name: "X-Indexer-Source", Value: "rt-test"}}}}})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPushThroughProxyEmitsSignedWebhook(t *testing.T) {
	e, reg := startPair(t, Options{})
	rc := newReceiver(t)
	subscribe(t, e, "image-indexer", rc.srv.URL, "s3cr3t", true, "pushed", "deleted")

	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(e.Ref("docker-local", "team/app:1.2.3"), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	// the token flow: ggcr pings, gets the Bearer challenge, fetches a token with Basic
	if err := remote.Write(ref, img, adminAuth); err != nil {
		t.Fatalf("push through emulator: %v", err)
	}
	if e.Count("docker.token") == 0 {
		t.Error("client never used the token endpoint")
	}
	// the image is upstream under <repoKey>/<image>
	upRef, _ := name.ParseReference(reg.Ref("docker-local/team/app:1.2.3"), name.Insecure)
	if _, err := remote.Head(upRef); err != nil {
		t.Fatalf("image not upstream: %v", err)
	}
	waitHooks(t, e)
	got := rc.all()
	if len(got) != 1 {
		t.Fatalf("want 1 webhook, got %d", len(got))
	}
	h := got[0]
	if sig := h.header.Get("X-JFrog-Event-Auth"); sig != Sign("s3cr3t", h.body) || sig == "s3cr3t" {
		t.Errorf("X-JFrog-Event-Auth %q is not the HMAC of the body", sig)
	}
	if h.header.Get("X-Indexer-Source") != "rt-test" || h.header.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", h.header)
	}
	digest, _ := img.Digest()
	mf, _ := img.RawManifest()
	want := fmt.Sprintf(`{"domain":"docker","event_type":"pushed","data":{"repo_key":"docker-local","path":"team/app/1.2.3/manifest.json","name":"manifest.json","sha256":"%s","size":%d,"image_name":"app","tag":"1.2.3","platforms":[],"image_type":"docker"},"subscription_key":"image-indexer","source":"jfrog/jfrt@%s"}`,
		digest.Hex, len(mf), e.serviceID)
	if string(h.body) != want {
		t.Errorf("payload\n got %s\nwant %s", h.body, want)
	}

	// pull back through the emulator, with the Artifactory headers
	req, _ := http.NewRequest(http.MethodGet, e.URL()+"/v2/docker-local/team/app/manifests/1.2.3", nil)
	req.SetBasicAuth(DefaultUser, DefaultPassword)
	req.Header.Set("Accept", string(mustMediaType(t, img)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Docker-Content-Digest") != digest.String() ||
		resp.Header.Get("X-Artifactory-Docker-Registry") != "docker-local" || !strings.HasPrefix(resp.Header.Get("X-JFrog-Version"), "Artifactory/7.") {
		t.Errorf("manifest GET: %d %v", resp.StatusCode, resp.Header)
	}

	// delete by digest through the proxy: "deleted" arrives, the tag is gone from listings
	rc.mu.Lock()
	rc.got = nil
	rc.mu.Unlock()
	dref, _ := name.ParseReference(e.Ref("docker-local", "team/app@"+digest.String()), name.Insecure)
	if err := remote.Delete(dref, adminAuth); err != nil {
		t.Fatalf("delete: %v", err)
	}
	waitHooks(t, e)
	got = rc.all()
	if len(got) != 1 || !strings.Contains(string(got[0].body), `"event_type":"deleted"`) ||
		!strings.Contains(string(got[0].body), `"path":"team/app/1.2.3/manifest.json"`) {
		t.Fatalf("deleted webhook: %d %q", len(got), got)
	}
	if _, err := remote.Head(ref, adminAuth); err == nil {
		t.Error("deleted tag still resolves")
	}
}

func mustMediaType(t *testing.T, img v1.Image) string {
	mt, err := img.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	return string(mt)
}

func TestPlainSecretAndIndexPush(t *testing.T) {
	e, _ := startPair(t, Options{Quirks: Quirks{FullImageName: true}})
	rc := newReceiver(t)
	subscribe(t, e, "plain", rc.srv.URL, "plain-secret", false, "pushed")
	idx, err := random.Index(256, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	// random.Index has no platforms; add them as a real multi-arch push would
	m, _ := idx.IndexManifest()
	ref, _ := name.ParseReference(e.Ref("docker", "library/multi:2.0"), name.Insecure) // virtual -> docker-local
	if err := remote.WriteIndex(ref, idx, adminAuth); err != nil {
		t.Fatalf("push index: %v", err)
	}
	waitHooks(t, e)
	got := rc.all()
	if len(got) != 1 {
		t.Fatalf("want one pushed event for the index (none per platform manifest), got %d", len(got))
	}
	if got[0].header.Get("X-JFrog-Event-Auth") != "plain-secret" {
		t.Errorf("plain secret not sent: %q", got[0].header.Get("X-JFrog-Event-Auth"))
	}
	var env struct {
		Data DockerData `json:"data"`
	}
	if err := json.Unmarshal(got[0].body, &env); err != nil {
		t.Fatal(err)
	}
	d, _ := idx.Digest()
	if env.Data.RepoKey != "docker-local" || env.Data.Path != "library/multi/2.0/list.manifest.json" ||
		env.Data.Name != "list.manifest.json" || env.Data.SHA256 != d.Hex || env.Data.ImageName != "library/multi" {
		t.Errorf("data %+v", env.Data)
	}
	// per-platform manifests live in digest folders, which are not tags
	tags := getJSON(t, e, "/artifactory/api/docker/docker-local/v2/library/multi/tags/list", DefaultUser, DefaultPassword)
	if fmt.Sprint(tags["tags"]) != "[2.0]" {
		t.Errorf("tags %v", tags)
	}
	for _, c := range m.Manifests {
		st := getJSON(t, e, "/artifactory/api/storage/docker-local/library/multi/sha256__"+c.Digest.Hex+"/manifest.json", DefaultUser, DefaultPassword)
		if st["size"] != fmt.Sprint(c.Size) {
			t.Errorf("digest folder manifest: %v", st)
		}
	}
}

func getJSON(t *testing.T, e *Emulator, path, user, pass string) map[string]any {
	t.Helper()
	code, body, _ := do(t, e, http.MethodGet, path, user, pass, "")
	if code != 200 {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, body)
	}
	return m
}

func do(t *testing.T, e *Emulator, method, path, user, pass, body string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, e.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestSubdomainAndPortMethods(t *testing.T) {
	e, _ := startPair(t, Options{})
	img, _ := random.Image(300, 1)
	tr := remote.WithTransport(e.Transport())
	for _, host := range []string{e.SubdomainHost("docker-local"), e.CloudSubdomainHost("docker-local")} {
		ref, err := name.ParseReference(host+"/sub/app:v1", name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img, adminAuth, tr); err != nil {
			t.Fatalf("push via %s: %v", host, err)
		}
	}
	addr, err := e.ServeRepoPort("docker-local")
	if err != nil {
		t.Fatal(err)
	}
	pref, _ := name.ParseReference(addr+"/sub/app:v1", name.Insecure)
	desc, err := remote.Get(pref, adminAuth)
	if err != nil {
		t.Fatalf("pull via port: %v", err)
	}
	d, _ := img.Digest()
	if desc.Digest != d {
		t.Errorf("port method digest %s, want %s", desc.Digest, d)
	}
	// the challenge on a subdomain names the base host in the realm (spec §4)
	req, _ := http.NewRequest(http.MethodGet, "http://"+e.SubdomainHost("docker-local")+"/v2/sub/app/manifests/v1", nil)
	resp, err := (&http.Client{Transport: e.Transport()}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := `Bearer realm="http://rt.crowsnest.test:` + e.port() + `/artifactory/api/docker/docker-local/v2/token",service="` +
		e.SubdomainHost("docker-local") + `",scope="repository:sub/app:pull"`
	if resp.StatusCode != 401 || resp.Header.Get("Www-Authenticate") != want {
		t.Errorf("challenge %d %q\nwant %q", resp.StatusCode, resp.Header.Get("Www-Authenticate"), want)
	}
}

func TestPromoteAndRESTDelete(t *testing.T) {
	e, _ := startPair(t, Options{Repositories: append(DefaultRepositories(), Repository{Key: "docker-prod", Type: "local", PackageType: "docker"})})
	rc := newReceiver(t)
	subscribe(t, e, "all", rc.srv.URL, "", false, "pushed", "deleted", "promoted")
	img, _ := random.Image(200, 1)
	ref, _ := name.ParseReference(e.Ref("docker-local", "team/app:1.0"), name.Insecure)
	if err := remote.Write(ref, img, adminAuth); err != nil {
		t.Fatal(err)
	}
	code, body, _ := do(t, e, http.MethodPost, "/artifactory/api/docker/docker-local/v2/promote", DefaultUser, DefaultPassword,
		`{"targetRepo":"docker-prod","dockerRepository":"team/app","tag":"1.0","targetTag":"1.0-prod","copy":true}`)
	if code != 200 {
		t.Fatalf("promote: %d %s", code, body)
	}
	pref, _ := name.ParseReference(e.Ref("docker-prod", "team/app:1.0-prod"), name.Insecure)
	desc, err := remote.Head(pref, adminAuth)
	d, _ := img.Digest()
	if err != nil || desc.Digest != d {
		t.Fatalf("promoted image: %v %v", err, desc)
	}
	code, _, _ = do(t, e, http.MethodDelete, "/artifactory/docker-local/team/app/1.0", DefaultUser, DefaultPassword, "")
	if code != 204 {
		t.Fatalf("REST delete: %d", code)
	}
	if _, err := remote.Head(ref, adminAuth); err == nil {
		t.Error("tag deleted through REST still resolves")
	}
	waitHooks(t, e)
	var kinds []string
	for _, r := range rc.all() {
		var env envelope
		_ = json.Unmarshal(r.body, &env)
		kinds = append(kinds, env.EventType)
	}
	sort.Strings(kinds) // deliveries run concurrently: order is not guaranteed
	if strings.Join(kinds, ",") != "deleted,promoted,pushed,pushed" {
		t.Errorf("events %v", kinds)
	}
}
