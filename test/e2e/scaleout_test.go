package e2e

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/store"
	"github.com/crowsnest-dev/crowsnest/internal/testutil/pgtest"
	"github.com/crowsnest-dev/crowsnest/internal/testutil/registryproc"
)

// TestScaleOutOnPostgres runs two `serve` replicas and two `watch` processes on one PostgreSQL
// against one registry: every digest is indexed by exactly one process once, no tag is lost, the
// periodic advisory refresh never runs twice at once, and both replicas serve the results.
func TestScaleOutOnPostgres(t *testing.T) {
	bin := buildCrowsnest(t)
	dsn := pgtest.DSN(t)
	reg := registryproc.Start(t)
	const images = 12
	want := map[string]string{}
	for i := range images {
		repo := fmt.Sprintf("fleet/app%02d", i)
		d := robustPush(t, reg.Ref(repo+":1.0"), robustImage(t, repo))
		want[repo+":1.0"] = d
		if i%3 == 0 { // a second tag of the same image: still one indexing
			robustPush(t, reg.Ref(repo+":latest"), robustImage(t, repo))
			want[repo+":latest"] = d
		}
	}

	// The advisory mirror: slow, and it records how many refreshes overlap.
	var archive bytes.Buffer
	zw := zip.NewWriter(&archive)
	rec, err := os.ReadFile(filepath.Join(advisoriesDir(t), "Alpine", "ALPINE-CVE-2025-26519.json"))
	if err != nil {
		t.Fatal(err)
	}
	w, _ := zw.Create("ALPINE-CVE-2025-26519.json")
	w.Write(rec)
	zw.Close()
	var inFlight, maxInFlight, fetches atomic.Int32
	mirror := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := maxInFlight.Load()
			if n <= m || maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
		fetches.Add(1)
		time.Sleep(700 * time.Millisecond)
		rw.Write(archive.Bytes())
	}))
	defer mirror.Close()

	common := []string{"--db", dsn, "--advisory-refresh", "2s", "--osv-mirror", mirror.URL}
	type proc struct {
		name string
		cmd  *exec.Cmd
		log  *lockedBuffer
	}
	var procs []*proc
	start := func(name string, args ...string) *proc {
		p := &proc{name: name, log: &lockedBuffer{}}
		p.cmd = exec.Command(bin, append(args, common...)...)
		p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, p)
		return p
	}
	t.Cleanup(func() {
		for _, p := range procs {
			p.cmd.Process.Signal(os.Interrupt)
		}
		for _, p := range procs {
			done := make(chan struct{})
			go func() { p.cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				p.cmd.Process.Kill()
			}
		}
	})
	logs := func() string {
		var b strings.Builder
		for _, p := range procs {
			fmt.Fprintf(&b, "--- %s ---\n%s\n", p.name, p.log.String())
		}
		return b.String()
	}

	// The schema first (concurrent first starts are also safe, but this keeps the token step
	// simple), then a read token for the API checks.
	dataDir := t.TempDir()
	readToken, _ := crowsnest(t, "token", "create", "--data-dir", dataDir, "--db", dsn, "--scope", "read")
	readToken = strings.TrimSpace(readToken)
	addrs := []string{fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	for i, addr := range addrs {
		start(fmt.Sprintf("serve-%d", i), "serve", "--data-dir", t.TempDir(), "--listen", addr)
	}
	for i := range 2 {
		start(fmt.Sprintf("watch-%d", i), "watch", "--data-dir", t.TempDir(), "--registry", reg.Addr(),
			"--all-images", "--interval", "1", "--workers", "2")
	}

	st, err := store.Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	deadline := time.Now().Add(90 * time.Second)
	for {
		tags, err := st.Tags(context.Background(), "")
		if err == nil && len(tags) == len(want) {
			ok := true
			for _, tg := range tags {
				ok = ok && want[tg.Repository+":"+tg.Tag] == tg.Digest
			}
			if ok {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("tags stored: %d of %d\n%s", len(tags), len(want), logs())
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Each digest was indexed by one process, once.
	indexedRE := regexp.MustCompile(`msg="image indexed".* digest=(sha256:[0-9a-f]+)`)
	perDigest := map[string]int{}
	for _, p := range procs {
		for _, m := range indexedRE.FindAllStringSubmatch(p.log.String(), -1) {
			perDigest[m[1]]++
		}
	}
	if len(perDigest) != images {
		t.Fatalf("%d digests indexed, want %d\n%s", len(perDigest), images, logs())
	}
	for d, n := range perDigest {
		if n != 1 {
			t.Errorf("%s indexed %d times", d, n)
		}
	}

	// Let a few refresh intervals pass: the refresh runs, never twice at once, and the stored
	// images gain their finding through it.
	deadline = time.Now().Add(60 * time.Second)
	for fetches.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("the periodic refresh did not run 3 times (%d)\n%s", fetches.Load(), logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if m := maxInFlight.Load(); m != 1 {
		t.Fatalf("%d advisory refreshes ran at once; periodic work must run once at a time", m)
	}
	for i, addr := range addrs {
		var l struct {
			Images []struct {
				Findings map[string]int `json:"findings"`
			} `json:"images"`
		}
		deadline = time.Now().Add(30 * time.Second)
		for {
			l.Images = nil
			code := apiGet(t, "http://"+addr+"/api/v1/images?limit=100", readToken, &l)
			high := 0
			for _, im := range l.Images {
				high += im.Findings["high"]
			}
			if len(l.Images) == images && high == images {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("serve-%d answers %d and lists %d images (%+v)\n%s", i, code, len(l.Images), l.Images, logs())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}
