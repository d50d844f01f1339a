package dashboard

import (
	"net/http"
	"sort"
	"strings"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

type pkgChange struct {
	Type, Name string
	From, To   []string
}

type compareView struct {
	From, To, Platform string
	Tags               []string
	Done               bool
	FromDigest         string
	ToDigest           string
	Added, Removed     []sbom.Package
	Changed            []pkgChange
	NewFindings        []vuln.Finding
	FixedFindings      []vuln.Finding
	FromCounts         []sevCount
	ToCounts           []sevCount
}

func (d *Dashboard) compare(w http.ResponseWriter, r *http.Request, v *view) error {
	q := r.URL.Query()
	out := compareView{From: strings.TrimSpace(q.Get("from")), To: strings.TrimSpace(q.Get("to")), Platform: q.Get("platform")}
	tags, err := d.st.TagNames(r.Context(), maxListedTags)
	if err != nil {
		return err
	}
	out.Tags = tags
	v.Title, v.Nav = "Compare", "compare"
	if out.From != "" && out.To != "" {
		var sboms [2]*sbom.SBOM
		var found [2][]vuln.Finding
		for i, ref := range []string{out.From, out.To} {
			dg, err := d.st.ResolveRef(r.Context(), ref, out.Platform)
			if err != nil {
				return err
			}
			if i == 0 {
				out.FromDigest = dg
			} else {
				out.ToDigest = dg
			}
			if sboms[i], err = d.st.Image(r.Context(), dg); err != nil {
				return err
			}
			if found[i], err = d.st.Findings(r.Context(), dg); err != nil {
				return err
			}
		}
		out.Done = true
		out.Added, out.Removed, out.Changed = diffPackages(sboms[0].Packages, sboms[1].Packages)
		out.NewFindings, out.FixedFindings = diffFindings(found[0], found[1])
		out.FromCounts, out.ToCounts = countBySeverity(found[0]), countBySeverity(found[1])
		v.Title = "Compare " + out.From + " → " + out.To
	}
	v.Data = out
	d.render(w, r, http.StatusOK, "compare", v)
	return nil
}

func countBySeverity(fs []vuln.Finding) []sevCount {
	m := map[string]int{}
	for _, f := range fs {
		m[f.Severity]++
	}
	out := make([]sevCount, 0, len(severityOrder))
	for _, s := range severityOrder {
		out = append(out, sevCount{s, m[s]})
	}
	return out
}

// diffPackages compares by type and name; a name held at several versions compares as the set
// of its versions.
func diffPackages(from, to []sbom.Package) (added, removed []sbom.Package, changed []pkgChange) {
	group := func(ps []sbom.Package) map[[2]string]map[string]sbom.Package {
		m := map[[2]string]map[string]sbom.Package{}
		for _, p := range ps {
			k := [2]string{p.Type, p.Name}
			if m[k] == nil {
				m[k] = map[string]sbom.Package{}
			}
			m[k][p.Version] = p
		}
		return m
	}
	versions := func(v map[string]sbom.Package) []string {
		out := make([]string, 0, len(v))
		for k := range v {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	a, b := group(from), group(to)
	for k, va := range a {
		vb, ok := b[k]
		if !ok {
			for _, ver := range versions(va) {
				removed = append(removed, va[ver])
			}
			continue
		}
		sa, sb := versions(va), versions(vb)
		if strings.Join(sa, "\x00") != strings.Join(sb, "\x00") {
			changed = append(changed, pkgChange{Type: k[0], Name: k[1], From: sa, To: sb})
		}
	}
	for k, vb := range b {
		if _, ok := a[k]; !ok {
			for _, ver := range versions(vb) {
				added = append(added, vb[ver])
			}
		}
	}
	byName := func(ps []sbom.Package) {
		sort.Slice(ps, func(i, j int) bool {
			if ps[i].Name != ps[j].Name {
				return ps[i].Name < ps[j].Name
			}
			return ps[i].Version < ps[j].Version
		})
	}
	byName(added)
	byName(removed)
	sort.Slice(changed, func(i, j int) bool { return changed[i].Name < changed[j].Name })
	return added, removed, changed
}

// diffFindings returns the vulnerabilities (by id and package name) only the newer image has, and
// those only the older one had: what the change introduced and what it fixed.
func diffFindings(from, to []vuln.Finding) (introduced, fixed []vuln.Finding) {
	key := func(f vuln.Finding) string {
		return f.VulnerabilityID + "\x00" + f.Package.Type + "\x00" + f.Package.Name
	}
	inFrom, inTo := map[string]bool{}, map[string]bool{}
	for _, f := range from {
		inFrom[key(f)] = true
	}
	for _, f := range to {
		inTo[key(f)] = true
		if !inFrom[key(f)] {
			introduced = append(introduced, f)
		}
	}
	for _, f := range from {
		if !inTo[key(f)] {
			fixed = append(fixed, f)
		}
	}
	sortFindings(introduced)
	sortFindings(fixed)
	return introduced, fixed
}
