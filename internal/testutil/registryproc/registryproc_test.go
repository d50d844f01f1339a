package registryproc

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

func TestPushPullCountsBlobGETsFromAccessLog(t *testing.T) {
	reg := Start(t)
	img, err := random.Image(1024, 3)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(reg.Ref("test/app:v1"), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push: %v", err)
	}
	if n := reg.CountBlobHEADs("test/app"); n == 0 {
		t.Errorf("push made no blob HEAD requests; requests: %+v", reg.Requests())
	}
	if n := reg.Count(http.MethodPut, "test/app", "manifests", false); n != 1 {
		t.Errorf("manifest PUTs = %d, want 1", n)
	}

	reg.Reset()
	if got := reg.Requests(); len(got) != 0 {
		t.Fatalf("after Reset: %d requests logged: %+v", len(got), got)
	}

	pulled, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	if _, err := pulled.ConfigFile(); err != nil {
		t.Fatal(err)
	}
	layers, err := pulled.Layers()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		want[d.String()] = true
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	cfgDigest, err := pulled.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	want[cfgDigest.String()] = true

	if got := reg.CountBlobGETs("test/app"); got != 4 {
		t.Errorf("CountBlobGETs = %d, want 4 (3 layers + config); requests: %+v", got, reg.Requests())
	}
	if got := reg.CountBlobGETs("other/repo"); got != 0 {
		t.Errorf("CountBlobGETs(other/repo) = %d, want 0", got)
	}
	got := map[string]bool{}
	for _, d := range reg.BlobGETs("test/app") {
		if got[d] {
			t.Errorf("blob %s fetched twice", d)
		}
		got[d] = true
	}
	for d := range want {
		if !got[d] {
			t.Errorf("blob %s was read by the client but is not in the registry log", d)
		}
	}
	if n := reg.CountManifestGETs("test/app"); n != 1 {
		t.Errorf("CountManifestGETs = %d, want 1", n)
	}

	// Reading the same layer again re-downloads it: the count follows real traffic.
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if got := reg.CountBlobGETs("test/app"); got != 5 {
		t.Errorf("after a second read of one layer CountBlobGETs = %d, want 5", got)
	}
}

func TestBasicAuth(t *testing.T) {
	reg := Start(t, WithBasicAuth())
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(reg.Ref("private/app:v1"), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	err = remote.Write(ref, img)
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous push: err = %v, want 401", err)
	}
	err = remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: Username, Password: "wrong"}))
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized {
		t.Fatalf("push with a wrong password: err = %v, want 401", err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: Username, Password: Password})); err != nil {
		t.Fatalf("authenticated push: %v", err)
	}
	var unauthorized int
	for _, r := range reg.Requests() {
		if r.Status == http.StatusUnauthorized {
			unauthorized++
		}
	}
	if unauthorized == 0 {
		t.Errorf("no 401 in the access log")
	}
}

type event struct {
	Action string `json:"action"`
	Target struct {
		Repository string `json:"repository"`
		MediaType  string `json:"mediaType"`
	} `json:"target"`
}

func TestNotifications(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  func(url string) Option
	}{
		{"option", func(url string) Option {
			return WithNotification(Notification{URL: url, Headers: map[string][]string{"X-Crowsnest-Test": {"secret-1"}}})
		}},
		{"raw yaml", func(url string) Option {
			return WithExtraYAML(fmt.Sprintf("notifications:\n  endpoints:\n    - name: raw\n      url: %q\n"+
				"      headers:\n        X-Crowsnest-Test: [secret-1]\n      timeout: 1s\n      threshold: 3\n      backoff: 100ms\n", url))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			events := make(chan event, 100)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("X-Crowsnest-Test") != "secret-1" {
					t.Errorf("notification without the configured header: %v", r.Header)
				}
				var env struct {
					Events []event `json:"events"`
				}
				if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&env); err != nil {
					t.Errorf("decode envelope: %v", err)
				}
				for _, e := range env.Events {
					select {
					case events <- e:
					default:
					}
				}
			}))
			defer srv.Close()

			reg := Start(t, tc.opt(srv.URL))
			img, err := random.Image(256, 1)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := name.ParseReference(reg.Ref("watched/app:v1"), name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			if err := remote.Write(ref, img); err != nil {
				t.Fatal(err)
			}
			timeout := time.After(15 * time.Second)
			for {
				select {
				case e := <-events:
					if e.Action == "push" && e.Target.Repository == "watched/app" && strings.Contains(e.Target.MediaType, "manifest") {
						return
					}
				case <-timeout:
					t.Fatal("no manifest push event arrived")
				}
			}
		})
	}
}

func TestSplitPath(t *testing.T) {
	for _, tc := range []struct{ path, kind, repo, ref string }{
		{"/v2/", "base", "", ""},
		{"/v2/a/b/blobs/sha256:abc", "blobs", "a/b", "sha256:abc"},
		{"/v2/blobs/blobs/sha256:abc", "blobs", "blobs", "sha256:abc"},
		{"/v2/app/manifests/v1", "manifests", "app", "v1"},
		{"/v2/app/blobs/uploads/", "uploads", "app", ""},
		{"/v2/app/blobs/uploads/123-abc", "uploads", "app", "123-abc"},
		{"/v2/x/y/z/tags/list", "tags", "x/y/z", ""},
		{"/v2/app/referrers/sha256:abc", "referrers", "app", "sha256:abc"},
		{"/other", "", "", ""},
	} {
		k, r, ref := SplitPath(tc.path)
		if k != tc.kind || r != tc.repo || ref != tc.ref {
			t.Errorf("SplitPath(%q) = %q %q %q, want %q %q %q", tc.path, k, r, ref, tc.kind, tc.repo, tc.ref)
		}
	}
}

func TestAccessLogParsing(t *testing.T) {
	for _, tc := range []struct {
		line string
		want Request
	}{
		{`127.0.0.1 - - [27/Nov/2026:11:13:14 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "curl/7.88.1"`,
			Request{Method: "GET", Path: "/v2/", Status: 200, Bytes: 2, UserAgent: "curl/7.88.1"}},
		{`127.0.0.1 - crowsnest [27/Nov/2026:11:13:14 +0000] "HEAD /v2/a/blobs/sha256:00?x=1 HTTP/1.1" 404 157 "" "go \"ua\""`,
			Request{Method: "HEAD", Path: "/v2/a/blobs/sha256:00", Query: "x=1", Status: 404, Bytes: 157, UserAgent: `go \"ua\"`}},
	} {
		r := &Registry{syncSeen: map[string]bool{}, changed: make(chan struct{})}
		r.readAccessLog(strings.NewReader(tc.line + "\nnot an access log line\n"))
		if len(r.requests) != 1 || r.requests[0] != tc.want {
			t.Errorf("parse %q = %+v, want %+v", tc.line, r.requests, tc.want)
		}
	}
}

// fakeTB records Fatalf/Skipf instead of ending the goroutine, to test Start's failure mode.
type fakeTB struct {
	testing.TB
	fatal, skip string
}

type stop struct{}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	panic(stop{})
}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skip = fmt.Sprintf(format, args...)
	panic(stop{})
}

func runStart(tb *fakeTB) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(stop); !ok {
				panic(r)
			}
		}
	}()
	Start(tb)
}

func TestMissingBinaryFailsUnlessSkipIsExplicit(t *testing.T) {
	t.Setenv(BinaryEnv, "/nonexistent/docker-registry")
	t.Setenv(SkipEnv, "")
	tb := &fakeTB{TB: t}
	runStart(tb)
	if !strings.Contains(tb.fatal, "apt-get install -y docker-registry") || tb.skip != "" {
		t.Errorf("without %s: fatal=%q skip=%q, want a failure telling how to install", SkipEnv, tb.fatal, tb.skip)
	}

	t.Setenv(SkipEnv, "1")
	tb = &fakeTB{TB: t}
	runStart(tb)
	if tb.skip == "" || tb.fatal != "" {
		t.Errorf("with %s=1: fatal=%q skip=%q, want a skip", SkipEnv, tb.fatal, tb.skip)
	}
}
