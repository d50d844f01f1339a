package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// OCI lists any registry that implements the distribution API's _catalog and tags/list, with
// RFC 5988 Link pagination. Authentication (Basic or the token flow) is go-containerregistry's
// transport; pagination is ours, because remote.Catalog follows Link URLs without bound and
// hides Retry-After.
//
// Repository names are the registry's repository paths ("team/app"); globs match them.
type OCI struct {
	cfg      Config
	reg      name.Registry
	base     http.RoundTripper
	hc       *http.Client
	keychain authn.Keychain
	page     int
	filter   filter
}

// NewOCI returns the lister for an oci Config (a bare host parses to one).
func NewOCI(cfg Config, opts Options) (*OCI, error) {
	var nopts []name.Option
	if cfg.Insecure {
		nopts = append(nopts, name.Insecure)
	}
	reg, err := name.NewRegistry(cfg.Registry, nopts...)
	if err != nil {
		return nil, fmt.Errorf("oci lister: registry %q: %w", cfg.Registry, err)
	}
	hc := opts.client()
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	kc := opts.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	return &OCI{cfg: cfg, reg: reg, base: base, hc: hc, keychain: kc, page: opts.pageSize(),
		filter: filter{cfg.Includes, cfg.Excludes}}, nil
}

func (o *OCI) client(ctx context.Context, endpoint string, scopes ...string) (*http.Client, error) {
	auth := o.cfg.Authenticator()
	if auth == nil {
		var err error
		if auth, err = o.keychain.Resolve(o.reg); err != nil {
			return nil, fmt.Errorf("%s: credentials: %w", endpoint, err)
		}
	}
	t, err := transport.NewWithContext(ctx, o.reg, auth, o.base, scopes)
	if err != nil {
		var te *transport.Error
		if errors.As(err, &te) && te.StatusCode == http.StatusTooManyRequests {
			return nil, &RetryAfterError{StatusCode: te.StatusCode, Endpoint: endpoint}
		}
		return nil, fmt.Errorf("%s: %w", endpoint, err)
	}
	return &http.Client{Transport: t, Timeout: o.hc.Timeout, CheckRedirect: o.hc.CheckRedirect}, nil
}

func (o *OCI) url(p string) string { return o.reg.Scheme() + "://" + o.reg.RegistryStr() + p }

// Repositories lists the configured repositories, or the whole catalog, filtered.
func (o *OCI) Repositories(ctx context.Context) ([]string, error) {
	var names []string
	if len(o.cfg.Repositories) > 0 {
		names = slices.Clone(o.cfg.Repositories)
	} else {
		endpoint := "catalog of " + o.reg.RegistryStr()
		c, err := o.client(ctx, endpoint, "registry:catalog:*")
		if err != nil {
			return nil, err
		}
		base := o.url("/v2/_catalog")
		n := o.page
		names, err = paginate(ctx, endpoint, func(ctx context.Context, last string) ([]string, http.Header, error) {
			var body struct {
				Repositories []string `json:"repositories"`
			}
			h, err := o.getPage(ctx, c, base, &n, last, endpoint, &body)
			return body.Repositories, h, err
		})
		if err != nil {
			return nil, err
		}
	}
	out := names[:0]
	for _, n := range names {
		if validImage(n) && o.filter.allows(n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// Tags lists the tags of one repository.
func (o *OCI) Tags(ctx context.Context, repo string) ([]string, error) {
	if !validImage(repo) {
		return nil, fmt.Errorf("oci tags: invalid repository %q", repo)
	}
	endpoint := "tags of " + o.reg.RegistryStr() + "/" + repo
	c, err := o.client(ctx, endpoint, o.reg.Repo(repo).Scope(transport.PullScope))
	if err != nil {
		return nil, err
	}
	base := o.url("/v2/" + repo + "/tags/list")
	n := o.page
	tags, err := paginate(ctx, endpoint, func(ctx context.Context, last string) ([]string, http.Header, error) {
		var body struct {
			Tags []string `json:"tags"`
		}
		h, err := o.getPage(ctx, c, base, &n, last, endpoint, &body)
		return body.Tags, h, err
	})
	if err != nil {
		return nil, err
	}
	out := tags[:0]
	for _, t := range tags {
		if validTag(t) {
			out = append(out, t)
		}
	}
	return out, nil
}

// getPage fetches one page asking for *n entries. A registry whose configured maximum is below
// n refuses the request (distribution answers 400 PAGINATION_NUMBER_INVALID when n exceeds its
// catalog.maxentries); the page is then asked again without n, which such a registry serves
// with its own page size and a Link to the next page, and *n is cleared for the following pages.
func (o *OCI) getPage(ctx context.Context, c *http.Client, base string, n *int, last, endpoint string, v any) (http.Header, error) {
	for {
		req, err := http.NewRequest(http.MethodGet, pageURL(base, *n, last), nil)
		if err != nil {
			return nil, err
		}
		h, err := getJSON(ctx, c, req, endpoint, v)
		var se *StatusError
		if *n > 0 && errors.As(err, &se) && se.StatusCode == http.StatusBadRequest && strings.Contains(se.Message, "PAGINATION_NUMBER_INVALID") {
			*n = 0
			continue
		}
		return h, err
	}
}

// Manifests lists every tag of every repository; the distribution API gives no digests in
// bulk, so Digest is empty.
func (o *OCI) Manifests(ctx context.Context) ([]Manifest, error) {
	repos, err := o.Repositories(ctx)
	if err != nil {
		return nil, err
	}
	var out []Manifest
	for _, r := range repos {
		tags, err := o.Tags(ctx, r)
		if err != nil {
			return nil, err
		}
		for _, t := range tags {
			out = append(out, Manifest{Repository: r, Image: r, Tag: t})
		}
		if len(out) > maxListEntries {
			return nil, fmt.Errorf("oci %s: more than %d tags", o.reg.RegistryStr(), maxListEntries)
		}
	}
	return out, nil
}

// ImageRef is <registry>/<repo>:<tag>, or @<digest> for a sha256: tag.
func (o *OCI) ImageRef(repo, tag string) string {
	sep := ":"
	if len(tag) > 7 && tag[:7] == "sha256:" {
		sep = "@"
	}
	return o.cfg.Registry + "/" + repo + sep + tag
}
