package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/crowsnest-dev/crowsnest/internal/cli"
	"github.com/crowsnest-dev/crowsnest/internal/testutil/artifactory"
	ib "github.com/crowsnest-dev/crowsnest/internal/testutil/imagebuild"
	"github.com/crowsnest-dev/crowsnest/internal/testutil/registryproc"
)

const webhookSecret = "a-webhook-secret-of-the-recommended-length-0123456789abcdefghijklmnopqrstuvwxyz"

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// watcher runs `crowsnest watch` in the background until the test ends.
type watcher struct {
	cancel context.CancelFunc
	done   chan int
	mu     sync.Mutex
	stderr bytes.Buffer
}

func (w *watcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stderr.Write(p)
}

func (w *watcher) log() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stderr.String()
}

func startWatch(t *testing.T, args ...string) *watcher {
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{cancel: cancel, done: make(chan int, 1)}
	go func() {
		w.done <- cli.Main(ctx, append([]string{"watch"}, args...), strings.NewReader(""), &bytes.Buffer{}, w)
	}()
	t.Cleanup(func() { w.stop(t) })
	return w
}

func (w *watcher) stop(t *testing.T) {
	w.cancel()
	select {
	case code := <-w.done:
		if code != 0 {
			t.Errorf("watch exited %d:\n%s", code, w.log())
		}
		w.done <- code
	case <-time.After(60 * time.Second):
		t.Errorf("watch did not stop:\n%s", w.log())
	}
}

// eventually polls cond for up to a minute.
func eventually(t *testing.T, w *watcher, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s\nwatcher log:\n%s", what, w.log())
}

func images(t *testing.T, dataDir string, extra ...string) string {
	out, _ := crowsnest(t, append([]string{"images", "--data-dir", dataDir}, extra...)...)
	return out
}

// TestWatchArtifactory runs Docker Scout's canonical Artifactory workflow against the emulator in
// front of a real registry: backfill with --all-images, include/exclude globs, a push arriving
// by signed webhook, a multi-platform push, a delete, and a forged webhook refused.
func TestWatchArtifactory(t *testing.T) {
	reg := registryproc.Start(t, registryproc.WithEnv("REGISTRY_STORAGE_DELETE_ENABLED=true"))
	emu := artifactory.Start(t, artifactory.Options{Upstream: "http://" + reg.Addr(),
		Webhook: artifactory.WebhookOptions{Backoff: []time.Duration{50 * time.Millisecond}}})
	auth := remote.WithAuth(&authn.Basic{Username: artifactory.DefaultUser, Password: artifactory.DefaultPassword})
	push := func(repoAndTag string, img v1.Image) {
		t.Helper()
		ref, err := name.ParseReference(emu.Ref("docker-local", repoAndTag), name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img, auth); err != nil {
			t.Fatalf("push %s: %v", repoAndTag, err)
		}
	}
	vulnerable := ib.Image(t, ib.NewLayer(
		ib.File("etc/os-release", []byte("ID=alpine\nVERSION_ID=3.19.1\n")),
		ib.File("lib/apk/db/installed", ib.APKInstalled(ib.APKPkg{Name: "musl", Version: "1.2.4_git20230717-r4", Arch: "x86_64", Origin: "musl", License: "MIT"})),
	))
	fixed := ib.Image(t, ib.NewLayer(
		ib.File("etc/os-release", []byte("ID=alpine\nVERSION_ID=3.19.1\n")),
		ib.File("lib/apk/db/installed", ib.APKInstalled(ib.APKPkg{Name: "musl", Version: "1.2.4_git20230717-r5", Arch: "x86_64", Origin: "musl", License: "MIT"})),
	))
	push("frontend-web:1.0", vulnerable)
	push("backend:1.0", vulnerable)          // not included by */frontend*
	push("dta/frontend-old:1.0", vulnerable) // excluded by */dta/*

	dataDir := t.TempDir()
	crowsnest(t, "db", "import", "--data-dir", dataDir, advisoriesDir(t))
	port := freePort(t)
	t.Setenv("CROWSNEST_ARTIFACTORY_API_USER", artifactory.DefaultUser)
	t.Setenv("CROWSNEST_ARTIFACTORY_API_PASSWORD", artifactory.DefaultPassword)
	t.Setenv("DOCKER_SCOUT_ARTIFACTORY_WEBHOOK_SECRET", webhookSecret) // Docker Scout's name works as an alias
	cfg := fmt.Sprintf("type=artifactory,registry=%s,api=%s/artifactory,include=*/frontend*,exclude=*/dta/*,repository=docker-local,port=%d",
		emu.Addr(), emu.URL(), port)
	if err := emu.Subscribe(artifactory.Subscription{Key: "crowsnest", EventFilter: artifactory.EventFilter{Domain: "docker",
		EventTypes: []string{"pushed", "deleted"}, Criteria: artifactory.Criteria{AnyLocal: true}},
		Handlers: []artifactory.Handler{{URL: "http://127.0.0.1:" + strconv.Itoa(port) + "/", Secret: webhookSecret, UseSecretForSigning: true}}}); err != nil {
		t.Fatal(err)
	}

	// A long interval: after the backfill, only webhooks can bring new images in.
	w := startWatch(t, "--data-dir", dataDir, "--registry", cfg, "--all-images", "--interval", "3600", "--workers", "2")
	eventually(t, w, "the backfill of frontend-web:1.0", func() bool {
		return strings.Contains(images(t, dataDir), "docker-local/frontend-web")
	})
	list := images(t, dataDir)
	t.Logf("images after the backfill:\n%s", list)
	if !regexp.MustCompile(`docker-local/frontend-web\s+1\.0\s+sha256:\S+\s+linux/amd64\s+1\s+0C 1H 0M 0L 0\?`).MatchString(list) {
		t.Fatalf("images after the backfill:\n%s", list)
	}
	if strings.Contains(list, "backend") || strings.Contains(list, "frontend-old") {
		t.Fatalf("filtered repositories were indexed:\n%s", list)
	}
	out, _ := crowsnest(t, "cves", "--data-dir", dataDir, "--format", "json", "--only-package-type", "apk", emu.Ref("docker-local", "frontend-web:1.0"))
	if !strings.Contains(out, "ALPINE-CVE-2025-26519") {
		t.Fatalf("stored image has no musl finding:\n%s", out)
	}

	// A push arrives by webhook (signed with HMAC) and is indexed.
	push("frontend-web:2.0", fixed)
	eventually(t, w, "the webhook push of frontend-web:2.0", func() bool {
		return strings.Contains(images(t, dataDir), "frontend-web  2.0")
	})

	// A multi-platform push: every platform is indexed.
	arm := ib.ImageWithConfig(t, ib.Config{Architecture: "arm64", Variant: "v8"}, ib.NewLayer(ib.File("etc/os-release", []byte("ID=alpine\nVERSION_ID=3.19.1\n"))))
	idx := ib.Index(t, map[ib.Platform]v1.Image{{OS: "linux", Architecture: "amd64"}: fixed, {OS: "linux", Architecture: "arm64", Variant: "v8"}: arm})
	ref, _ := name.ParseReference(emu.Ref("docker-local", "frontend-web:multi"), name.Insecure)
	if err := remote.WriteIndex(ref, idx, auth); err != nil {
		t.Fatal(err)
	}
	eventually(t, w, "both platforms of frontend-web:multi", func() bool {
		l := images(t, dataDir)
		return strings.Contains(l, "multi") && strings.Count(l, "multi") == 2 && strings.Contains(l, "linux/arm64/v8")
	})

	// A forged webhook is refused and changes nothing.
	body := `{"domain":"docker","event_type":"pushed","data":{"repo_key":"docker-local","path":"frontend-evil/1.0/manifest.json","name":"manifest.json","sha256":"` + strings.Repeat("a", 64) + `","size":1,"image_name":"frontend-evil","tag":"1.0"}}`
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:"+strconv.Itoa(port)+"/", strings.NewReader(body))
	req.Header.Set("X-JFrog-Event-Auth", "not-the-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("forged webhook: status %d, want 401", resp.StatusCode)
	}

	// Deleting the tag in Artifactory retires it.
	del, _ := name.ParseReference(emu.Ref("docker-local", "frontend-web:2.0"), name.Insecure)
	if err := remote.Delete(del, auth); err != nil {
		t.Fatalf("delete: %v", err)
	}
	eventually(t, w, "the delete of frontend-web:2.0", func() bool {
		return !strings.Contains(images(t, dataDir), "frontend-web  2.0")
	})
	if strings.Contains(images(t, dataDir), "frontend-evil") {
		t.Fatal("the forged push was indexed")
	}
}
