package image

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	lru "github.com/hashicorp/golang-lru/v2"
)

// registryBackend reads one repository of a registry. Manifests go through ggcr's remote package;
// blobs are fetched with the same authenticated transport but hashed only once, by our verifier
// (remote's Compressed() would hash them too).
type registryBackend struct {
	repo  name.Repository
	opts  Options
	cache blobCache

	mu sync.Mutex
	rt http.RoundTripper // authenticated; built on first use so cache hits cost no request
}

func newRegistryBackend(repo name.Repository, opts Options) *registryBackend {
	return &registryBackend{repo: repo, opts: opts, cache: blobCache{dir: opts.CacheDir}}
}

func (r *registryBackend) transport(ctx context.Context) (http.RoundTripper, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rt != nil {
		return r.rt, nil
	}
	if rt, ok := r.opts.Transports.get(r.repo); ok {
		r.rt = rt
		return rt, nil
	}
	kc := r.opts.Keychain
	if kc == nil {
		kc = DefaultKeychain()
	}
	auth, err := authn.Resolve(ctx, kc, r.repo)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", r.repo.RegistryStr(), err)
	}
	base := r.opts.Transport
	if base == nil {
		base = remote.DefaultTransport
	}
	base = &plainHTTPGuard{inner: base, allowed: r.opts.Insecure}
	base = transport.NewRetry(base)
	ua := r.opts.UserAgent
	if ua == "" {
		ua = "crowsnest"
	}
	base = transport.NewUserAgent(base, ua)
	rt, err := transport.NewWithContext(ctx, r.repo.Registry, auth, base, []string{r.repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", r.repo.RegistryStr(), err)
	}
	r.rt = rt
	r.opts.Transports.put(r.repo, rt)
	return rt, nil
}

// TransportCache keeps authenticated transports by repository. Reusing one skips the registry
// ping and the token exchange (two requests, and a credential check at the registry) for every
// image pulled from a repository seen recently; an expired token is renewed by the transport
// itself when the registry challenges it again.
type TransportCache struct {
	c *lru.Cache[string, http.RoundTripper]
}

// NewTransportCache returns a cache of the transports of up to size repositories.
func NewTransportCache(size int) *TransportCache {
	c, _ := lru.New[string, http.RoundTripper](max(size, 1))
	return &TransportCache{c: c}
}

func (tc *TransportCache) get(repo name.Repository) (http.RoundTripper, bool) {
	if tc == nil {
		return nil, false
	}
	return tc.c.Get(repo.Name())
}

func (tc *TransportCache) put(repo name.Repository, rt http.RoundTripper) {
	if tc != nil {
		tc.c.Add(repo.Name(), rt)
	}
}

func (r *registryBackend) remoteOpts(ctx context.Context) ([]remote.Option, error) {
	rt, err := r.transport(ctx)
	if err != nil {
		return nil, err
	}
	// rt is a *transport.Wrapper: remote uses it as is, without another ping or token exchange.
	return []remote.Option{remote.WithContext(ctx), remote.WithTransport(rt)}, nil
}

// root fetches the manifest ref names (a tag costs one GET; a digest may be a cache hit).
func (r *registryBackend) root(ctx context.Context, ref name.Reference) (v1.Descriptor, []byte, error) {
	if d, ok := ref.(name.Digest); ok {
		h, err := v1.NewHash(d.DigestStr())
		if err != nil {
			return v1.Descriptor{}, nil, err
		}
		if b := r.cache.get(h, maxManifestSize); b != nil {
			return descriptorFor(h, b), b, nil
		}
	}
	opts, err := r.remoteOpts(ctx)
	if err != nil {
		return v1.Descriptor{}, nil, err
	}
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return v1.Descriptor{}, nil, err
	}
	if int64(len(desc.Manifest)) > maxManifestSize {
		return v1.Descriptor{}, nil, fmt.Errorf("manifest %s is larger than %d bytes", desc.Digest, maxManifestSize)
	}
	// A failed cache write costs only a later re-fetch.
	_ = r.cache.put(desc.Digest, desc.Manifest)
	d := desc.Descriptor
	d.MediaType = mediaTypeOf(d.MediaType, desc.Manifest)
	return d, desc.Manifest, nil
}

func (r *registryBackend) manifest(ctx context.Context, desc v1.Descriptor) ([]byte, error) {
	if b := r.cache.get(desc.Digest, maxManifestSize); b != nil {
		return b, nil
	}
	_, b, err := r.root(ctx, r.repo.Digest(desc.Digest.String()))
	return b, err
}

func (r *registryBackend) config(ctx context.Context, desc v1.Descriptor) ([]byte, error) {
	if b := r.cache.get(desc.Digest, maxConfigSize); b != nil {
		return b, nil
	}
	rc, err := r.blob(ctx, desc)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := readVerified(rc, desc.Digest, maxConfigSize, "config")
	if err != nil {
		return nil, err
	}
	_ = r.cache.put(desc.Digest, b)
	return b, nil
}

func (r *registryBackend) blob(ctx context.Context, desc v1.Descriptor) (io.ReadCloser, error) {
	rt, err := r.transport(ctx)
	if err != nil {
		return nil, err
	}
	u := fmt.Sprintf("%s://%s/v2/%s/blobs/%s", r.repo.Scheme(), r.repo.RegistryStr(), r.repo.RepositoryStr(), desc.Digest)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Transport: rt, CheckRedirect: noRedirectToPrivate}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch blob %s: %w", desc.Digest, err)
	}
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		resp.Body.Close()
		return nil, fmt.Errorf("fetch blob %s: %w", desc.Digest, err)
	}
	return resp.Body, nil
}

// noRedirectToPrivate stops a public registry from redirecting a blob download to a private or
// link-local address (cloud metadata services), as ggcr's own fetcher does.
func noRedirectToPrivate(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return fmt.Errorf("stopped after %d redirects", len(via))
	}
	if len(via) == 0 || req.URL.Hostname() == via[0].URL.Hostname() {
		return nil
	}
	if isPrivate(via[0].URL.Hostname()) {
		return nil
	}
	if isPrivate(req.URL.Hostname()) {
		return fmt.Errorf("redirect from %s to private address %s refused", via[0].URL.Hostname(), req.URL.Hostname())
	}
	return nil
}

func isPrivate(host string) bool {
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	if err != nil {
		return false
	}
	return ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsUnspecified()
}

// isLoopbackHost reports whether host (without port) is this machine.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && ip.IsLoopback()
}

// insecureAllowed reports whether the registry reg ("host[:port]") may be spoken to over plain
// HTTP: loopback always, others only when listed (as host or host:port).
func insecureAllowed(reg string, allowed []string) bool {
	host := reg
	if h, _, err := net.SplitHostPort(reg); err == nil {
		host = h
	}
	if isLoopbackHost(host) {
		return true
	}
	for _, a := range allowed {
		if strings.EqualFold(a, reg) || strings.EqualFold(strings.Trim(a, "[]"), strings.Trim(host, "[]")) {
			return true
		}
	}
	return false
}

// plainHTTPGuard refuses plain-HTTP requests to hosts not allowed. ggcr falls back to HTTP on its
// own for private-network addresses and *.local names; crowsnest only does for the hosts the
// user named (and loopback), so a spoofed network cannot downgrade a registry.
type plainHTTPGuard struct {
	inner   http.RoundTripper
	allowed []string
}

func (g *plainHTTPGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !insecureAllowed(req.URL.Host, g.allowed) {
		return nil, fmt.Errorf("plain HTTP to %s refused (list it as an insecure registry to allow it)", req.URL.Host)
	}
	return g.inner.RoundTrip(req)
}
