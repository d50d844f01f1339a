package server

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/format"
	"github.com/crowsnest-dev/crowsnest/internal/store"
	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

// Page sizes: defaults and maxima per list.
const (
	defaultLimit         = 50
	maxLimit             = 500
	defaultAffectedLimit = 100
	maxAffectedLimit     = 1000
	defaultEventsLimit   = 100
	maxEventsLimit       = 1000
)

// ImageSummary is an image in lists.
type ImageSummary struct {
	Digest      string         `json:"digest"`
	IndexDigest string         `json:"indexDigest,omitempty"`
	Reference   string         `json:"reference"`
	Repository  string         `json:"repository"`
	Platform    string         `json:"platform"`
	OS          string         `json:"os,omitempty"`
	Created     *time.Time     `json:"created,omitempty"`
	IndexedAt   time.Time      `json:"indexedAt"`
	Packages    int            `json:"packages"`
	Tags        []string       `json:"tags"`
	Findings    map[string]int `json:"findings"`
}

func summary(im store.ImageSummary) ImageSummary {
	out := ImageSummary{Digest: im.Digest, IndexDigest: im.IndexDigest, Reference: im.Reference, Repository: im.Name,
		Platform: im.Platform, Created: im.Created, IndexedAt: im.IndexedAt, Packages: im.Packages, Tags: im.Tags, Findings: im.Findings}
	if im.OSID != "" {
		out.OS = strings.TrimSpace(im.OSID + " " + im.OSVersion)
	}
	if out.Tags == nil {
		out.Tags = []string{}
	}
	if out.Findings == nil {
		out.Findings = map[string]int{}
	}
	return out
}

// ImageList is the answer of GET /api/v1/images.
type ImageList struct {
	Images []ImageSummary `json:"images"`
	Paging
}

func (s *Server) listImages(w http.ResponseWriter, r *http.Request) {
	p, ok := page(w, r, defaultLimit, maxLimit)
	if !ok {
		return
	}
	q := r.URL.Query()
	iq := store.ImageQuery{Registry: q.Get("registry"), Repository: q.Get("repository"), Tag: q.Get("tag"),
		Severity: strings.ToLower(q.Get("severity")), Package: q.Get("package"), Version: q.Get("version"),
		Vulnerability: q.Get("vulnerability"), Sort: q.Get("sort"), Page: p}
	if iq.Version != "" && iq.Package == "" {
		writeError(w, http.StatusBadRequest, "version filters need a package")
		return
	}
	list, total, err := s.store.ListImages(r.Context(), iq)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := ImageList{Images: make([]ImageSummary, len(list)), Paging: paging(p, len(list), total)}
	for i, im := range list {
		out.Images[i] = summary(im)
	}
	writeJSON(w, http.StatusOK, out)
}

var digestRE = regexp.MustCompile(`^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$`)

func (s *Server) digestParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	d := r.PathValue("digest")
	if !digestRE.MatchString(d) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%q is not an image digest (sha256:<64 hex digits>)", d))
		return "", false
	}
	return d, true
}

// LayerDetail is one layer of an image with the packages it introduced.
type LayerDetail struct {
	Index     int    `json:"index"`
	Digest    string `json:"digest,omitempty"`
	DiffID    string `json:"diffID,omitempty"`
	Size      int64  `json:"size,omitempty"`
	CreatedBy string `json:"createdBy,omitempty"`
	// SharedWith counts the other stored images holding this layer.
	SharedWith int            `json:"sharedWith"`
	Packages   []PackageBrief `json:"packages"`
}

// PackageBrief is a package as image details list it.
type PackageBrief struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Version string   `json:"version"`
	PURL    string   `json:"purl"`
	Paths   []string `json:"paths,omitempty"`
}

// BaseImage is a stored image whose layers are the image's bottom layers.
type BaseImage struct {
	Digest     string   `json:"digest"`
	Repository string   `json:"repository"`
	Platform   string   `json:"platform"`
	Layers     int      `json:"layers"`
	Tags       []string `json:"tags"`
}

// ImageDetail is the answer of GET /api/v1/images/{digest}.
type ImageDetail struct {
	ImageSummary
	MediaType    string        `json:"mediaType,omitempty"`
	ConfigDigest string        `json:"configDigest,omitempty"`
	OSRelease    *sbom.OS      `json:"osRelease,omitempty"`
	Config       sbom.Config   `json:"config"`
	Layers       []LayerDetail `json:"layers"`
	// Unattributed are packages no layer is known for (fs:// inputs).
	Unattributed []PackageBrief `json:"unattributed,omitempty"`
	// BaseImages is the base-image chain as far as the store knows it: stored images whose layers
	// are all bottom layers of this one, smallest first.
	BaseImages      []BaseImage    `json:"baseImages"`
	Vulnerabilities []vuln.Finding `json:"findingsList"`
	Warnings        []string       `json:"warnings,omitempty"`
}

func (s *Server) imageDetail(w http.ResponseWriter, r *http.Request) {
	d, ok := s.digestParam(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	sum, err := s.store.ImageSummaryOf(ctx, d)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	sb, err := s.store.Image(ctx, d)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	found, err := s.store.Findings(ctx, d)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	shared, bases, err := s.store.LayerSharing(ctx, d)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := ImageDetail{ImageSummary: summary(sum), MediaType: sb.Image.MediaType, ConfigDigest: sb.Image.ConfigDigest,
		OSRelease: sb.OS, Config: sb.Image.Config, Layers: []LayerDetail{}, BaseImages: []BaseImage{},
		Vulnerabilities: found, Warnings: sb.Warnings}
	if out.Vulnerabilities == nil {
		out.Vulnerabilities = []vuln.Finding{}
	}
	byDiff := map[string]int{}
	for i, l := range sb.Image.Layers {
		ld := LayerDetail{Index: l.Index, Digest: l.Digest, DiffID: l.DiffID, Size: l.Size, CreatedBy: l.CreatedBy, Packages: []PackageBrief{}}
		if i < len(shared) && shared[i].DiffID == l.DiffID {
			ld.SharedWith = shared[i].OtherImages
		}
		if l.DiffID != "" {
			if _, dup := byDiff[l.DiffID]; !dup {
				byDiff[l.DiffID] = len(out.Layers)
			}
		}
		out.Layers = append(out.Layers, ld)
	}
	for _, p := range sb.Packages {
		b := PackageBrief{Type: p.Type, Name: p.Name, Version: p.Version, PURL: p.PURL}
		layer := -1
		for _, loc := range p.Locations {
			b.Paths = append(b.Paths, loc.Path)
			// The package's layer is the lowest one declaring it: the one that introduced it.
			if li, ok := byDiff[loc.DiffID]; ok && (layer < 0 || li < layer) {
				layer = li
			}
		}
		if layer < 0 {
			out.Unattributed = append(out.Unattributed, b)
		} else {
			out.Layers[layer].Packages = append(out.Layers[layer].Packages, b)
		}
	}
	for _, b := range bases {
		out.BaseImages = append(out.BaseImages, BaseImage{Digest: b.Digest, Repository: b.Name, Platform: b.Platform,
			Layers: b.Layers, Tags: nonNil(b.Tags)})
	}
	writeJSON(w, http.StatusOK, out)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (s *Server) imageSBOM(w http.ResponseWriter, r *http.Request) {
	d, ok := s.digestParam(w, r)
	if !ok {
		return
	}
	name := r.URL.Query().Get("format")
	if name == "" {
		name = format.JSON
	}
	f, ok := format.Canonical(name)
	if !ok || f == format.List {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown SBOM format %q (want json, cyclonedx or spdx)", name))
		return
	}
	sb, err := s.store.Image(r.Context(), d)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var buf bytes.Buffer
	if err := format.Encode(&buf, f, sb, format.Options{}); err != nil {
		s.fail(w, r, err)
		return
	}
	ct := "application/json"
	switch f {
	case format.CycloneDX:
		ct = "application/vnd.cyclonedx+json"
	case format.SPDX:
		ct = "application/spdx+json"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.%s.json"`, strings.ReplaceAll(d, ":", "-"), f))
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	_, _ = w.Write(buf.Bytes())
}

// VulnSummary is a vulnerability in lists.
type VulnSummary struct {
	ID       string   `json:"id"`
	Aliases  []string `json:"aliases,omitempty"`
	Summary  string   `json:"summary,omitempty"`
	Severity string   `json:"severity"`
	Images   int      `json:"images"`
	Packages int      `json:"packages"`
}

// VulnList is the answer of GET /api/v1/vulnerabilities.
type VulnList struct {
	Vulnerabilities []VulnSummary `json:"vulnerabilities"`
	Paging
}

func (s *Server) listVulnerabilities(w http.ResponseWriter, r *http.Request) {
	p, ok := page(w, r, defaultLimit, maxLimit)
	if !ok {
		return
	}
	q := r.URL.Query()
	list, total, err := s.store.ListVulnerabilities(r.Context(), store.VulnQuery{Severity: strings.ToLower(q.Get("severity")),
		Package: q.Get("package"), Repository: q.Get("repository"), Page: p})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := VulnList{Vulnerabilities: make([]VulnSummary, len(list)), Paging: paging(p, len(list), total)}
	for i, v := range list {
		out.Vulnerabilities[i] = VulnSummary{ID: v.ID, Severity: v.Severity, Images: v.Images, Packages: v.Packages}
		a, err := s.store.Advisory(r.Context(), v.ID)
		if err == nil {
			out.Vulnerabilities[i].Aliases, out.Vulnerabilities[i].Summary = a.Aliases, a.Summary
		} else if !errors.Is(err, store.ErrNotFound) {
			s.fail(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// AffectedImage is one image (and package) a vulnerability affects.
type AffectedImage struct {
	Digest       string   `json:"digest"`
	Repository   string   `json:"repository"`
	Platform     string   `json:"platform"`
	Tags         []string `json:"tags"`
	PackageType  string   `json:"packageType"`
	Package      string   `json:"package"`
	Version      string   `json:"version"`
	Severity     string   `json:"severity"`
	FixedVersion string   `json:"fixedVersion,omitempty"`
}

// VulnDetail is the answer of GET /api/v1/vulnerabilities/{id}.
type VulnDetail struct {
	ID         string      `json:"id"`
	Aliases    []string    `json:"aliases,omitempty"`
	Summary    string      `json:"summary,omitempty"`
	Details    string      `json:"details,omitempty"`
	Published  *time.Time  `json:"published,omitempty"`
	Modified   *time.Time  `json:"modified,omitempty"`
	Severity   []vuln.CVSS `json:"cvss,omitempty"`
	References []string    `json:"references,omitempty"`
	// Known says whether the advisory is in the store (findings may outlive a removed one).
	Known          bool            `json:"known"`
	AffectedImages []AffectedImage `json:"affectedImages"`
	Paging
}

func (s *Server) vulnerabilityDetail(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if id == "" || len(id) > 256 {
		writeError(w, http.StatusBadRequest, "bad vulnerability id")
		return
	}
	p, ok := page(w, r, defaultAffectedLimit, maxAffectedLimit)
	if !ok {
		return
	}
	ctx := r.Context()
	out := VulnDetail{ID: id}
	a, err := s.store.Advisory(ctx, id)
	switch {
	case err == nil:
		out.Known, out.Aliases, out.Summary, out.Details = true, a.Aliases, a.Summary, a.Details
		out.Severity, out.References = a.Severity, a.References
		if !a.Published.IsZero() {
			out.Published = &a.Published
		}
		if !a.Modified.IsZero() {
			out.Modified = &a.Modified
		}
	case !errors.Is(err, store.ErrNotFound):
		s.fail(w, r, err)
		return
	}
	list, total, err := s.store.VulnerabilityImages(ctx, id, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !out.Known && total == 0 {
		writeError(w, http.StatusNotFound, "vulnerability "+id+" is neither a stored advisory nor found in a stored image")
		return
	}
	out.Paging = paging(p, len(list), total)
	out.AffectedImages = make([]AffectedImage, len(list))
	for i, a := range list {
		out.AffectedImages[i] = AffectedImage{Digest: a.Digest, Repository: a.Name, Platform: a.Platform, Tags: nonNil(a.Tags),
			PackageType: a.PackageType, Package: a.PackageName, Version: a.Version, Severity: a.Severity, FixedVersion: a.FixedVersion}
	}
	writeJSON(w, http.StatusOK, out)
}

// PackageImage is one image holding a package.
type PackageImage struct {
	Type       string   `json:"type"`
	Name       string   `json:"name"`
	Version    string   `json:"version"`
	PURL       string   `json:"purl"`
	Digest     string   `json:"digest"`
	Repository string   `json:"repository"`
	Platform   string   `json:"platform"`
	Tags       []string `json:"tags"`
}

// PackageList is the answer of GET /api/v1/packages.
type PackageList struct {
	Packages []PackageImage `json:"packages"`
	Paging
}

func (s *Server) packages(w http.ResponseWriter, r *http.Request) {
	p, ok := page(w, r, defaultLimit, maxLimit)
	if !ok {
		return
	}
	q := r.URL.Query()
	if q.Get("name") == "" {
		writeError(w, http.StatusBadRequest, "name is required (GET /api/v1/packages?name=openssl[&version=3.0.11-1][&type=deb])")
		return
	}
	list, total, err := s.store.FindPackages(r.Context(), store.PackageQuery{Name: q.Get("name"), Version: q.Get("version"), Type: q.Get("type"), Page: p})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := PackageList{Packages: make([]PackageImage, len(list)), Paging: paging(p, len(list), total)}
	for i, pi := range list {
		out.Packages[i] = PackageImage{Type: pi.Type, Name: pi.Name, Version: pi.Version, PURL: pi.PURL, Digest: pi.Digest,
			Repository: pi.Image, Platform: pi.Platform, Tags: nonNil(pi.Tags)}
	}
	writeJSON(w, http.StatusOK, out)
}

// EventList is the answer of GET /api/v1/events.
type EventList struct {
	Events []vuln.Change `json:"events"`
	// Next is the "after" of the next request: the last event's id, or the request's after.
	Next int64 `json:"next"`
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var after int64
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "after must be a non-negative event id")
			return
		}
		after = n
	}
	limit := defaultEventsLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxEventsLimit {
			writeError(w, http.StatusBadRequest, "limit must be an integer from 1 to "+strconv.Itoa(maxEventsLimit))
			return
		}
		limit = n
	}
	list, err := s.store.Changes(r.Context(), after, limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := EventList{Events: list, Next: after}
	if out.Events == nil {
		out.Events = []vuln.Change{}
	}
	if len(list) > 0 {
		out.Next = list[len(list)-1].ID
	}
	writeJSON(w, http.StatusOK, out)
}

// PackageChange is a package present in both images at different versions.
type PackageChange struct {
	Type string   `json:"type"`
	Name string   `json:"name"`
	From []string `json:"from"`
	To   []string `json:"to"`
}

// FindingChange is a vulnerability of a package in both images whose version, severity or fix
// changed.
type FindingChange struct {
	Vulnerability string       `json:"vulnerability"`
	From          vuln.Finding `json:"from"`
	To            vuln.Finding `json:"to"`
}

// Comparison is the answer of GET /api/v1/compare.
type Comparison struct {
	From     string `json:"from"`
	To       string `json:"to"`
	Packages struct {
		Added   []PackageBrief  `json:"added"`
		Removed []PackageBrief  `json:"removed"`
		Changed []PackageChange `json:"changed"`
	} `json:"packages"`
	Findings struct {
		Added   []vuln.Finding  `json:"added"`
		Removed []vuln.Finding  `json:"removed"`
		Changed []FindingChange `json:"changed"`
	} `json:"findings"`
}

func (s *Server) compare(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("from") == "" || q.Get("to") == "" {
		writeError(w, http.StatusBadRequest, "from and to are required (digests or repository:tag)")
		return
	}
	var digests [2]string
	var sboms [2]*sbom.SBOM
	var founds [2][]vuln.Finding
	for i, ref := range []string{q.Get("from"), q.Get("to")} {
		d, err := s.store.ResolveRef(r.Context(), ref, q.Get("platform"))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		digests[i] = d
		if sboms[i], err = s.store.Image(r.Context(), d); err != nil {
			s.fail(w, r, err)
			return
		}
		if founds[i], err = s.store.Findings(r.Context(), d); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	out := Comparison{From: digests[0], To: digests[1]}
	out.Packages.Added, out.Packages.Removed, out.Packages.Changed = comparePackages(sboms[0].Packages, sboms[1].Packages)
	out.Findings.Added, out.Findings.Removed, out.Findings.Changed = compareFindings(founds[0], founds[1])
	writeJSON(w, http.StatusOK, out)
}

// comparePackages diffs by type and name; a name held at several versions is compared as the set
// of its versions.
func comparePackages(from, to []sbom.Package) (added, removed []PackageBrief, changed []PackageChange) {
	type versions map[string]sbom.Package
	group := func(ps []sbom.Package) map[[2]string]versions {
		m := map[[2]string]versions{}
		for _, p := range ps {
			k := [2]string{p.Type, p.Name}
			if m[k] == nil {
				m[k] = versions{}
			}
			m[k][p.Version] = p
		}
		return m
	}
	a, b := group(from), group(to)
	brief := func(p sbom.Package) PackageBrief {
		return PackageBrief{Type: p.Type, Name: p.Name, Version: p.Version, PURL: p.PURL}
	}
	sorted := func(v versions) []string {
		out := make([]string, 0, len(v))
		for k := range v {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	added, removed, changed = []PackageBrief{}, []PackageBrief{}, []PackageChange{}
	for k, va := range a {
		vb, ok := b[k]
		if !ok {
			for _, v := range sorted(va) {
				removed = append(removed, brief(va[v]))
			}
			continue
		}
		sa, sb := sorted(va), sorted(vb)
		if strings.Join(sa, "\x00") != strings.Join(sb, "\x00") {
			changed = append(changed, PackageChange{Type: k[0], Name: k[1], From: sa, To: sb})
		}
	}
	for k, vb := range b {
		if _, ok := a[k]; !ok {
			for _, v := range sorted(vb) {
				added = append(added, brief(vb[v]))
			}
		}
	}
	less := func(t1, n1, v1, t2, n2, v2 string) bool {
		if t1 != t2 {
			return t1 < t2
		}
		if n1 != n2 {
			return n1 < n2
		}
		return v1 < v2
	}
	sort.Slice(added, func(i, j int) bool {
		return less(added[i].Type, added[i].Name, added[i].Version, added[j].Type, added[j].Name, added[j].Version)
	})
	sort.Slice(removed, func(i, j int) bool {
		return less(removed[i].Type, removed[i].Name, removed[i].Version, removed[j].Type, removed[j].Name, removed[j].Version)
	})
	sort.Slice(changed, func(i, j int) bool {
		return less(changed[i].Type, changed[i].Name, "", changed[j].Type, changed[j].Name, "")
	})
	return added, removed, changed
}

// compareFindings diffs by vulnerability and package type and name, so an upgrade that keeps a
// vulnerability shows as changed, not as removed and added.
func compareFindings(from, to []vuln.Finding) (added, removed []vuln.Finding, changed []FindingChange) {
	key := func(f *vuln.Finding) string {
		return f.VulnerabilityID + "\x00" + f.Package.Type + "\x00" + f.Package.Name + "\x00" + f.Package.Version
	}
	loose := func(f *vuln.Finding) string {
		return f.VulnerabilityID + "\x00" + f.Package.Type + "\x00" + f.Package.Name
	}
	exact := map[string]bool{}
	for i := range to {
		exact[key(&to[i])] = true
	}
	fromExact := map[string]bool{}
	for i := range from {
		fromExact[key(&from[i])] = true
	}
	// Findings present at the same version on both sides are unchanged unless their facts moved.
	toLoose := map[string][]int{}
	for i := range to {
		if !fromExact[key(&to[i])] {
			toLoose[loose(&to[i])] = append(toLoose[loose(&to[i])], i)
		}
	}
	matched := map[int]bool{}
	added, removed, changed = []vuln.Finding{}, []vuln.Finding{}, []FindingChange{}
	for i := range from {
		f := &from[i]
		if exact[key(f)] {
			for j := range to {
				if key(&to[j]) == key(f) && (to[j].Severity != f.Severity || to[j].FixedVersion != f.FixedVersion) {
					changed = append(changed, FindingChange{Vulnerability: f.VulnerabilityID, From: *f, To: to[j]})
				}
			}
			continue
		}
		if js := toLoose[loose(f)]; len(js) > 0 {
			j := js[0]
			toLoose[loose(f)] = js[1:]
			matched[j] = true
			changed = append(changed, FindingChange{Vulnerability: f.VulnerabilityID, From: *f, To: to[j]})
			continue
		}
		removed = append(removed, *f)
	}
	for j := range to {
		if !fromExact[key(&to[j])] && !matched[j] {
			added = append(added, to[j])
		}
	}
	return added, removed, changed
}
