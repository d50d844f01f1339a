package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/crowsnest-dev/crowsnest/internal/queue"
	"github.com/crowsnest-dev/crowsnest/internal/store"
	"github.com/crowsnest-dev/crowsnest/internal/testutil/artifactory"
	ib "github.com/crowsnest-dev/crowsnest/internal/testutil/imagebuild"
	"github.com/crowsnest-dev/crowsnest/internal/testutil/registryproc"
	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

// robustImage is a small Alpine image with a musl that ALPINE-CVE-2025-26519 affects; marker makes
// its layer, and so its digest, unique.
func robustImage(t *testing.T, marker string) v1.Image {
	t.Helper()
	return ib.Image(t, ib.NewLayer(
		ib.File("etc/os-release", []byte("ID=alpine\nVERSION_ID=3.19.1\n")),
		ib.File("lib/apk/db/installed", ib.APKInstalled(ib.APKPkg{Name: "musl", Version: "1.2.4_git20230717-r4", Arch: "x86_64", Origin: "musl", License: "MIT"})),
		ib.File("etc/crowsnest-marker", []byte(marker)),
	))
}

// robustPush writes img to ref (host/repo:tag) over plain HTTP.
func robustPush(t *testing.T, ref string, img v1.Image, opts ...remote.Option) string {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, opts...); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func robustStore(t *testing.T, dataDir string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), "sqlite://"+filepath.Join(dataDir, "crowsnest.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// tagDigests maps "repository:tag" to the indexed image's digest, failing on a tag that lists
// more than one image (these fixtures are single-platform).
func tagDigests(t *testing.T, st *store.Store) map[string]string {
	t.Helper()
	rows, err := st.Images(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range rows {
		k := r.Repository + ":" + r.Tag
		if _, dup := out[k]; dup {
			t.Fatalf("%s listed twice: %+v", k, rows)
		}
		out[k] = r.Digest
	}
	return out
}

// firstListing waits for the watcher's first listing to be done.
func firstListing(t *testing.T, w *watcher) {
	t.Helper()
	eventually(t, w, "the first listing", func() bool {
		return strings.Contains(w.log(), `msg="registry listed"`) && strings.Contains(w.log(), "first=true")
	})
}

// TestWatchOCIPollingAndBackfill watches a bare host (Debian's distribution registry, limited to
// 3 catalog entries per page so the catalog spans several Link pages): without --all-images the
// images present at start are only remembered and new or moved tags are indexed by polling; a
// later run with --all-images backfills the rest, and an image whose layer blob is gone ends in
// `images --failed` with its error after --max-attempts while the others index.
func TestWatchOCIPollingAndBackfill(t *testing.T) {
	reg := registryproc.Start(t, registryproc.WithEnv("REGISTRY_CATALOG_MAXENTRIES=3"))
	digests := map[string]string{}
	for i := range 7 {
		repo := fmt.Sprintf("team/app%d", i)
		digests[repo+":1.0"] = robustPush(t, reg.Ref(repo+":1.0"), robustImage(t, repo))
	}
	dataDir := t.TempDir()
	crowsnest(t, "db", "import", "--data-dir", dataDir, advisoriesDir(t))
	st := robustStore(t, dataDir)

	w := startWatch(t, "--data-dir", dataDir, "--registry", reg.Addr(), "--interval", "1", "--workers", "2")
	firstListing(t, w)
	if !strings.Contains(w.log(), "tags=7") {
		t.Fatalf("the first listing did not see the 7 tags across catalog pages:\n%s", w.log())
	}
	if got := tagDigests(t, st); len(got) != 0 {
		t.Fatalf("images present at start were indexed without --all-images: %v", got)
	}

	// A new tag and a moved tag are indexed by the next poll.
	digests["team/app3:2.0"] = robustPush(t, reg.Ref("team/app3:2.0"), robustImage(t, "app3 v2"))
	digests["team/app5:1.0"] = robustPush(t, reg.Ref("team/app5:1.0"), robustImage(t, "app5 moved"))
	eventually(t, w, "the poll of the new and moved tags", func() bool { return len(tagDigests(t, st)) == 2 })
	got := tagDigests(t, st)
	if got["team/app3:2.0"] != digests["team/app3:2.0"] || got["team/app5:1.0"] != digests["team/app5:1.0"] {
		t.Fatalf("indexed %v, want app3:2.0 and the moved app5:1.0 (%s)", got, digests["team/app5:1.0"])
	}
	w.stop(t)

	// Backfill with --all-images; one image's only layer blob is deleted from the registry's storage.
	broken := robustImage(t, "broken")
	robustPush(t, reg.Ref("team/broken:1.0"), broken)
	layers, _ := broken.Layers()
	ld, _ := layers[0].Digest()
	blob := filepath.Join(reg.StorageDir(), "docker", "registry", "v2", "blobs", "sha256", ld.Hex[:2], ld.Hex, "data")
	if err := os.Remove(blob); err != nil {
		t.Fatal(err)
	}
	reg.Reset()
	w2 := startWatch(t, "--data-dir", dataDir, "--registry", reg.Addr(), "--interval", "3600", "--workers", "2",
		"--all-images", "--max-attempts", "2")
	eventually(t, w2, "the backfill", func() bool { return len(tagDigests(t, st)) == 8 })
	got = tagDigests(t, st)
	for k, d := range digests {
		if got[k] != d {
			t.Errorf("%s: indexed %q, want %s", k, got[k], d)
		}
	}
	eventually(t, w2, "the broken image recorded as failed", func() bool {
		return strings.Contains(images(t, dataDir, "--failed"), "team/broken")
	})
	failed := images(t, dataDir, "--failed")
	t.Logf("failed images:\n%s", failed)
	if !strings.Contains(failed, ld.String()[:19]) && !strings.Contains(failed, ld.Hex[:12]) {
		t.Errorf("the failure does not name the missing layer %s:\n%s", ld, failed)
	}
	if !strings.Contains(failed, "team/broken  1.0") || !regexp.MustCompile(`team/broken\s+1\.0\s+\S+\s+2\s`).MatchString(failed) {
		t.Errorf("want team/broken 1.0 failed after 2 attempts:\n%s", failed)
	}
	if _, ok := got["team/broken:1.0"]; ok {
		t.Error("the broken image is listed as indexed")
	}
	pages := 0
	for _, r := range reg.Requests() {
		if r.Path == "/v2/_catalog" && r.Status == http.StatusOK {
			pages++
		}
	}
	if pages < 3 {
		t.Errorf("%d catalog pages read for 8 repositories at 3 per page", pages)
	}
}

// TestWatchOCINotification receives the distribution registry's own notification envelopes
// (with the bearer token its endpoint configuration sends): a push after start is indexed
// without any poll, an image present at start is not, and a wrong token is refused.
func TestWatchOCINotification(t *testing.T) {
	const token = "an-oci-notification-token-0123456789"
	port := freePort(t)
	reg := registryproc.Start(t, registryproc.WithNotification(registryproc.Notification{
		URL:     "http://127.0.0.1:" + strconv.Itoa(port) + "/",
		Headers: map[string][]string{"Authorization": {"Bearer " + token}},
		// The push of team/old below finds no listener; the registry retries it after this
		// backoff, by when the watcher's first listing has recorded team/old as present at start.
		Threshold: 1, Backoff: 3 * time.Second,
	}))
	robustPush(t, reg.Ref("team/old:1.0"), robustImage(t, "old"))
	dataDir := t.TempDir()
	crowsnest(t, "db", "import", "--data-dir", dataDir, advisoriesDir(t))
	st := robustStore(t, dataDir)
	t.Setenv("CROWSNEST_OCI_WEBHOOK_TOKEN", token)
	w := startWatch(t, "--data-dir", dataDir, "--log-level", "debug", "--registry", fmt.Sprintf("type=oci,registry=%s,port=%d", reg.Addr(), port),
		"--interval", "3600")
	firstListing(t, w)

	want := robustPush(t, reg.Ref("team/new:1.0"), robustImage(t, "new"))
	eventually(t, w, "the notified push", func() bool { return tagDigests(t, st)["team/new:1.0"] == want })
	if !strings.Contains(w.log(), `msg="push received" repository=team/new tag=1.0`) {
		t.Errorf("not indexed through the notification:\n%s", w.log())
	}
	// The registry delivers the push made before the start late; it is not indexed.
	eventually(t, w, "the late notification of team/old", func() bool {
		return strings.Contains(w.log(), `msg="push of a known tag ignored" repository=team/old`)
	})
	if _, ok := tagDigests(t, st)["team/old:1.0"]; ok {
		t.Error("an image present at start was indexed without --all-images")
	}

	body := `{"events":[{"id":"x","action":"push","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + want + `","repository":"team/forged","tag":"1.0"}}]}`
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:"+strconv.Itoa(port)+"/", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/vnd.docker.distribution.events.v1+json")
	req.Header.Set("Authorization", "Bearer not-the-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong token: status %d, want 401", resp.StatusCode)
	}
}

// buildCrowsnest builds cmd/crowsnest into a test directory: the kill -9 test needs a real
// process to kill.
func buildCrowsnest(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "crowsnest")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/crowsnest-dev/crowsnest/cmd/crowsnest").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// lockedBuffer collects a child process's log.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestWatchKill9MidBackfill kills a real watcher process with SIGKILL in the middle of an
// --all-images backfill and starts it again: every image ends indexed exactly once (one images
// row each, each finding "added" once in finding_changes), none is lost.
func TestWatchKill9MidBackfill(t *testing.T) {
	bin := buildCrowsnest(t)
	reg := registryproc.Start(t)
	const n = 20
	want := map[string]string{}
	for i := range n {
		repo := fmt.Sprintf("fleet/svc%02d", i)
		want[repo+":1.0"] = robustPush(t, reg.Ref(repo+":1.0"), robustImage(t, repo))
	}
	dataDir := t.TempDir()
	crowsnest(t, "db", "import", "--data-dir", dataDir, advisoriesDir(t))
	st := robustStore(t, dataDir)

	run := func() (*exec.Cmd, *lockedBuffer) {
		var log lockedBuffer
		cmd := exec.Command(bin, "watch", "--data-dir", dataDir, "--registry", reg.Addr(), "--all-images",
			"--workers", "1", "--interval", "3600")
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
		return cmd, &log
	}
	first, log1 := run()
	deadline := time.Now().Add(60 * time.Second)
	for strings.Count(log1.String(), `msg="image indexed"`) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("no progress:\n%s", log1.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.Wait()
	before := len(tagDigests(t, st))
	t.Logf("killed after %d of %d images", before, n)
	if before == n {
		t.Fatalf("the backfill finished before the kill; nothing was interrupted:\n%s", log1.String())
	}

	_, log2 := run()
	deadline = time.Now().Add(90 * time.Second)
	for len(tagDigests(t, st)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the restarted backfill did not finish: %d of %d\n%s", len(tagDigests(t, st)), n, log2.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The job whose "image indexed" line came last was still running when the process died (its
	// tag not yet pointed, River's completion not yet written); the new run takes it up again.
	if !strings.Contains(log2.String(), "jobs interrupted by a previous run are queued again") {
		t.Errorf("the restarted watcher re-queued no interrupted job:\n%s", log2.String())
	}
	got := tagDigests(t, st)
	for k, d := range want {
		if got[k] != d {
			t.Errorf("%s: indexed %q, want %s", k, got[k], d)
		}
	}
	added := map[string]int{}
	changes, err := st.Changes(context.Background(), 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range changes {
		if c.Kind == vuln.ChangeAdded {
			added[c.ImageDigest+" "+c.Finding.VulnerabilityID]++
		}
	}
	for _, d := range want {
		if k := d + " ALPINE-CVE-2025-26519"; added[k] != 1 {
			t.Errorf("%s: %d added changes, want 1", k, added[k])
		}
	}
	for k, c := range added {
		if c != 1 {
			t.Errorf("%s added %d times", k, c)
		}
	}
	if t.Failed() {
		t.Logf("first run:\n%s\nsecond run:\n%s", log1.String(), log2.String())
	}
}

// artifactoryWatchEnv starts the emulator in front of a registry and sets the watcher's
// Artifactory credentials.
func artifactoryWatchEnv(t *testing.T) (*artifactory.Emulator, remote.Option) {
	reg := registryproc.Start(t)
	emu := artifactory.Start(t, artifactory.Options{Upstream: "http://" + reg.Addr()})
	t.Setenv("CROWSNEST_ARTIFACTORY_API_USER", artifactory.DefaultUser)
	t.Setenv("CROWSNEST_ARTIFACTORY_API_PASSWORD", artifactory.DefaultPassword)
	t.Setenv("CROWSNEST_ARTIFACTORY_WEBHOOK_SECRET", webhookSecret)
	return emu, remote.WithAuth(&authn.Basic{Username: artifactory.DefaultUser, Password: artifactory.DefaultPassword})
}

// TestWatchListingWaitsOutRetryAfter throttles the AQL listing twice and one layer download once
// with 429 and Retry-After: 1: the watcher waits as told (not longer), the listing succeeds and
// the backfill completes.
func TestWatchListingWaitsOutRetryAfter(t *testing.T) {
	emu, auth := artifactoryWatchEnv(t)
	want := map[string]string{}
	for i := range 3 {
		img := fmt.Sprintf("app%d", i)
		want["docker-local/"+img+":1.0"] = robustPush(t, emu.Ref("docker-local", img+":1.0"), robustImage(t, img), auth)
	}
	emu.Inject(artifactory.Fault{Endpoint: "aql", Status: http.StatusTooManyRequests, RetryAfter: "1", Times: 2})
	emu.Inject(artifactory.Fault{Endpoint: "docker.blob", Method: http.MethodGet, Status: http.StatusTooManyRequests, RetryAfter: "1"})
	dataDir := t.TempDir()
	st := robustStore(t, dataDir)
	start := time.Now()
	w := startWatch(t, "--data-dir", dataDir, "--all-images", "--interval", "3600", "--registry",
		fmt.Sprintf("type=artifactory,registry=%s,api=%s/artifactory,repository=docker-local", emu.Addr(), emu.URL()))
	eventually(t, w, "the backfill", func() bool { return len(tagDigests(t, st)) == len(want) })
	if took := time.Since(start); took < 2*time.Second || took > 8*time.Second {
		t.Errorf("backfill done after %s: the Retry-After: 1 answers were not waited out as told", took)
	}
	if c := strings.Count(w.log(), "registry throttled listing"); c != 2 || emu.Count("aql") < 3 {
		t.Errorf("%d throttle waits, %d AQL requests; want 2 and at least 3:\n%s", c, emu.Count("aql"), w.log())
	}
	if !regexp.MustCompile(`msg="registry throttled indexing; waiting" ref=\S+ after=1s`).MatchString(w.log()) {
		t.Errorf("the throttled layer download did not wait its Retry-After:\n%s", w.log())
	}
	got := tagDigests(t, st)
	for k, d := range want {
		if got[k] != d {
			t.Errorf("%s: indexed %q, want %s", k, got[k], d)
		}
	}
}

// TestWatchWebhookBurst sends 1000 signed Artifactory push deliveries (50 concurrent) for 50
// distinct tags (two per image), each delivered 20 times as redelivering senders do: every
// delivery is answered 200 only once its job is committed, every tag is indexed, and every image
// once although two workers may get its two tags at the same time.
func TestWatchWebhookBurst(t *testing.T) {
	emu, auth := artifactoryWatchEnv(t)
	dataDir := t.TempDir()
	st := robustStore(t, dataDir)
	port := freePort(t)
	w := startWatch(t, "--data-dir", dataDir, "--interval", "3600", "--workers", "3", "--registry",
		fmt.Sprintf("type=artifactory,registry=%s,api=%s/artifactory,repository=docker-local,port=%d", emu.Addr(), emu.URL(), port))
	firstListing(t, w)

	const tags, deliveries, concurrency = 50, 1000, 50
	bodies := make([][]byte, tags)
	want := map[string]string{}
	images := map[int]v1.Image{}
	for i := range tags {
		// Tags 1.i and 1.(i+25) of a repository hold the same image, as "1.2" and "latest" do.
		img, tag := fmt.Sprintf("burst%d", i%5), fmt.Sprintf("1.%d", i)
		if images[i%25] == nil {
			images[i%25] = robustImage(t, img+":"+tag)
		}
		d := robustPush(t, emu.Ref("docker-local", img+":"+tag), images[i%25], auth)
		want["docker-local/"+img+":"+tag] = d
		bodies[i] = fmt.Appendf(nil, `{"domain":"docker","event_type":"pushed","data":{"repo_key":"docker-local","path":"%s/%s/manifest.json","name":"manifest.json","sha256":"%s","size":1,"image_name":"%s","tag":"%s"}}`,
			img, tag, strings.TrimPrefix(d, "sha256:"), img, tag)
	}

	statuses := make([]int, deliveries)
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: concurrency}}
	start := time.Now()
	for i := range deliveries {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			body := bodies[i%tags]
			req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:"+strconv.Itoa(port)+"/", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-JFrog-Event-Auth", artifactory.Sign(webhookSecret, body))
			resp, err := client.Do(req)
			if err != nil {
				statuses[i] = -1
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	t.Logf("%d deliveries answered in %s", deliveries, time.Since(start))
	for i, s := range statuses {
		if s != http.StatusOK {
			t.Fatalf("delivery %d answered %d", i, s)
		}
	}

	// Every answered delivery's job is already committed.
	q, err := queue.Open(context.Background(), "sqlite://"+filepath.Join(dataDir, "crowsnest.db"), queue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := q.Jobs(context.Background())
	q.Close()
	if err != nil {
		t.Fatal(err)
	}
	queued := map[string]bool{}
	for _, j := range jobs {
		queued[string(j.EncodedArgs)] = true
	}
	for k := range want {
		repo, tag, _ := strings.Cut(k, ":")
		found := false
		for a := range queued {
			if strings.Contains(a, `"repository":"`+repo+`"`) && strings.Contains(a, `"tag":"`+tag+`"`) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s acknowledged but no job committed", k)
		}
	}

	eventually(t, w, "all 50 tags indexed", func() bool { return len(tagDigests(t, st)) == tags })
	got := tagDigests(t, st)
	for k, d := range want {
		if got[k] != d {
			t.Errorf("%s: indexed %q, want %s", k, got[k], d)
		}
	}
	perDigest := map[string]int{}
	for _, line := range strings.Split(w.log(), "\n") {
		if i := strings.Index(line, `msg="image indexed"`); i >= 0 {
			if j := strings.Index(line, "digest="); j >= 0 {
				perDigest[strings.Fields(line[j:])[0]]++
			}
		}
	}
	for d, c := range perDigest {
		if c != 1 {
			t.Errorf("%s indexed %d times", d, c)
		}
	}
	if len(perDigest) != tags/2 {
		t.Errorf("%d images indexed, want %d", len(perDigest), tags/2)
	}
}
