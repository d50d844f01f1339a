package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/crowsnest-dev/crowsnest/internal/cli"
	ib "github.com/crowsnest-dev/crowsnest/internal/testutil/imagebuild"
)

// TestDemo runs `crowsnest demo` as a newcomer would: the backfill indexes the included images,
// the genuine advisories give their findings, the push after the backfill is indexed from the
// webhook, and the kept store answers the commands the demo suggests.
func TestDemo(t *testing.T) {
	dataDir := t.TempDir()
	out, errOut := crowsnest(t, "demo", "--data-dir", dataDir)
	table, rest, ok := strings.Cut(out, "Left out by")
	if !ok {
		t.Fatalf("demo output has no filtered section:\n%s", out)
	}
	for _, row := range []string{
		`docker-local/frontend-api\s+1\.0\s+sha256:\S+\s+linux/amd64\s+3\s+0C 0H 0M 0L 2\?`,
		`docker-local/frontend-web\s+1\.0\s+sha256:\S+\s+linux/amd64\s+5\s+0C 2H 1M 0L 1\?`,
		`docker-local/frontend-web\s+1\.1\s+sha256:\S+\s+linux/amd64\s+5\s+0C 0H 1M 0L 1\?`,
	} {
		if !regexp.MustCompile(row).MatchString(table) {
			t.Errorf("images table has no row %s:\n%s", row, table)
		}
	}
	if strings.Contains(table, "backend") || strings.Contains(table, "frontend-old") {
		t.Errorf("images the globs exclude were indexed:\n%s", table)
	}
	if !strings.Contains(rest, "docker-local/backend:1.0") || !strings.Contains(rest, "docker-local/dta/frontend-old:1.0") {
		t.Errorf("the filtered images are not named:\n%s", rest)
	}
	for _, id := range []string{"ALPINE-CVE-2025-26519", "GHSA-whgm-jr23-g3j9", "PYSEC-2023-74", "GHSA-269g-pwp5-87pp"} {
		if !strings.Contains(rest, id) {
			t.Errorf("cves of frontend-web:1.0 lacks %s:\n%s", id, rest)
		}
	}
	if !regexp.MustCompile(`frontend-web:1\.1 was pushed after the backfill and indexed from Artifactory's webhook \(event \S+, signed with HMAC-SHA256, answered 200\)`).MatchString(rest) {
		t.Errorf("the webhook push is not reported:\n%s", rest)
	}
	// The watcher polls once an hour in the demo: 1.1 can only have come in by the webhook.
	if !regexp.MustCompile(`msg="image indexed" repository=docker-local/frontend-web tag=1\.1 .* reason=push`).MatchString(errOut) {
		t.Errorf("frontend-web:1.1 was not indexed from a push event:\n%s", errOut)
	}

	demoDir := filepath.Join(dataDir, "demo")
	if !strings.Contains(out, "The demo's data is kept in "+demoDir) {
		t.Errorf("the kept directory is not named:\n%s", out)
	}
	got, _ := crowsnest(t, "cves", "--data-dir", demoDir, "--format", "json", "docker-local/frontend-web:1.1")
	if s := parseCVEs(t, got).summary(); s != "junit:junit@4.12:GHSA-269g-pwp5-87pp->4.13.1 requests@2.28.1:PYSEC-2023-74->2.31.0" {
		t.Errorf("stored findings of frontend-web:1.1: %s", s)
	}

	// A second run replaces the first one's directory and gives the same images.
	again, _ := crowsnest(t, "demo", "--data-dir", dataDir)
	if n := strings.Count(images(t, demoDir), "docker-local/"); n != 3 {
		t.Errorf("after a second run, %d images are listed, want 3:\n%s", n, again)
	}

	// A directory the demo did not make is never cleared.
	foreign := t.TempDir()
	os.MkdirAll(filepath.Join(foreign, "demo"), 0o700)
	os.WriteFile(filepath.Join(foreign, "demo", "precious"), []byte("x"), 0o600)
	code, _, errOut := runCLI("demo", "--data-dir", foreign)
	if code != 1 || !strings.Contains(errOut, "was not made by crowsnest demo") {
		t.Errorf("a foreign directory: exit %d: %s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(foreign, "demo", "precious")); err != nil {
		t.Errorf("a foreign directory was cleared: %v", err)
	}
}

// syncBuffer is written by the demo while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDemoKeepRunning pushes an image of the user's own to the address the demo prints, with the
// password from the file it names, and sees it indexed; no credential appears in the output, even
// at debug level; cancelling ends the demo with exit 0.
func TestDemoKeepRunning(t *testing.T) {
	dataDir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- cli.Main(ctx, []string{"demo", "--keep-running", "--log-level", "debug", "--data-dir", dataDir},
			strings.NewReader(""), &out, &errOut)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "Still running until Ctrl-C") {
		select {
		case code := <-done:
			t.Fatalf("demo exited %d before serving:\n%s\n%s", code, out.String(), errOut.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo did not get ready:\n%s\n%s", out.String(), errOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	m := regexp.MustCompile(`Docker registry\s+(\S+)/docker-local/`).FindStringSubmatch(out.String())
	pw := regexp.MustCompile(`password in (\S+)\)`).FindStringSubmatch(out.String())
	if m == nil || pw == nil {
		t.Fatalf("no registry address or password file:\n%s", out.String())
	}
	password, err := os.ReadFile(pw[1])
	if err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(pw[1]); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("password file: %v %v", info.Mode(), err)
	}
	secret := strings.TrimSpace(string(password))

	img := ib.Image(t, ib.NewLayer(
		ib.File("etc/os-release", []byte("ID=alpine\nVERSION_ID=3.19.1\n")),
		ib.File("lib/apk/db/installed", ib.APKInstalled(ib.APKPkg{Name: "musl", Version: "1.2.4_git20230717-r4", Arch: "x86_64", Origin: "musl", License: "MIT"})),
	))
	// backend is outside include=*/frontend*: its webhook is acknowledged, not indexed.
	for _, repo := range []string{"backend:2.0", "frontend-mine:1.0"} {
		ref, err := name.ParseReference(m[1]+"/docker-local/"+repo, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "admin", Password: secret})); err != nil {
			t.Fatalf("push %s to the running demo: %v", repo, err)
		}
	}
	demoDir := filepath.Join(dataDir, "demo")
	deadline = time.Now().Add(60 * time.Second)
	for !regexp.MustCompile(`docker-local/frontend-mine\s+1\.0\s+\S+\s+linux/amd64\s+1\s+0C 1H 0M 0L 0\?`).MatchString(images(t, demoDir)) {
		if time.Now().After(deadline) {
			t.Fatalf("the pushed image was not indexed:\n%s\n%s", images(t, demoDir), errOut.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	if l := images(t, demoDir); strings.Contains(l, "backend") {
		t.Fatalf("a webhook outside the include glob was indexed:\n%s", l)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("demo exited %d after Ctrl-C:\n%s", code, errOut.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("demo did not stop")
	}
	if strings.Contains(out.String(), secret) || strings.Contains(errOut.String(), secret) {
		t.Fatal("the Artifactory password appears in the demo's output")
	}
	if _, err := os.Stat(pw[1]); !os.IsNotExist(err) {
		t.Errorf("the password file outlived the demo: %v", err)
	}
}
