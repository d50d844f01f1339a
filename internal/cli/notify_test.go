package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/findings"
	"github.com/crowsnest-dev/crowsnest/internal/notify"
	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/store"
)

func TestNotifyCommands(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	var got []*http.Request
	var bodies [][]byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got, bodies = append(got, r), append(bodies, b)
		mu.Unlock()
		io.WriteString(w, "ok")
	}))
	defer srv.Close()

	code, secret, errOut := run(t, "notify", "add", "siem", "--data-dir", dir, "--kind", "webhook", "--url", srv.URL+"/hook",
		"--min-severity", "high", "--repository", "prod/*", "--event", "finding-added")
	secret = strings.TrimSpace(secret)
	if code != 0 || !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("add: %d %q %s", code, secret, errOut)
	}
	if code, _, errOut := run(t, "notify", "add", "chat", "--data-dir", dir, "--kind", "slack", "--url", srv.URL+"/services/T0/B0/SECRET"); code != 0 {
		t.Fatalf("add slack: %d %s", code, errOut)
	}
	if code, _, errOut := run(t, "notify", "add", "bad", "--data-dir", dir, "--kind", "slack", "--url", "ftp://x"); code != 2 || !strings.Contains(errOut, "http(s)") {
		t.Fatalf("bad url: %d %s", code, errOut)
	}
	code, out, _ := run(t, "notify", "list", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "siem") || !strings.Contains(out, ">=high repos=prod/* events=finding-added") ||
		strings.Contains(out, "SECRET") || strings.Contains(out, secret) {
		t.Fatalf("list: %d\n%s", code, out)
	}
	if code, out, errOut := run(t, "notify", "test", "siem", "--data-dir", dir); code != 0 || !strings.Contains(out, "test message sent") {
		t.Fatalf("test: %d %s %s", code, out, errOut)
	}
	if code, _, errOut := run(t, "notify", "test", "chat", "--data-dir", dir); code != 0 {
		t.Fatalf("test slack: %d %s", code, errOut)
	}
	mu.Lock()
	if len(got) != 2 || !notify.Verify(secret, bodies[0], got[0].Header.Get(notify.HeaderSignature)) || got[0].Header.Get(notify.HeaderDelivery) == "" {
		t.Fatalf("webhook test request not signed with the printed secret: %v", got)
	}
	var slackMsg struct{ Blocks []json.RawMessage }
	if err := json.Unmarshal(bodies[1], &slackMsg); err != nil || len(slackMsg.Blocks) == 0 {
		t.Fatalf("slack test body %s", bodies[1])
	}
	mu.Unlock()
	if code, _, _ := run(t, "notify", "remove", "siem", "--data-dir", dir); code != 0 {
		t.Fatal("remove failed")
	}
	if code, _, _ := run(t, "notify", "remove", "siem", "--data-dir", dir); code == 0 {
		t.Fatal("removing a missing integration succeeded")
	}
	if code, out, _ := run(t, "notify", "deliveries", "--data-dir", dir); code != 0 || !strings.HasPrefix(out, "ID") {
		t.Fatalf("deliveries: %d %s", code, out)
	}
}

// TestServeNotifies runs `crowsnest serve` with a webhook integration: an advisory import
// (`crowsnest db import`) that affects a tracked image reaches the receiver, signed, once.
func TestServeNotifies(t *testing.T) {
	dataDir := t.TempDir()
	db := "sqlite://" + filepath.Join(dataDir, "c.db")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := store.Open(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc := &findings.Service{Store: st}
	digest := "sha256:" + strings.Repeat("ab", 32)
	sb := &sbom.SBOM{SchemaVersion: sbom.SchemaVersion, Image: sbom.Image{Reference: "team/app:1", Name: "team/app", Tag: "1", Digest: digest,
		Platform: sbom.Platform{OS: "linux", Architecture: "amd64"}}, OS: &sbom.OS{ID: "debian", VersionID: "9"},
		Packages: []sbom.Package{{Type: sbom.TypeDeb, Name: "libssl1.1", Version: "1.1.0l-1~deb9u5", PURL: "pkg:deb/debian/libssl1.1@1.1.0l-1~deb9u5",
			Source: &sbom.Source{Name: "openssl"}}}}
	if _, err := svc.Ingest(ctx, sb, findings.ReasonIndex); err != nil {
		t.Fatal(err)
	}
	if err := st.SetTag(ctx, "team/app", "1", digest); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var bodies [][]byte
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if !notify.Verify("s3cret", b, r.Header.Get(notify.HeaderSignature)) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		mu.Lock()
		seen[r.Header.Get(notify.HeaderDelivery)]++
		bodies = append(bodies, b)
		mu.Unlock()
		io.WriteString(w, "ok")
	}))
	defer rcv.Close()
	t.Setenv("CROWSNEST_NOTIFY_SECRET", "s3cret")
	if code, _, errOut := run(t, "--data-dir", dataDir, "--db", db, "notify", "add", "hook", "--kind", "webhook", "--url", rcv.URL); code != 0 {
		t.Fatalf("notify add: %s", errOut)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var wg sync.WaitGroup
	var code int
	var errOut bytes.Buffer
	wg.Add(1)
	go func() {
		defer wg.Done()
		code = Main(ctx, []string{"--data-dir", dataDir, "--db", db, "serve", "--listen", addr, "--notify-interval", "100ms"},
			strings.NewReader(""), io.Discard, &errOut)
	}()
	waitUntil(t, "the dispatcher's cursor", func() bool { v, _ := st.State(ctx, notify.CursorChanges); return v != "" })
	advDir := t.TempDir()
	rec := `{"id":"DLA-7000-1","modified":"2024-05-02T00:00:00Z","affected":[{"package":{"ecosystem":"Debian:9","name":"openssl"},
		"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1.1.0l-1~deb9u6"}]}]}]}`
	if err := os.WriteFile(filepath.Join(advDir, "DLA-7000-1.json"), []byte(rec), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := run(t, "--data-dir", dataDir, "--db", db, "db", "import", advDir); code != 0 {
		t.Fatalf("db import: %s", errOut)
	}
	waitUntil(t, "the notification", func() bool {
		ds, _ := st.Deliveries(ctx, store.DeliveryQuery{State: store.DeliverySent})
		return len(ds) == 1
	})
	cancel()
	wg.Wait()
	if code != 0 {
		t.Fatalf("serve exit code %d: %s", code, errOut.String())
	}
	mu.Lock()
	defer mu.Unlock()
	var ev notify.Event
	if len(bodies) != 1 || json.Unmarshal(bodies[0], &ev) != nil || ev.Type != notify.TypeFindingsChanged ||
		len(ev.Added) != 1 || ev.Added[0].ID != "DLA-7000-1" || seen[ev.ID] != 1 {
		t.Fatalf("receiver got %d messages: %s", len(bodies), bodies)
	}
	if strings.Contains(errOut.String(), "s3cret") {
		t.Fatal("the server logged the webhook secret")
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
