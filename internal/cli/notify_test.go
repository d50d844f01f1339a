package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/crowsnest-dev/crowsnest/internal/notify"
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
