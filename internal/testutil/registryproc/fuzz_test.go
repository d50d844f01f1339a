package registryproc

import (
	"strings"
	"testing"
)

// FuzzAccessLog feeds arbitrary access-log output to the parser: it must not panic, and every
// request it keeps must have come from a line with its method and a three-digit status.
func FuzzAccessLog(f *testing.F) {
	f.Add(`127.0.0.1 - - [27/Nov/2026:11:13:14 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "curl/7.88.1"`)
	f.Add(`127.0.0.1 - u [27/Nov/2026:11:13:14 +0000] "HEAD /v2/a/b/blobs/sha256:00?q HTTP/1.1" 404 - "" "x\"y"`)
	f.Add(`127.0.0.1 - - [x] "GET /crowsnest-registryproc-sync/1 HTTP/1.1" 404 19`)
	f.Add("\x00\n\n[[[\"")
	f.Fuzz(func(t *testing.T, log string) {
		r := &Registry{syncSeen: map[string]bool{}, changed: make(chan struct{})}
		r.readAccessLog(strings.NewReader(log))
		for _, req := range r.requests {
			if req.Status < 100 || req.Status > 999 || !strings.Contains(log, req.Method) {
				t.Fatalf("bad request %+v from %q", req, log)
			}
			SplitPath(req.Path)
		}
	})
}

// FuzzSplitPath checks that the parts SplitPath returns are pieces of the path.
func FuzzSplitPath(f *testing.F) {
	for _, s := range []string{"/v2/", "/v2/a/blobs/sha256:0", "/v2/a/blobs/uploads/x", "/v2/x/tags/list", "/v2//manifests/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		kind, repo, ref := SplitPath(p)
		if kind == "" && (repo != "" || ref != "") {
			t.Fatalf("unknown kind with parts %q %q", repo, ref)
		}
		if !strings.Contains(p, repo) || !strings.Contains(p, ref) {
			t.Fatalf("SplitPath(%q) = %q %q %q", p, kind, repo, ref)
		}
	})
}
