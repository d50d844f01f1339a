package dashboard

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/store"
	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

// trendDays is the span of the overview's findings chart.
const trendDays = 30

// Bounds of the short lists the pages show.
const (
	recentImages    = 8
	topVulns        = 8
	shownFailures   = 20
	historyImages   = 12
	searchPerVuln   = 25
	maxListedTags   = 500
	maxRepositories = 200
)

type overviewView struct {
	Overview          store.Overview
	Findings, Fixable int
	Critical          int
	Bars              barChart
	Trend             lineChart
	Recent            []imageRow
	Top               []vulnRow
	Failures          []store.Failure
	MoreFailures      int
}

func (d *Dashboard) overview(w http.ResponseWriter, r *http.Request, v *view) error {
	ctx := r.Context()
	ov, err := d.st.SeverityOverview(ctx)
	if err != nil {
		return err
	}
	out := overviewView{Overview: ov, Bars: severityBars(ov)}
	for _, s := range ov.Severities {
		out.Findings += s.Findings
		out.Fixable += s.Fixable
		if s.Severity == vuln.SeverityCritical {
			out.Critical = s.Images
		}
	}
	now := d.now()
	days, err := d.st.FindingTrend(ctx, now.Add(-(trendDays-1)*24*time.Hour), now)
	if err != nil {
		return err
	}
	out.Trend = trendChart(days, out.Findings)
	recent, _, err := d.st.ListImages(ctx, store.ImageQuery{Sort: "-indexed", Page: store.Page{Limit: recentImages}})
	if err != nil {
		return err
	}
	out.Recent = imageRows(recent)
	top, _, err := d.st.ListVulnerabilities(ctx, store.VulnQuery{Page: store.Page{Limit: topVulns}})
	if err != nil {
		return err
	}
	if out.Top, err = d.vulnRows(r, top); err != nil {
		return err
	}
	fails, err := d.st.Failures(ctx)
	if err != nil {
		return err
	}
	if len(fails) > shownFailures {
		out.MoreFailures = len(fails) - shownFailures
		fails = fails[:shownFailures]
	}
	out.Failures = fails
	v.Title, v.Nav, v.Data = "Overview", "overview", out
	d.render(w, r, http.StatusOK, "overview", v)
	return nil
}

// imageRow is an image in lists.
type imageRow struct {
	store.ImageSummary
	Highest string
	Counts  []sevCount
}

type sevCount struct {
	Severity string
	N        int
}

var severityOrder = []string{vuln.SeverityCritical, vuln.SeverityHigh, vuln.SeverityMedium, vuln.SeverityLow, vuln.SeverityUnspecified}

func imageRows(list []store.ImageSummary) []imageRow {
	out := make([]imageRow, len(list))
	for i, im := range list {
		out[i] = imageRow{ImageSummary: im, Highest: highest(im.Findings)}
		for _, s := range severityOrder {
			if n := im.Findings[s]; n > 0 {
				out[i].Counts = append(out[i].Counts, sevCount{s, n})
			}
		}
	}
	return out
}

func highest(counts map[string]int) string {
	for _, s := range severityOrder {
		if counts[s] > 0 {
			return s
		}
	}
	return ""
}

type imagesView struct {
	Filter store.ImageQuery
	Rows   []imageRow
	Pager  pager
	// Filtered says whether any filter is set (the empty state differs).
	Filtered bool
}

func (d *Dashboard) images(w http.ResponseWriter, r *http.Request, v *view) error {
	q := r.URL.Query()
	p, n := pageOf(r)
	iq := store.ImageQuery{Registry: q.Get("registry"), Repository: q.Get("repository"), Tag: q.Get("tag"),
		Severity: strings.ToLower(q.Get("severity")), Package: q.Get("package"), Version: q.Get("version"),
		Vulnerability: strings.TrimSpace(q.Get("vulnerability")), Sort: q.Get("sort"), Page: p}
	if iq.Version != "" && iq.Package == "" {
		return fmt.Errorf("%w: a version filter needs a package", store.ErrBadQuery)
	}
	list, total, err := d.st.ListImages(r.Context(), iq)
	if err != nil {
		return err
	}
	out := imagesView{Filter: iq, Rows: imageRows(list), Pager: makePager(r, p, n, len(list), total),
		Filtered: iq.Registry != "" || iq.Repository != "" || iq.Tag != "" || iq.Severity != "" || iq.Package != "" || iq.Vulnerability != ""}
	v.Title, v.Nav, v.Data = "Images", "images", out
	d.render(w, r, http.StatusOK, "images", v)
	return nil
}

var digestRE = regexp.MustCompile(`^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$`)

type pkgView struct {
	Type, Name, Version string
	Paths               []string
	Findings            []vuln.Finding
	Worst               string
}

type layerView struct {
	Index          int
	Digest, DiffID string
	CreatedBy      string
	Size           int64
	Shared         int
	Packages       []pkgView
	Vulns          int
	Worst          string
	Base           bool
}

type kv struct{ Key, Value string }

type imageView struct {
	Sum          imageRow
	Image        sbom.Image
	OS           *sbom.OS
	Layers       []layerView
	Unattributed []pkgView
	Bases        []store.BaseImage
	Findings     []vuln.Finding
	Fixable      int
	History      []imageRow
	Labels       []kv
	Warnings     []string
	Root         bool
}

func (d *Dashboard) image(w http.ResponseWriter, r *http.Request, v *view) error {
	dg := r.PathValue("digest")
	if !digestRE.MatchString(dg) {
		return fmt.Errorf("%w: %q is not an image digest", store.ErrBadQuery, dg)
	}
	ctx := r.Context()
	sum, err := d.st.ImageSummaryOf(ctx, dg)
	if err != nil {
		return err
	}
	sb, err := d.st.Image(ctx, dg)
	if err != nil {
		return err
	}
	found, err := d.st.Findings(ctx, dg)
	if err != nil {
		return err
	}
	shared, bases, err := d.st.LayerSharing(ctx, dg)
	if err != nil {
		return err
	}
	sortFindings(found)
	out := imageView{Sum: imageRows([]store.ImageSummary{sum})[0], Image: sb.Image, OS: sb.OS, Bases: bases,
		Findings: found, Warnings: sb.Warnings}
	for _, f := range found {
		if f.FixedVersion != "" {
			out.Fixable++
		}
	}
	u := sb.Image.Config.User
	out.Root = u == "" || u == "root" || u == "0" || strings.HasPrefix(u, "0:") || strings.HasPrefix(u, "root:")
	for k, val := range sb.Image.Config.Labels {
		out.Labels = append(out.Labels, kv{k, val})
	}
	sort.Slice(out.Labels, func(i, j int) bool { return out.Labels[i].Key < out.Labels[j].Key })

	byPkg := map[string][]vuln.Finding{}
	for _, f := range found {
		k := f.Package.Type + "\x00" + f.Package.Name + "\x00" + f.Package.Version
		byPkg[k] = append(byPkg[k], f)
	}
	baseLayers := 0
	if len(bases) > 0 {
		baseLayers = bases[len(bases)-1].Layers
	}
	byDiff := map[string]int{}
	for i, l := range sb.Image.Layers {
		lv := layerView{Index: l.Index, Digest: l.Digest, DiffID: l.DiffID, CreatedBy: l.CreatedBy, Size: l.Size, Base: i < baseLayers}
		if i < len(shared) && shared[i].DiffID == l.DiffID {
			lv.Shared = shared[i].OtherImages
		}
		if _, dup := byDiff[l.DiffID]; l.DiffID != "" && !dup {
			byDiff[l.DiffID] = len(out.Layers)
		}
		out.Layers = append(out.Layers, lv)
	}
	for _, p := range sb.Packages {
		pv := pkgView{Type: p.Type, Name: p.Name, Version: p.Version, Findings: byPkg[p.Type+"\x00"+p.Name+"\x00"+p.Version]}
		for _, f := range pv.Findings {
			pv.Worst = worse(pv.Worst, f.Severity)
		}
		layer := -1
		for _, loc := range p.Locations {
			pv.Paths = append(pv.Paths, loc.Path)
			// The package's layer is the lowest one declaring it: the one that introduced it.
			if li, ok := byDiff[loc.DiffID]; ok && (layer < 0 || li < layer) {
				layer = li
			}
		}
		if layer < 0 {
			out.Unattributed = append(out.Unattributed, pv)
			continue
		}
		l := &out.Layers[layer]
		l.Packages = append(l.Packages, pv)
		l.Vulns += len(pv.Findings)
		l.Worst = worse(l.Worst, pv.Worst)
	}
	for i := range out.Layers {
		sortPackages(out.Layers[i].Packages)
	}
	history, _, err := d.st.ListImages(ctx, store.ImageQuery{Repository: sum.Name, Sort: "-indexed", Page: store.Page{Limit: historyImages}})
	if err != nil {
		return err
	}
	out.History = imageRows(history)
	v.Title, v.Nav, v.Data = sum.Name+" "+short(dg), "images", out
	d.render(w, r, http.StatusOK, "image", v)
	return nil
}

// sortPackages puts vulnerable packages first, worst first, then by name.
func sortPackages(ps []pkgView) {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := rankOf(ps[i].Worst, len(ps[i].Findings)), rankOf(ps[j].Worst, len(ps[j].Findings))
		if a != b {
			return a > b
		}
		return ps[i].Name < ps[j].Name
	})
}

func rankOf(sev string, n int) int {
	if n == 0 {
		return -1
	}
	return vuln.SeverityRank(sev)
}

func worse(a, b string) string {
	if a == "" || vuln.SeverityRank(b) > vuln.SeverityRank(a) {
		return b
	}
	return a
}

// sortFindings orders by severity (worst first), then fixable first, then package and id.
func sortFindings(fs []vuln.Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := &fs[i], &fs[j]
		if ra, rb := vuln.SeverityRank(a.Severity), vuln.SeverityRank(b.Severity); ra != rb {
			return ra > rb
		}
		if a.CVSSScore != b.CVSSScore {
			return a.CVSSScore > b.CVSSScore
		}
		if (a.FixedVersion != "") != (b.FixedVersion != "") {
			return a.FixedVersion != ""
		}
		if a.Package.Name != b.Package.Name {
			return a.Package.Name < b.Package.Name
		}
		return a.VulnerabilityID < b.VulnerabilityID
	})
}

type vulnRow struct {
	store.VulnSummary
	Aliases []string
	Summary string
}

func (d *Dashboard) vulnRows(r *http.Request, list []store.VulnSummary) ([]vulnRow, error) {
	out := make([]vulnRow, len(list))
	for i, s := range list {
		out[i].VulnSummary = s
		a, err := d.st.Advisory(r.Context(), s.ID)
		switch {
		case err == nil:
			out[i].Aliases, out[i].Summary = a.Aliases, a.Summary
		case !errors.Is(err, store.ErrNotFound):
			return nil, err
		}
	}
	return out, nil
}

type vulnsView struct {
	Filter store.VulnQuery
	Rows   []vulnRow
	Pager  pager
}

func (d *Dashboard) vulns(w http.ResponseWriter, r *http.Request, v *view) error {
	q := r.URL.Query()
	p, n := pageOf(r)
	vq := store.VulnQuery{Severity: strings.ToLower(q.Get("severity")), Package: q.Get("package"), Repository: q.Get("repository"), Page: p}
	list, total, err := d.st.ListVulnerabilities(r.Context(), vq)
	if err != nil {
		return err
	}
	rows, err := d.vulnRows(r, list)
	if err != nil {
		return err
	}
	v.Title, v.Nav, v.Data = "Vulnerabilities", "vulns", vulnsView{Filter: vq, Rows: rows, Pager: makePager(r, p, n, len(list), total)}
	d.render(w, r, http.StatusOK, "vulns", v)
	return nil
}

type vulnView struct {
	ID string
	// Alias is what was searched for when it is not ID (a CVE id of a DSA record).
	Alias    string
	Advisory *vuln.Advisory
	Severity string
	Fixed    []string
	Affected []store.AffectedImage
	Images   int
	Pager    pager
}

// maxDetails bounds the advisory text shown.
const maxDetails = 6000

func (d *Dashboard) vuln(w http.ResponseWriter, r *http.Request, v *view) error {
	id := r.PathValue("id")
	if id == "" || len(id) > 200 {
		return fmt.Errorf("%w: bad vulnerability id", store.ErrBadQuery)
	}
	ctx := r.Context()
	out := vulnView{ID: id}
	if a := r.URL.Query().Get("alias"); a != "" && a != id && len(a) <= 200 {
		out.Alias = a
	}
	a, err := d.st.Advisory(ctx, id)
	switch {
	case err == nil:
		if len(a.Details) > maxDetails {
			a.Details = a.Details[:maxDetails] + "…"
		}
		out.Advisory = a
		for _, af := range a.Affected {
			for _, rg := range af.Ranges {
				for _, e := range rg.Events {
					if e.Fixed != "" && !contains(out.Fixed, af.Ecosystem+" "+af.Name+" "+e.Fixed) {
						out.Fixed = append(out.Fixed, af.Ecosystem+" "+af.Name+" "+e.Fixed)
					}
				}
			}
		}
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	p, n := pageOf(r)
	list, total, err := d.st.VulnerabilityImages(ctx, id, p)
	if err != nil {
		return err
	}
	if out.Advisory == nil && total == 0 {
		// Not an id the store knows: maybe an alias (a CVE id).
		http.Redirect(w, r, Prefix+"search?q="+url.QueryEscape(id), http.StatusSeeOther)
		return nil
	}
	out.Affected, out.Images, out.Pager = list, total, makePager(r, p, n, len(list), total)
	for _, ai := range list {
		out.Severity = worse(out.Severity, ai.Severity)
	}
	v.Title, v.Nav, v.Data = id, "vulns", out
	d.render(w, r, http.StatusOK, "vuln", v)
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

type packagesView struct {
	Prefix, Name, Version string
	Names                 []store.PackageName
	Versions              []store.PackageVersion
	Images                []store.PackageImage
	Pager                 pager
}

func (d *Dashboard) packages(w http.ResponseWriter, r *http.Request, v *view) error {
	q := r.URL.Query()
	ctx := r.Context()
	out := packagesView{Prefix: strings.TrimSpace(q.Get("prefix")), Name: q.Get("name"), Version: q.Get("version")}
	var err error
	if out.Name == "" {
		if out.Prefix != "" {
			if out.Names, err = d.st.SearchPackageNames(ctx, out.Prefix, 100); err != nil {
				return err
			}
		}
	} else {
		if out.Versions, err = d.st.PackageVersions(ctx, out.Name, 500); err != nil {
			return err
		}
		p, n := pageOf(r)
		list, total, err := d.st.FindPackages(ctx, store.PackageQuery{Name: out.Name, Version: out.Version, Page: p})
		if err != nil {
			return err
		}
		out.Images, out.Pager = list, makePager(r, p, n, len(list), total)
	}
	v.Title, v.Nav, v.Data = "Packages", "packages", out
	d.render(w, r, http.StatusOK, "packages", v)
	return nil
}

type settingsView struct {
	Sources      []store.SourceState
	Repositories []store.RepositoryTags
	Repos        int
	Registries   []registryView
	State        []store.StateEntry
	Webhooks     []kv
	HasMetrics   bool
	Tokens       []store.Token
	Integrations []integrationView
	// Deliveries is the notification delivery log, newest first (never payloads or secrets).
	Deliveries []store.Delivery
	Admin      bool
	Stats      store.Stats
}

type integrationView struct {
	Name, Kind, MinSeverity string
	Enabled, FixableOnly    bool
	Events, Repositories    []string
}

type registryView struct {
	Host         string
	Repositories int
}

func (d *Dashboard) settings(w http.ResponseWriter, r *http.Request, v *view) error {
	ctx := r.Context()
	var out settingsView
	var err error
	if out.Sources, err = d.st.Sources(ctx); err != nil {
		return err
	}
	if out.Repositories, out.Repos, err = d.st.Repositories(ctx, maxRepositories); err != nil {
		return err
	}
	hosts := map[string]int{}
	for _, rp := range out.Repositories {
		hosts[registryHost(rp.Repository)]++
	}
	for h, n := range hosts {
		out.Registries = append(out.Registries, registryView{h, n})
	}
	sort.Slice(out.Registries, func(i, j int) bool { return out.Registries[i].Host < out.Registries[j].Host })
	if out.State, err = d.st.StateEntries(ctx, 200); err != nil {
		return err
	}
	if out.Stats, err = d.st.Stats(ctx); err != nil {
		return err
	}
	ints, err := d.st.Integrations(ctx)
	if err != nil {
		return err
	}
	for _, in := range ints {
		// Never the URL or secret: a Slack webhook URL is itself a credential.
		out.Integrations = append(out.Integrations, integrationView{Name: in.Name, Kind: in.Kind, Enabled: in.Enabled,
			MinSeverity: in.MinSeverity, FixableOnly: in.FixableOnly, Events: in.Events, Repositories: in.Repositories})
	}
	if len(ints) > 0 {
		if out.Deliveries, err = d.st.Deliveries(ctx, store.DeliveryQuery{Limit: 25}); err != nil {
			return err
		}
	}
	if d.metrics != nil {
		out.HasMetrics = true
		out.Webhooks = webhookCounts(d.metrics)
	}
	// The token list is an admin's business, as in the API (GET /api/v1/tokens needs admin).
	if v.Token.Scope == "admin" {
		out.Admin = true
		if out.Tokens, err = d.st.Tokens(ctx); err != nil {
			return err
		}
	}
	v.Title, v.Nav, v.Data = "Settings", "settings", out
	d.render(w, r, http.StatusOK, "settings", v)
	return nil
}

// registryHost is the registry part of a repository name ("docker.io" when it has none).
func registryHost(repo string) string {
	if i := strings.IndexByte(repo, '/'); i > 0 {
		if h := repo[:i]; strings.ContainsAny(h, ".:") || h == "localhost" {
			return h
		}
	}
	return "docker.io"
}

type searchView struct {
	Q        string
	Groups   []searchGroup
	Packages []store.PackageName
	Images   []imageRow
}

type searchGroup struct {
	ID       string
	Summary  string
	Affected []store.AffectedImage
	Total    int
}

// search answers the search box: a vulnerability id or any alias of one (which images have
// CVE-X), an image digest, repository:tag, a package name or a repository.
func (d *Dashboard) search(w http.ResponseWriter, r *http.Request, v *view) error {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if q == "" {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
		return nil
	}
	if len(q) > 200 {
		return fmt.Errorf("%w: the search text is too long", store.ErrBadQuery)
	}
	ctx := r.Context()
	if digestRE.MatchString(q) {
		if ok, err := d.st.HasImage(ctx, q); err != nil {
			return err
		} else if ok {
			http.Redirect(w, r, Prefix+"images/"+q, http.StatusSeeOther)
			return nil
		}
	}
	ids, err := d.st.FoundVulnerabilityIDs(ctx, q)
	if err != nil {
		return err
	}
	if len(ids) == 0 && strings.ToUpper(q) != q {
		// CVE, GHSA and distribution ids are upper case; accept "cve-2024-1234".
		if ids, err = d.st.FoundVulnerabilityIDs(ctx, strings.ToUpper(q)); err != nil {
			return err
		}
	}
	switch {
	case len(ids) == 1:
		target := Prefix + "vulnerabilities/" + url.PathEscape(ids[0])
		if ids[0] != q {
			target += "?alias=" + url.QueryEscape(q)
		}
		http.Redirect(w, r, target, http.StatusSeeOther)
		return nil
	case len(ids) == 0:
		if _, err := d.st.Advisory(ctx, q); err == nil {
			http.Redirect(w, r, Prefix+"vulnerabilities/"+url.PathEscape(q), http.StatusSeeOther)
			return nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	out := searchView{Q: q}
	for _, id := range ids {
		list, total, err := d.st.VulnerabilityImages(ctx, id, store.Page{Limit: searchPerVuln})
		if err != nil {
			return err
		}
		g := searchGroup{ID: id, Affected: list, Total: total}
		if a, err := d.st.Advisory(ctx, id); err == nil {
			g.Summary = a.Summary
		}
		out.Groups = append(out.Groups, g)
	}
	if len(ids) == 0 {
		if i := strings.LastIndexByte(q, ':'); i > 0 && !strings.Contains(q[i:], "/") {
			ims, err := d.st.ResolveTag(ctx, q[:i], q[i+1:])
			if err != nil {
				return err
			}
			if len(ims) == 1 {
				http.Redirect(w, r, Prefix+"images/"+ims[0].Digest, http.StatusSeeOther)
				return nil
			}
			if len(ims) > 1 {
				http.Redirect(w, r, Prefix+"images?"+url.Values{"repository": {q[:i]}, "tag": {q[i+1:]}}.Encode(), http.StatusSeeOther)
				return nil
			}
		}
		if out.Packages, err = d.st.SearchPackageNames(ctx, q, 20); err != nil {
			return err
		}
		list, _, err := d.st.ListImages(ctx, store.ImageQuery{Repository: q, Sort: "-indexed", Page: store.Page{Limit: 20}})
		if err != nil {
			return err
		}
		out.Images = imageRows(list)
	}
	v.Title, v.Data = "Search: "+q, out
	d.render(w, r, http.StatusOK, "search", v)
	return nil
}
