package artifactory

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Repository is one configured repository.
type Repository struct {
	Key string
	// Type is local, remote, virtual or federated (lower case, as in the ?type= filter).
	Type string
	// PackageType is docker, oci, generic, maven, ... (lower case, as in the repo config).
	PackageType string
	Description string
	// URL is a remote repository's upstream URL.
	URL string
	// Repositories are a virtual repository's members, in resolution order.
	Repositories []string
	// DefaultDeploymentRepo is where pushes to a virtual repository land.
	DefaultDeploymentRepo string
	ProjectKey            string
}

// User is an account. Tokens and API keys are issued with Emulator.IssueAccessToken and friends.
type User struct {
	Name     string
	Password string
	Admin    bool
	// Repos limits the repositories the user may read and write; nil means all.
	Repos []string
}

// Quirks switch on documented Artifactory misbehaviour (spec §3.3, §5.2).
type Quirks struct {
	// RTFACT18971 drops the repository key from the Link header of catalog and tags pages.
	RTFACT18971 bool
	// NumericLast makes `last` a numeric cursor (the count already returned), as seen on 7.46.11.
	NumericLast bool
	// FullImageName puts the full image path in a webhook's image_name (the docs example)
	// instead of the last path segment (every real capture).
	FullImageName bool
	// NoImageType omits data.image_type (older versions and the docs examples).
	NoImageType bool
	// DataEventType adds event_type inside data, as the docs' docker example prints it.
	DataEventType bool
}

// WebhookOptions tune delivery. Zero values take the emulator defaults of spec §5.4 [I]:
// 3 attempts with 5s then 30s between them, 10s per attempt, 4 concurrent deliveries.
type WebhookOptions struct {
	Attempts int
	Backoff  []time.Duration
	Timeout  time.Duration
	Workers  int
	// StrictURLPolicy refuses loopback and private targets like a default self-hosted install.
	StrictURLPolicy bool
}

// Options configure the emulator.
type Options struct {
	// Upstream is the base URL of the real registry the Docker API is proxied to,
	// e.g. "http://127.0.0.1:5000". Image <repoKey>/<image> of the emulator is <repoKey>/<image>
	// upstream (a remote repository's content lives under <key>-cache/<image>).
	Upstream                       string
	UpstreamUser, UpstreamPassword string

	// Repositories default to DefaultRepositories().
	Repositories []Repository
	// Users default to a single admin, DefaultUser / DefaultPassword.
	Users []User
	// AllowAnonymous lets requests without credentials read, as user "anonymous".
	AllowAnonymous bool
	// EnableAPIKeys accepts legacy API keys (off by default: deprecated, spec §1.1).
	EnableAPIKeys bool

	// Cloud makes the emulator behave like JFrog Cloud: no reverse-proxy API, jpd_origin always.
	Cloud bool
	// Hostname is the registry host name used for subdomain routing: <repo>.<Hostname> and, with
	// Hostname "<server>.<domain>", <server>-<repo>.<domain>. Default "rt.crowsnest.test".
	Hostname string
	// BaseURL is the Custom Base URL; when set (or on Cloud) webhooks carry jpd_origin.
	BaseURL string
	// ReverseProxyMethod reported by /api/system/configuration/webServer (default REPOPATHPREFIX).
	ReverseProxyMethod string
	// Version is the Artifactory version reported (default "7.104.2").
	Version string
	Quirks  Quirks
	Webhook WebhookOptions
	// AQLMaxLimit trims AQL results (artifactory.aql.search.query.max.limit); 0 = no limit.
	AQLMaxLimit int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logf receives diagnostics (default: none; Start uses t.Logf).
	Logf func(format string, args ...any)
}

// Default credentials when Options.Users is empty.
const (
	DefaultUser     = "admin"
	DefaultPassword = "password"
)

// DefaultRepositories is a local, remote and virtual Docker repository, an OCI repository and a
// generic one (spec §8 item 3).
func DefaultRepositories() []Repository {
	return []Repository{
		{Key: "docker-local", Type: "local", PackageType: "docker", Description: "Local Docker images"},
		{Key: "docker-remote", Type: "remote", PackageType: "docker", URL: "https://registry-1.docker.io/"},
		{Key: "docker", Type: "virtual", PackageType: "docker", Repositories: []string{"docker-local", "docker-remote"}, DefaultDeploymentRepo: "docker-local"},
		{Key: "oci-local", Type: "local", PackageType: "oci"},
		{Key: "generic-local", Type: "local", PackageType: "generic"},
	}
}

// Emulator is an Artifactory emulator. It is an http.Handler; Start serves it on 127.0.0.1.
type Emulator struct {
	opts      Options
	upstream  *url.URL
	client    *http.Client
	repos     map[string]*Repository
	order     []string
	serviceID string

	mu        sync.Mutex
	users     map[string]*User
	tokens    map[string]tokenInfo // access, reference and docker tokens
	apiKeys   map[string]string    // key -> user
	stores    map[string]*repoStore
	deleted   map[string]bool // "<repo>/<image>:<tag>" removed through the emulator
	gen       uint64          // bumped on every store change (AQL cache key)
	aqlCache  *aqlCacheEntry
	counts    map[string]int
	faults    []*Fault
	subs      map[string]*Subscription
	subOrder  []string
	ports     map[string]*http.Server
	portAddrs map[string]string

	hooks *deliverer

	server *httptest.Server
}

type tokenInfo struct {
	user    string
	kind    string // "access", "reference", "docker"
	expires time.Time
}

// New builds an emulator. Call Close when done (Start does it for you).
func New(opts Options) (*Emulator, error) {
	if opts.Hostname == "" {
		opts.Hostname = "rt.crowsnest.test"
	}
	if opts.ReverseProxyMethod == "" {
		opts.ReverseProxyMethod = "REPOPATHPREFIX"
	}
	if opts.Version == "" {
		opts.Version = "7.104.2"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.Repositories == nil {
		opts.Repositories = DefaultRepositories()
	}
	if opts.Users == nil {
		opts.Users = []User{{Name: DefaultUser, Password: DefaultPassword, Admin: true}}
	}
	e := &Emulator{
		opts:      opts,
		client:    &http.Client{Transport: upstreamTransport(), CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		repos:     map[string]*Repository{},
		users:     map[string]*User{},
		tokens:    map[string]tokenInfo{},
		apiKeys:   map[string]string{},
		stores:    map[string]*repoStore{},
		deleted:   map[string]bool{},
		counts:    map[string]int{},
		subs:      map[string]*Subscription{},
		ports:     map[string]*http.Server{},
		portAddrs: map[string]string{},
		serviceID: newULID(),
	}
	if opts.Upstream != "" {
		u, err := url.Parse(opts.Upstream)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("artifactory emulator: upstream %q: not an absolute URL", opts.Upstream)
		}
		e.upstream = u
	}
	for i := range opts.Repositories {
		r := opts.Repositories[i]
		r.Type = strings.ToLower(r.Type)
		r.PackageType = strings.ToLower(r.PackageType)
		if r.Key == "" || strings.ContainsAny(r.Key, "/ ") {
			return nil, fmt.Errorf("artifactory emulator: repository key %q", r.Key)
		}
		if _, dup := e.repos[r.Key]; dup {
			return nil, fmt.Errorf("artifactory emulator: duplicate repository %q", r.Key)
		}
		switch r.Type {
		case "local", "remote", "virtual", "federated":
		default:
			return nil, fmt.Errorf("artifactory emulator: repository %q: type %q", r.Key, r.Type)
		}
		e.repos[r.Key] = &r
		e.order = append(e.order, r.Key)
	}
	for _, r := range e.repos {
		for _, m := range r.Repositories {
			if _, ok := e.repos[m]; !ok {
				return nil, fmt.Errorf("artifactory emulator: virtual %q: unknown member %q", r.Key, m)
			}
		}
	}
	for i := range opts.Users {
		u := opts.Users[i]
		e.users[u.Name] = &u
	}
	e.hooks = newDeliverer(e, opts.Webhook)
	return e, nil
}

// Start serves a new emulator on 127.0.0.1 for the duration of the test.
func Start(t testing.TB, opts Options) *Emulator {
	t.Helper()
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	e, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.server = httptest.NewServer(e)
	t.Cleanup(e.Close)
	return e
}

// Close stops the servers Start and ServeRepoPort opened and the webhook workers.
func (e *Emulator) Close() {
	if e.server != nil {
		e.server.Close()
	}
	e.mu.Lock()
	ports := e.ports
	e.ports = map[string]*http.Server{}
	e.mu.Unlock()
	for _, s := range ports {
		_ = s.Close()
	}
	e.hooks.close()
}

// URL is the platform base URL ("http://127.0.0.1:port"); the REST API is URL()+"/artifactory".
func (e *Emulator) URL() string {
	if e.server == nil {
		return ""
	}
	return e.server.URL
}

// Addr is the registry host for the repository-path method ("127.0.0.1:port").
func (e *Emulator) Addr() string { return strings.TrimPrefix(e.URL(), "http://") }

// Ref is the repository-path image reference "<addr>/<repoKey>/<image>:<tag>".
func (e *Emulator) Ref(repoKey, imageAndTag string) string {
	return e.Addr() + "/" + repoKey + "/" + imageAndTag
}

// SubdomainHost is "<repo>.<Hostname>:<port>"; reach it through Transport.
func (e *Emulator) SubdomainHost(repoKey string) string {
	return repoKey + "." + e.opts.Hostname + ":" + e.port()
}

// CloudSubdomainHost is JFrog Cloud's "<server>-<repo>.<domain>:<port>" form, with Hostname
// "<server>.<domain>".
func (e *Emulator) CloudSubdomainHost(repoKey string) string {
	server, domain, _ := strings.Cut(e.opts.Hostname, ".")
	return server + "-" + repoKey + "." + domain + ":" + e.port()
}

func (e *Emulator) port() string {
	_, p, _ := net.SplitHostPort(e.Addr())
	return p
}

// upstreamTransport keeps connections to the upstream registry open for every concurrent request,
// as Artifactory's connection pool does: http.DefaultTransport keeps two idle connections per
// host, so a burst opened (and the registry accepted) a new connection for most requests.
func upstreamTransport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return tr
}

// Transport dials the emulator for every host name under Hostname (and for its own address), so
// subdomain references work without DNS. Other hosts are dialled normally.
func (e *Emulator) Transport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	var d net.Dialer
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err == nil && port == e.port() && e.hostIsOurs(host) {
			addr = e.Addr()
		}
		return d.DialContext(ctx, network, addr)
	}
	return tr
}

func (e *Emulator) hostIsOurs(host string) bool {
	if host == e.opts.Hostname || strings.HasSuffix(host, "."+e.opts.Hostname) {
		return true
	}
	_, domain, _ := strings.Cut(e.opts.Hostname, ".")
	return domain != "" && strings.HasSuffix(host, "."+domain)
}

// ServeRepoPort opens a listener on 127.0.0.1 that serves repoKey's Docker API at /v2/ (the
// "port per repo" method) and returns its address.
func (e *Emulator) ServeRepoPort(repoKey string) (string, error) {
	if _, ok := e.repos[repoKey]; !ok {
		return "", fmt.Errorf("artifactory emulator: no repository %q", repoKey)
	}
	e.mu.Lock()
	if a, ok := e.portAddrs[repoKey]; ok {
		e.mu.Unlock()
		return a, nil
	}
	e.mu.Unlock()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("artifactory emulator: port for %s: %w", repoKey, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.serve(w, r, repoKey)
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	e.mu.Lock()
	e.ports[repoKey] = srv
	e.portAddrs[repoKey] = ln.Addr().String()
	e.mu.Unlock()
	return ln.Addr().String(), nil
}

// ServeHTTP routes one request.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) { e.serve(w, r, "") }

func (e *Emulator) serve(w http.ResponseWriter, r *http.Request, portRepo string) {
	p := r.URL.Path
	// Which repository the host names, for the subdomain and port methods.
	hostRepo := portRepo
	if hostRepo == "" {
		hostRepo = e.subdomainRepo(r.Host)
	}
	endpoint := e.endpointOf(r.Method, p, hostRepo != "")
	e.mu.Lock()
	e.counts[endpoint]++
	f := e.takeFault(endpoint, r)
	e.mu.Unlock()
	if f != nil {
		if f.Delay > 0 {
			select {
			case <-time.After(f.Delay):
			case <-r.Context().Done():
				return
			}
		}
		if f.Status != 0 {
			if f.RetryAfter != "" {
				w.Header().Set("Retry-After", f.RetryAfter)
			}
			if strings.HasPrefix(endpoint, "docker.") && endpoint != "docker.token" {
				writeDockerError(w, f.Status, faultCode(f.Status), http.StatusText(f.Status))
			} else {
				writeRESTError(w, f.Status, http.StatusText(f.Status))
			}
			return
		}
		if f.TruncateAfter > 0 {
			tw := &truncWriter{ResponseWriter: w, left: f.TruncateAfter}
			defer func() {
				if tw.cut {
					panic(http.ErrAbortHandler)
				}
			}()
			w = tw
		}
	}
	w.Header().Set("X-JFrog-Version", "Artifactory/"+e.opts.Version+" "+revision(e.opts.Version))
	w.Header().Set("X-Artifactory-Id", e.serviceID)
	w.Header().Set("X-Artifactory-Node-Id", "crowsnest-emulator")

	switch {
	case hostRepo != "":
		if rest, ok := strings.CutPrefix(p, "/v2"); ok && (rest == "" || rest[0] == '/') {
			e.serveDocker(w, r, hostRepo, strings.TrimPrefix(rest, "/"), dockerHostForm)
			return
		}
	}
	switch {
	case p == "/v2" || strings.HasPrefix(p, "/v2/"):
		e.serveDocker(w, r, "", strings.TrimPrefix(strings.TrimPrefix(p, "/v2"), "/"), dockerPathForm)
	case strings.HasPrefix(p, "/artifactory/api/docker/"):
		rest := strings.TrimPrefix(p, "/artifactory/api/docker/")
		key, sub, _ := strings.Cut(rest, "/")
		if _, ok := e.repos[key]; !ok || (sub != "v2" && !strings.HasPrefix(sub, "v2/")) {
			// the message quotes the segment taken as the repository key (spec §3.3)
			writeRESTError(w, http.StatusBadRequest, "Unsupported docker repository request for '"+key+"'")
			return
		}
		e.serveDocker(w, r, key, strings.TrimPrefix(strings.TrimPrefix(sub, "v2"), "/"), dockerRESTForm)
	case strings.HasPrefix(p, "/artifactory/api/"):
		e.serveREST(w, r, strings.TrimPrefix(p, "/artifactory/api/"))
	case strings.HasPrefix(p, "/event/api/v1/subscriptions"):
		e.serveSubscriptions(w, r, strings.TrimPrefix(strings.TrimPrefix(p, "/event/api/v1/subscriptions"), "/"))
	case strings.HasPrefix(p, "/artifactory/"):
		e.serveArtifact(w, r, strings.TrimPrefix(p, "/artifactory/"))
	default:
		writeRESTError(w, http.StatusNotFound, "Not Found")
	}
}

func revision(version string) string {
	// Artifactory prints a build revision after the version, e.g. "7.46.11 74611900".
	return strings.ReplaceAll(version, ".", "") + "900"
}

// subdomainRepo maps a Host header to a repository for the subdomain method.
func (e *Emulator) subdomainRepo(hostport string) string {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if k, ok := strings.CutSuffix(host, "."+e.opts.Hostname); ok {
		if _, known := e.repos[k]; known {
			return k
		}
	}
	server, domain, ok := strings.Cut(e.opts.Hostname, ".")
	if ok {
		if rest, ok := strings.CutSuffix(host, "."+domain); ok {
			if k, ok := strings.CutPrefix(rest, server+"-"); ok {
				if _, known := e.repos[k]; known {
					return k
				}
			}
		}
	}
	return ""
}

// endpointOf names the endpoint a request hits, for counters and faults.
func (e *Emulator) endpointOf(method, p string, hostRepo bool) string {
	dockerKind := func(rest string) string {
		switch {
		case rest == "" || rest == "/":
			return "docker.ping"
		case rest == "token" || strings.HasSuffix(rest, "/token") && !strings.Contains(rest, "/blobs/"):
			return "docker.token"
		case rest == "_catalog":
			return "docker.catalog"
		case strings.HasSuffix(rest, "/tags/list"):
			return "docker.tags"
		case strings.Contains(rest, "/manifests/"):
			return "docker.manifest"
		case strings.Contains(rest, "/blobs/uploads"):
			return "docker.upload"
		case strings.Contains(rest, "/blobs/"):
			return "docker.blob"
		case rest == "promote":
			return "docker.promote"
		}
		return "docker.other"
	}
	switch {
	case strings.HasPrefix(p, "/v2"):
		return dockerKind(strings.TrimPrefix(strings.TrimPrefix(p, "/v2"), "/"))
	case hostRepo:
		return "other"
	case strings.HasPrefix(p, "/artifactory/api/docker/"):
		rest := strings.TrimPrefix(p, "/artifactory/api/docker/")
		_, sub, _ := strings.Cut(rest, "/")
		return dockerKind(strings.TrimPrefix(strings.TrimPrefix(sub, "v2"), "/"))
	case strings.HasPrefix(p, "/artifactory/api/"):
		rest := strings.TrimPrefix(p, "/artifactory/api/")
		switch {
		case rest == "system/ping":
			return "system.ping"
		case rest == "system/version":
			return "system.version"
		case rest == "system/configuration/webServer":
			return "system.webServer"
		case rest == "repositories":
			return "repositories.list"
		case strings.HasPrefix(rest, "repositories/"):
			return "repositories.get"
		case rest == "search/aql":
			return "aql"
		case strings.HasPrefix(rest, "storage/"):
			return "storage"
		}
		return "rest.other"
	case strings.HasPrefix(p, "/event/api/v1/subscriptions"):
		if strings.HasSuffix(p, "/test") && method == http.MethodPost {
			return "event.test"
		}
		return "event.subscriptions"
	case strings.HasPrefix(p, "/artifactory/"):
		return "artifact"
	}
	return "other"
}

// Count is how many requests hit endpoint ("aql", "docker.tags", "repositories.list", ... see
// the package doc) since the start or the last ResetCounts.
func (e *Emulator) Count(endpoint string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.counts[endpoint]
}

// Counts returns a copy of every endpoint counter.
func (e *Emulator) Counts() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int, len(e.counts))
	for k, v := range e.counts {
		out[k] = v
	}
	return out
}

// ResetCounts zeroes the counters.
func (e *Emulator) ResetCounts() {
	e.mu.Lock()
	e.counts = map[string]int{}
	e.mu.Unlock()
}

// Fault makes matching requests misbehave.
type Fault struct {
	// Endpoint matches the endpoint name (see Count); empty matches any.
	Endpoint string
	// PathPrefix matches the request path; empty matches any.
	PathPrefix string
	// Method matches the HTTP method; empty matches any.
	Method string
	// Times is how many matching requests are affected; 0 means 1, negative means forever.
	Times int
	// Status, when set, is answered instead of the real response (429, 500, 502, 503...).
	Status int
	// RetryAfter is sent with Status (default "1" for 429 and 503).
	RetryAfter string
	// Delay slows the response down before anything else happens.
	Delay time.Duration
	// TruncateAfter cuts the response body after that many bytes and drops the connection.
	TruncateAfter int64
}

// Inject adds a fault. Faults apply in the order added; a request takes at most one.
func (e *Emulator) Inject(f Fault) {
	if f.Times == 0 {
		f.Times = 1
	}
	if f.RetryAfter == "" && (f.Status == http.StatusTooManyRequests || f.Status == http.StatusServiceUnavailable) {
		f.RetryAfter = "1"
	}
	e.mu.Lock()
	e.faults = append(e.faults, &f)
	e.mu.Unlock()
}

// FailNext makes the next n requests of endpoint answer status.
func (e *Emulator) FailNext(endpoint string, n, status int) {
	e.Inject(Fault{Endpoint: endpoint, Times: n, Status: status})
}

// ClearFaults removes every pending fault.
func (e *Emulator) ClearFaults() {
	e.mu.Lock()
	e.faults = nil
	e.mu.Unlock()
}

func (e *Emulator) takeFault(endpoint string, r *http.Request) *Fault {
	for i, f := range e.faults {
		if (f.Endpoint == "" || f.Endpoint == endpoint) && (f.Method == "" || f.Method == r.Method) &&
			(f.PathPrefix == "" || strings.HasPrefix(r.URL.Path, f.PathPrefix)) {
			c := *f
			if f.Times > 0 {
				f.Times--
				if f.Times == 0 {
					e.faults = append(e.faults[:i:i], e.faults[i+1:]...)
				}
			}
			return &c
		}
	}
	return nil
}

func faultCode(status int) string {
	switch status {
	case http.StatusTooManyRequests:
		return "TOOMANYREQUESTS"
	case http.StatusUnauthorized:
		return "UNAUTHORIZED"
	case http.StatusNotFound:
		return "NOT_FOUND"
	}
	return "UNKNOWN"
}

type truncWriter struct {
	http.ResponseWriter
	left int64
	cut  bool
}

func (t *truncWriter) Write(b []byte) (int, error) {
	if t.cut {
		return 0, errors.New("truncated")
	}
	if int64(len(b)) > t.left {
		n, _ := t.ResponseWriter.Write(b[:t.left])
		t.left = 0
		t.cut = true
		if f, ok := t.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		return n, errors.New("truncated")
	}
	t.left -= int64(len(b))
	return t.ResponseWriter.Write(b)
}

// newULID returns a lower-case 26-character Crockford base32 id, the shape of Artifactory's
// service id in webhook "source" values.
func newULID() string {
	const alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
	b := make([]byte, 26)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%32]
	}
	b[0] = '0'
	return string(b)
}

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
