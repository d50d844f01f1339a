package match

import (
	"testing"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

func TestKey(t *testing.T) {
	debian12 := &sbom.OS{ID: "debian", VersionID: "12"}
	tests := []struct {
		name    string
		pkg     sbom.Package
		os      *sbom.OS
		eco     string
		pkgName string
		ok      bool
	}{
		{"deb source name", sbom.Package{Type: "deb", Name: "libssl3", Source: &sbom.Source{Name: "openssl", Version: "3.0.11-1~deb12u2"}}, debian12, "Debian:12", "openssl", true},
		{"deb without source", sbom.Package{Type: "deb", Name: "bash"}, debian12, "Debian:12", "bash", true},
		{"debian point release", sbom.Package{Type: "deb", Name: "bash"}, &sbom.OS{ID: "debian", VersionID: "12.4"}, "Debian:12", "bash", true},
		{"debian testing by codename", sbom.Package{Type: "deb", Name: "bash"}, &sbom.OS{ID: "debian", VersionCodename: "trixie"}, "Debian:13", "bash", true},
		{"debian sid", sbom.Package{Type: "deb", Name: "bash"}, &sbom.OS{ID: "debian", VersionCodename: "sid"}, "", "", false},
		{"ubuntu", sbom.Package{Type: "deb", Name: "libc6", Source: &sbom.Source{Name: "glibc"}}, &sbom.OS{ID: "ubuntu", VersionID: "22.04"}, "Ubuntu:22.04", "glibc", true},
		{"alpine origin", sbom.Package{Type: "apk", Name: "libcrypto3", Source: &sbom.Source{Name: "openssl"}}, &sbom.OS{ID: "alpine", VersionID: "3.19.1"}, "Alpine:v3.19", "openssl", true},
		{"alpine edge", sbom.Package{Type: "apk", Name: "musl"}, &sbom.OS{ID: "alpine", VersionID: "3.21.0_alpha20240807"}, "Alpine:v3.21", "musl", true},
		{"wolfi", sbom.Package{Type: "apk", Name: "glibc"}, &sbom.OS{ID: "wolfi", VersionID: "20230201"}, "Wolfi", "glibc", true},
		{"rocky binary name", sbom.Package{Type: "rpm", Name: "openssl-libs", Source: &sbom.Source{Name: "openssl"}}, &sbom.OS{ID: "rocky", VersionID: "9.3"}, "Rocky Linux:9", "openssl-libs", true},
		{"alma", sbom.Package{Type: "rpm", Name: "curl"}, &sbom.OS{ID: "almalinux", VersionID: "8.9"}, "AlmaLinux:8", "curl", true},
		{"rhel", sbom.Package{Type: "rpm", Name: "curl"}, &sbom.OS{ID: "rhel", VersionID: "9.4"}, "Red Hat:9", "curl", true},
		{"sles", sbom.Package{Type: "rpm", Name: "libopenssl3"}, &sbom.OS{ID: "sles", VersionID: "15.5"}, "SUSE:15 SP5", "libopenssl3", true},
		{"opensuse leap", sbom.Package{Type: "rpm", Name: "curl"}, &sbom.OS{ID: "opensuse-leap", VersionID: "15.5"}, "openSUSE:Leap 15.5", "curl", true},
		{"rpm on unknown distro", sbom.Package{Type: "rpm", Name: "curl"}, &sbom.OS{ID: "fedora", VersionID: "40"}, "", "", false},
		{"deb without os", sbom.Package{Type: "deb", Name: "bash"}, nil, "", "", false},
		{"go module", sbom.Package{Type: "golang", Name: "github.com/gin-gonic/gin"}, nil, "Go", "github.com/gin-gonic/gin", true},
		{"go stdlib", sbom.Package{Type: "golang", Name: "stdlib"}, debian12, "Go", "stdlib", true},
		{"npm scope", sbom.Package{Type: "npm", Name: "@babel/traverse"}, nil, "npm", "@babel/traverse", true},
		{"pypi pep503", sbom.Package{Type: "pypi", Name: "Zope.Interface"}, nil, "PyPI", "zope-interface", true},
		{"pypi runs", sbom.Package{Type: "pypi", Name: "typing__extensions"}, nil, "PyPI", "typing-extensions", true},
		{"maven", sbom.Package{Type: "maven", Name: "org.apache.logging.log4j:log4j-core"}, nil, "Maven", "org.apache.logging.log4j:log4j-core", true},
		{"cargo", sbom.Package{Type: "cargo", Name: "tokio"}, nil, "crates.io", "tokio", true},
		{"gem", sbom.Package{Type: "gem", Name: "Nokogiri"}, nil, "RubyGems", "Nokogiri", true},
		{"composer lowercase", sbom.Package{Type: "composer", Name: "Symfony/HTTP-Kernel"}, nil, "Packagist", "symfony/http-kernel", true},
		{"nuget lowercase", sbom.Package{Type: "nuget", Name: "Newtonsoft.Json"}, nil, "NuGet", "newtonsoft.json", true},
		{"owned by os package", sbom.Package{Type: "pypi", Name: "requests", OwnedBy: "pkg:deb/debian/python3-requests@2.28.1-1"}, debian12, "", "", false},
		{"unknown type", sbom.Package{Type: "binary", Name: "x"}, nil, "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			eco, name, ok := Key(&tc.pkg, tc.os)
			if eco != tc.eco || name != tc.pkgName || ok != tc.ok {
				t.Fatalf("Key = %q %q %v, want %q %q %v", eco, name, ok, tc.eco, tc.pkgName, tc.ok)
			}
		})
	}
}

func TestNormalizeEcosystem(t *testing.T) {
	for in, want := range map[string]string{
		"Debian:12":                                          "Debian:12",
		"Alpine:v3.19":                                       "Alpine:v3.19",
		"Ubuntu:22.04:LTS":                                   "Ubuntu:22.04",
		"Ubuntu:Pro:18.04:LTS":                               "Ubuntu:18.04",
		"Ubuntu:24.10":                                       "Ubuntu:24.10",
		"Ubuntu:Pro:FIPS-updates:22.04:LTS":                  "Ubuntu:Pro:FIPS-updates:22.04:LTS",
		"Red Hat:enterprise_linux:9::appstream":              "Red Hat:9",
		"Red Hat:rhel_eus:9.2::baseos":                       "Red Hat:rhel_eus:9.2::baseos",
		"SUSE:Linux Enterprise Server 15 SP5":                "SUSE:15 SP5",
		"SUSE:Linux Enterprise Module for Basesystem 15 SP5": "SUSE:15 SP5",
		"SUSE:Linux Enterprise Server 12":                    "SUSE:12",
		"SUSE:Linux Enterprise Micro 5.5":                    "SUSE:Linux Enterprise Micro 5.5",
		"openSUSE:Leap 15.5":                                 "openSUSE:Leap 15.5",
		"Rocky Linux:9":                                      "Rocky Linux:9",
		"PyPI":                                               "PyPI",
		"crates.io":                                          "crates.io",
	} {
		if got := NormalizeEcosystem(in); got != want {
			t.Errorf("NormalizeEcosystem(%q) = %q, want %q", in, got, want)
		}
	}
}

// Keys built from installed packages must meet the normalized ecosystems of the advisories
// written for them.
func TestKeysMeetAdvisories(t *testing.T) {
	pairs := []struct {
		os  *sbom.OS
		typ string
		osv string
	}{
		{&sbom.OS{ID: "ubuntu", VersionID: "22.04"}, "deb", "Ubuntu:22.04:LTS"},
		{&sbom.OS{ID: "ubuntu", VersionID: "18.04"}, "deb", "Ubuntu:Pro:18.04:LTS"},
		{&sbom.OS{ID: "rhel", VersionID: "9.4"}, "rpm", "Red Hat:enterprise_linux:9::baseos"},
		{&sbom.OS{ID: "sles", VersionID: "15.5"}, "rpm", "SUSE:Linux Enterprise Server 15 SP5"},
		{&sbom.OS{ID: "alpine", VersionID: "3.19.1"}, "apk", "Alpine:v3.19"},
		{&sbom.OS{ID: "debian", VersionID: "12"}, "deb", "Debian:12"},
	}
	for _, p := range pairs {
		eco, _, ok := Key(&sbom.Package{Type: p.typ, Name: "x"}, p.os)
		if !ok || eco != NormalizeEcosystem(p.osv) {
			t.Errorf("%s %s: key %q does not meet %q (%q)", p.os.ID, p.os.VersionID, eco, p.osv, NormalizeEcosystem(p.osv))
		}
	}
}

func TestMatchVersion(t *testing.T) {
	for _, c := range [][3]string{
		{"Go", "v1.2.3", "1.2.3"},
		{"Go", "go1.22.3", "1.22.3"},
		{"Go", "v0.0.0-20220906165146-f3363e06e74c", "0.0.0-20220906165146-f3363e06e74c"},
		{"npm", "v1.0.0", "v1.0.0"},
		{"Debian:12", "1:2.3-4", "1:2.3-4"},
	} {
		if got := MatchVersion(c[0], c[1]); got != c[2] {
			t.Errorf("MatchVersion(%s, %s) = %s", c[0], c[1], got)
		}
	}
}

func TestRate(t *testing.T) {
	v31 := vuln.CVSS{Type: CVSSv3, Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}                    // 7.5
	v31crit := vuln.CVSS{Type: CVSSv3, Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}                // 9.8
	v30 := vuln.CVSS{Type: CVSSv3, Vector: "CVSS:3.0/AV:L/AC:H/PR:L/UI:R/S:U/C:H/I:N/A:N"}                    // 4.4
	v40 := vuln.CVSS{Type: CVSSv4, Vector: "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"} // 9.3
	v2 := vuln.CVSS{Type: CVSSv2, Vector: "AV:N/AC:L/Au:N/C:P/I:P/A:P"}                                       // 7.5
	low := &vuln.Affected{EcosystemSeverity: "low"}
	none := &vuln.Affected{}
	tests := []struct {
		name   string
		sev    []vuln.CVSS
		aff    *vuln.Affected
		os     bool
		rating string
		score  float64
	}{
		{"distro severity wins for OS packages", []vuln.CVSS{v31crit}, low, true, "low", 9.8},
		{"CVSS wins for language packages", []vuln.CVSS{v31crit}, low, false, "critical", 9.8},
		{"highest of v3 and v4", []vuln.CVSS{v30, v40}, none, false, "critical", 9.3},
		{"v3.0 scored", []vuln.CVSS{v30}, none, true, "medium", 4.4},
		{"v3.1 high", []vuln.CVSS{v31}, none, true, "high", 7.5},
		{"ecosystem word when no CVSS", nil, &vuln.Affected{EcosystemSeverity: "MODERATE"}, false, "medium", 0},
		{"v2 bands as last resort", []vuln.CVSS{v2}, none, false, "high", 7.5},
		{"v3 beats v2", []vuln.CVSS{v2, v30}, none, false, "medium", 4.4},
		{"nothing known", nil, none, true, "unspecified", 0},
		{"unscorable vector", []vuln.CVSS{{Type: CVSSv3, Vector: "CVSS:3.1/garbage"}}, none, false, "unspecified", 0},
		{"precomputed score", []vuln.CVSS{{Type: CVSSv3, Score: 5.3}}, none, false, "medium", 5.3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rating, score, _ := Rate(&vuln.Advisory{Severity: tc.sev}, tc.aff, tc.os)
			if rating != tc.rating || score != tc.score {
				t.Fatalf("Rate = %s %.1f, want %s %.1f", rating, score, tc.rating, tc.score)
			}
		})
	}
	for score, want := range map[float64]string{0: "unspecified", 0.1: "low", 3.9: "low", 4.0: "medium", 6.9: "medium", 7.0: "high", 8.9: "high", 9.0: "critical", 10: "critical"} {
		if got := RatingFromScore(score); got != want {
			t.Errorf("RatingFromScore(%.1f) = %s, want %s", score, got, want)
		}
	}
	for word, want := range map[string]string{"unimportant": "low", "not yet assigned": "", "end-of-life": "", "negligible": "low", "Important": "high", "MODERATE": "medium", "medium**": "medium", "CRITICAL": "critical"} {
		if got := RatingFromWord(word); got != want {
			t.Errorf("RatingFromWord(%q) = %q, want %q", word, got, want)
		}
	}
}
