// Package report renders the findings of `crowsnest cves` in the formats users and CI systems
// read: Docker Scout's text layout grouped by package, crowsnest's JSON, SARIF 2.1.0, a Markdown
// table, GitLab's container-scanning report and CycloneDX 1.6 with vulnerabilities. It also
// holds Docker Scout's finding filters (--only-severity and friends).
package report

import (
	"bufio"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/version"
	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

// Format names, as given to --format.
const (
	Packages  = "packages"
	JSON      = "json"
	SARIF     = "sarif"
	Markdown  = "markdown"
	GitLab    = "gitlab"
	CycloneDX = "cyclonedx"
)

// aliases are other spellings users type (Trivy's, Grype's and common shorthands).
var aliases = map[string]string{
	"text":           Packages,
	"table":          Packages,
	"md":             Markdown,
	"sarif-json":     SARIF,
	"cyclonedx-json": CycloneDX,
	"cdx":            CycloneDX,
	"gitlab-json":    GitLab,
}

// Formats lists the accepted format names, the default first.
func Formats() []string { return []string{Packages, JSON, SARIF, Markdown, GitLab, CycloneDX} }

// Canonical maps a format name or alias to its canonical name; ok is false for an unknown name.
func Canonical(name string) (string, bool) {
	n := strings.ToLower(strings.TrimSpace(name))
	if n == "" {
		return Packages, true
	}
	if a, ok := aliases[n]; ok {
		return a, true
	}
	return n, slices.Contains(Formats(), n)
}

// Report is what `crowsnest cves` prints: the image's SBOM and its findings, after filters and
// VEX were applied.
type Report struct {
	// SBOM describes the image; its packages give the findings' locations. It may be nil for
	// every format but cyclonedx.
	SBOM     *sbom.SBOM
	Findings []vuln.Finding
	// Locations adds each vulnerable package's files and layers (--locations).
	Locations bool
	// Tool names the program; empty means crowsnest at this build's version.
	Tool sbom.Tool
	// Started and Generated bound the scan (GitLab's start_time and end_time); zero Generated
	// means now.
	Started   time.Time
	Generated time.Time
	// Filtered is set when --only-* filters removed findings from the full result.
	Filtered bool
	// Suppressed counts the findings VEX statements suppressed.
	Suppressed int
}

// Render writes r to w in the named format.
func Render(w io.Writer, format string, r *Report) error {
	if r == nil {
		return errors.New("render: no report")
	}
	name, ok := Canonical(format)
	if !ok {
		return fmt.Errorf("unknown report format %q (accepted: %s)", format, strings.Join(Formats(), ", "))
	}
	v := newView(r)
	bw := bufio.NewWriter(w)
	var err error
	switch name {
	case Packages:
		err = renderPackages(bw, v)
	case JSON:
		err = renderJSON(bw, v)
	case SARIF:
		err = renderSARIF(bw, v)
	case Markdown:
		err = renderMarkdown(bw, v)
	case GitLab:
		err = renderGitLab(bw, v)
	case CycloneDX:
		err = renderCycloneDX(bw, v)
	}
	if err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	return nil
}

// Counts are findings per severity.
type Counts struct {
	Critical    int `json:"critical"`
	High        int `json:"high"`
	Medium      int `json:"medium"`
	Low         int `json:"low"`
	Unspecified int `json:"unspecified"`
}

func (c *Counts) add(severity string) {
	switch severity {
	case vuln.SeverityCritical:
		c.Critical++
	case vuln.SeverityHigh:
		c.High++
	case vuln.SeverityMedium:
		c.Medium++
	case vuln.SeverityLow:
		c.Low++
	default:
		c.Unspecified++
	}
}

// Total is the number of findings counted.
func (c Counts) Total() int { return c.Critical + c.High + c.Medium + c.Low + c.Unspecified }

// String is Docker Scout's compact form, "0C 2H 5M 1L 0?".
func (c Counts) String() string {
	return fmt.Sprintf("%dC %dH %dM %dL %d?", c.Critical, c.High, c.Medium, c.Low, c.Unspecified)
}

// CountFindings counts findings by severity.
func CountFindings(fs []vuln.Finding) Counts {
	var c Counts
	for i := range fs {
		c.add(fs[i].Severity)
	}
	return c
}

// group is one vulnerable package and its findings, most severe first.
type group struct {
	ref       vuln.PackageRef
	findings  []vuln.Finding
	counts    Counts
	locations []sbom.Location
}

// view is the report prepared once for every renderer: findings grouped by package and sorted.
type view struct {
	*Report
	tool   sbom.Tool
	image  sbom.Image
	os     *sbom.OS
	when   time.Time
	groups []*group
	counts Counts
	layers map[string]int // diffID -> layer index
}

func newView(r *Report) *view {
	v := &view{Report: r, tool: r.Tool, when: r.Generated, layers: map[string]int{}}
	if v.tool.Name == "" {
		v.tool.Name = "crowsnest"
	}
	if v.tool.Version == "" {
		v.tool.Version = version.Version
	}
	if v.when.IsZero() {
		v.when = time.Now()
	}
	v.when = v.when.UTC()
	if r.SBOM != nil {
		v.image, v.os = r.SBOM.Image, r.SBOM.OS
		for _, l := range r.SBOM.Image.Layers {
			if l.DiffID != "" {
				v.layers[l.DiffID] = l.Index
			}
		}
	}
	locs := packageLocations(r.SBOM)
	byKey := map[string]*group{}
	for _, f := range r.Findings {
		k := refKey(f.Package)
		g := byKey[k]
		if g == nil {
			g = &group{ref: f.Package, locations: locs.of(f.Package)}
			byKey[k] = g
			v.groups = append(v.groups, g)
		}
		g.findings = append(g.findings, f)
		g.counts.add(f.Severity)
		v.counts.add(f.Severity)
	}
	for _, g := range v.groups {
		slices.SortStableFunc(g.findings, compareFindings)
	}
	slices.SortStableFunc(v.groups, func(a, b *group) int {
		if c := severityRank(b.findings[0].Severity) - severityRank(a.findings[0].Severity); c != 0 {
			return c
		}
		return cmp.Or(strings.Compare(a.ref.Name, b.ref.Name), strings.Compare(a.ref.Version, b.ref.Version), strings.Compare(a.ref.Type, b.ref.Type), strings.Compare(a.ref.PURL, b.ref.PURL))
	})
	return v
}

func refKey(p vuln.PackageRef) string {
	return p.Type + "\x00" + p.Name + "\x00" + p.Version + "\x00" + p.PURL
}

func severityRank(s string) int { return vuln.SeverityRank(s) }

// compareFindings orders the most severe first, then the highest CVSS score, then by id.
func compareFindings(a, b vuln.Finding) int {
	if c := severityRank(b.Severity) - severityRank(a.Severity); c != 0 {
		return c
	}
	if c := cmp.Compare(b.CVSSScore, a.CVSSScore); c != 0 {
		return c
	}
	return strings.Compare(a.VulnerabilityID, b.VulnerabilityID)
}

// locationIndex finds a finding's package in the SBOM: by PURL, else by type, name and version.
type locationIndex struct {
	byPURL map[string][]sbom.Location
	byKey  map[string][]sbom.Location
}

func packageLocations(s *sbom.SBOM) locationIndex {
	ix := locationIndex{byPURL: map[string][]sbom.Location{}, byKey: map[string][]sbom.Location{}}
	if s == nil {
		return ix
	}
	for i := range s.Packages {
		p := &s.Packages[i]
		purl := p.PURL
		if purl == "" {
			purl = sbom.PURL(p, s.OS)
		}
		if purl != "" {
			ix.byPURL[purl] = appendLocations(ix.byPURL[purl], p.Locations)
		}
		k := p.Type + "\x00" + p.Name + "\x00" + p.Version
		ix.byKey[k] = appendLocations(ix.byKey[k], p.Locations)
	}
	return ix
}

func appendLocations(to, from []sbom.Location) []sbom.Location {
	for _, l := range from {
		if !slices.Contains(to, l) {
			to = append(to, l)
		}
	}
	return to
}

func (ix locationIndex) of(p vuln.PackageRef) []sbom.Location {
	if l, ok := ix.byPURL[p.PURL]; ok && p.PURL != "" {
		return l
	}
	return ix.byKey[p.Type+"\x00"+p.Name+"\x00"+p.Version]
}

// OSVURL is the osv.dev page of a vulnerability id.
func OSVURL(id string) string { return "https://osv.dev/vulnerability/" + url.PathEscape(id) }

// imageName is how reports name the image: the reference as given, else its name, else digest.
func (v *view) imageName() string {
	return cmp.Or(v.image.Reference, v.image.Name, v.image.Digest, "unknown image")
}

// fixText is what a report says about the fix.
func fixText(f *vuln.Finding) string {
	if f.FixedVersion == "" {
		return "not fixed"
	}
	return f.FixedVersion
}

// oneLine strips control characters (terminal escapes in hostile package metadata or
// advisories) and folds line breaks into spaces.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			return ' '
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return -1
		}
		return r
	}, s)
}

// stableUUID derives a UUID (version 5 layout, SHA-256 based) from parts, so that the same
// report renders the same ids on every run.
func stableUUID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	b := h.Sum(nil)[:16]
	b[6] = (b[6] & 0x0f) | 0x50
	b[8] = (b[8] & 0x3f) | 0x80
	x := hex.EncodeToString(b)
	return x[:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:]
}
