package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

func TestFormats(t *testing.T) {
	if Formats()[0] != Packages {
		t.Errorf("default format %q", Formats()[0])
	}
	for in, want := range map[string]string{"": Packages, "SARIF": SARIF, "md": Markdown, "cdx": CycloneDX, " gitlab ": GitLab} {
		if got, ok := Canonical(in); !ok || got != want {
			t.Errorf("Canonical(%q) = %q, %v", in, got, ok)
		}
	}
	var buf bytes.Buffer
	if err := Render(&buf, "spdx", fixture()); err == nil || !strings.Contains(err.Error(), "packages, json, sarif") {
		t.Errorf("unknown format: %v", err)
	}
	if err := Render(failing{}, JSON, fixture()); err == nil {
		t.Error("write error not reported")
	}
	if err := Render(&buf, CycloneDX, &Report{}); err == nil {
		t.Error("cyclonedx without SBOM accepted")
	}
}

type failing struct{}

func (failing) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestPackagesFormat(t *testing.T) {
	r := fixture()
	out := string(render(t, Packages, r))
	for _, want := range []string{
		"  Target            registry.example/team/app:1.4.2\n",
		"    digest          " + digest + "\n",
		"    platform        linux/amd64\n",
		"    vulnerabilities 1C 1H 3M 1L 1?\n",
		"  0C 0H 1M 1L 0?  openssl 3.0.11-1~deb12u2\npkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=amd64&distro=debian-12\n",
		"    ✗ CRITICAL CVE-2023-45853\n      https://osv.dev/vulnerability/CVE-2023-45853\n",
		"      Fixed version  : not fixed\n      CVSS Score     : 9.8\n",
		"      Affected range : <3.0.13-1~deb12u1\n      Fixed version  : 3.0.13-1~deb12u1\n      CVSS Score     : 5.5\n      CVSS Vector    : CVSS:3.1/AV:L/AC:L/PR:N/UI:R/S:U/C:N/I:N/A:H\n",
		"      Aliases        : CVE-2023-39325, GHSA-4374-p667-p6c8\n",
		"7 vulnerabilities found in 6 packages\n  CRITICAL     1\n  HIGH         1\n  MEDIUM       3\n  LOW          1\n  UNSPECIFIED  1\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	// Packages by highest severity, then name; within a package the most severe first.
	order := regexp.MustCompile(`(?m)^  \d+C \d+H \d+M \d+L \d+\?  (\S+)`).FindAllStringSubmatch(out, -1)
	var names []string
	for _, m := range order {
		names = append(names, m[1])
	}
	if want := []string{"zlib1g", "golang.org/x/net", "express", "libssl3", "openssl", "bash"}; !slices.Equal(names, want) {
		t.Errorf("package order %v, want %v", names, want)
	}
	if strings.Index(out, "MEDIUM CVE-2024-0727") > strings.Index(out, "LOW CVE-2023-5678") {
		t.Error("openssl's low finding before its medium one")
	}
	if strings.Contains(out, "/var/lib/dpkg/status") {
		t.Error("locations printed without --locations")
	}

	r.Locations = true
	out = string(render(t, Packages, r))
	if !strings.Contains(out, "    /usr/local/bin/server\n      layer 1: "+layer1+"\n") {
		t.Errorf("locations missing:\n%s", out)
	}

	empty := fixture()
	empty.Findings, empty.Filtered, empty.Suppressed = nil, true, 2
	out = string(render(t, Packages, empty))
	for _, want := range []string{"No vulnerable package detected", "0 vulnerabilities found in 0 packages", "vulnerabilities 0C 0H 0M 0L 0?", "suppressed      2 (VEX)", "filtered        yes"} {
		if !strings.Contains(out, want) {
			t.Errorf("empty report lacks %q:\n%s", want, out)
		}
	}
}

func TestHostileTextIsInert(t *testing.T) {
	r := fixture()
	r.Findings[0].Summary = "boom\x1b[2J\x1b]8;;http://evil\x07click\nnext line"
	r.Findings[0].Package.Name = "evil|pkg](http://x)<img src=x>"
	r.Locations = true
	for _, format := range []string{Packages, Markdown} {
		out := string(render(t, format, r))
		if strings.ContainsAny(out, "\x1b\x07") {
			t.Errorf("%s: control characters pass through", format)
		}
		if strings.Contains(out, "\nnext line") {
			t.Errorf("%s: a summary breaks the line", format)
		}
	}
	md := string(render(t, Markdown, r))
	if !strings.Contains(md, `evil\|pkg\]\(http://x\)\<img src=x\>`) {
		t.Errorf("markdown not escaped:\n%s", md)
	}
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "| HIGH") && strings.Count(line, "|")-strings.Count(line, `\|`) != 8 {
			t.Errorf("table row has extra cells: %s", line)
		}
	}
}

func TestJSONFormat(t *testing.T) {
	r := fixture()
	r.Locations, r.Suppressed = true, 1
	var doc JSONReport
	dec := json.NewDecoder(bytes.NewReader(render(t, JSON, r)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc.SchemaVersion != JSONSchemaVersion || doc.Image.Digest != digest || doc.Image.Platform != "linux/amd64" || doc.OS.ID != "debian" || doc.Tool.Version != "v0.3.0" {
		t.Errorf("header: %+v", doc)
	}
	want := JSONSummary{Counts: Counts{Critical: 1, High: 1, Medium: 3, Low: 1, Unspecified: 1}, Total: 7, Packages: 6}
	if doc.Summary != want || doc.Suppressed != 1 || doc.Filtered {
		t.Errorf("summary %+v", doc.Summary)
	}
	if len(doc.Findings) != 7 || doc.Findings[0].VulnerabilityID != "CVE-2023-45853" || doc.Findings[0].URL != "https://osv.dev/vulnerability/CVE-2023-45853" {
		t.Fatalf("findings: %+v", doc.Findings)
	}
	g := doc.Findings[1]
	if g.Package.PURL != "pkg:golang/golang.org/x/net@v0.10.0" || g.CVSSScore != 7.5 || g.FixedVersion != "0.17.0" || !slices.Equal(g.Aliases, []string{"CVE-2023-39325", "GHSA-4374-p667-p6c8"}) {
		t.Errorf("Go finding: %+v", g)
	}
	if len(g.Locations) != 1 || g.Locations[0].Path != "/usr/local/bin/server" || g.Locations[0].DiffID != layer1 {
		t.Errorf("locations: %+v", g.Locations)
	}
	// An empty result is an empty array, not null.
	r.Findings = nil
	if out := string(render(t, JSON, r)); !strings.Contains(out, `"findings": []`) {
		t.Errorf("empty findings: %s", out)
	}
}

func TestJSONDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/CVES-JSON.md")
	if err != nil {
		t.Fatal(err)
	}
	r := fixture()
	r.Locations = true
	var m map[string]any
	if err := json.Unmarshal(render(t, JSON, r), &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	collectKeys(m, &keys)
	for _, k := range keys {
		if !strings.Contains(string(doc), "`"+k+"`") {
			t.Errorf("field %q is not documented in docs/CVES-JSON.md", k)
		}
	}
}

func collectKeys(v any, out *[]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if !slices.Contains(*out, k) {
				*out = append(*out, k)
			}
			collectKeys(e, out)
		}
	case []any:
		for _, e := range x {
			collectKeys(e, out)
		}
	}
}

func TestSARIFFormat(t *testing.T) {
	r := fixture()
	var log SARIFLog
	if err := json.Unmarshal(render(t, SARIF, r), &log); err != nil {
		t.Fatal(err)
	}
	if log.Version != "2.1.0" || !strings.Contains(log.Schema, "sarif") || len(log.Runs) != 1 {
		t.Fatalf("log: %+v", log)
	}
	run := log.Runs[0]
	if run.Tool.Driver.Name != "crowsnest" || run.Tool.Driver.Version != "v0.3.0" {
		t.Errorf("driver: %+v", run.Tool.Driver)
	}
	// One rule per vulnerability (CVE-2024-0727 is found twice), one result per finding.
	if len(run.Tool.Driver.Rules) != 6 || len(run.Results) != 7 {
		t.Fatalf("%d rules, %d results", len(run.Tool.Driver.Rules), len(run.Results))
	}
	rules := map[string]SARIFRule{}
	for _, rule := range run.Tool.Driver.Rules {
		rules[rule.ID] = rule
	}
	for _, tc := range []struct{ id, level, sev string }{
		{"CVE-2023-45853", "error", "9.8"},
		{"GO-2023-2102", "error", "7.5"},
		{"CVE-2024-0727", "warning", "5.5"},
		{"CVE-2023-5678", "note", "5.3"},
		{"CVE-2022-3715", "note", ""},
	} {
		rule := rules[tc.id]
		got, _ := rule.Properties["security-severity"].(string)
		if rule.DefaultConfiguration.Level != tc.level || got != tc.sev || rule.HelpURI != OSVURL(tc.id) || rule.ShortDescription.Text == "" {
			t.Errorf("rule %s: level %q, security-severity %q, %+v", tc.id, rule.DefaultConfiguration.Level, got, rule)
		}
	}
	for _, res := range run.Results {
		rule := run.Tool.Driver.Rules[res.RuleIndex]
		if rule.ID != res.RuleID || res.Message.Text == "" || len(res.Locations) == 0 {
			t.Errorf("result %+v", res)
		}
		loc := res.Locations[0].PhysicalLocation
		if strings.HasPrefix(loc.ArtifactLocation.URI, "/") || loc.Region.StartLine != 1 {
			t.Errorf("location %+v", loc)
		}
	}
	if uri := run.Results[0].Locations[0].PhysicalLocation.ArtifactLocation.URI; uri != "var/lib/dpkg/status" {
		t.Errorf("zlib1g location %q", uri)
	}
	if uri := run.Results[1].Locations[0].PhysicalLocation.ArtifactLocation.URI; uri != "usr/local/bin/server" {
		t.Errorf("Go module location %q", uri)
	}
	// Without files (an SBOM input), the image is the artifact.
	r.SBOM.Packages = nil
	if err := json.Unmarshal(render(t, SARIF, r), &log); err != nil {
		t.Fatal(err)
	}
	if uri := log.Runs[0].Results[0].Locations[0].PhysicalLocation.ArtifactLocation.URI; uri != "registry.example/team/app" {
		t.Errorf("fallback location %q", uri)
	}
}

func TestMarkdownFormat(t *testing.T) {
	out := string(render(t, Markdown, fixture()))
	for _, want := range []string{
		"### Vulnerabilities in `registry.example/team/app:1.4.2`\n",
		"| 1 | 1 | 3 | 1 | 1 | 6 |\n",
		"| CRITICAL | [CVE-2023-45853](https://osv.dev/vulnerability/CVE-2023-45853) | zlib1g | 1:1.2.13.dfsg-1 | _not fixed_ | 9.8 |\n",
		"| MEDIUM | [CVE-2024-0727](https://osv.dev/vulnerability/CVE-2024-0727) | openssl | 3.0.11-1\\~deb12u2 | 3.0.13-1\\~deb12u1 | 5.5 |\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	if strings.Contains(out, "Locations") {
		t.Error("locations column without --locations")
	}
}

func TestGitLabFormat(t *testing.T) {
	var rep GitLabReport
	dec := json.NewDecoder(bytes.NewReader(render(t, GitLab, fixture())))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^15\.\d+\.\d+$`).MatchString(rep.Version) {
		t.Errorf("version %q", rep.Version)
	}
	ts := regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$`) // the schema's pattern
	s := rep.Scan
	if s.Type != "container_scanning" || s.Status != "success" || !ts.MatchString(s.StartTime) || !ts.MatchString(s.EndTime) ||
		s.StartTime != "2024-05-02T10:00:00" || s.EndTime != "2024-05-02T10:00:03" {
		t.Errorf("scan %+v", s)
	}
	for _, tool := range []GitLabTool{s.Analyzer, s.Scanner} {
		if tool.ID == "" || tool.Name == "" || tool.Version == "" || tool.Vendor.Name == "" {
			t.Errorf("tool %+v", tool)
		}
	}
	if len(rep.Vulnerabilities) != 7 {
		t.Fatalf("%d vulnerabilities", len(rep.Vulnerabilities))
	}
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	ids := map[string]bool{}
	for _, v := range rep.Vulnerabilities {
		if !uuid.MatchString(v.ID) || ids[v.ID] {
			t.Errorf("id %q not a unique UUID", v.ID)
		}
		ids[v.ID] = true
		if !slices.Contains([]string{"Critical", "High", "Medium", "Low", "Unknown"}, v.Severity) || len(v.Identifiers) == 0 || v.Name == "" || v.Description == "" {
			t.Errorf("vulnerability %+v", v)
		}
		for _, id := range v.Identifiers {
			if id.Type == "" || id.Name == "" || id.Value == "" || !strings.HasPrefix(id.URL, "https://") {
				t.Errorf("identifier %+v", id)
			}
		}
		l := v.Location
		if l.Dependency.Package.Name == "" || l.Dependency.Version == "" || l.OperatingSystem != "debian 12" || l.Image != "registry.example/team/app:1.4.2" {
			t.Errorf("location %+v", l)
		}
	}
	goFinding := rep.Vulnerabilities[1]
	if goFinding.Severity != "High" || goFinding.Solution != "Upgrade golang.org/x/net to 0.17.0" || goFinding.Name != "CVE-2023-39325 in golang.org/x/net v0.10.0" {
		t.Errorf("Go finding %+v", goFinding)
	}
	var types []string
	for _, id := range goFinding.Identifiers {
		types = append(types, id.Type+":"+id.Value)
	}
	if !slices.Equal(types, []string{"cve:CVE-2023-39325", "osv:GO-2023-2102", "ghsa:GHSA-4374-p667-p6c8"}) {
		t.Errorf("identifiers %v", types)
	}
	if rep.Vulnerabilities[0].Solution != "No solution provided" || rep.Vulnerabilities[6].Severity != "Unknown" {
		t.Errorf("unfixed or unspecified: %+v %+v", rep.Vulnerabilities[0], rep.Vulnerabilities[6])
	}
	// The same report renders the same ids.
	again := render(t, GitLab, fixture())
	if !bytes.Contains(again, []byte(rep.Vulnerabilities[3].ID)) {
		t.Error("ids differ between runs")
	}
}

func TestCycloneDXFormat(t *testing.T) {
	bom := new(cdx.BOM)
	if err := cdx.NewBOMDecoder(bytes.NewReader(render(t, CycloneDX, fixture())), cdx.BOMFileFormatJSON).Decode(bom); err != nil {
		t.Fatal(err)
	}
	if bom.SpecVersion != cdx.SpecVersion1_6 || bom.Components == nil || bom.Vulnerabilities == nil {
		t.Fatalf("bom: spec %v, components %v, vulnerabilities %v", bom.SpecVersion, bom.Components != nil, bom.Vulnerabilities != nil)
	}
	refs := map[string]string{}
	for _, c := range *bom.Components {
		refs[c.BOMRef] = c.Name
	}
	vulns := map[string]cdx.Vulnerability{}
	for _, v := range *bom.Vulnerabilities {
		vulns[v.ID] = v
		if v.Affects == nil || len(*v.Affects) == 0 {
			t.Errorf("%s affects nothing", v.ID)
			continue
		}
		for _, a := range *v.Affects {
			if _, ok := refs[a.Ref]; !ok {
				t.Errorf("%s affects unknown bom-ref %q", v.ID, a.Ref)
			}
		}
	}
	if len(vulns) != 6 {
		t.Errorf("%d vulnerabilities, want 6", len(vulns))
	}
	v := vulns["CVE-2024-0727"]
	var affected []string
	for _, a := range *v.Affects {
		affected = append(affected, refs[a.Ref])
	}
	slices.Sort(affected)
	if !slices.Equal(affected, []string{"libssl3", "openssl"}) {
		t.Errorf("CVE-2024-0727 affects %v", affected)
	}
	if v.Ratings == nil || len(*v.Ratings) != 1 || *(*v.Ratings)[0].Score != 5.5 || (*v.Ratings)[0].Method != cdx.ScoringMethodCVSSv31 || (*v.Ratings)[0].Severity != cdx.SeverityMedium {
		t.Errorf("ratings %+v", v.Ratings)
	}
	if v.Recommendation != "Upgrade libssl3 to 3.0.13-1~deb12u1; Upgrade openssl to 3.0.13-1~deb12u1" {
		t.Errorf("recommendation %q", v.Recommendation)
	}
	if v.Source == nil || v.Source.URL != "https://osv.dev/vulnerability/CVE-2024-0727" || v.References == nil || (*v.References)[0].ID != "DSA-5621-1" {
		t.Errorf("source/references %+v %+v", v.Source, v.References)
	}
	if z := vulns["CVE-2023-45853"]; z.Recommendation != "" || (*z.Ratings)[0].Severity != cdx.SeverityCritical {
		t.Errorf("unfixed zlib: %+v", z)
	}
	if b := vulns["CVE-2022-3715"]; (*b.Ratings)[0].Severity != cdx.SeverityUnknown {
		t.Errorf("unspecified: %+v", b.Ratings)
	}
}

func TestCountsString(t *testing.T) {
	c := CountFindings([]vuln.Finding{{Severity: "high"}, {Severity: "high"}, {Severity: "medium"}, {Severity: "bogus"}})
	if c.String() != "0C 2H 1M 0L 1?" || c.Total() != 4 {
		t.Errorf("%s / %d", c, c.Total())
	}
}
