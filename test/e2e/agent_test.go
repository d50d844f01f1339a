package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/cli"
	ib "github.com/crowsnest-dev/crowsnest/internal/testutil/imagebuild"
	"github.com/crowsnest-dev/crowsnest/internal/testutil/registryproc"
)

// startServe runs `crowsnest serve` in the background on addr until stop is called.
func startServe(t *testing.T, addr string, args ...string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var errOut bytes.Buffer
	go func() {
		done <- cli.Main(ctx, append([]string{"serve", "--listen", addr}, args...), strings.NewReader(""), &bytes.Buffer{}, &errOut)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not come up: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited %d", code)
		}
	}
	t.Cleanup(stop)
	return stop
}

func apiGet(t *testing.T, url, token string, out any) int {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	if out != nil {
		json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

// TestAgentPushesToServerAndLosesNothingWhileItIsDown starts an agent (watch --server) before
// the server exists: its pushes wait in the local outbox and reach the server once it is up; a
// later push arrives too, and the server matched what it received.
func TestAgentPushesToServerAndLosesNothingWhileItIsDown(t *testing.T) {
	reg := registryproc.Start(t)
	for _, tag := range []string{"1.0", "1.1", "1.2"} {
		ib.Push(t, reg.Ref("team/agent:"+tag), ib.Image(t, ib.NewLayer(
			ib.File("etc/os-release", []byte("ID=alpine\nVERSION_ID=3.19.1\n")),
			ib.File("lib/apk/db/installed", ib.APKInstalled(ib.APKPkg{Name: "musl", Version: "1.2.4_git20230717-r4", Arch: "x86_64", Origin: "musl"})),
			ib.File("etc/release-tag", []byte(tag)),
		)))
	}
	serverDir := t.TempDir()
	crowsnest(t, "db", "import", "--data-dir", serverDir, advisoriesDir(t))
	pushToken, _ := crowsnest(t, "token", "create", "--data-dir", serverDir, "--scope", "push", "--name", "agent")
	readToken, _ := crowsnest(t, "token", "create", "--data-dir", serverDir, "--scope", "read")
	pushToken, readToken = strings.TrimSpace(pushToken), strings.TrimSpace(readToken)

	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	t.Setenv("CROWSNEST_TOKEN", pushToken)
	agent := startWatch(t, "--data-dir", t.TempDir(), "--registry", reg.Addr(), "--all-images", "--interval", "1",
		"--server", "http://"+addr)
	eventually(t, agent, "the agent to try pushing while the server is down", func() bool {
		return strings.Contains(agent.log(), "push failed; will retry")
	})

	startServe(t, addr, "--data-dir", serverDir)
	type list struct {
		Images []struct {
			Digest   string         `json:"digest"`
			Tags     []string       `json:"tags"`
			Findings map[string]int `json:"findings"`
		} `json:"images"`
	}
	eventually(t, agent, "the three images on the server", func() bool {
		var l list
		apiGet(t, "http://"+addr+"/api/v1/images?limit=50", readToken, &l)
		return len(l.Images) == 3
	})
	var l list
	apiGet(t, "http://"+addr+"/api/v1/images?limit=50", readToken, &l)
	for _, im := range l.Images {
		if im.Findings["high"] != 1 || len(im.Tags) != 1 {
			t.Errorf("image on the server: %+v (want the musl finding, matched server-side, and its tag)", im)
		}
	}
	if code := apiGet(t, "http://"+addr+"/api/v1/images", "", nil); code != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", code)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/api/v1/images", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+readToken)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("push with a read token: %v %v, want 403", resp, err)
	}

	// A new tag after the server is up arrives through the same path.
	ib.Push(t, reg.Ref("team/agent:2.0"), ib.Image(t, ib.NewLayer(ib.File("etc/os-release", []byte("ID=alpine\nVERSION_ID=3.20.0\n")))))
	eventually(t, agent, "the new tag on the server", func() bool {
		var l list
		apiGet(t, "http://"+addr+"/api/v1/images?limit=50", readToken, &l)
		return len(l.Images) == 4
	})
	if strings.Contains(agent.log(), pushToken) {
		t.Fatal("the agent logged its token")
	}

	// The CLI reads the server's stored results.
	t.Setenv("CROWSNEST_TOKEN", readToken)
	server := "http://" + addr
	out, _ := crowsnest(t, "images", "--server", server)
	if !regexp.MustCompile(`team/agent\s+1\.0\s+sha256:\S+\s+linux/amd64\s+1\s+0C 1H 0M 0L 0\?`).MatchString(out) {
		t.Fatalf("images --server:\n%s", out)
	}
	out, _ = crowsnest(t, "cves", "--server", server, "--format", "json", reg.Ref("team/agent:1.1"))
	if !strings.Contains(out, "ALPINE-CVE-2025-26519") {
		t.Fatalf("cves --server:\n%s", out)
	}
	out, _ = crowsnest(t, "sbom", "--server", server, "--format", "cyclonedx", "team/agent:1.2")
	if !strings.Contains(out, `"specVersion": "1.6"`) || !strings.Contains(out, "pkg:apk/alpine/musl@1.2.4_git20230717-r4") {
		t.Fatalf("sbom --server:\n%.500s", out)
	}
}
