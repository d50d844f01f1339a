package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/package-url/packageurl-go"
)

// ecosystems are the package types the benchmark scores, in table order.
var ecosystems = []string{"deb", "pypi", "maven", "npm", "golang"}

// found is the set of (name, version) a tool reported per ecosystem, normalized by key().
type found map[string]map[nv]bool

func (f found) add(eco, name, version string) {
	if eco == "" || name == "" {
		return
	}
	name, version = key(eco, name, version)
	if f[eco] == nil {
		f[eco] = map[nv]bool{}
	}
	f[eco][nv{name, version}] = true
}

var pypiSep = regexp.MustCompile(`[-_.]+`)

func normPyPI(name string) string { return strings.ToLower(pypiSep.ReplaceAllString(name, "-")) }

var debEpoch = regexp.MustCompile(`^[0-9]+:`)

// key puts a name and version in the form all tools and the ground truth agree on: Debian
// versions without epoch (Trivy moves it to a PURL qualifier), PEP 503 Python names, a Maven
// artifact without its group (jar scanners guess groups differently; the version pins it), Go
// versions without "v" (Trivy drops it).
func key(eco, name, version string) (string, string) {
	switch eco {
	case "deb":
		version = debEpoch.ReplaceAllString(version, "")
	case "pypi":
		name = normPyPI(name)
	case "maven":
		if i := strings.LastIndexAny(name, ":/"); i >= 0 {
			name = name[i+1:]
		}
	case "golang":
		version = strings.TrimPrefix(version, "v")
	}
	return name, version
}

// parseSBOM reads crowsnest JSON, syft-json or CycloneDX JSON (Trivy) and returns what it reports
// per ecosystem. Each package's ecosystem comes from its PURL, so the tools' own type names
// ("java-archive", "python", "go-module", ...) do not matter.
func parseSBOM(b []byte) (found, error) {
	var doc struct {
		Packages   []sbomPkg `json:"packages"`  // crowsnest
		Artifacts  []sbomPkg `json:"artifacts"` // syft-json
		Components []cdxComp `json:"components"`
		BOMFormat  string    `json:"bomFormat"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("parse SBOM: %w", err)
	}
	f := found{}
	for _, p := range append(doc.Packages, doc.Artifacts...) {
		addPkg(f, p.PURL, p.Type, p.Name, p.Version)
	}
	var walk func(cs []cdxComp, depth int)
	walk = func(cs []cdxComp, depth int) {
		if depth > 32 {
			return
		}
		for _, c := range cs {
			name := c.Name
			if c.Group != "" {
				name = c.Group + "/" + c.Name
			}
			addPkg(f, c.PURL, "", name, c.Version)
			walk(c.Components, depth+1)
		}
	}
	walk(doc.Components, 0)
	return f, nil
}

type sbomPkg struct {
	Type    string `json:"type"`
	Name    string `json:"name"`
	Version string `json:"version"`
	PURL    string `json:"purl"`
}

type cdxComp struct {
	Group      string    `json:"group"`
	Name       string    `json:"name"`
	Version    string    `json:"version"`
	PURL       string    `json:"purl"`
	Components []cdxComp `json:"components"`
}

func addPkg(f found, purl, typ, name, version string) {
	if purl != "" {
		if u, err := packageurl.FromString(purl); err == nil {
			n := u.Name
			if u.Namespace != "" && (u.Type == "npm" || u.Type == "golang") {
				ns, _ := url.PathUnescape(u.Namespace)
				n = ns + "/" + u.Name
			}
			f.add(u.Type, n, u.Version)
			return
		}
	}
	// Only crowsnest's own types name ecosystems; other tools' type words are not PURL types.
	for _, e := range ecosystems {
		if typ == e {
			f.add(typ, name, version)
		}
	}
}

// recall is the share of truth a tool found, and the truth it missed.
func recall(truth []nv, eco string, f found) (float64, []nv) {
	if len(truth) == 0 {
		return 0, nil
	}
	var missed []nv
	for _, t := range truth {
		n, v := key(eco, t.Name, t.Version)
		if !f[eco][nv{n, v}] {
			missed = append(missed, t)
		}
	}
	return float64(len(truth)-len(missed)) / float64(len(truth)), missed
}
