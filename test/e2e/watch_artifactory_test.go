package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/crowsnest-dev/crowsnest/internal/queue"
	"github.com/crowsnest-dev/crowsnest/internal/testutil/artifactory"
	ib "github.com/crowsnest-dev/crowsnest/internal/testutil/imagebuild"
	"github.com/crowsnest-dev/crowsnest/internal/testutil/pgtest"
	"github.com/crowsnest-dev/crowsnest/internal/testutil/registryproc"
)

// canonicalRegistry is the --registry string of PRODUCT.md's two canonical invocations, verbatim.
// Tests replace only the hosts (and port 9000 when it is taken).
const canonicalRegistry = "type=artifactory,registry=example.jfrog.io,api=https://example.jfrog.io/artifactory,include=*/frontend*,exclude=*/dta/*,repository=docker-local,port=9000,subdomain-mode=true"

// Credentials distinctive enough that finding them anywhere in output means a leak.
const (
	rtUser     = "ci-watcher"
	rtPassword = "api-password-7f3c9a1e5b2d4c6e8f0a1b3c5d7e9f11"
)

// rtFixture is a real registry with the Artifactory emulator in front of it.
type rtFixture struct {
	emu  *artifactory.Emulator
	auth remote.Option
}

func startRT(t *testing.T) *rtFixture {
	t.Helper()
	reg := registryproc.Start(t, registryproc.WithEnv("REGISTRY_STORAGE_DELETE_ENABLED=true"))
	emu := artifactory.Start(t, artifactory.Options{Upstream: "http://" + reg.Addr(),
		Users:   []artifactory.User{{Name: rtUser, Password: rtPassword, Admin: true}},
		Webhook: artifactory.WebhookOptions{Backoff: []time.Duration{50 * time.Millisecond}}})
	t.Setenv("CROWSNEST_ARTIFACTORY_API_USER", rtUser)
	t.Setenv("CROWSNEST_ARTIFACTORY_API_PASSWORD", rtPassword)
	return &rtFixture{emu: emu, auth: remote.WithAuth(&authn.Basic{Username: rtUser, Password: rtPassword})}
}

// push writes img to docker-local through the repository-path method; the emulator sends its
// webhooks whichever method a push used.
func (f *rtFixture) push(t *testing.T, repoAndTag string, img v1.Image) {
	t.Helper()
	ref, err := name.ParseReference(f.emu.Ref("docker-local", repoAndTag), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, f.auth); err != nil {
		t.Fatalf("push %s: %v", repoAndTag, err)
	}
}

// subscribe makes the emulator deliver docker pushes and deletes to the watcher's port.
func (f *rtFixture) subscribe(t *testing.T, port int, secret string, signed bool) {
	t.Helper()
	if err := f.emu.Subscribe(artifactory.Subscription{Key: "crowsnest", EventFilter: artifactory.EventFilter{Domain: "docker",
		EventTypes: []string{"pushed", "deleted"}, Criteria: artifactory.Criteria{AnyLocal: true}},
		Handlers: []artifactory.Handler{{URL: "http://127.0.0.1:" + strconv.Itoa(port) + "/", Secret: secret, UseSecretForSigning: signed}}}); err != nil {
		t.Fatal(err)
	}
}

// waitWebhooks waits until every delivery the emulator queued was made.
func (f *rtFixture) waitWebhooks(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.emu.WaitWebhooks(ctx); err != nil {
		t.Fatalf("webhook deliveries: %v", err)
	}
}

// useEmulatorTransport routes every host under the emulator's name to it for the test, so
// subdomain references (docker-local.<registry>/...) resolve without DNS. The transports are
// process-wide: tests calling this must not run in parallel.
func useEmulatorTransport(t *testing.T, emu *artifactory.Emulator) {
	tr := emu.Transport()
	oldRemote, oldHTTP := remote.DefaultTransport, http.DefaultTransport
	remote.DefaultTransport, http.DefaultTransport = tr, tr
	t.Cleanup(func() { remote.DefaultTransport, http.DefaultTransport = oldRemote, oldHTTP })
}

// canonicalPort is 9000 as in the canonical invocations, or a free port when 9000 is taken.
func canonicalPort(t *testing.T) int {
	ln, err := net.Listen("tcp", ":9000")
	if err != nil {
		return freePort(t)
	}
	ln.Close()
	return 9000
}

// canonicalConfig points the canonical --registry string at the emulator in subdomain mode.
// Image references become docker-local.<registry>/<image>:<tag>, served over plain HTTP, which
// the user allows as for any registry (CROWSNEST_INSECURE_REGISTRIES).
func canonicalConfig(t *testing.T, emu *artifactory.Emulator, port int) string {
	registryHost := strings.TrimPrefix(emu.SubdomainHost("docker-local"), "docker-local.")
	t.Setenv("CROWSNEST_INSECURE_REGISTRIES", emu.SubdomainHost("docker-local")+","+registryHost)
	cfg := strings.Replace(canonicalRegistry, "https://example.jfrog.io/artifactory", emu.URL()+"/artifactory", 1)
	cfg = strings.Replace(cfg, "example.jfrog.io", registryHost, 1)
	return strings.Replace(cfg, "port=9000", "port="+strconv.Itoa(port), 1)
}

// alpine is an Alpine image with the given musl; name makes its digest distinct, so that tags
// of different repositories do not share an indexed image.
func alpine(t *testing.T, name, musl string) v1.Image {
	return ib.Image(t, ib.NewLayer(
		ib.File("etc/os-release", []byte("ID=alpine\nVERSION_ID=3.19.1\n")),
		ib.File("etc/hostname", []byte(name+"\n")),
		ib.File("lib/apk/db/installed", ib.APKInstalled(ib.APKPkg{Name: "musl", Version: musl, Arch: "x86_64", Origin: "musl", License: "MIT"})),
	))
}

const (
	vulnerableMusl = "1.2.4_git20230717-r4"
	fixedMusl      = "1.2.4_git20230717-r5"
)

// queuedJob is the part of a River job the tests look at.
type queuedJob struct {
	Kind   string
	State  string
	Repo   string `json:"repository"`
	Tag    string `json:"tag"`
	Reason string `json:"reason"`
}

// jobs lists every job of the watcher's queue (River keeps completed ones), read directly from
// the database the watcher uses.
func jobs(t *testing.T, dsn string) []queuedJob {
	t.Helper()
	ctx := context.Background()
	q, err := queue.Open(ctx, dsn, queue.Config{})
	if err != nil {
		t.Fatalf("open queue: %v", err)
	}
	defer q.Close()
	rows, err := q.Jobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []queuedJob
	for _, r := range rows {
		var j queuedJob
		if err := json.Unmarshal(r.EncodedArgs, &j); err != nil {
			t.Fatalf("job %d args: %v", r.ID, err)
		}
		j.Kind, j.State = r.Kind, string(r.State)
		out = append(out, j)
	}
	return out
}

// settledJobs waits until no job waits or runs (River marks jobs completed a little after they
// returned) and lists them.
func settledJobs(t *testing.T, w *watcher, dsn string) []queuedJob {
	t.Helper()
	var all []queuedJob
	eventually(t, w, "the queue to settle", func() bool {
		all = jobs(t, dsn)
		for _, j := range all {
			if j.State != "completed" && j.State != "discarded" && j.State != "cancelled" {
				return false
			}
		}
		return true
	})
	return all
}

func sqliteDSN(dataDir string) string { return "sqlite://" + dataDir + "/crowsnest.db" }

// listed reports whether an images listing has a row for repository:tag.
func listed(list, repo, tag string) bool {
	return regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(repo) + `\s+` + regexp.QuoteMeta(tag) + `\s`).MatchString(list)
}

func jobsFor(all []queuedJob, repo string) []queuedJob {
	var out []queuedJob
	for _, j := range all {
		if j.Repo == repo {
			out = append(out, j)
		}
	}
	return out
}

// TestWatchArtifactoryCanonicalAllImages runs the first canonical invocation (subdomain mode,
// --all-images): the backfill indexes every included image through docker-local.<registry>, and
// signed webhooks bring in later pushes, held to the same include/exclude globs as the listing.
func TestWatchArtifactoryCanonicalAllImages(t *testing.T) {
	f := startRT(t)
	useEmulatorTransport(t, f.emu)
	f.push(t, "frontend-web:1.0", alpine(t, "frontend-web:1.0", vulnerableMusl))
	f.push(t, "frontend-admin:3.1", alpine(t, "frontend-admin:3.1", fixedMusl))
	f.push(t, "backend:1.0", alpine(t, "backend:1.0", vulnerableMusl))                   // not included by */frontend*
	f.push(t, "dta/frontend-old:1.0", alpine(t, "dta/frontend-old:1.0", vulnerableMusl)) // excluded by */dta/*

	dataDir := t.TempDir()
	crowsnest(t, "db", "import", "--data-dir", dataDir, advisoriesDir(t))
	port := canonicalPort(t)
	t.Setenv("CROWSNEST_ARTIFACTORY_WEBHOOK_SECRET", webhookSecret)
	f.subscribe(t, port, webhookSecret, true)
	w := startWatch(t, "--data-dir", dataDir, "--registry", canonicalConfig(t, f.emu, port), "--all-images")

	eventually(t, w, "the backfill of both frontend images", func() bool {
		l := images(t, dataDir)
		return strings.Contains(l, "docker-local/frontend-web") && strings.Contains(l, "docker-local/frontend-admin")
	})
	list := images(t, dataDir)
	if !regexp.MustCompile(`docker-local/frontend-web\s+1\.0\s+sha256:\S+\s+linux/amd64\s+1\s+0C 1H 0M 0L 0\?`).MatchString(list) ||
		!regexp.MustCompile(`docker-local/frontend-admin\s+3\.1\s+sha256:\S+\s+linux/amd64\s+1\s+0C 0H 0M 0L 0\?`).MatchString(list) {
		t.Fatalf("images after the backfill:\n%s", list)
	}
	for _, j := range settledJobs(t, w, sqliteDSN(dataDir)) {
		if j.Reason != "backfill" || !strings.HasPrefix(j.Repo, "docker-local/frontend-") {
			t.Errorf("backfill queued %+v", j)
		}
	}
	// The image was pulled through the subdomain host: its stored name is that reference.
	out, _ := crowsnest(t, "cves", "--data-dir", dataDir, "--format", "json", "--only-package-type", "apk", "docker-local/frontend-web:1.0")
	if !strings.Contains(out, "ALPINE-CVE-2025-26519") || !strings.Contains(out, f.emu.SubdomainHost("docker-local")+"/frontend-web") {
		t.Fatalf("stored result of docker-local/frontend-web:1.0:\n%s", out)
	}

	// Pushes outside the globs arrive by webhook too, and are acknowledged but not queued.
	f.push(t, "backend:2.0", alpine(t, "backend:2.0", fixedMusl))
	f.push(t, "dta/frontend-new:1.0", alpine(t, "dta/frontend-new:1.0", fixedMusl))
	f.waitWebhooks(t)
	f.push(t, "frontend-web:2.0", alpine(t, "frontend-web:2.0", fixedMusl))
	eventually(t, w, "the signed webhook push of frontend-web:2.0", func() bool {
		return listed(images(t, dataDir), "docker-local/frontend-web", "2.0")
	})
	all := settledJobs(t, w, sqliteDSN(dataDir))
	if j := jobsFor(all, "docker-local/backend"); len(j) > 0 {
		t.Errorf("a push outside include=*/frontend* was queued: %+v", j)
	}
	if j := jobsFor(all, "docker-local/dta/frontend-new"); len(j) > 0 {
		t.Errorf("a push matching exclude=*/dta/* was queued: %+v", j)
	}
	if l := images(t, dataDir); strings.Contains(l, "backend") || strings.Contains(l, "dta/") {
		t.Fatalf("filtered repositories were indexed:\n%s", l)
	}
	for _, d := range f.emu.Deliveries() {
		if d.Response == nil || d.Response.Status != http.StatusOK {
			t.Errorf("webhook delivery refused: %+v", d)
		} else if (strings.Contains(d.Event.Data, "backend") || strings.Contains(d.Event.Data, "dta/")) &&
			!strings.Contains(d.Response.Body, `"accepted":0`) {
			t.Errorf("filtered push %s answered %s", d.Event.Data, d.Response.Body)
		}
	}
}

// TestWatchArtifactoryCanonicalRefreshRegistry runs the second canonical invocation
// (--refresh-registry, with a short interval): what existed at start is not indexed (Docker
// Scout's semantics), a new tag and a repository created after start are, by polling alone.
func TestWatchArtifactoryCanonicalRefreshRegistry(t *testing.T) {
	f := startRT(t)
	useEmulatorTransport(t, f.emu)
	f.push(t, "frontend-web:1.0", alpine(t, "frontend-web:1.0", vulnerableMusl))

	dataDir := t.TempDir()
	port := canonicalPort(t)
	t.Setenv("CROWSNEST_ARTIFACTORY_WEBHOOK_SECRET", webhookSecret)
	// No subscription: only the periodic listing can find new images.
	w := startWatch(t, "--data-dir", dataDir, "--registry", canonicalConfig(t, f.emu, port), "--refresh-registry", "--interval", "1")
	eventually(t, w, "the first listing", func() bool {
		return strings.Contains(w.log(), "registry listed") && strings.Contains(w.log(), "first=true")
	})

	f.push(t, "frontend-api:0.1", alpine(t, "frontend-api:0.1", vulnerableMusl))    // a repository that did not exist
	f.push(t, "frontend-web:2.0", alpine(t, "frontend-web:2.0", fixedMusl))         // a new tag of a known repository
	f.push(t, "dta/frontend-api:0.1", alpine(t, "dta/frontend-api:0.1", fixedMusl)) // excluded
	eventually(t, w, "the new repository and the new tag", func() bool {
		l := images(t, dataDir)
		return listed(l, "docker-local/frontend-api", "0.1") && listed(l, "docker-local/frontend-web", "2.0")
	})
	list := images(t, dataDir)
	if listed(list, "docker-local/frontend-web", "1.0") || strings.Contains(list, "dta/") {
		t.Fatalf("an image present at start or excluded was indexed:\n%s", list)
	}
	for _, j := range settledJobs(t, w, sqliteDSN(dataDir)) {
		if j.Reason != "poll" {
			t.Errorf("job %+v: want reason poll", j)
		}
	}
	if n := f.emu.Count("aql"); n < 2 {
		t.Errorf("%d AQL listings: want one per round", n)
	}
}

// TestWatchArtifactoryRepositoryPathPlainSecret uses the repository-path method with a
// plain-secret webhook, refuses a wrong and a missing secret with 401 without queueing anything,
// and shows that neither the webhook secret nor the API password reaches any output, even at
// debug level.
func TestWatchArtifactoryRepositoryPathPlainSecret(t *testing.T) {
	f := startRT(t)
	dataDir := t.TempDir()
	port := freePort(t)
	t.Setenv("CROWSNEST_ARTIFACTORY_WEBHOOK_SECRET", webhookSecret)
	f.subscribe(t, port, webhookSecret, false)
	cfg := fmt.Sprintf("type=artifactory,registry=%s,api=%s/artifactory,includes=*/frontend*,repository=docker-local,port=%d",
		f.emu.Addr(), f.emu.URL(), port)
	w := startWatch(t, "--data-dir", dataDir, "--log-level", "debug", "--registry", cfg, "--interval", "3600")
	eventually(t, w, "the first listing", func() bool { return strings.Contains(w.log(), "registry listed") })

	f.push(t, "frontend-web:1.0", alpine(t, "frontend-web:1.0", vulnerableMusl))
	eventually(t, w, "the plain-secret webhook push", func() bool {
		return listed(images(t, dataDir), "docker-local/frontend-web", "1.0")
	})
	f.waitWebhooks(t)
	for _, d := range f.emu.Deliveries() {
		if d.Response == nil || d.Response.Status != http.StatusOK {
			t.Errorf("delivery: %+v", d)
		}
	}
	before := settledJobs(t, w, sqliteDSN(dataDir))
	if len(before) != 1 || before[0].Reason != "push" || before[0].State != "completed" {
		t.Fatalf("jobs after one push: %+v", before)
	}

	// A forged push: the right payload with a wrong secret, a wrong signature, or no header.
	body := `{"domain":"docker","event_type":"pushed","subscription_key":"crowsnest","data":{"repo_key":"docker-local","path":"frontend-evil/1.0/manifest.json","name":"manifest.json","sha256":"` +
		strings.Repeat("a", 64) + `","size":1,"image_name":"frontend-evil","tag":"1.0"}}`
	for what, header := range map[string]string{
		"wrong secret":    "not-the-secret",
		"secret prefix":   webhookSecret[:len(webhookSecret)-1],
		"wrong signature": strings.Repeat("0", 64),
		"missing header":  "",
	} {
		req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:"+strconv.Itoa(port)+"/", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if header != "" {
			req.Header.Set("X-JFrog-Event-Auth", header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", what, resp.StatusCode)
		}
	}
	if after := jobs(t, sqliteDSN(dataDir)); len(after) != len(before) {
		t.Fatalf("refused webhooks queued jobs: %+v", after)
	}

	// Still nothing leaks once the watcher has logged its shutdown.
	w.stop(t)
	status, _ := crowsnest(t, "db", "status", "--data-dir", dataDir)
	outputs := map[string]string{"watcher log": w.log(), "images": images(t, dataDir), "db status": status}
	if !strings.Contains(w.log(), "level=DEBUG") {
		t.Fatalf("the watcher logged nothing at debug level:\n%s", w.log())
	}
	for what, text := range outputs {
		for secret, value := range map[string]string{"webhook secret": webhookSecret, "API password": rtPassword} {
			if strings.Contains(text, value) {
				t.Errorf("the %s appears in the %s:\n%s", secret, what, text)
			}
		}
	}
}

// TestWatchArtifactoryPostgres runs the watch workflow with the store and the job queue on
// PostgreSQL: backfill, a signed webhook push, a delete.
func TestWatchArtifactoryPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	f := startRT(t)
	f.push(t, "frontend-web:1.0", alpine(t, "frontend-web:1.0", vulnerableMusl))
	f.push(t, "backend:1.0", alpine(t, "backend:1.0", vulnerableMusl))
	dataDir := t.TempDir()
	crowsnest(t, "db", "import", "--data-dir", dataDir, "--db", dsn, advisoriesDir(t))
	port := freePort(t)
	t.Setenv("CROWSNEST_ARTIFACTORY_WEBHOOK_SECRET", webhookSecret)
	f.subscribe(t, port, webhookSecret, true)
	cfg := fmt.Sprintf("type=artifactory,registry=%s,api=%s/artifactory,include=*/frontend*,repository=docker-local,port=%d",
		f.emu.Addr(), f.emu.URL(), port)
	w := startWatch(t, "--data-dir", dataDir, "--db", dsn, "--registry", cfg, "--all-images", "--interval", "3600")
	pgImages := func() string { return images(t, dataDir, "--db", dsn) }
	eventually(t, w, "the backfill on PostgreSQL", func() bool {
		return listed(pgImages(), "docker-local/frontend-web", "1.0")
	})
	if l := pgImages(); !regexp.MustCompile(`docker-local/frontend-web\s+1\.0\s+sha256:\S+\s+linux/amd64\s+1\s+0C 1H 0M 0L 0\?`).MatchString(l) ||
		strings.Contains(l, "backend") {
		t.Fatalf("images on PostgreSQL:\n%s", l)
	}

	f.push(t, "frontend-web:2.0", alpine(t, "frontend-web:2.0", fixedMusl))
	eventually(t, w, "the webhook push on PostgreSQL", func() bool {
		return listed(pgImages(), "docker-local/frontend-web", "2.0")
	})
	del, _ := name.ParseReference(f.emu.Ref("docker-local", "frontend-web:2.0"), name.Insecure)
	if err := remote.Delete(del, f.auth); err != nil {
		t.Fatalf("delete: %v", err)
	}
	eventually(t, w, "the delete on PostgreSQL", func() bool {
		return !listed(pgImages(), "docker-local/frontend-web", "2.0")
	})

	// The jobs ran through River on PostgreSQL.
	got := map[string]int{}
	for _, j := range settledJobs(t, w, dsn) {
		if j.State != "completed" {
			t.Errorf("job not completed: %+v", j)
		}
		got[j.Kind+" "+j.Reason]++
	}
	want := map[string]int{"crowsnest_index backfill": 1, "crowsnest_index push": 1, "crowsnest_delete_tag ": 1}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("jobs on PostgreSQL: %v, want %v", got, want)
			break
		}
	}
	if out, _ := crowsnest(t, "cves", "--data-dir", dataDir, "--db", dsn, "--format", "json", "--only-package-type", "apk",
		f.emu.Ref("docker-local", "frontend-web:1.0")); !strings.Contains(out, "ALPINE-CVE-2025-26519") {
		t.Fatalf("stored finding on PostgreSQL:\n%s", out)
	}
}
