package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/riverqueue/river"

	"github.com/crowsnest-dev/crowsnest/internal/findings"
	"github.com/crowsnest-dev/crowsnest/internal/queue"
	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/store"
	"github.com/crowsnest-dev/crowsnest/internal/testutil/pgtest"
)

// backends runs fn against SQLite and PostgreSQL, each with a fresh database.
func backends(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t, "sqlite://"+filepath.Join(t.TempDir(), "crowsnest.db"))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		fn(t, pgtest.DSN(t))
	})
}

type env struct {
	st  *store.Store
	svc *findings.Service
}

func newEnv(t *testing.T, dsn string) *env {
	t.Helper()
	st, err := store.Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &env{st: st, svc: &findings.Service{Store: st}}
}

// image stores a Debian 9 image with OpenSSL and curl packages, tagged repo:tag.
func (e *env) image(t *testing.T, n int, repo, tag string) string {
	t.Helper()
	ctx := context.Background()
	digest := fmt.Sprintf("sha256:%064x", n+1)
	sb := &sbom.SBOM{SchemaVersion: sbom.SchemaVersion, Tool: sbom.Tool{Name: "crowsnest", Version: "test"},
		Image: sbom.Image{Reference: repo + ":" + tag, Name: repo, Tag: tag, Digest: digest,
			Platform: sbom.Platform{OS: "linux", Architecture: "amd64"}},
		OS: &sbom.OS{ID: "debian", VersionID: "9"},
		Packages: []sbom.Package{
			{Type: sbom.TypeDeb, Name: "libssl1.1", Version: "1.1.0l-1~deb9u5", PURL: "pkg:deb/debian/libssl1.1@1.1.0l-1~deb9u5",
				Source: &sbom.Source{Name: "openssl"}},
			{Type: sbom.TypeDeb, Name: "curl", Version: "7.52.1-5+deb9u16", PURL: "pkg:deb/debian/curl@7.52.1-5+deb9u16"},
		}}
	if _, err := e.svc.Ingest(ctx, sb, findings.ReasonIndex); err != nil {
		t.Fatal(err)
	}
	if err := e.st.SetTag(ctx, repo, tag, digest); err != nil {
		t.Fatal(err)
	}
	return digest
}

// osvRecord is a genuine-format OSV record for a Debian 9 source package.
func osvRecord(id, pkg, fixed, severity string) string {
	fix := ""
	if fixed != "" {
		fix = `,{"fixed":"` + fixed + `"}`
	}
	return `{"schema_version":"1.6.0","id":"` + id + `","modified":"2024-05-02T00:00:00Z","published":"2024-05-01T00:00:00Z",
"aliases":["CVE-` + strings.TrimPrefix(id, "DLA-") + `"],"summary":"` + pkg + ` issue ` + id + `",
"affected":[{"package":{"ecosystem":"Debian:9","name":"` + pkg + `"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"}` + fix + `]}],
"ecosystem_specific":{"urgency":"` + severity + `"}}]}`
}

// importAdvisories imports records as an advisory update (re-matching every stored image).
func (e *env) importAdvisories(t *testing.T, records ...string) findings.ImportReport {
	t.Helper()
	dir := t.TempDir()
	for i, r := range records {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("r%d.json", i)), []byte(r), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := e.svc.Import(context.Background(), dir, "test", false)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// jobs is an Inserter that keeps what was inserted, unique by delivery id like River.
type jobs struct {
	mu   sync.Mutex
	ids  map[string]bool
	list []string
}

func (j *jobs) Insert(_ context.Context, args river.JobArgs, _ *river.InsertOpts) (bool, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.ids == nil {
		j.ids = map[string]bool{}
	}
	id := args.(SendArgs).Delivery
	if j.ids[id] {
		return false, nil
	}
	j.ids[id] = true
	j.list = append(j.list, id)
	return true, nil
}

func (e *env) integration(t *testing.T, in store.Integration) {
	t.Helper()
	in.Enabled = true
	if err := Validate(in); err != nil {
		t.Fatal(err)
	}
	if err := e.st.PutIntegration(context.Background(), in, false); err != nil {
		t.Fatal(err)
	}
}

func (e *env) payloads(t *testing.T, integration string) map[string]Event {
	t.Helper()
	ds, err := e.st.Deliveries(context.Background(), store.DeliveryQuery{Integration: integration, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]Event{}
	for _, d := range ds {
		var ev Event
		if err := json.Unmarshal(d.Payload, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.ID != d.ID {
			t.Fatalf("payload id %s in delivery %s", ev.ID, d.ID)
		}
		out[ev.Image.Digest] = ev
	}
	return out
}

// An advisory update adding three vulnerabilities to 30 images makes one message per image
// and integration, not one per vulnerability; a second tick records nothing more.
func TestAdvisoryUpdateRollsUpPerImage(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		ctx := context.Background()
		const images = 30
		for i := range images {
			e.image(t, i, fmt.Sprintf("team/app%d", i), "1")
		}
		q := &jobs{}
		d := &Dispatcher{Store: e.st, Queue: q, Sender: &Sender{Store: e.st}}
		if _, err := d.Tick(ctx); err != nil { // starts the cursors at the present
			t.Fatal(err)
		}
		e.integration(t, store.Integration{Name: "hook", Kind: KindWebhook, URL: "https://example.invalid/hook", Secret: "s"})
		e.integration(t, store.Integration{Name: "slack", Kind: KindSlack, URL: "https://hooks.slack.invalid/services/T/B/x"})
		rep := e.importAdvisories(t,
			osvRecord("DLA-1000-1", "openssl", "1.1.0l-1~deb9u6", "high"),
			osvRecord("DLA-1001-1", "openssl", "", "low"),
			osvRecord("DLA-1002-1", "curl", "7.52.1-5+deb9u17", "medium"))
		if rep.Changes.Added != 3*images {
			t.Fatalf("import added %d findings, want %d", rep.Changes.Added, 3*images)
		}
		st, err := d.Tick(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Changes != 3*images || st.Deliveries != 2*images || st.Queued != 2*images || len(q.list) != 2*images {
			t.Fatalf("tick %+v, %d jobs; want %d changes, %d deliveries and jobs", st, len(q.list), 3*images, 2*images)
		}
		got := e.payloads(t, "hook")
		if len(got) != images {
			t.Fatalf("%d images got a webhook message, want %d", len(got), images)
		}
		for digest, ev := range got {
			if ev.Type != TypeFindingsChanged || ev.Reason != findings.ReasonAdvisoryUpdate || len(ev.Added) != 3 ||
				ev.Counts.Added["high"] != 1 || ev.Counts.Added["medium"] != 1 || ev.Counts.Added["low"] != 1 {
				t.Fatalf("%s: %+v", digest, ev)
			}
			if ev.Added[0].ID != "DLA-1000-1" || ev.Added[0].FixedVersion != "1.1.0l-1~deb9u6" || ev.Added[0].Package.Name != "libssl1.1" {
				t.Fatalf("most severe first with its fix: %+v", ev.Added[0])
			}
			if len(ev.Image.Tags) != 1 || !strings.HasPrefix(ev.Image.Tags[0], "team/app") {
				t.Fatalf("tags %v", ev.Image.Tags)
			}
		}
		if n := len(e.payloads(t, "slack")); n != images {
			t.Fatalf("%d slack deliveries, want %d", n, images)
		}
		st, err = d.Tick(ctx)
		if err != nil || st.Deliveries != 0 || st.Queued != 0 {
			t.Fatalf("second tick %+v %v: want nothing new", st, err)
		}
		// A fix for DLA-1000-1 removes one finding per image: again one message per image.
		e.importAdvisories(t, osvRecord("DLA-1000-1", "openssl", "1.1.0l-1~deb9u4", "high"))
		if st, err = d.Tick(ctx); err != nil || st.Deliveries != 2*images {
			t.Fatalf("tick after fix %+v %v", st, err)
		}
	})
}

func TestFilters(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		ctx := context.Background()
		e.image(t, 0, "team/frontend", "1")
		e.image(t, 1, "team/backend", "1")
		untagged := e.image(t, 2, "team/old", "1")
		if err := e.st.DeleteTag(ctx, "team/old", "1"); err != nil {
			t.Fatal(err)
		}
		q := &jobs{}
		d := &Dispatcher{Store: e.st, Queue: q, Sender: &Sender{Store: e.st}}
		if _, err := d.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		url := "https://example.invalid/"
		e.integration(t, store.Integration{Name: "all", Kind: KindWebhook, URL: url})
		e.integration(t, store.Integration{Name: "high", Kind: KindWebhook, URL: url, MinSeverity: "high"})
		e.integration(t, store.Integration{Name: "fixable", Kind: KindWebhook, URL: url, FixableOnly: true})
		e.integration(t, store.Integration{Name: "front", Kind: KindWebhook, URL: url, Repositories: []string{"*/front*"}})
		e.integration(t, store.Integration{Name: "removed", Kind: KindWebhook, URL: url, Events: []string{EventFindingRemoved}})
		e.integration(t, store.Integration{Name: "failures", Kind: KindWebhook, URL: url, Events: []string{EventIndexFailed}})
		e.integration(t, store.Integration{Name: "critical", Kind: KindWebhook, URL: url, MinSeverity: "critical"})
		e.importAdvisories(t,
			osvRecord("DLA-2000-1", "openssl", "1.1.0l-1~deb9u6", "high"),
			osvRecord("DLA-2001-1", "curl", "", "low"))
		if err := e.st.MarkFailed(ctx, "sha256:feed", "team/frontend", "2", "manifest unknown", 5); err != nil {
			t.Fatal(err)
		}
		if st, err := d.Tick(ctx); err != nil || st.Failures != 0 {
			t.Fatalf("tick %+v %v: a failure recorded this instant may still be committing; it waits", st, err)
		}
		later := time.Now().Add(time.Minute)
		d.Now = func() time.Time { return later }
		if st, err := d.Tick(ctx); err != nil || st.Failures != 1 {
			t.Fatalf("tick %+v %v: want the settled failure", st, err)
		}
		ids := func(name string) map[string]Event {
			return e.payloads(t, name)
		}
		if got := ids("all"); len(got) != 3 || got[untagged].ID != "" || got["sha256:feed"].Type != TypeIndexFailed {
			t.Fatalf("all: %d messages, want 2 findings + 1 failure (the untagged image has none)", len(got))
		}
		for _, ev := range ids("high") {
			if ev.Type == TypeIndexFailed {
				continue
			}
			if len(ev.Added) != 1 || ev.Added[0].ID != "DLA-2000-1" || ev.Counts.Added["low"] != 0 {
				t.Fatalf("high: %+v", ev.Added)
			}
		}
		for _, ev := range ids("fixable") {
			if ev.Type == TypeIndexFailed {
				continue
			}
			if len(ev.Added) != 1 || ev.Added[0].FixedVersion == "" {
				t.Fatalf("fixable: %+v", ev.Added)
			}
		}
		if got := ids("front"); len(got) != 2 {
			// the frontend image's findings and the frontend failure
			t.Fatalf("front: %d messages, want 2", len(got))
		} else if ev := got["sha256:feed"]; ev.Type != TypeIndexFailed || ev.Failure == nil || ev.Failure.Error != "manifest unknown" {
			t.Fatalf("front failure: %+v", ev)
		}
		if got := ids("removed"); len(got) != 0 {
			t.Fatalf("removed-only integration got %d messages about additions", len(got))
		}
		if got := ids("failures"); len(got) != 1 || got["sha256:feed"].Type != TypeIndexFailed {
			t.Fatalf("failures: %+v", got)
		}
		if got := ids("critical"); len(got) != 1 || got["sha256:feed"].Type != TypeIndexFailed {
			// severity filters findings; a failure has none and still gets through
			t.Fatalf("critical: %d messages", len(got))
		}
		// The fix of DLA-2000-1 reaches the removed-only integration.
		e.importAdvisories(t, osvRecord("DLA-2000-1", "openssl", "1.1.0l-1~deb9u4", "high"))
		if _, err := d.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		got := ids("removed")
		if len(got) != 2 {
			t.Fatalf("removed: %d messages, want 2", len(got))
		}
		for _, ev := range got {
			if len(ev.Removed) != 1 || ev.Removed[0].ID != "DLA-2000-1" || len(ev.Added) != 0 {
				t.Fatalf("removed: %+v", ev)
			}
		}
	})
}

// receiver is a local HTTP endpoint that behaves like Slack or a webhook consumer.
type receiver struct {
	mu sync.Mutex
	// plan answers the nth request (0-based) of one delivery; nil or past its end: 200 "ok".
	plan   func(n int, w http.ResponseWriter) bool
	secret string
	// by delivery id (webhooks) or text (Slack): requests seen and when
	seen     map[string][]time.Time
	accepted map[string]int
	bad      []string
	bodies   [][]byte
	delay    time.Duration
}

func (rc *receiver) server(t *testing.T, slackLike bool) *httptest.Server {
	rc.seen, rc.accepted = map[string][]time.Time{}, map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		key := r.Header.Get(HeaderDelivery)
		if slackLike {
			var msg struct {
				Text   string            `json:"text"`
				Blocks []json.RawMessage `json:"blocks"`
			}
			if err := json.Unmarshal(body, &msg); err != nil || len(msg.Blocks) == 0 {
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, "invalid_blocks")
				return
			}
			key = string(body)
		} else if rc.secret != "" && !Verify(rc.secret, body, r.Header.Get(HeaderSignature)) {
			rc.mu.Lock()
			rc.bad = append(rc.bad, key)
			rc.mu.Unlock()
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		rc.mu.Lock()
		n := len(rc.seen[key])
		rc.seen[key] = append(rc.seen[key], time.Now())
		rc.bodies = append(rc.bodies, body)
		plan := rc.plan
		rc.mu.Unlock()
		if plan != nil && plan(n, w) {
			return
		}
		if rc.delay > 0 {
			time.Sleep(rc.delay)
		}
		rc.mu.Lock()
		rc.accepted[key]++
		rc.mu.Unlock()
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv
}

func (rc *receiver) acceptedCount() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.accepted)
}

func openQueue(t *testing.T, dsn string, s *Sender) queue.Queue {
	t.Helper()
	workers := river.NewWorkers()
	Register(workers, s)
	q, err := queue.Open(context.Background(), dsn, queue.Config{Workers: workers, MaxWorkers: 4, PollInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) states(t *testing.T) map[string]int {
	t.Helper()
	ds, err := e.st.Deliveries(context.Background(), store.DeliveryQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, d := range ds {
		out[d.State]++
	}
	return out
}

// Receivers that rate-limit (429 + Retry-After), fail (5xx), hang (slower than the timeout) or
// reject the signature: each delivery still arrives once, through River's retries.
func TestSendThroughQueue(t *testing.T) {
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "crowsnest.db")
	e := newEnv(t, dsn)
	ctx := context.Background()
	e.image(t, 0, "team/app", "1")
	s := &Sender{Store: e.st, Timeout: 300 * time.Millisecond, Backoff: 20 * time.Millisecond, MaxAttempts: 5}
	q := openQueue(t, dsn, s)
	defer q.Close()
	d := &Dispatcher{Store: e.st, Queue: q, Sender: s}
	if _, err := d.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	slackOK := &receiver{}
	limited := &receiver{plan: func(n int, w http.ResponseWriter) bool {
		if n == 0 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, "rate_limited")
			return true
		}
		return false
	}}
	flaky := &receiver{secret: "k1", plan: func(n int, w http.ResponseWriter) bool {
		if n < 2 {
			w.WriteHeader(http.StatusBadGateway)
			return true
		}
		return false
	}}
	slow := &receiver{secret: "k2", plan: func(n int, w http.ResponseWriter) bool {
		if n == 0 {
			time.Sleep(time.Second) // past the 300ms timeout: the sender has given up
			return true
		}
		return false
	}}
	ce := &receiver{secret: "k3"}
	wrongKey := &receiver{secret: "not-the-key"}
	e.integration(t, store.Integration{Name: "slack", Kind: KindSlack, URL: slackOK.server(t, true).URL + "/services/T/B/x", DashboardURL: "https://crowsnest.example"})
	e.integration(t, store.Integration{Name: "limited", Kind: KindSlack, URL: limited.server(t, true).URL})
	e.integration(t, store.Integration{Name: "flaky", Kind: KindWebhook, URL: flaky.server(t, false).URL, Secret: "k1"})
	e.integration(t, store.Integration{Name: "slow", Kind: KindWebhook, URL: slow.server(t, false).URL, Secret: "k2"})
	e.integration(t, store.Integration{Name: "ce", Kind: KindWebhook, URL: ce.server(t, false).URL, Secret: "k3", CloudEvents: true})
	e.integration(t, store.Integration{Name: "wrongkey", Kind: KindWebhook, URL: wrongKey.server(t, false).URL, Secret: "k4"})
	e.importAdvisories(t, osvRecord("DLA-3000-1", "openssl", "1.1.0l-1~deb9u6", "high"))
	if _, err := d.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer q.Stop(ctx)
	waitFor(t, "every delivery to end", 20*time.Second, func() bool {
		st := e.states(t)
		return st[store.DeliverySent]+st[store.DeliveryFailed] == 6
	})
	if st := e.states(t); st[store.DeliverySent] != 5 || st[store.DeliveryFailed] != 1 {
		t.Fatalf("states %v: want 5 sent, wrongkey failed", st)
	}
	for name, rc := range map[string]*receiver{"slack": slackOK, "limited": limited, "flaky": flaky, "slow": slow, "ce": ce} {
		if n := rc.acceptedCount(); n != 1 {
			t.Errorf("%s accepted %d messages, want 1", name, n)
		}
		for _, n := range rc.accepted {
			if n != 1 {
				t.Errorf("%s accepted one delivery %d times", name, n)
			}
		}
	}
	for _, times := range limited.seen {
		if len(times) != 2 || times[1].Sub(times[0]) < 900*time.Millisecond {
			t.Errorf("429 with Retry-After 1: attempts at %v", times)
		}
	}
	for _, times := range flaky.seen {
		if len(times) != 3 {
			t.Errorf("flaky: %d attempts, want 3", len(times))
		}
	}
	dl, err := e.st.Deliveries(ctx, store.DeliveryQuery{Integration: "wrongkey"})
	if err != nil || len(dl) != 1 || dl[0].LastStatus != http.StatusUnauthorized || dl[0].Attempts != 1 {
		t.Fatalf("wrongkey delivery %+v %v: a 401 fails at once", dl, err)
	}
	var slackMsg struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type string `json:"type"`
		} `json:"blocks"`
	}
	if err := json.Unmarshal(slackOK.bodies[0], &slackMsg); err != nil {
		t.Fatal(err)
	}
	body := string(slackOK.bodies[0])
	if slackMsg.Text != "1 new vulnerability in team/app:1" || slackMsg.Blocks[0].Type != "header" ||
		!strings.Contains(body, "DLA-3000-1") || !strings.Contains(body, "fixed in 1.1.0l-1~deb9u6") ||
		!strings.Contains(body, "https://crowsnest.example/images/sha256:") || !strings.Contains(body, "1 high") {
		t.Fatalf("slack message: %s", body)
	}
	var ev struct {
		SpecVersion, Type, ID, Source string
		Data                          Event
	}
	if err := json.Unmarshal(ce.bodies[0], &ev); err != nil {
		t.Fatal(err)
	}
	if ev.SpecVersion != "1.0" || ev.Type != CloudEventType || ev.ID == "" || ev.ID != ev.Data.ID || len(ev.Data.Added) != 1 {
		t.Fatalf("cloudevent %s", ce.bodies[0])
	}
}

// A restart in the middle of deliveries loses none and duplicates none: every delivery id is
// accepted, the store marks each sent once, and nothing is left queued.
func TestRestartMidDelivery(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		ctx := context.Background()
		const images = 24
		for i := range images {
			e.image(t, i, fmt.Sprintf("team/app%d", i), "1")
		}
		rc := &receiver{secret: "k", delay: 30 * time.Millisecond}
		srv := rc.server(t, false)
		s := &Sender{Store: e.st, Timeout: 5 * time.Second, Backoff: 20 * time.Millisecond}
		q1 := openQueue(t, dsn, s)
		d := &Dispatcher{Store: e.st, Queue: q1, Sender: s}
		if _, err := d.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		e.integration(t, store.Integration{Name: "hook", Kind: KindWebhook, URL: srv.URL, Secret: "k"})
		e.importAdvisories(t, osvRecord("DLA-4000-1", "openssl", "", "high"), osvRecord("DLA-4001-1", "curl", "", "low"))
		if _, err := d.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		if err := q1.Start(ctx); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "some deliveries", 20*time.Second, func() bool { return rc.acceptedCount() >= 5 })
		// The server stops (SIGTERM): running sends finish, the rest wait in the queue.
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := q1.Stop(sctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		q1.Close()
		before := rc.acceptedCount()
		if before >= images {
			t.Fatalf("all %d delivered before the restart; the test needs a slower receiver", before)
		}
		q2 := openQueue(t, dsn, s)
		defer q2.Close()
		d2 := &Dispatcher{Store: e.st, Queue: q2, Sender: s}
		if _, err := d2.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		if err := q2.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer q2.Stop(ctx)
		waitFor(t, "every delivery after the restart", 30*time.Second, func() bool { return e.states(t)[store.DeliverySent] == images })
		// River keeps the send jobs unique by delivery id, sent ones included.
		sent, err := e.st.Deliveries(ctx, store.DeliveryQuery{State: store.DeliverySent, Limit: 1})
		if err != nil || len(sent) != 1 {
			t.Fatal(sent, err)
		}
		if inserted, err := q2.Insert(ctx, SendArgs{Delivery: sent[0].ID}, s.InsertOpts()); err != nil || inserted {
			t.Fatalf("re-inserting the send job of %s: inserted %v, %v", sent[0].ID, inserted, err)
		}
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if len(rc.accepted) != images || len(rc.bad) != 0 {
			t.Fatalf("receiver accepted %d delivery ids (%d bad signatures), want %d", len(rc.accepted), len(rc.bad), images)
		}
		for id, n := range rc.accepted {
			if n != 1 {
				t.Fatalf("delivery %s accepted %d times", id, n)
			}
		}
		t.Logf("%d delivered before the restart, %d after", before, images-before)
	})
}

// A crash after the receiver accepted a message but before it was marked sent re-sends it with
// the same delivery id, which is what receivers dedupe by; once marked, it is never sent again.
func TestResendAfterLostMarkKeepsDeliveryID(t *testing.T) {
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "crowsnest.db")
	e := newEnv(t, dsn)
	ctx := context.Background()
	e.image(t, 0, "team/app", "1")
	rc := &receiver{secret: "k"}
	srv := rc.server(t, false)
	s := &Sender{Store: e.st}
	q := &jobs{}
	d := &Dispatcher{Store: e.st, Queue: q, Sender: s}
	d.Tick(ctx)
	e.integration(t, store.Integration{Name: "hook", Kind: KindWebhook, URL: srv.URL, Secret: "k"})
	e.importAdvisories(t, osvRecord("DLA-5000-1", "openssl", "", "high"))
	if _, err := d.Tick(ctx); err != nil || len(q.list) != 1 {
		t.Fatalf("tick: %v, %d jobs", err, len(q.list))
	}
	id := q.list[0]
	// The receiver got it, then the "sent" mark was lost: simulate with a delivery left queued.
	status, err := s.post(ctx, mustIntegration(t, e, "hook"), mustDelivery(t, e, id))
	if err != nil || status != 200 {
		t.Fatal(status, err)
	}
	if o := s.Deliver(ctx, id); !o.done || o.err != nil {
		t.Fatalf("deliver: %+v", o)
	}
	if o := s.Deliver(ctx, id); !o.done { // a duplicate job
		t.Fatalf("deliver again: %+v", o)
	}
	if len(rc.seen) != 1 || len(rc.seen[id]) != 2 {
		t.Fatalf("receiver saw %v; want delivery %s twice and nothing else", rc.seen, id)
	}
	if dl := mustDelivery(t, e, id); dl.State != store.DeliverySent || dl.Attempts != 1 {
		t.Fatalf("delivery %+v", dl)
	}
}

func mustIntegration(t *testing.T, e *env, name string) store.Integration {
	in, err := e.st.Integration(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func mustDelivery(t *testing.T, e *env, id string) store.Delivery {
	d, err := e.st.Delivery(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestSignatureAndRetryAfter(t *testing.T) {
	body := []byte(`{"id":"dlv_1"}`)
	sig := Sign("secret", body)
	// echo -n '{"id":"dlv_1"}' | openssl dgst -sha256 -hmac secret
	if sig != "sha256=9c7066629a4075183c6626bacdb248875e64ddca4e9fde4617a178aa5775303a" || !Verify("secret", body, sig) {
		t.Fatal(sig)
	}
	if Verify("other", body, sig) || Verify("secret", append(body, ' '), sig) {
		t.Fatal("signature verified with the wrong key or body")
	}
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{"": 0, "3": 3 * time.Second, "-1": 0, "x": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"", "0", "120", "Wed, 21 Oct 2015 07:28:00 GMT", "-5", "99999999999999999999"} {
		f.Add(s)
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, s string) {
		if d := parseRetryAfter(s, now); d < 0 || d > 8*24*time.Hour && !strings.Contains(s, "GMT") {
			t.Fatalf("parseRetryAfter(%q) = %v", s, d)
		}
	})
}

func FuzzGlob(f *testing.F) {
	for _, s := range []string{"*/frontend*", "team/?pp", "a[b", "**", "x.y+z"} {
		f.Add(s, "team/frontend-web")
	}
	f.Fuzz(func(t *testing.T, glob, repo string) {
		re, err := globRegexp(glob)
		if err != nil || !utf8.ValidString(repo) {
			return
		}
		if !strings.ContainsAny(glob, "*?") && re.MatchString(repo) != (glob == repo) {
			t.Fatalf("glob %q without wildcards matched %q differently from equality", glob, repo)
		}
	})
}

// Two dispatchers (two serve replicas) ticking at once on one database record each delivery once
// and queue it once.
func TestConcurrentDispatchers(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		ctx := context.Background()
		const images = 20
		for i := range images {
			e.image(t, i, fmt.Sprintf("team/app%d", i), "1")
		}
		q := &jobs{}
		st2, err := store.Open(ctx, dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer st2.Close()
		d1 := &Dispatcher{Store: e.st, Queue: q, Sender: &Sender{Store: e.st}}
		d2 := &Dispatcher{Store: st2, Queue: q, Sender: &Sender{Store: st2}}
		d1.Tick(ctx)
		e.integration(t, store.Integration{Name: "hook", Kind: KindWebhook, URL: "https://example.invalid/"})
		e.importAdvisories(t, osvRecord("DLA-8000-1", "openssl", "", "high"))
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		for _, d := range []*Dispatcher{d1, d2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 5 {
					if _, err := d.Tick(ctx); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if n := len(e.payloads(t, "hook")); n != images || len(q.list) != images {
			t.Fatalf("%d deliveries, %d jobs; want %d each", n, len(q.list), images)
		}
		if st := e.states(t); st[store.DeliveryQueued] != images {
			t.Fatalf("states %v", st)
		}
	})
}

// A write larger than a page (here 7 changes) is read whole: one message per image, each with
// all of its findings, and the next write (a push) starts a message of its own.
func TestWriteLargerThanPage(t *testing.T) {
	e := newEnv(t, "sqlite://"+filepath.Join(t.TempDir(), "crowsnest.db"))
	ctx := context.Background()
	const images = 10
	for i := range images {
		e.image(t, i, fmt.Sprintf("team/app%d", i), "1")
	}
	q := &jobs{}
	d := &Dispatcher{Store: e.st, Queue: q, Sender: &Sender{Store: e.st}, PageSize: 7}
	d.Tick(ctx)
	e.integration(t, store.Integration{Name: "hook", Kind: KindWebhook, URL: "https://example.invalid/"})
	e.importAdvisories(t, osvRecord("DLA-9000-1", "openssl", "", "high"), osvRecord("DLA-9001-1", "openssl", "", "low"),
		osvRecord("DLA-9002-1", "curl", "", "medium"))
	e.image(t, images, "team/late", "1") // a later write, indexed with the advisories known
	st, err := d.Tick(ctx)
	if err != nil || st.Changes != 3*(images+1) || st.Deliveries != images+1 {
		t.Fatalf("tick %+v %v", st, err)
	}
	got := e.payloads(t, "hook")
	if len(got) != images+1 {
		t.Fatalf("%d messages, want %d", len(got), images+1)
	}
	for digest, ev := range got {
		if len(ev.Added) != 3 {
			t.Fatalf("%s: %d findings in its message, want 3", digest, len(ev.Added))
		}
	}
}
