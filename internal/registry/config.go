// Package registry lists the repositories, tags and manifests of the registries `crowsnest watch`
// observes (JFrog Artifactory through its REST API, any OCI registry through _catalog and
// tags/list), and parses the `--registry` string that configures them.
package registry

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// Registry types accepted in `type=`.
const (
	TypeArtifactory = "artifactory"
	TypeOCI         = "oci"
)

// Listing strategies for Artifactory (`listing=`).
const (
	ListingAuto    = "auto"    // AQL, falling back to catalog+tags when AQL is refused
	ListingAQL     = "aql"     // AQL only
	ListingCatalog = "catalog" // Docker catalog and tags endpoints only
)

// Bounds on the --registry string; it comes from a command line or a unit file, but it is still
// input.
const (
	maxConfigLen    = 64 << 10
	maxConfigValues = 1024
)

// Secret holds a credential. Its String, GoString and MarshalJSON never reveal the value, so a
// Config can be logged or printed with any verb.
type Secret string

// Value returns the secret itself, for the one place that sends it.
func (s Secret) Value() string { return string(s) }

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString implements fmt.GoStringer so %#v redacts too.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// MarshalJSON redacts.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(s.String())), nil }

// Credentials read from the environment. The crowsnest name wins over Docker Scout's alias.
type Credentials struct {
	APIUser       string // Artifactory REST user; empty with a password means the password is an access token
	APIPassword   Secret // Artifactory password or access token
	WebhookSecret Secret // Artifactory X-JFrog-Event-Auth secret
	RegistryUser  string // OCI registry user
	RegistryPass  Secret // OCI registry password
	RegistryToken Secret // OCI registry bearer token
	WebhookToken  Secret // distribution notification bearer token
}

// Config is a parsed --registry value.
type Config struct {
	Type string
	// Registry is the Docker/OCI registry host[:port] that image references are formed with.
	Registry string
	// API is Artifactory's REST base, including /artifactory.
	API string
	// Repositories are Artifactory repository keys (path.Match globs allowed, expanded through
	// the repositories API) or, for oci, repository paths to restrict listing to.
	Repositories []string
	// Includes and Excludes are globs (path.Match syntax, but * and ? also match /) on the listed
	// repository names: for artifactory "<repoKey>/<image path>", for oci the repository path.
	Includes []string
	Excludes []string
	// Port is the local port of the webhook listener; 0 means no listener.
	Port int
	// SubdomainMode selects Artifactory's subdomain access method (<repoKey>.<registry>).
	SubdomainMode bool
	// RegistryTemplate forms the registry host per repository key: {repo} is the key,
	// {server} the first DNS label of Registry, {registry} the whole of Registry. It overrides
	// SubdomainMode (JFrog Cloud: "{server}-{repo}.jfrog.io").
	RegistryTemplate string
	// RegistryPorts maps a repository key to its port for the port access method; the key ""
	// applies to every repository.
	RegistryPorts map[string]int
	// Listing is the Artifactory listing strategy (ListingAuto by default).
	Listing  string
	Insecure bool
	Creds    Credentials
}

type keySpec struct {
	canonical string
	multi     bool
}

var keysByType = map[string]map[string]keySpec{
	TypeArtifactory: {
		"type":              {"type", false},
		"registry":          {"registry", false},
		"api":               {"api", false},
		"repository":        {"repository", true},
		"includes":          {"includes", true},
		"include":           {"includes", true},
		"excludes":          {"excludes", true},
		"exclude":           {"excludes", true},
		"port":              {"port", false},
		"subdomain-mode":    {"subdomain-mode", false},
		"registry-template": {"registry-template", false},
		"registry-port":     {"registry-port", true},
		"listing":           {"listing", false},
		"insecure":          {"insecure", false},
	},
	TypeOCI: {
		"type":       {"type", false},
		"registry":   {"registry", false},
		"repository": {"repository", true},
		"includes":   {"includes", true},
		"include":    {"includes", true},
		"excludes":   {"excludes", true},
		"exclude":    {"excludes", true},
		"port":       {"port", false},
		"insecure":   {"insecure", false},
	},
}

func knownTypes() []string {
	t := make([]string, 0, len(keysByType))
	for k := range keysByType {
		t = append(t, k)
	}
	slices.Sort(t)
	return t
}

func acceptedKeys(typ string) string {
	ks := make([]string, 0, len(keysByType[typ]))
	for k := range keysByType[typ] {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return strings.Join(ks, ", ")
}

// ParseConfig parses a --registry value with credentials from the process environment.
// See ParseConfigEnv.
func ParseConfig(s string) (Config, error) { return ParseConfigEnv(s, os.Getenv) }

// ParseConfigEnv parses a --registry value: either a bare registry host (type oci), or
// comma-separated key=value pairs. Double quotes protect commas: `key="a,b"` and Docker Scout's
// `"key=a,b"` are both accepted, `\"` and `\\` escape inside quotes. Keys that take several
// values (repository, includes/include, excludes/exclude, registry-port) split their value on
// commas and may also be repeated; other keys may appear once. Keys are case-insensitive.
func ParseConfigEnv(s string, getenv func(string) string) (Config, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Config{}, errors.New("--registry: empty value")
	}
	if len(s) > maxConfigLen {
		return Config{}, fmt.Errorf("--registry: value longer than %d bytes", maxConfigLen)
	}
	if !strings.ContainsAny(s, "=,\"") {
		if err := checkHost(s); err != nil {
			return Config{}, fmt.Errorf("--registry: %w", err)
		}
		c := Config{Type: TypeOCI, Registry: s}
		c.Creds = ociCreds(getenv)
		return c, nil
	}
	pairs, err := splitPairs(s)
	if err != nil {
		return Config{}, fmt.Errorf("--registry: %w", err)
	}
	typ := ""
	for _, p := range pairs {
		if p.key == "type" {
			if typ != "" {
				return Config{}, errors.New(`--registry: key "type" given twice`)
			}
			typ = strings.ToLower(p.val)
		}
	}
	if typ == "" {
		return Config{}, fmt.Errorf("--registry: missing required key \"type\" (known types: %s)", strings.Join(knownTypes(), ", "))
	}
	specs, ok := keysByType[typ]
	if !ok {
		return Config{}, fmt.Errorf("--registry: unknown type %q (known types: %s)", typ, strings.Join(knownTypes(), ", "))
	}
	vals := map[string][]string{}
	for _, p := range pairs {
		spec, ok := specs[p.key]
		if !ok {
			return Config{}, fmt.Errorf("--registry: unknown key %q for type=%s (accepted keys: %s)", p.key, typ, acceptedKeys(typ))
		}
		if !spec.multi {
			if _, dup := vals[spec.canonical]; dup {
				return Config{}, fmt.Errorf("--registry: key %q given twice", p.key)
			}
			vals[spec.canonical] = []string{p.val}
			continue
		}
		for v := range strings.SplitSeq(p.val, ",") {
			if v = strings.TrimSpace(v); v != "" {
				vals[spec.canonical] = append(vals[spec.canonical], v)
			}
		}
		if len(vals[spec.canonical]) > maxConfigValues {
			return Config{}, fmt.Errorf("--registry: key %q: more than %d values", p.key, maxConfigValues)
		}
	}
	c := Config{Type: typ}
	one := func(k string) string {
		if v := vals[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	c.Registry = one("registry")
	c.Repositories = vals["repository"]
	c.Includes = vals["includes"]
	c.Excludes = vals["excludes"]
	for _, g := range append(slices.Clone(c.Includes), c.Excludes...) {
		if _, err := path.Match(g, ""); err != nil {
			return Config{}, fmt.Errorf("--registry: bad glob %q in include/exclude: %w", g, err)
		}
	}
	if v := one("port"); v != "" {
		if c.Port, err = parsePort(v); err != nil {
			return Config{}, fmt.Errorf("--registry: key \"port\": %w", err)
		}
	}
	if v := one("insecure"); v != "" {
		if c.Insecure, err = strconv.ParseBool(v); err != nil {
			return Config{}, fmt.Errorf("--registry: key \"insecure\": want true or false, got %q", v)
		}
	}
	if c.Registry == "" {
		return Config{}, fmt.Errorf("--registry: missing required key \"registry\" for type=%s", typ)
	}
	if err := checkHost(c.Registry); err != nil {
		return Config{}, fmt.Errorf("--registry: key \"registry\": %w", err)
	}
	switch typ {
	case TypeOCI:
		c.Creds = ociCreds(getenv)
		if c.Port != 0 && c.Creds.WebhookToken == "" {
			return Config{}, errors.New("--registry: port is set but CROWSNEST_OCI_WEBHOOK_TOKEN is empty: the notification listener needs a bearer token")
		}
	case TypeArtifactory:
		if err := c.parseArtifactory(one, vals); err != nil {
			return Config{}, fmt.Errorf("--registry: %w", err)
		}
		c.Creds = artifactoryCreds(getenv)
		if c.Port != 0 && c.Creds.WebhookSecret == "" {
			return Config{}, errors.New("--registry: port is set but CROWSNEST_ARTIFACTORY_WEBHOOK_SECRET (or DOCKER_SCOUT_ARTIFACTORY_WEBHOOK_SECRET) is empty: the webhook listener needs a secret")
		}
	}
	return c, nil
}

func (c *Config) parseArtifactory(one func(string) string, vals map[string][]string) error {
	c.API = strings.TrimRight(one("api"), "/")
	if c.API == "" {
		return errors.New(`missing required key "api" for type=artifactory (e.g. api=https://example.jfrog.io/artifactory)`)
	}
	u, err := url.Parse(c.API)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("key \"api\": want an http(s) URL without credentials or query, got %q", c.API)
	}
	if len(c.Repositories) == 0 {
		return errors.New(`missing required key "repository" for type=artifactory (e.g. repository=docker-local)`)
	}
	for _, r := range c.Repositories {
		if _, err := path.Match(r, ""); err != nil || strings.Contains(r, "/") {
			return fmt.Errorf("key \"repository\": %q is not a repository key or key glob", r)
		}
	}
	if v := one("subdomain-mode"); v != "" {
		if c.SubdomainMode, err = strconv.ParseBool(v); err != nil {
			return fmt.Errorf("key \"subdomain-mode\": want true or false, got %q", v)
		}
	}
	if t := one("registry-template"); t != "" {
		if !strings.Contains(t, "{repo}") {
			return fmt.Errorf("key \"registry-template\": %q has no {repo} placeholder", t)
		}
		probe := strings.NewReplacer("{repo}", "docker-local", "{server}", "acme", "{registry}", c.Registry).Replace(t)
		if err := checkHost(probe); err != nil {
			return fmt.Errorf("key \"registry-template\": %q does not form a registry host: %w", t, err)
		}
		c.RegistryTemplate = t
	}
	for _, v := range vals["registry-port"] {
		if c.RegistryPorts == nil {
			c.RegistryPorts = map[string]int{}
		}
		key, p, found := strings.Cut(v, ":")
		if !found {
			key, p = "", v
		}
		n, err := parsePort(p)
		if err != nil {
			return fmt.Errorf("key \"registry-port\": %q: %w (want PORT or REPOKEY:PORT)", v, err)
		}
		c.RegistryPorts[key] = n
	}
	if len(c.RegistryPorts) > 0 && (c.SubdomainMode || c.RegistryTemplate != "") {
		return errors.New(`keys "registry-port" and "subdomain-mode"/"registry-template" select different access methods; give one`)
	}
	c.Listing = strings.ToLower(one("listing"))
	switch c.Listing {
	case "":
		c.Listing = ListingAuto
	case ListingAuto, ListingAQL, ListingCatalog:
	default:
		return fmt.Errorf("key \"listing\": want auto, aql or catalog, got %q", c.Listing)
	}
	return nil
}

func parsePort(v string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("want a port number 1-65535, got %q", v)
	}
	return n, nil
}

func checkHost(h string) error {
	bad := fmt.Errorf("want a registry host[:port] without scheme or path, got %q", h)
	if h == "" || len(h) > 255 || strings.Contains(h, "://") || strings.ContainsAny(h, "/ \t@") {
		return bad
	}
	host, port := h, ""
	if strings.HasPrefix(h, "[") {
		var err error
		if host, port, err = net.SplitHostPort(h); err != nil {
			if !strings.HasSuffix(h, "]") || net.ParseIP(h[1:len(h)-1]) == nil {
				return fmt.Errorf("invalid registry host %q", h)
			}
			host, port = h[1:len(h)-1], ""
		} else if net.ParseIP(host) == nil {
			return fmt.Errorf("invalid registry host %q", h)
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 {
		host, port = h[:i], h[i+1:]
		if port == "" {
			return fmt.Errorf("invalid registry host %q: empty port", h)
		}
	}
	if port != "" {
		if _, err := parsePort(port); err != nil {
			return fmt.Errorf("invalid registry host %q: %w", h, err)
		}
	}
	if !strings.HasPrefix(h, "[") {
		for label := range strings.SplitSeq(host, ".") {
			if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
				return fmt.Errorf("invalid registry host %q", h)
			}
			for i := 0; i < len(label); i++ {
				c := label[i]
				if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
					return fmt.Errorf("invalid registry host %q", h)
				}
			}
		}
	}
	if _, err := name.NewRegistry(h, name.StrictValidation); err != nil {
		return fmt.Errorf("invalid registry host %q: %w", h, err)
	}
	return nil
}

func firstEnv(getenv func(string) string, names ...string) string {
	for _, n := range names {
		if v := getenv(n); v != "" {
			return v
		}
	}
	return ""
}

func artifactoryCreds(getenv func(string) string) Credentials {
	return Credentials{
		APIUser:       firstEnv(getenv, "CROWSNEST_ARTIFACTORY_API_USER", "DOCKER_SCOUT_ARTIFACTORY_API_USER"),
		APIPassword:   Secret(firstEnv(getenv, "CROWSNEST_ARTIFACTORY_API_PASSWORD", "DOCKER_SCOUT_ARTIFACTORY_API_PASSWORD")),
		WebhookSecret: Secret(firstEnv(getenv, "CROWSNEST_ARTIFACTORY_WEBHOOK_SECRET", "DOCKER_SCOUT_ARTIFACTORY_WEBHOOK_SECRET")),
	}
}

func ociCreds(getenv func(string) string) Credentials {
	return Credentials{
		RegistryUser:  firstEnv(getenv, "CROWSNEST_REGISTRY_USER", "DOCKER_SCOUT_REGISTRY_USER"),
		RegistryPass:  Secret(firstEnv(getenv, "CROWSNEST_REGISTRY_PASSWORD", "DOCKER_SCOUT_REGISTRY_PASSWORD")),
		RegistryToken: Secret(firstEnv(getenv, "CROWSNEST_REGISTRY_TOKEN", "DOCKER_SCOUT_REGISTRY_TOKEN")),
		WebhookToken:  Secret(getenv("CROWSNEST_OCI_WEBHOOK_TOKEN")),
	}
}

// Authenticator returns the credentials for pulling from c.Registry, or nil when the
// environment holds none (callers then fall back to a keychain such as Docker's config file).
// Artifactory's Docker API accepts the REST user and password or token directly.
func (c Config) Authenticator() authn.Authenticator {
	switch {
	case c.Creds.RegistryToken != "":
		return authn.FromConfig(authn.AuthConfig{RegistryToken: c.Creds.RegistryToken.Value()})
	case c.Creds.RegistryUser != "":
		return &authn.Basic{Username: c.Creds.RegistryUser, Password: c.Creds.RegistryPass.Value()}
	case c.Type == TypeArtifactory && c.Creds.APIPassword != "":
		user := c.Creds.APIUser
		if user == "" {
			return authn.FromConfig(authn.AuthConfig{RegistryToken: c.Creds.APIPassword.Value()})
		}
		return &authn.Basic{Username: user, Password: c.Creds.APIPassword.Value()}
	}
	return nil
}

// String renders the configuration in --registry syntax with every secret left out.
func (c Config) String() string {
	var b []string
	add := func(k, v string) {
		if strings.ContainsAny(v, `,"`) {
			v = strconv.Quote(v)
		}
		b = append(b, k+"="+v)
	}
	add("type", c.Type)
	add("registry", c.Registry)
	if c.API != "" {
		add("api", c.API)
	}
	if len(c.Repositories) > 0 {
		add("repository", strings.Join(c.Repositories, ","))
	}
	if len(c.Includes) > 0 {
		add("includes", strings.Join(c.Includes, ","))
	}
	if len(c.Excludes) > 0 {
		add("excludes", strings.Join(c.Excludes, ","))
	}
	if c.Port != 0 {
		add("port", strconv.Itoa(c.Port))
	}
	if c.Type == TypeArtifactory {
		add("subdomain-mode", strconv.FormatBool(c.SubdomainMode))
		if c.RegistryTemplate != "" {
			add("registry-template", c.RegistryTemplate)
		}
		for _, k := range slices.Sorted(mapKeys(c.RegistryPorts)) {
			v := strconv.Itoa(c.RegistryPorts[k])
			if k != "" {
				v = k + ":" + v
			}
			add("registry-port", v)
		}
		add("listing", c.Listing)
	}
	if c.Insecure {
		add("insecure", "true")
	}
	return strings.Join(b, ",")
}

func mapKeys(m map[string]int) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

type pair struct{ key, val string }

// splitPairs splits on commas outside double quotes and removes the quoting.
func splitPairs(s string) ([]pair, error) {
	var (
		out     []pair
		cur     strings.Builder
		inQuote bool
	)
	flush := func() error {
		tok := strings.TrimSpace(cur.String())
		cur.Reset()
		if tok == "" {
			return nil
		}
		k, v, ok := strings.Cut(tok, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if !ok || k == "" {
			return fmt.Errorf("%q is not key=value", tok)
		}
		if len(out) >= maxConfigValues {
			return fmt.Errorf("more than %d key=value pairs", maxConfigValues)
		}
		out = append(out, pair{k, strings.TrimSpace(v)})
		return nil
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '"':
			inQuote = !inQuote
		case ch == '\\' && inQuote && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\'):
			i++
			cur.WriteByte(s[i])
		case ch == ',' && !inQuote:
			if err := flush(); err != nil {
				return nil, err
			}
		default:
			cur.WriteByte(ch)
		}
	}
	if inQuote {
		return nil, errors.New("unterminated double quote")
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}
