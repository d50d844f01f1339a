package vex

import (
	"strings"
	"time"

	"github.com/package-url/packageurl-go"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

// Decision is the statement that settles a finding: the latest of those that name its
// vulnerability and cover its package.
type Decision struct {
	Document  *Document
	Statement *Statement
}

// Suppressed reports whether the finding stops being reported.
func (d Decision) Suppressed() bool { return d.Statement != nil && d.Statement.Status.Suppresses() }

type stmtRef struct {
	doc, stmt int
	order     int // position over all documents: the later one wins a tie of timestamps
}

// Index looks up the statements that apply to a finding. It is built once per set of documents.
type Index struct {
	docs  []*Document
	byID  map[string][]stmtRef // upper-cased vulnerability name, @id or alias -> statements
	purls map[string]*packageurl.PackageURL
}

// NewIndex indexes the statements of docs by vulnerability id and alias.
func NewIndex(docs []*Document) *Index {
	ix := &Index{docs: docs, byID: map[string][]stmtRef{}, purls: map[string]*packageurl.PackageURL{}}
	order := 0
	for d, doc := range docs {
		if doc == nil {
			continue
		}
		for s := range doc.Statements {
			ref := stmtRef{doc: d, stmt: s, order: order}
			order++
			seen := map[string]bool{}
			for _, id := range doc.Statements[s].Vulnerability.IDs() {
				k := strings.ToUpper(id)
				if !seen[k] {
					seen[k] = true
					ix.byID[k] = append(ix.byID[k], ref)
				}
			}
		}
	}
	return ix
}

// Lookup returns the decision for f in the image identified by image (see Apply); ok is false
// when no statement covers it.
func (ix *Index) Lookup(f *vuln.Finding, image string) (Decision, bool) {
	imgDigest := digestOf(image)
	var (
		best     stmtRef
		bestTime time.Time
		found    bool
		seen     = map[stmtRef]bool{}
	)
	for _, id := range append([]string{f.VulnerabilityID}, f.Aliases...) {
		for _, ref := range ix.byID[strings.ToUpper(strings.TrimSpace(id))] {
			if seen[ref] {
				continue
			}
			seen[ref] = true
			doc := ix.docs[ref.doc]
			st := &doc.Statements[ref.stmt]
			if !ix.covers(st, image, imgDigest, f.Package.PURL) {
				continue
			}
			t := statementTime(doc, st)
			if !found || t.After(bestTime) || (t.Equal(bestTime) && ref.order > best.order) {
				best, bestTime, found = ref, t, true
			}
		}
	}
	if !found {
		return Decision{}, false
	}
	doc := ix.docs[best.doc]
	return Decision{Document: doc, Statement: &doc.Statements[best.stmt]}, true
}

// Apply splits findings into those still reported (kept) and those a not_affected or fixed
// statement suppresses, both in their original order.
//
// image identifies the scanned image: its manifest digest ("sha256:..."), a reference by digest
// ("repo@sha256:..."), or its PURL ("pkg:oci/debian@sha256%3A...", Docker Scout's
// "pkg:docker/repo@sha256:..."); "" when there is no image (a directory), in which case only
// statements whose product is the package itself apply. A product that is the image applies to
// every package of it, unless it lists subcomponents: then only to those packages. A product
// that is a package PURL applies to that package in any image.
func Apply(findings []vuln.Finding, image string, docs []*Document) (kept, suppressed []vuln.Finding) {
	ix := NewIndex(docs)
	for i := range findings {
		if d, ok := ix.Lookup(&findings[i], image); ok && d.Suppressed() {
			suppressed = append(suppressed, findings[i])
			continue
		}
		kept = append(kept, findings[i])
	}
	return kept, suppressed
}

// statementTime is when the statement was last known true; statements without one took the
// document's timestamp in Parse.
func statementTime(doc *Document, st *Statement) time.Time {
	var t time.Time
	for _, c := range []*time.Time{st.Timestamp, st.LastUpdated} {
		if c != nil && c.After(t) {
			t = *c
		}
	}
	if t.IsZero() && doc.Timestamp != nil {
		t = *doc.Timestamp
	}
	return t
}

func (ix *Index) covers(st *Statement, image, imgDigest, pkgPURL string) bool {
	for i := range st.Products {
		p := &st.Products[i]
		if ix.isImage(&p.Component, image, imgDigest) {
			if len(p.Subcomponents) == 0 {
				return true
			}
			for j := range p.Subcomponents {
				if ix.isPackage(&p.Subcomponents[j], pkgPURL) {
					return true
				}
			}
			continue
		}
		if ix.isPackage(&p.Component, pkgPURL) {
			return true
		}
	}
	return false
}

func (ix *Index) isImage(c *Component, image, imgDigest string) bool {
	if image == "" {
		return false
	}
	for _, id := range []string{c.ID, c.Identifiers["purl"]} {
		if id == "" {
			continue
		}
		if id == image {
			return true
		}
		if imgDigest != "" && strings.EqualFold(digestOf(id), imgDigest) {
			return true
		}
	}
	if algo, hex, ok := strings.Cut(imgDigest, ":"); ok && algo == "sha256" {
		if h := c.Hashes["sha-256"]; h != "" && strings.EqualFold(h, hex) {
			return true
		}
	}
	return false
}

func (ix *Index) isPackage(c *Component, pkgPURL string) bool {
	if pkgPURL == "" {
		return false
	}
	pkg := ix.parse(pkgPURL)
	if pkg == nil {
		return false
	}
	for _, id := range []string{c.ID, c.Identifiers["purl"]} {
		if v := ix.parse(id); v != nil && purlCovers(v, pkg) {
			return true
		}
	}
	return false
}

func (ix *Index) parse(s string) *packageurl.PackageURL {
	if !strings.HasPrefix(s, "pkg:") {
		return nil
	}
	if u, ok := ix.purls[s]; ok {
		return u
	}
	var out *packageurl.PackageURL
	if u, err := packageurl.FromString(s); err == nil {
		out = &u
	}
	// The cache is bounded by the statements' and findings' PURLs, themselves bounded.
	ix.purls[s] = out
	return out
}

// purlCovers reports whether the VEX PURL v names the package PURL p: same type, namespace and
// name; the same version when v gives one; and every qualifier of v present in p with the same
// value (so "pkg:deb/debian/openssl@3.0.11-1" covers the package whatever its arch).
func purlCovers(v, p *packageurl.PackageURL) bool {
	if !strings.EqualFold(v.Type, p.Type) {
		return false
	}
	// Case is ignored everywhere: packageurl-go lowercases the namespace of several types
	// (golang among them) when parsing, so an exact comparison would not be consistent.
	eq := strings.EqualFold
	vn, pn := v.Name, p.Name
	if strings.EqualFold(v.Type, sbom.TypePyPI) {
		vn, pn = sbom.NormalizePyPIName(vn), sbom.NormalizePyPIName(pn)
	}
	if !eq(strings.Trim(v.Namespace, "/"), strings.Trim(p.Namespace, "/")) || !eq(vn, pn) {
		return false
	}
	if v.Version != "" && v.Version != p.Version {
		return false
	}
	if v.Subpath != "" && strings.Trim(v.Subpath, "/") != strings.Trim(p.Subpath, "/") {
		return false
	}
	pq := p.Qualifiers.Map()
	for _, q := range v.Qualifiers {
		if got, ok := pq[q.Key]; !ok || got != q.Value {
			return false
		}
	}
	return true
}

// digestOf extracts an image digest ("sha256:...") from a digest, a reference by digest or an
// image PURL whose version is a digest; "" when there is none.
func digestOf(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if strings.HasPrefix(s, "pkg:") {
		u, err := packageurl.FromString(s)
		if err != nil || !isDigest(u.Version) {
			return ""
		}
		return strings.ToLower(u.Version)
	}
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		s = s[i+1:]
	}
	if isDigest(s) {
		return strings.ToLower(s)
	}
	return ""
}

func isDigest(s string) bool {
	algo, hex, ok := strings.Cut(s, ":")
	if !ok || algo == "" || len(hex) < 32 {
		return false
	}
	for _, r := range hex {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F') {
			return false
		}
	}
	return true
}
