// Package registryproc runs Debian's CNCF distribution registry (the docker-registry package) as a
// real child process for tests. A real registry is the point: it verifies digests on upload, speaks
// the auth challenge dance, and its own access log tells how many blobs a client really fetched,
// which no client-side counter can prove.
//
// Install the binary with `apt-get install -y docker-registry`. Without it, Start fails the test;
// set CROWSNEST_SKIP_REGISTRY_PROCESS=1 to skip such tests explicitly instead.
package registryproc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// SkipEnv, set to "1", turns a missing registry binary into a skipped test instead of a failure.
const SkipEnv = "CROWSNEST_SKIP_REGISTRY_PROCESS"

// BinaryEnv names an alternative registry binary (default: docker-registry on PATH, then
// /usr/bin/docker-registry).
const BinaryEnv = "CROWSNEST_REGISTRY_BINARY"

// Credentials accepted when WithBasicAuth is used. The bcrypt hash below was generated once for
// this password at cost 4 (the registry checks it on every request, so the minimum cost keeps
// tests fast); no bcrypt implementation is in the module graph to generate one at run time.
const (
	Username = "crowsnest"
	Password = "crowsnest-test-password"

	passwordBcrypt = "$2b$04$tyPvsJmcSCGAwfJNozLrd.a3a8ilUCcHEgh0L39lYNsJAblgZDT1y"
)

// syncPath is requested (and answered 404) to know that every earlier request has reached the
// access log; such requests are hidden from Requests.
const syncPath = "/crowsnest-registryproc-sync/"

// Bounds on what a misbehaving registry may make us hold.
const (
	maxLogLine     = 64 << 10
	maxLogRequests = 1 << 20
	maxStderr      = 1 << 20
)

// Option configures Start.
type Option func(*config)

type config struct {
	htpasswd      string
	notifications []Notification
	extraYAML     []string
	env           []string
	startTimeout  time.Duration
}

// Notification is one entry of the registry's notifications.endpoints list: the registry POSTs
// event envelopes to URL with Headers on every push and pull.
type Notification struct {
	Name    string
	URL     string
	Headers map[string][]string
	// Timeout, Threshold and Backoff default to 2s, 3 and 200ms: short, so tests do not wait.
	Timeout   time.Duration
	Threshold int
	Backoff   time.Duration
}

// WithBasicAuth makes the registry require HTTP basic auth with Username and Password.
func WithBasicAuth() Option {
	return WithHtpasswd(Username + ":" + passwordBcrypt + "\n")
}

// WithHtpasswd makes the registry require basic auth against the given htpasswd file content
// (bcrypt hashes only: the registry accepts nothing else).
func WithHtpasswd(content string) Option {
	return func(c *config) { c.htpasswd = content }
}

// WithNotification adds a notifications endpoint.
func WithNotification(n Notification) Option {
	return func(c *config) { c.notifications = append(c.notifications, n) }
}

// WithExtraYAML appends raw top-level YAML to the configuration (e.g. "proxy:\n  remoteurl: ...").
// It must not repeat a top-level key Start writes itself (version, log, storage, http, auth,
// notifications): the registry rejects duplicate keys.
func WithExtraYAML(yaml string) Option {
	return func(c *config) { c.extraYAML = append(c.extraYAML, yaml) }
}

// WithEnv adds environment variables ("REGISTRY_STORAGE_MAINTENANCE_READONLY=...") to the process;
// the registry reads REGISTRY_* variables as configuration overrides.
func WithEnv(kv ...string) Option {
	return func(c *config) { c.env = append(c.env, kv...) }
}

// WithStartTimeout bounds the wait for /v2/ to answer (default 15s).
func WithStartTimeout(d time.Duration) Option {
	return func(c *config) { c.startTimeout = d }
}

// Request is one line of the registry's access log.
type Request struct {
	Method string
	// Path is the request path without the query string.
	Path   string
	Query  string
	Status int
	// Bytes is the response body size the registry wrote.
	Bytes     int64
	UserAgent string
}

// Registry is a running registry process.
type Registry struct {
	t          testing.TB
	addr       string
	storageDir string
	auth       bool
	cmd        *exec.Cmd
	exited     chan struct{}
	syncN      int

	mu       sync.Mutex
	requests []Request
	syncSeen map[string]bool
	stderr   bytes.Buffer
	changed  chan struct{} // closed and replaced whenever the log advances
}

// Start runs a registry on 127.0.0.1 with a free port and storage in t.TempDir(), waits until
// /v2/ answers, and stops it when the test ends.
func Start(t testing.TB, opts ...Option) *Registry {
	t.Helper()
	c := config{startTimeout: 15 * time.Second}
	for _, o := range opts {
		o(&c)
	}
	bin, err := findBinary()
	if err != nil {
		if os.Getenv(SkipEnv) == "1" {
			t.Skipf("registryproc: %v (skipped because %s=1)", err, SkipEnv)
		}
		t.Fatalf("registryproc: %v: install it with `apt-get install -y docker-registry` "+
			"(or set %s=1 to skip tests that need it)", err, SkipEnv)
	}
	dir := t.TempDir()
	// A free port is found by binding and releasing it; another process may grab it in between,
	// so a start that fails is retried on a new port.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		r, err := start(t, bin, dir, c)
		if err == nil {
			return r
		}
		lastErr = err
	}
	t.Fatalf("registryproc: %v", lastErr)
	return nil
}

func findBinary() (string, error) {
	if p := os.Getenv(BinaryEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("registry binary from %s: %w", BinaryEnv, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("docker-registry"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/bin/docker-registry"); err == nil {
		return "/usr/bin/docker-registry", nil
	}
	return "", errors.New("docker-registry binary not found")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func start(t testing.TB, bin, dir string, c config) (*Registry, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	storage := filepath.Join(dir, "storage")
	if err := os.MkdirAll(storage, 0o755); err != nil {
		return nil, fmt.Errorf("create storage dir: %w", err)
	}
	cfgPath := filepath.Join(dir, "config.yml")
	htpasswdPath := filepath.Join(dir, "htpasswd")
	if c.htpasswd != "" {
		if err := os.WriteFile(htpasswdPath, []byte(c.htpasswd), 0o600); err != nil {
			return nil, fmt.Errorf("write htpasswd: %w", err)
		}
	}
	if err := os.WriteFile(cfgPath, []byte(renderConfig(c, addr, storage, htpasswdPath)), 0o600); err != nil {
		return nil, fmt.Errorf("write registry config: %w", err)
	}

	cmd := exec.Command(bin, "serve", cfgPath)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), c.env...)
	setParentDeathSignal(cmd)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("registry stdout: %w", err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("registry stderr: %w", err)
	}
	r := &Registry{
		t:          t,
		addr:       addr,
		storageDir: storage,
		auth:       c.htpasswd != "",
		cmd:        cmd,
		exited:     make(chan struct{}),
		syncSeen:   map[string]bool{},
		changed:    make(chan struct{}),
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	var readers sync.WaitGroup
	readers.Add(2)
	go func() { defer readers.Done(); r.readAccessLog(stdout) }()
	go func() { defer readers.Done(); r.readStderr(stderr) }()
	go func() {
		readers.Wait() // Wait must not run before the pipes are drained
		_ = cmd.Wait()
		close(r.exited)
	}()

	if err := r.waitReady(c.startTimeout); err != nil {
		r.stop()
		return nil, fmt.Errorf("%w\nregistry stderr:\n%s", err, r.Stderr())
	}
	t.Cleanup(func() {
		r.stop()
		if t.Failed() {
			t.Logf("registryproc %s stderr (tail):\n%s", addr, tail(r.Stderr(), 8<<10))
		}
	})
	return r, nil
}

func renderConfig(c config, addr, storage, htpasswdPath string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version: 0.1\n")
	fmt.Fprintf(&b, "log:\n  level: info\n  accesslog:\n    disabled: false\n")
	fmt.Fprintf(&b, "storage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\n", yamlString(storage))
	fmt.Fprintf(&b, "  maintenance:\n    uploadpurging:\n      enabled: false\n")
	// A fixed secret silences the "generated random secret" warning; it only signs upload state.
	fmt.Fprintf(&b, "http:\n  addr: %s\n  secret: crowsnest-registryproc\n", yamlString(addr))
	if c.htpasswd != "" {
		fmt.Fprintf(&b, "auth:\n  htpasswd:\n    realm: crowsnest-test\n    path: %s\n", yamlString(htpasswdPath))
	}
	if len(c.notifications) > 0 {
		fmt.Fprintf(&b, "notifications:\n  endpoints:\n")
		for i, n := range c.notifications {
			name := n.Name
			if name == "" {
				name = "endpoint" + strconv.Itoa(i)
			}
			timeout, threshold, backoff := n.Timeout, n.Threshold, n.Backoff
			if timeout == 0 {
				timeout = 2 * time.Second
			}
			if threshold == 0 {
				threshold = 3
			}
			if backoff == 0 {
				backoff = 200 * time.Millisecond
			}
			fmt.Fprintf(&b, "    - name: %s\n      url: %s\n      timeout: %s\n      threshold: %d\n      backoff: %s\n",
				yamlString(name), yamlString(n.URL), timeout, threshold, backoff)
			if len(n.Headers) > 0 {
				fmt.Fprintf(&b, "      headers:\n")
				keys := make([]string, 0, len(n.Headers))
				for k := range n.Headers {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				for _, k := range keys {
					fmt.Fprintf(&b, "        %s: [", yamlString(k))
					for j, v := range n.Headers[k] {
						if j > 0 {
							b.WriteString(", ")
						}
						b.WriteString(yamlString(v))
					}
					b.WriteString("]\n")
				}
			}
		}
	}
	for _, y := range c.extraYAML {
		b.WriteString(y)
		if !strings.HasSuffix(y, "\n") {
			b.WriteString("\n")
		}
	}
	return b.String()
}

// yamlString quotes s as a YAML double-quoted scalar; strconv's Go quoting is a subset YAML
// reads the same way for the printable strings used here.
func yamlString(s string) string { return strconv.Quote(s) }

func (r *Registry) waitReady(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-r.exited:
			return fmt.Errorf("registry exited before serving on %s", r.addr)
		default:
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.addr+"/v2/", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || (r.auth && resp.StatusCode == http.StatusUnauthorized) {
				// Readiness probes are not the test's traffic.
				r.Reset()
				return nil
			}
			return fmt.Errorf("registry on %s answered /v2/ with %s", r.addr, resp.Status)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("registry on %s did not answer /v2/ within %s: %w", r.addr, timeout, err)
		case <-r.exited:
			return fmt.Errorf("registry exited before serving on %s", r.addr)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (r *Registry) stop() {
	select {
	case <-r.exited:
		return
	default:
	}
	_ = r.cmd.Process.Signal(os.Interrupt)
	select {
	case <-r.exited:
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
}

// combined log format: 127.0.0.1 - - [date] "GET /v2/ HTTP/1.1" 200 2 "referer" "user agent"
var accessLine = regexp.MustCompile(`^\S+ \S+ \S+ \[[^\]]*\] "(\S+) (\S+) [^"]*" ([1-9]\d\d) (\d+|-)(?: "(?:[^"\\]|\\.)*" "((?:[^"\\]|\\.)*)")?`)

func (r *Registry) readAccessLog(rd io.Reader) {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 0, 4096), maxLogLine)
	for sc.Scan() {
		m := accessLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		req := Request{Method: m[1], Path: m[2], UserAgent: m[5]}
		if i := strings.IndexByte(req.Path, '?'); i >= 0 {
			req.Path, req.Query = req.Path[:i], req.Path[i+1:]
		}
		req.Status, _ = strconv.Atoi(m[3])
		req.Bytes, _ = strconv.ParseInt(m[4], 10, 64)
		r.mu.Lock()
		if strings.HasPrefix(req.Path, syncPath) {
			r.syncSeen[req.Path] = true
		} else if len(r.requests) < maxLogRequests {
			r.requests = append(r.requests, req)
		}
		close(r.changed)
		r.changed = make(chan struct{})
		r.mu.Unlock()
	}
	// Drain whatever remains (an over-long line stops the scanner) so the process never blocks.
	_, _ = io.Copy(io.Discard, rd)
}

func (r *Registry) readStderr(rd io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := rd.Read(buf)
		if n > 0 {
			r.mu.Lock()
			if r.stderr.Len() < maxStderr {
				r.stderr.Write(buf[:n])
			}
			r.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// Addr is "127.0.0.1:PORT".
func (r *Registry) Addr() string { return r.addr }

// PID is the registry process's id (benchmarks read its CPU time).
func (r *Registry) PID() int { return r.cmd.Process.Pid }

// Ref returns "127.0.0.1:PORT/" + repoAndTag.
func (r *Registry) Ref(repoAndTag string) string { return r.addr + "/" + repoAndTag }

// StorageDir is the filesystem storage root (tests may corrupt or delete blobs there).
func (r *Registry) StorageDir() string { return r.storageDir }

// Stderr returns the registry's own log output so far (bounded).
func (r *Registry) Stderr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stderr.String()
}

// sync makes sure every request that completed before the call is in r.requests: it sends a
// marker request and waits for its access-log line. The registry writes a request's log line
// before its response is finished, and log lines are single writes to one pipe, so lines of
// earlier completed requests come before the marker's.
func (r *Registry) sync() {
	r.t.Helper()
	r.mu.Lock()
	r.syncN++
	path := syncPath + strconv.Itoa(r.syncN)
	r.mu.Unlock()

	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + r.addr + path)
	if err != nil {
		r.t.Fatalf("registryproc: sync request: %v", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()

	deadline := time.After(5 * time.Second)
	for {
		r.mu.Lock()
		seen, changed := r.syncSeen[path], r.changed
		if seen {
			delete(r.syncSeen, path)
		}
		r.mu.Unlock()
		if seen {
			return
		}
		select {
		case <-changed:
		case <-r.exited:
			r.t.Fatalf("registryproc: registry exited; stderr:\n%s", tail(r.Stderr(), 8<<10))
		case <-deadline:
			r.t.Fatalf("registryproc: access log line of the sync request never came (is the access log disabled?)")
		}
	}
}

// Requests returns every request the registry logged since start (or the last Reset), in log
// order. Requests made by Start itself are not included.
func (r *Registry) Requests() []Request {
	r.t.Helper()
	r.sync()
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.requests...)
}

// Reset forgets the requests logged so far.
func (r *Registry) Reset() {
	r.t.Helper()
	r.sync()
	r.mu.Lock()
	r.requests = nil
	r.mu.Unlock()
}

// Count returns how many logged requests have the method and a path of the given kind
// ("blobs", "manifests", "tags", "uploads" as in /v2/<repo>/blobs/uploads/) for repo. Only
// successful (2xx/3xx) requests count unless anyStatus is set.
func (r *Registry) Count(method, repo, kind string, anyStatus bool) int {
	r.t.Helper()
	n := 0
	for _, req := range r.Requests() {
		if req.Method != method || (!anyStatus && req.Status >= 400) {
			continue
		}
		if k, rp, _ := SplitPath(req.Path); rp == repo && k == kind {
			n++
		}
	}
	return n
}

// CountBlobGETs counts successful GET /v2/<repo>/blobs/<digest> requests: blob downloads.
func (r *Registry) CountBlobGETs(repo string) int {
	r.t.Helper()
	return r.Count(http.MethodGet, repo, "blobs", false)
}

// CountBlobHEADs counts HEAD /v2/<repo>/blobs/<digest> requests, whatever their status (a
// pusher's existence checks answer 404).
func (r *Registry) CountBlobHEADs(repo string) int {
	r.t.Helper()
	return r.Count(http.MethodHead, repo, "blobs", true)
}

// CountManifestGETs counts successful GET /v2/<repo>/manifests/<ref> requests.
func (r *Registry) CountManifestGETs(repo string) int {
	r.t.Helper()
	return r.Count(http.MethodGet, repo, "manifests", false)
}

// BlobGETs returns the digests of successful blob downloads from repo, in order (with repeats).
func (r *Registry) BlobGETs(repo string) []string {
	r.t.Helper()
	var out []string
	for _, req := range r.Requests() {
		if req.Method != http.MethodGet || req.Status >= 400 {
			continue
		}
		if k, rp, ref := SplitPath(req.Path); rp == repo && k == "blobs" {
			out = append(out, ref)
		}
	}
	return out
}

// SplitPath splits a registry API path into its kind ("blobs", "manifests", "tags", "uploads",
// "referrers"), repository and the rest (digest, tag or upload id). "/v2/" gives kind "base".
// Unknown paths give kind "".
func SplitPath(p string) (kind, repo, ref string) {
	if p == "/v2/" || p == "/v2" {
		return "base", "", ""
	}
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return "", "", ""
	}
	if r, ok := strings.CutSuffix(rest, "/tags/list"); ok {
		return "tags", r, ""
	}
	if i := strings.LastIndex(rest, "/blobs/uploads"); i >= 0 {
		return "uploads", rest[:i], strings.TrimPrefix(rest[i+len("/blobs/uploads"):], "/")
	}
	for _, k := range []string{"blobs", "manifests", "referrers"} {
		if i := strings.LastIndex(rest, "/"+k+"/"); i >= 0 {
			return k, rest[:i], rest[i+len(k)+2:]
		}
	}
	return "", "", ""
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
