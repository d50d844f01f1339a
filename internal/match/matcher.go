package match

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

// AdvisorySource looks advisories up by package key. The store implements it over its
// advisory tables; tests and benchmarks use an in-memory map. Advisories are returned as
// imported (affected ecosystems as OSV writes them); the matcher normalizes.
type AdvisorySource interface {
	AdvisoriesFor(ctx context.Context, keys []PackageKey) (map[PackageKey][]*vuln.Advisory, error)
}

// Bounds on what one match run reports, so a hostile SBOM or advisory set cannot flood the
// caller.
const (
	maxWarnings = 200
	maxURLs     = 20
	maxSummary  = 300
)

// MatchSBOM matches every package of an SBOM against the advisories of src. It returns one
// finding per (package, vulnerability) (see MatchPackages for the deduplication rule), and
// warnings about what could not be matched: an OS without OSV data, unparsable versions.
func MatchSBOM(ctx context.Context, src AdvisorySource, s *sbom.SBOM) ([]vuln.Finding, []string, error) {
	if s == nil {
		return nil, nil, nil
	}
	var (
		refs     = make([]vuln.PackageRef, 0, len(s.Packages))
		warnings []string
		osMissed int
	)
	for i := range s.Packages {
		p := &s.Packages[i]
		eco, name, ok := Key(p, s.OS)
		if !ok {
			if sbom.IsOS(p.Type) {
				osMissed++
			}
			continue
		}
		refs = append(refs, vuln.PackageRef{
			Type: p.Type, Name: p.Name, Version: p.Version, PURL: p.PURL,
			Ecosystem: eco, MatchName: name,
		})
	}
	if osMissed > 0 {
		osName := "unknown OS"
		if s.OS != nil {
			osName = strings.TrimSpace(s.OS.ID + " " + s.OS.VersionID + " " + s.OS.VersionCodename)
		}
		warnings = append(warnings, fmt.Sprintf("%d OS packages not matched: no OSV advisory ecosystem for %s", osMissed, osName))
	}
	findings, w, err := matchRefs(ctx, src, refs, versionCache{})
	return findings, append(warnings, w...), err
}

// MatchPackages matches stored package references (their Ecosystem and MatchName are the key)
// against the advisories of src: the re-match path, which needs no SBOM. References without a
// key are skipped.
//
// Deduplication: one finding per (package, vulnerability). Advisories that name a single CVE
// (DEBIAN-CVE-x, UBUNTU-CVE-x, ALPINE-CVE-x, a DLA fixing one CVE, a GHSA, a GO record...) and
// advisories that share an id with them (through id, aliases or upstream) are one
// vulnerability; the finding keeps the preferred record (for OS packages the distribution's
// per-CVE record, then its other advisories; for language packages the ecosystem's own
// database - GO, PYSEC, RUSTSEC - then GHSA; plain CVE records last) and carries every other
// id as an alias. An advisory bundling several CVEs (a DSA, a USN) becomes an alias of the
// per-CVE findings when each of its CVEs has one, and a finding of its own otherwise. The
// rating is the kept record's, or the highest of the merged records when it has none.
func MatchPackages(ctx context.Context, src AdvisorySource, pkgs []vuln.PackageRef) ([]vuln.Finding, error) {
	findings, _, err := matchRefs(ctx, src, pkgs, versionCache{})
	return findings, err
}

// Matcher is MatchPackages for many calls in a row (a re-match matches each distinct package on
// its own, twice): it keeps the versions it parsed, which most calls share (every package of a
// key meets the same range events). Not safe for concurrent use.
type Matcher struct{ cache versionCache }

// maxCachedVersions bounds a Matcher's memory.
const maxCachedVersions = 100_000

// MatchPackages is the package function MatchPackages.
func (m *Matcher) MatchPackages(ctx context.Context, src AdvisorySource, pkgs []vuln.PackageRef) ([]vuln.Finding, error) {
	if m.cache == nil || m.cache.size() > maxCachedVersions {
		m.cache = versionCache{}
	}
	findings, _, err := matchRefs(ctx, src, pkgs, m.cache)
	return findings, err
}

// DistinctRefs returns the matchable references of refs (those with a key), the first of each
// type, name, version and key: the same package found in several places is one package for
// findings.
func DistinctRefs(refs []vuln.PackageRef) []vuln.PackageRef {
	type refID struct{ typ, name, version, eco, matchName string }
	seen := make(map[refID]bool, len(refs))
	out := make([]vuln.PackageRef, 0, len(refs))
	for _, r := range refs {
		if r.Ecosystem == "" || r.MatchName == "" {
			continue
		}
		id := refID{r.Type, r.Name, r.Version, r.Ecosystem, r.MatchName}
		if seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, r)
	}
	return out
}

func matchRefs(ctx context.Context, src AdvisorySource, refs []vuln.PackageRef, cache versionCache) ([]vuln.Finding, []string, error) {
	uniq := DistinctRefs(refs)
	keySet := make(map[PackageKey]bool)
	for _, r := range uniq {
		keySet[PackageKey{r.Ecosystem, r.MatchName}] = true
	}
	if len(uniq) == 0 {
		return nil, nil, nil
	}
	keys := make([]PackageKey, 0, len(keySet))
	for k := range keySet {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Ecosystem != keys[j].Ecosystem {
			return keys[i].Ecosystem < keys[j].Ecosystem
		}
		return keys[i].Name < keys[j].Name
	})
	advs, err := src.AdvisoriesFor(ctx, keys)
	if err != nil {
		return nil, nil, fmt.Errorf("look up advisories for %d packages: %w", len(keys), err)
	}
	var (
		findings []vuln.Finding
		warns    warnings
	)
	for i := range uniq {
		if i%64 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, nil, err
			}
		}
		ref := uniq[i]
		list := advs[PackageKey{ref.Ecosystem, ref.MatchName}]
		if len(list) == 0 {
			continue
		}
		cands := candidates(ref, list, cache, &warns)
		findings = append(findings, merge(ref, cands)...)
	}
	sort.SliceStable(findings, func(i, j int) bool { return FindingLess(&findings[i], &findings[j]) })
	return findings, warns.list, nil
}

// FindingLess is the order of an image's findings: by package name, version and type, then the
// most severe first, then by vulnerability id. Whoever assembles an image's findings by other
// means (the re-match) sorts with it to give the same list.
func FindingLess(a, b *vuln.Finding) bool {
	if a.Package.Name != b.Package.Name {
		return a.Package.Name < b.Package.Name
	}
	if a.Package.Version != b.Package.Version {
		return a.Package.Version < b.Package.Version
	}
	if a.Package.Type != b.Package.Type {
		return a.Package.Type < b.Package.Type
	}
	if ra, rb := vuln.SeverityRank(a.Severity), vuln.SeverityRank(b.Severity); ra != rb {
		return ra > rb
	}
	return a.VulnerabilityID < b.VulnerabilityID
}

type warnings struct {
	list []string
	seen map[string]bool
}

func (w *warnings) add(s string) {
	if w.seen == nil {
		w.seen = map[string]bool{}
	}
	if w.seen[s] || len(w.list) >= maxWarnings {
		return
	}
	w.seen[s] = true
	w.list = append(w.list, s)
}

// candidate is one advisory that affects the package.
type candidate struct {
	adv     *vuln.Advisory
	aff     *vuln.Affected
	verdict Verdict
	ids     []string // id, then aliases
	cves    []string
}

func candidates(ref vuln.PackageRef, list []*vuln.Advisory, cache versionCache, warns *warnings) []candidate {
	version := MatchVersion(ref.Ecosystem, ref.Version)
	var out []candidate
	for _, adv := range list {
		if adv == nil || adv.Withdrawn != nil {
			continue
		}
		var (
			best  *vuln.Affected
			bestV Verdict
		)
		for j := range adv.Affected {
			aff := &adv.Affected[j]
			if !sameKey(aff, ref) {
				continue
			}
			v, err := evaluate(aff, version, cache)
			if err != nil {
				warns.add(fmt.Sprintf("%s %s %s: %v (not matched against %s)", ref.Type, ref.Name, ref.Version, err, adv.ID))
				continue
			}
			for _, w := range v.Warnings {
				warns.add(fmt.Sprintf("advisory %s: %s", adv.ID, w))
			}
			if !v.Affected {
				continue
			}
			if best == nil || v.Fixed != "" && lowerFixed(aff.Ecosystem, v.Fixed, bestV.Fixed, cache) {
				best, bestV = aff, v
			}
		}
		if best == nil {
			continue
		}
		ids := append([]string{adv.ID}, adv.Aliases...)
		out = append(out, candidate{adv: adv, aff: best, verdict: bestV, ids: ids, cves: cvesOf(ids)})
	}
	return out
}

func sameKey(aff *vuln.Affected, ref vuln.PackageRef) bool {
	if aff.Name != ref.MatchName && NormalizeName(aff.Ecosystem, aff.Name) != ref.MatchName {
		return false
	}
	return aff.Ecosystem == ref.Ecosystem || NormalizeEcosystem(aff.Ecosystem) == ref.Ecosystem
}

func cvesOf(ids []string) []string {
	var out []string
	for _, id := range ids {
		if strings.HasPrefix(id, "CVE-") && !contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// merge groups the advisories affecting one package into vulnerabilities (see MatchPackages)
// and makes one finding of each group.
func merge(ref vuln.PackageRef, cands []candidate) []vuln.Finding {
	if len(cands) == 0 {
		return nil
	}
	n := len(cands)
	parent := make([]int, n)
	groupCVE := make([]string, n) // at roots: the group's CVE, "" when none yet
	for i := range parent {
		parent[i] = i
	}
	find := func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	owner := map[string]int{}
	var bundles []int
	for i, c := range cands {
		if len(c.cves) > 1 {
			bundles = append(bundles, i)
			continue
		}
		if len(c.cves) == 1 {
			groupCVE[i] = c.cves[0]
		}
		for _, id := range c.ids {
			j, ok := owner[id]
			if !ok {
				owner[id] = i
				continue
			}
			ri, rj := find(i), find(j)
			if ri == rj {
				continue
			}
			// Two different CVEs are two vulnerabilities, whatever other id they share.
			if groupCVE[ri] != "" && groupCVE[rj] != "" && groupCVE[ri] != groupCVE[rj] {
				continue
			}
			parent[ri] = rj
			if groupCVE[rj] == "" {
				groupCVE[rj] = groupCVE[ri]
			}
		}
	}
	byCVE := map[string]int{} // CVE -> root of its single-CVE group
	for i, c := range cands {
		if len(c.cves) <= 1 {
			if r := find(i); groupCVE[r] != "" {
				byCVE[groupCVE[r]] = r
			}
		}
	}
	extraAliases := map[int][]string{}
	for _, b := range bundles {
		covered := true
		for _, cve := range cands[b].cves {
			if _, ok := byCVE[cve]; !ok {
				covered = false
				break
			}
		}
		if !covered {
			continue // stays a group of its own
		}
		for _, cve := range cands[b].cves {
			r := byCVE[cve]
			extraAliases[r] = append(extraAliases[r], cands[b].adv.ID)
		}
		parent[b] = -1 // absorbed
	}
	groups := map[int][]int{}
	var roots []int
	for i := range cands {
		if parent[i] == -1 {
			continue
		}
		r := find(i)
		if _, ok := groups[r]; !ok {
			roots = append(roots, r)
		}
		groups[r] = append(groups[r], i)
	}
	osPkg := sbom.IsOS(ref.Type)
	out := make([]vuln.Finding, 0, len(roots))
	for _, r := range roots {
		members := groups[r]
		sort.SliceStable(members, func(a, b int) bool {
			ia, ib := cands[members[a]].adv.ID, cands[members[b]].adv.ID
			pa, pb := preference(ia, osPkg), preference(ib, osPkg)
			if pa != pb {
				return pa < pb
			}
			return ia < ib
		})
		out = append(out, finding(ref, cands, members, extraAliases[r], osPkg))
	}
	return out
}

// finding builds the finding of one group; members[0] is the kept record.
func finding(ref vuln.PackageRef, cands []candidate, members []int, extra []string, osPkg bool) vuln.Finding {
	rep := cands[members[0]]
	f := vuln.Finding{
		Package:         ref,
		VulnerabilityID: rep.adv.ID,
		FixedVersion:    rep.verdict.Fixed,
		AffectedRange:   rep.verdict.Range,
	}
	f.Severity, f.CVSSScore, f.CVSSVector = Rate(rep.adv, rep.aff, osPkg)
	var aliases []string
	addAlias := func(id string) {
		if id != "" && id != rep.adv.ID && !contains(aliases, id) {
			aliases = append(aliases, id)
		}
	}
	for _, m := range members {
		c := cands[m]
		for _, id := range c.ids {
			addAlias(id)
		}
		if f.FixedVersion == "" && c.verdict.Fixed != "" {
			f.FixedVersion, f.AffectedRange = c.verdict.Fixed, c.verdict.Range
		}
		if f.Summary == "" {
			f.Summary = summaryOf(c.adv)
		}
	}
	if f.Severity == vuln.SeverityUnspecified {
		// The kept record rates nothing (GO records carry no severity): take the highest
		// rating of the merged records.
		for _, m := range members[1:] {
			sev, score, vec := Rate(cands[m].adv, cands[m].aff, osPkg)
			if r, fr := vuln.SeverityRank(sev), vuln.SeverityRank(f.Severity); r > fr || r == fr && score > f.CVSSScore {
				f.Severity, f.CVSSScore, f.CVSSVector = sev, score, vec
			}
		}
	}
	for _, id := range extra {
		addAlias(id)
	}
	sort.Strings(aliases)
	f.Aliases = aliases
	f.URLs = append(f.URLs, "https://osv.dev/vulnerability/"+rep.adv.ID)
	for _, u := range rep.adv.References {
		if len(f.URLs) >= maxURLs {
			break
		}
		if !contains(f.URLs, u) {
			f.URLs = append(f.URLs, u)
		}
	}
	return f
}

// summaryOf is the advisory's summary, or the first line of its details (distribution per-CVE
// records have no summary).
func summaryOf(a *vuln.Advisory) string {
	s := a.Summary
	if s == "" {
		s, _, _ = strings.Cut(strings.TrimSpace(a.Details), "\n")
	}
	if len(s) > maxSummary {
		cut := maxSummary
		for cut > 0 && s[cut]&0xC0 == 0x80 { // do not split a UTF-8 sequence
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// distroCVEPrefixes are distribution records about exactly one CVE.
var distroCVEPrefixes = []string{"DEBIAN-CVE-", "UBUNTU-CVE-", "ALPINE-CVE-"}

// distroPrefixes are other distribution advisories.
var distroPrefixes = []string{
	"DSA-", "DLA-", "DTSA-", "USN-", "RHSA-", "RHBA-", "RHEA-", "ALSA-", "ALBA-", "ALEA-",
	"RLSA-", "RXSA-", "SUSE-", "openSUSE-", "MGASA-", "CGA-", "BIT-",
}

// nativePrefixes are language ecosystems' own databases.
var nativePrefixes = []string{"GO-", "PYSEC-", "RUSTSEC-", "RSEC-"}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// preference ranks an advisory id as the record to keep for a merged finding (lower wins).
func preference(id string, osPkg bool) int {
	switch {
	case strings.HasPrefix(id, "CVE-"):
		return 9
	case osPkg && hasAnyPrefix(id, distroCVEPrefixes):
		return 0
	case osPkg && hasAnyPrefix(id, distroPrefixes):
		return 1
	case !osPkg && hasAnyPrefix(id, nativePrefixes):
		return 0
	case strings.HasPrefix(id, "GHSA-"):
		return 2
	}
	return 5
}

// MemorySource is an in-memory AdvisorySource: advisories indexed by the normalized key of each
// affected package. Tests, benchmarks and one-off matches use it; the store is the real source.
type MemorySource struct {
	byKey map[PackageKey][]*vuln.Advisory
}

// NewMemorySource indexes advisories; withdrawn ones are left out.
func NewMemorySource(advs ...*vuln.Advisory) *MemorySource {
	m := &MemorySource{byKey: map[PackageKey][]*vuln.Advisory{}}
	for _, a := range advs {
		m.Add(a)
	}
	return m
}

// Add indexes one advisory under every package it affects.
func (m *MemorySource) Add(a *vuln.Advisory) {
	if a == nil || a.Withdrawn != nil {
		return
	}
	seen := map[PackageKey]bool{}
	for _, aff := range a.Affected {
		k := PackageKey{NormalizeEcosystem(aff.Ecosystem), NormalizeName(aff.Ecosystem, aff.Name)}
		if seen[k] {
			continue
		}
		seen[k] = true
		m.byKey[k] = append(m.byKey[k], a)
	}
}

// AdvisoriesFor implements AdvisorySource.
func (m *MemorySource) AdvisoriesFor(ctx context.Context, keys []PackageKey) (map[PackageKey][]*vuln.Advisory, error) {
	out := make(map[PackageKey][]*vuln.Advisory, len(keys))
	for _, k := range keys {
		if list := m.byKey[k]; len(list) > 0 {
			out[k] = list
		}
	}
	return out, ctx.Err()
}
