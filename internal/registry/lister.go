package registry

import (
	"context"
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Lister lists what a watched registry holds. Repository names are in the form the adapter
// documents (Artifactory: "<repoKey>/<image path>"; OCI: the repository path) and are already
// filtered by the configured include/exclude globs.
type Lister interface {
	Repositories(ctx context.Context) ([]string, error)
	Tags(ctx context.Context, repo string) ([]string, error)
	// Manifests lists every tag of every (filtered) repository with its digest where the
	// registry gives it in bulk; Digest is "" when it does not, and the caller resolves it.
	Manifests(ctx context.Context) ([]Manifest, error)
	// ImageRef forms the pull reference of repo:tag.
	ImageRef(repo, tag string) string
}

// Manifest is one tag and what it points at.
type Manifest struct {
	Repository string `json:"repository"` // as returned by Repositories
	Tag        string `json:"tag"`
	Digest     string `json:"digest,omitempty"` // "sha256:<hex>", or "" when unknown
	// RepoKey and Image split an Artifactory repository name; Image is the path in the
	// registry's namespace (the whole repository path for OCI).
	RepoKey string `json:"repo_key,omitempty"`
	Image   string `json:"image"`
}

// Options tune a Lister. The zero value is usable.
type Options struct {
	// HTTPClient carries the requests (its Transport is wrapped for registry auth); nil means
	// a client with a 60 s timeout.
	HTTPClient *http.Client
	// Keychain supplies OCI registry credentials when the environment has none; nil means
	// authn.DefaultKeychain (Docker's config file and helpers).
	Keychain authn.Keychain
	// PageSize is n for catalog/tags pages and the AQL limit; 0 means 1000.
	PageSize int
}

func (o Options) client() *http.Client {
	if o.HTTPClient != nil {
		return o.HTTPClient
	}
	return &http.Client{Timeout: 60 * time.Second}
}

func (o Options) pageSize() int {
	if o.PageSize <= 0 {
		return defaultPage
	}
	return min(o.PageSize, 100_000)
}

// New returns the Lister for cfg.
func New(cfg Config, opts Options) (Lister, error) {
	switch cfg.Type {
	case TypeArtifactory:
		return NewArtifactory(cfg, opts)
	case TypeOCI:
		return NewOCI(cfg, opts)
	}
	return nil, fmt.Errorf("registry type %q has no lister", cfg.Type)
}

// Allows reports whether a repository name ("<repoKey>/<image path>" for artifactory, the
// repository path for oci) passes the include/exclude globs. Webhook events are held to it too:
// a push must not bring in what the listing filters out.
func (c Config) Allows(repo string) bool { return filter{c.Includes, c.Excludes}.allows(repo) }

// filter applies include/exclude globs (path.Match syntax, validated by ParseConfig). A name
// passes when it matches some include (or there are none) and no exclude.
type filter struct{ includes, excludes []string }

func (f filter) allows(name string) bool {
	for _, g := range f.excludes {
		if globMatch(g, name) {
			return false
		}
	}
	if len(f.includes) == 0 {
		return true
	}
	for _, g := range f.includes {
		if globMatch(g, name) {
			return true
		}
	}
	return false
}

// globMatch matches like path.Match, except that * and ? also match '/': Docker Scout's documented
// pair include=*/frontend* and exclude=*/dta/* only makes sense that way (the exclude removes
// docker-local/dta/frontend-old, which the include matched).
func globMatch(pattern, name string) bool {
	const sep = "\x00"
	ok, _ := path.Match(strings.ReplaceAll(pattern, "/", sep), strings.ReplaceAll(name, "/", sep))
	return ok
}
