package report

import (
	"slices"
	"strings"
	"testing"

	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

func TestFilter(t *testing.T) {
	r := fixture()
	for _, tc := range []struct {
		name string
		f    Filters
		want []string // package/vulnerability, in input order
	}{
		{"none", Filters{}, []string{"golang.org/x/net/GO-2023-2102", "openssl/CVE-2024-0727", "libssl3/CVE-2024-0727", "openssl/CVE-2023-5678", "zlib1g/CVE-2023-45853", "express/GHSA-rv95-896h-c2vc", "bash/CVE-2022-3715"}},
		{"severity list", Filters{OnlySeverity: []string{"critical,HIGH"}}, []string{"golang.org/x/net/GO-2023-2102", "zlib1g/CVE-2023-45853"}},
		{"severity repeated", Filters{OnlySeverity: []string{"low", " unspecified "}}, []string{"openssl/CVE-2023-5678", "bash/CVE-2022-3715"}},
		{"unknown is unspecified", Filters{OnlySeverity: []string{"unknown"}}, []string{"bash/CVE-2022-3715"}},
		{"fixed", Filters{OnlyFixed: true, OnlySeverity: []string{"critical", "high"}}, []string{"golang.org/x/net/GO-2023-2102"}},
		{"unfixed", Filters{OnlyUnfixed: true}, []string{"zlib1g/CVE-2023-45853", "bash/CVE-2022-3715"}},
		{"package regex", Filters{OnlyPackage: []string{"^lib", "zlib"}}, []string{"libssl3/CVE-2024-0727", "zlib1g/CVE-2023-45853"}},
		{"package regex unanchored", Filters{OnlyPackage: []string{"ssl"}}, []string{"openssl/CVE-2024-0727", "libssl3/CVE-2024-0727", "openssl/CVE-2023-5678"}},
		{"package type", Filters{OnlyPackageType: []string{"npm,GOLANG"}}, []string{"golang.org/x/net/GO-2023-2102", "express/GHSA-rv95-896h-c2vc"}},
		{"cve id matches alias", Filters{OnlyCVEID: []string{"cve-2023-39325", "CVE-2024-29041"}}, []string{"golang.org/x/net/GO-2023-2102", "express/GHSA-rv95-896h-c2vc"}},
		{"cve id matches id", Filters{OnlyCVEID: []string{"CVE-2024-0727"}}, []string{"openssl/CVE-2024-0727", "libssl3/CVE-2024-0727"}},
		{"dsa alias", Filters{OnlyCVEID: []string{"DSA-5621-1"}}, []string{"openssl/CVE-2024-0727", "libssl3/CVE-2024-0727"}},
		{"all combined", Filters{OnlySeverity: []string{"medium"}, OnlyFixed: true, OnlyPackage: []string{"ssl"}, OnlyPackageType: []string{"deb"}, OnlyCVEID: []string{"DSA-5621-1"}}, []string{"openssl/CVE-2024-0727", "libssl3/CVE-2024-0727"}},
		{"nothing left", Filters{OnlyPackageType: []string{"rpm"}}, nil},
	} {
		got, err := Filter(r.Findings, r.SBOM.Packages, tc.f)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		var names []string
		for _, f := range got {
			names = append(names, f.Package.Name+"/"+f.VulnerabilityID)
		}
		if !slices.Equal(names, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, names, tc.want)
		}
	}
	if len(r.Findings) != 7 {
		t.Error("Filter changed its input")
	}
}

func TestFilterTypeFromSBOM(t *testing.T) {
	r := fixture()
	fs := []vuln.Finding{r.Findings[0]}
	fs[0].Package.Type = "" // a finding that lacks its type: the SBOM package with its PURL gives it
	got, err := Filter(fs, r.SBOM.Packages, Filters{OnlyPackageType: []string{"golang"}})
	if err != nil || len(got) != 1 {
		t.Errorf("got %v, %v", got, err)
	}
}

func TestFilterErrors(t *testing.T) {
	for _, tc := range []struct {
		f    Filters
		flag string
	}{
		{Filters{OnlyFixed: true, OnlyUnfixed: true}, "--only-fixed and --only-unfixed"},
		{Filters{OnlySeverity: []string{"high,severe"}}, `--only-severity: invalid severity "severe"`},
		{Filters{OnlyPackage: []string{"lib("}}, `--only-package: invalid regular expression "lib("`},
		{Filters{OnlyPackage: []string{strings.Repeat("a", maxRegexLen+1)}}, "--only-package: expression longer"},
	} {
		_, err := Filter(fixture().Findings, nil, tc.f)
		if err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("%+v: error %v, want one naming %q", tc.f, err, tc.flag)
		}
	}
	if (&Filters{}).Active() || !(&Filters{OnlyCVEID: []string{"CVE-1"}}).Active() || (&Filters{OnlySeverity: []string{" , "}}).Active() {
		t.Error("Active")
	}
}
