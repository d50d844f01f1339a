package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/crowsnest-dev/crowsnest/internal/testutil/artifactory"
	ib "github.com/crowsnest-dev/crowsnest/internal/testutil/imagebuild"
	"github.com/crowsnest-dev/crowsnest/internal/testutil/registryproc"
)

// TestWatchNotifiesSlack: `crowsnest watch` (embedded mode) with two Slack integrations indexes a
// vulnerable image and posts one Block Kit message to the integration whose filters keep its
// finding, none to the one that wants critical findings only.
func TestWatchNotifiesSlack(t *testing.T) {
	reg := registryproc.Start(t)
	emu := artifactory.Start(t, artifactory.Options{Upstream: "http://" + reg.Addr()})
	auth := remote.WithAuth(&authn.Basic{Username: artifactory.DefaultUser, Password: artifactory.DefaultPassword})
	vulnerable := ib.Image(t, ib.NewLayer(
		ib.File("etc/os-release", []byte("ID=alpine\nVERSION_ID=3.19.1\n")),
		ib.File("lib/apk/db/installed", ib.APKInstalled(ib.APKPkg{Name: "musl", Version: "1.2.4_git20230717-r4", Arch: "x86_64", Origin: "musl", License: "MIT"})),
	))
	ref, err := name.ParseReference(emu.Ref("docker-local", "frontend-web:1.0"), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, vulnerable, auth); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	posts := map[string][][]byte{}
	slack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		posts[r.URL.Path] = append(posts[r.URL.Path], b)
		mu.Unlock()
		io.WriteString(w, "ok")
	}))
	defer slack.Close()
	count := func(path string) int {
		mu.Lock()
		defer mu.Unlock()
		return len(posts[path])
	}

	dataDir := t.TempDir()
	crowsnest(t, "db", "import", "--data-dir", dataDir, advisoriesDir(t))
	crowsnest(t, "notify", "add", "team", "--data-dir", dataDir, "--kind", "slack", "--url", slack.URL+"/services/T/B/team",
		"--repository", "*/frontend*", "--dashboard-url", "https://crowsnest.example")
	crowsnest(t, "notify", "add", "pager", "--data-dir", dataDir, "--kind", "slack", "--url", slack.URL+"/services/T/B/pager",
		"--min-severity", "critical")
	t.Setenv("CROWSNEST_ARTIFACTORY_API_USER", artifactory.DefaultUser)
	t.Setenv("CROWSNEST_ARTIFACTORY_API_PASSWORD", artifactory.DefaultPassword)
	t.Setenv("CROWSNEST_ARTIFACTORY_WEBHOOK_SECRET", webhookSecret)
	cfg := fmt.Sprintf("type=artifactory,registry=%s,api=%s/artifactory,repository=docker-local,port=%d", emu.Addr(), emu.URL(), freePort(t))
	w := startWatch(t, "--data-dir", dataDir, "--registry", cfg, "--all-images", "--interval", "3600", "--notify-interval", "200ms")
	eventually(t, w, "the Slack message about frontend-web:1.0", func() bool { return count("/services/T/B/team") == 1 })
	w.stop(t)

	mu.Lock()
	body := string(posts["/services/T/B/team"][0])
	pager := len(posts["/services/T/B/pager"])
	mu.Unlock()
	var msg struct {
		Text   string            `json:"text"`
		Blocks []json.RawMessage `json:"blocks"`
	}
	if err := json.Unmarshal([]byte(body), &msg); err != nil || len(msg.Blocks) < 4 ||
		!strings.Contains(msg.Text, "new vulnerabilit") || !strings.Contains(msg.Text, "frontend-web:1.0") ||
		!strings.Contains(body, "ALPINE-CVE-2025-26519") || !strings.Contains(body, "https://crowsnest.example/images/sha256:") {
		t.Fatalf("Slack message:\n%s", body)
	}
	if pager != 0 {
		t.Fatalf("the critical-only integration got %d messages about a high finding", pager)
	}
	out, _ := crowsnest(t, "notify", "deliveries", "--data-dir", dataDir)
	if !strings.Contains(out, "team") || !strings.Contains(out, "sent") || strings.Contains(out, "pager") {
		t.Fatalf("delivery log:\n%s", out)
	}
}
