package match_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/advisory"
	"github.com/crowsnest-dev/crowsnest/internal/match"
	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

// genuineSource loads the advisory package's OSV test records (genuine osv.dev / vulndb
// records, see internal/advisory/testdata/README.md).
func genuineSource(t testing.TB) *match.MemorySource {
	t.Helper()
	src := match.NewMemorySource()
	for _, dir := range []string{"osv", "reconstructed"} {
		_, err := advisory.Walk(context.Background(), filepath.Join("..", "advisory", "testdata", dir), func(a *vuln.Advisory) error {
			src.Add(a)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return src
}

func findingsByPackage(fs []vuln.Finding) map[string][]vuln.Finding {
	out := map[string][]vuln.Finding{}
	for _, f := range fs {
		out[f.Package.Name] = append(out[f.Package.Name], f)
	}
	return out
}

func TestMatchSBOMGenuineRecords(t *testing.T) {
	src := genuineSource(t)
	ctx := context.Background()

	debian := &sbom.SBOM{
		OS: &sbom.OS{ID: "debian", VersionID: "9"},
		Packages: []sbom.Package{
			{Type: "deb", Name: "libssl1.1", Version: "1.1.0l-1~deb9u5", Source: &sbom.Source{Name: "openssl"}},
			{Type: "deb", Name: "openssl", Version: "1.1.0l-1~deb9u6", Source: &sbom.Source{Name: "openssl"}},
			{Type: "golang", Name: "stdlib", Version: "go1.19.0"},
			{Type: "golang", Name: "github.com/gin-gonic/gin", Version: "v1.5.0"},
			{Type: "golang", Name: "github.com/gravitational/teleport", Version: "v14.0.0"}, // only a withdrawn record
			{Type: "npm", Name: "ansi-html", Version: "0.0.7"},
			{Type: "npm", Name: "ansi-html", Version: "0.0.7"}, // same package found twice
			{Type: "pypi", Name: "Requests", Version: "2.30.0"},
			{Type: "pypi", Name: "requests", Version: "2.28.1", OwnedBy: "pkg:deb/debian/python3-requests@2.28.1-1"},
			{Type: "maven", Name: "junit:junit", Version: "4.12"},
			{Type: "maven", Name: "junit:junit", Version: "4.13.1"},
		},
	}
	fs, warns, err := match.MatchSBOM(ctx, src, debian)
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %v", warns)
	}
	by := findingsByPackage(fs)

	// DLA-3008-1 and DEBIAN-CVE-2022-1292 are one vulnerability; the per-CVE record is kept and
	// the distribution's urgency rates it.
	ssl := by["libssl1.1"]
	if len(ssl) != 1 {
		t.Fatalf("libssl1.1 findings: %+v", ssl)
	}
	f := ssl[0]
	if f.VulnerabilityID != "DEBIAN-CVE-2022-1292" || strings.Join(f.Aliases, ",") != "CVE-2022-1292,DLA-3008-1" ||
		f.FixedVersion != "1.1.0l-1~deb9u6" || f.Severity != vuln.SeverityLow || f.CVSSScore != 9.8 ||
		f.Package.Ecosystem != "Debian:9" || f.Package.MatchName != "openssl" {
		t.Errorf("openssl finding: %+v", f)
	}
	if f.URLs[0] != "https://osv.dev/vulnerability/DEBIAN-CVE-2022-1292" || f.Summary == "" {
		t.Errorf("urls/summary: %v %q", f.URLs, f.Summary)
	}
	if len(by["openssl"]) != 0 {
		t.Errorf("fixed openssl reported: %+v", by["openssl"])
	}

	std := by["stdlib"]
	if len(std) != 1 || std[0].VulnerabilityID != "GO-2022-0969" || std[0].FixedVersion != "1.19.1" ||
		std[0].AffectedRange != ">=1.19.0-0 <1.19.1" || std[0].Severity != vuln.SeverityUnspecified {
		t.Errorf("stdlib: %+v", std)
	}
	if g := by["github.com/gin-gonic/gin"]; len(g) != 1 || g[0].VulnerabilityID != "GO-2020-0001" || g[0].FixedVersion != "1.6.0" {
		t.Errorf("gin: %+v", g)
	}
	if tp := by["github.com/gravitational/teleport"]; len(tp) != 0 {
		t.Errorf("withdrawn advisory matched: %+v", tp)
	}
	if a := by["ansi-html"]; len(a) != 1 || a[0].Severity != vuln.SeverityHigh || a[0].CVSSScore != 7.5 || a[0].FixedVersion != "0.0.8" {
		t.Errorf("ansi-html: %+v", a)
	}
	req := by["Requests"]
	if len(req) != 1 || req[0].VulnerabilityID != "PYSEC-2023-74" || req[0].FixedVersion != "2.31.0" ||
		strings.Join(req[0].Aliases, ",") != "CVE-2023-32681,GHSA-j8r2-6x86-q33q" {
		t.Errorf("requests: %+v", req)
	}
	if len(by["requests"]) != 0 {
		t.Errorf("package owned by an OS package matched upstream advisories: %+v", by["requests"])
	}
	ju := by["junit:junit"]
	if len(ju) != 1 || ju[0].Package.Version != "4.12" || ju[0].Severity != vuln.SeverityMedium || ju[0].CVSSScore != 4.4 {
		t.Errorf("junit: %+v", ju)
	}
	if len(fs) != 6 {
		t.Errorf("%d findings, want 6: %+v", len(fs), fs)
	}

	// The re-match path gives the same findings from the stored references.
	var refs []vuln.PackageRef
	seen := map[vuln.PackageRef]bool{}
	for _, f := range fs {
		if !seen[f.Package] {
			seen[f.Package] = true
			refs = append(refs, f.Package)
		}
	}
	again, err := match.MatchPackages(ctx, src, refs)
	if err != nil || fmt.Sprint(again) != fmt.Sprint(fs) {
		t.Errorf("MatchPackages differs:\n%v\n%v (%v)", again, fs, err)
	}
}

func TestMatchSBOMDistributions(t *testing.T) {
	src := genuineSource(t)
	ctx := context.Background()
	alpine := &sbom.SBOM{OS: &sbom.OS{ID: "alpine", VersionID: "3.19.1"}, Packages: []sbom.Package{
		{Type: "apk", Name: "musl", Version: "1.2.4_git20230717-r4", Source: &sbom.Source{Name: "musl"}},
		{Type: "apk", Name: "musl-utils", Version: "1.2.4_git20230717-r5", Source: &sbom.Source{Name: "musl"}},
	}}
	fs, _, err := match.MatchSBOM(ctx, src, alpine)
	if err != nil || len(fs) != 1 || fs[0].Package.Name != "musl" || fs[0].VulnerabilityID != "ALPINE-CVE-2025-26519" ||
		fs[0].FixedVersion != "1.2.4_git20230717-r5" || fs[0].Severity != vuln.SeverityHigh || strings.Join(fs[0].Aliases, ",") != "CVE-2025-26519" {
		t.Fatalf("alpine: %+v %v", fs, err)
	}

	ubuntu := &sbom.SBOM{OS: &sbom.OS{ID: "ubuntu", VersionID: "22.04"}, Packages: []sbom.Package{
		{Type: "deb", Name: "libc6", Version: "2.35-0ubuntu3.9", Source: &sbom.Source{Name: "glibc"}},
	}}
	fs, _, err = match.MatchSBOM(ctx, src, ubuntu)
	// A USN bundles seven CVEs none of which has a per-CVE record here: it stays one finding,
	// rated by Ubuntu's priority.
	if err != nil || len(fs) != 1 || fs[0].VulnerabilityID != "USN-8611-1" || fs[0].FixedVersion != "2.35-0ubuntu3.14" ||
		fs[0].Severity != vuln.SeverityMedium || len(fs[0].CVEs()) != 7 {
		t.Fatalf("ubuntu: %+v %v", fs, err)
	}

	sid := &sbom.SBOM{OS: &sbom.OS{ID: "debian", VersionCodename: "sid"}, Packages: []sbom.Package{
		{Type: "deb", Name: "libssl3", Version: "3.0.0-1", Source: &sbom.Source{Name: "openssl"}},
	}}
	fs, warns, err := match.MatchSBOM(ctx, src, sid)
	if err != nil || len(fs) != 0 || len(warns) != 1 || !strings.Contains(warns[0], "debian") {
		t.Fatalf("sid: %+v %v %v", fs, warns, err)
	}
}

func TestMatchUnparsableVersion(t *testing.T) {
	src := genuineSource(t)
	s := &sbom.SBOM{Packages: []sbom.Package{{Type: "golang", Name: "github.com/gin-gonic/gin", Version: "(devel)"}}}
	fs, warns, err := match.MatchSBOM(context.Background(), src, s)
	if err != nil || len(fs) != 0 || len(warns) != 1 || !strings.Contains(warns[0], "(devel)") {
		t.Fatalf("unparsable: %+v %v %v", fs, warns, err)
	}
}

func adv(id string, aliases []string, eco, name string, sev []vuln.CVSS, ecoSev string, events ...vuln.Event) *vuln.Advisory {
	return &vuln.Advisory{ID: id, Aliases: aliases, Severity: sev, Affected: []vuln.Affected{{
		Ecosystem: eco, Name: name, EcosystemSeverity: ecoSev,
		Ranges: []vuln.Range{{Type: "ECOSYSTEM", Events: events}},
	}}}
}

func TestDeduplication(t *testing.T) {
	open := []vuln.Event{{Introduced: "0"}, {Fixed: "2.0.0"}}
	high := []vuln.CVSS{{Type: "CVSS_V3", Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}}
	src := match.NewMemorySource(
		// Go: the GO record (no severity) and the GHSA naming the same CVE are one finding that
		// keeps the GO id and takes the GHSA's rating.
		adv("GO-2099-0001", []string{"CVE-2099-1", "GHSA-aaaa-bbbb-cccc"}, "Go", "example.com/m", nil, "", open...),
		adv("GHSA-aaaa-bbbb-cccc", []string{"CVE-2099-1"}, "Go", "example.com/m", high, "HIGH", open...),
		// A different CVE on the same module stays separate.
		adv("GHSA-dddd-eeee-ffff", []string{"CVE-2099-2"}, "Go", "example.com/m", nil, "LOW", open...),
		// Debian: a DSA bundling two CVEs, each with its DEBIAN-CVE record: the DSA becomes an
		// alias of both.
		adv("DSA-9999-1", []string{"CVE-2099-10", "CVE-2099-11", "DEBIAN-CVE-2099-10", "DEBIAN-CVE-2099-11"}, "Debian:12", "curl", nil, "", open...),
		adv("DEBIAN-CVE-2099-10", []string{"CVE-2099-10"}, "Debian:12", "curl", high, "medium", open...),
		adv("DEBIAN-CVE-2099-11", []string{"CVE-2099-11"}, "Debian:12", "curl", nil, "", open...),
		// A DSA with a CVE that has no per-CVE record stays a finding of its own.
		adv("DSA-9999-2", []string{"CVE-2099-12", "CVE-2099-13", "DEBIAN-CVE-2099-12"}, "Debian:12", "curl", nil, "high", open...),
		adv("DEBIAN-CVE-2099-12", []string{"CVE-2099-12"}, "Debian:12", "curl", nil, "", open...),
	)
	s := &sbom.SBOM{OS: &sbom.OS{ID: "debian", VersionID: "12"}, Packages: []sbom.Package{
		{Type: "golang", Name: "example.com/m", Version: "v1.0.0"},
		{Type: "deb", Name: "libcurl4", Version: "1.0.0-1", Source: &sbom.Source{Name: "curl"}},
	}}
	fs, _, err := match.MatchSBOM(context.Background(), src, s)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fs {
		got = append(got, fmt.Sprintf("%s %s %s [%s]", f.Package.Name, f.VulnerabilityID, f.Severity, strings.Join(f.Aliases, " ")))
	}
	want := []string{
		"example.com/m GO-2099-0001 high [CVE-2099-1 GHSA-aaaa-bbbb-cccc]",
		"example.com/m GHSA-dddd-eeee-ffff low [CVE-2099-2]",
		"libcurl4 DSA-9999-2 high [CVE-2099-12 CVE-2099-13 DEBIAN-CVE-2099-12]",
		"libcurl4 DEBIAN-CVE-2099-10 medium [CVE-2099-10 DSA-9999-1]",
		"libcurl4 DEBIAN-CVE-2099-11 unspecified [CVE-2099-11 DSA-9999-1]",
		"libcurl4 DEBIAN-CVE-2099-12 unspecified [CVE-2099-12]",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

type failingSource struct{}

func (failingSource) AdvisoriesFor(context.Context, []match.PackageKey) (map[match.PackageKey][]*vuln.Advisory, error) {
	return nil, os.ErrDeadlineExceeded
}

func TestMatchSourceError(t *testing.T) {
	s := &sbom.SBOM{Packages: []sbom.Package{{Type: "npm", Name: "x", Version: "1.0.0"}}}
	if _, _, err := match.MatchSBOM(context.Background(), failingSource{}, s); err == nil {
		t.Fatal("source error swallowed")
	}
}

// BenchmarkMatchSBOM matches one image of 500 packages against an in-memory source of 200k
// advisories (20k packages with 10 advisories each, several ranges and a versions list), the
// issue's target being <= 50 ms per image including the lookup.
func BenchmarkMatchSBOM(b *testing.B) {
	const (
		nAdvisories = 200_000
		perPackage  = 10
		nPackages   = 500
	)
	src := match.NewMemorySource()
	type eco struct{ typ, eco string }
	ecos := []eco{{"deb", "Debian:12"}, {"npm", "npm"}, {"pypi", "PyPI"}, {"maven", "Maven"}, {"golang", "Go"}}
	version := func(e string, i int) string {
		switch e {
		case "Debian:12":
			return fmt.Sprintf("1:%d.%d.%d-%d~deb12u%d", i%7, i%11, i%13, i%5+1, i%3+1)
		case "Maven":
			return fmt.Sprintf("%d.%d.%d.Final", i%7, i%11, i%13)
		}
		return fmt.Sprintf("%d.%d.%d", i%7, i%11, i%13)
	}
	now := time.Now()
	for i := 0; i < nAdvisories; i++ {
		e := ecos[i%len(ecos)]
		pkg := (i / len(ecos)) % (nAdvisories / perPackage / len(ecos))
		name := fmt.Sprintf("pkg-%d", pkg)
		if e.eco == "Maven" {
			name = "org.example:" + name
		}
		src.Add(&vuln.Advisory{
			ID: fmt.Sprintf("ADV-%d", i), Aliases: []string{fmt.Sprintf("CVE-2024-%d", i)}, Modified: now,
			Severity: []vuln.CVSS{{Type: "CVSS_V3", Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", Score: 7.5}},
			Affected: []vuln.Affected{{
				Ecosystem: e.eco, Name: name,
				Ranges: []vuln.Range{
					{Type: "ECOSYSTEM", Events: []vuln.Event{{Introduced: "0"}, {Fixed: version(e.eco, i)}}},
					{Type: "ECOSYSTEM", Events: []vuln.Event{{Introduced: version(e.eco, i+3)}, {LastAffected: version(e.eco, i+5)}}},
				},
				Versions: []string{version(e.eco, i+1), version(e.eco, i+2)},
			}},
		})
	}
	s := &sbom.SBOM{OS: &sbom.OS{ID: "debian", VersionID: "12"}}
	for i := 0; i < nPackages; i++ {
		e := ecos[i%len(ecos)]
		name := fmt.Sprintf("pkg-%d", i*7%(nAdvisories/perPackage/len(ecos)))
		if e.eco == "Maven" {
			name = "org.example:" + name
		}
		p := sbom.Package{Type: e.typ, Name: name, Version: version(e.eco, i*3)}
		if e.typ == "deb" {
			p.Source = &sbom.Source{Name: name}
		}
		s.Packages = append(s.Packages, p)
	}
	ctx := context.Background()
	b.ResetTimer()
	var n int
	for b.Loop() {
		fs, _, err := match.MatchSBOM(ctx, src, s)
		if err != nil {
			b.Fatal(err)
		}
		n = len(fs)
	}
	b.ReportMetric(float64(n), "findings")
}
