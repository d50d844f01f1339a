package report

import (
	"bytes"
	"testing"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

const (
	digest = "sha256:9b2a4c1d0e3f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"
	layer0 = "sha256:1f5c7a2b9e3d4c6f8a0b2d4e6f8a1c3e5b7d9f1a3c5e7b9d1f3a5c7e9b1d3f5a"
	layer1 = "sha256:6a8c0e2b4d6f8a0c2e4b6d8f0a2c4e6b8d0f2a4c6e8b0d2f4a6c8e0b2d4f6a8c"
)

// fixture is a Debian 12 image with openssl, libssl3, zlib1g, an npm package and a Go module,
// and findings of every severity, one of them without a fix, shaped as the matcher makes them.
func fixture() *Report {
	s := &sbom.SBOM{
		SchemaVersion: sbom.SchemaVersion,
		Tool:          sbom.Tool{Name: "crowsnest", Version: "v0.3.0"},
		Created:       time.Date(2024, 5, 2, 10, 0, 0, 0, time.UTC),
		Image: sbom.Image{
			Reference: "registry.example/team/app:1.4.2", Name: "registry.example/team/app", Tag: "1.4.2",
			Digest:   digest,
			Platform: sbom.Platform{OS: "linux", Architecture: "amd64"},
			Layers:   []sbom.Layer{{Index: 0, DiffID: layer0}, {Index: 1, DiffID: layer1}},
		},
		OS: &sbom.OS{ID: "debian", VersionID: "12", VersionCodename: "bookworm", PrettyName: "Debian GNU/Linux 12 (bookworm)"},
		Packages: []sbom.Package{
			{Type: "deb", Name: "openssl", Version: "3.0.11-1~deb12u2", PURL: "pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=amd64&distro=debian-12",
				Locations: []sbom.Location{{Path: "/var/lib/dpkg/status", DiffID: layer0}}, Source: &sbom.Source{Name: "openssl"}, Arch: "amd64"},
			{Type: "deb", Name: "libssl3", Version: "3.0.11-1~deb12u2", PURL: "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12&upstream=openssl",
				Locations: []sbom.Location{{Path: "/var/lib/dpkg/status", DiffID: layer0}}, Source: &sbom.Source{Name: "openssl"}, Arch: "amd64"},
			{Type: "deb", Name: "zlib1g", Version: "1:1.2.13.dfsg-1", PURL: "pkg:deb/debian/zlib1g@1%3A1.2.13.dfsg-1?arch=amd64&distro=debian-12&upstream=zlib",
				Locations: []sbom.Location{{Path: "/var/lib/dpkg/status", DiffID: layer0}}, Source: &sbom.Source{Name: "zlib"}, Arch: "amd64"},
			{Type: "deb", Name: "bash", Version: "5.2.15-2+b2", PURL: "pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64&distro=debian-12",
				Locations: []sbom.Location{{Path: "/var/lib/dpkg/status", DiffID: layer0}}, Arch: "amd64"},
			{Type: "npm", Name: "express", Version: "4.17.1", PURL: "pkg:npm/express@4.17.1",
				Locations: []sbom.Location{{Path: "/app/node_modules/express/package.json", DiffID: layer1}}},
			{Type: "golang", Name: "golang.org/x/net", Version: "v0.10.0", PURL: "pkg:golang/golang.org/x/net@v0.10.0",
				Locations: []sbom.Location{{Path: "/usr/local/bin/server", DiffID: layer1}}},
		},
	}
	f := []vuln.Finding{
		{
			Package:         vuln.PackageRef{Type: "golang", Name: "golang.org/x/net", Version: "v0.10.0", PURL: "pkg:golang/golang.org/x/net@v0.10.0", Ecosystem: "Go", MatchName: "golang.org/x/net"},
			VulnerabilityID: "GO-2023-2102", Aliases: []string{"CVE-2023-39325", "GHSA-4374-p667-p6c8"},
			Summary:  "HTTP/2 rapid reset can cause excessive work in net/http",
			Severity: vuln.SeverityHigh, CVSSScore: 7.5, CVSSVector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H",
			FixedVersion: "0.17.0", AffectedRange: "<0.17.0",
		},
		{
			Package:         vuln.PackageRef{Type: "deb", Name: "openssl", Version: "3.0.11-1~deb12u2", PURL: "pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=amd64&distro=debian-12", Ecosystem: "Debian:12", MatchName: "openssl"},
			VulnerabilityID: "CVE-2024-0727", Aliases: []string{"DSA-5621-1"}, Summary: "PKCS12 Decoding crashes",
			Severity: vuln.SeverityMedium, CVSSScore: 5.5, CVSSVector: "CVSS:3.1/AV:L/AC:L/PR:N/UI:R/S:U/C:N/I:N/A:H",
			FixedVersion: "3.0.13-1~deb12u1", AffectedRange: "<3.0.13-1~deb12u1",
		},
		{
			Package:         vuln.PackageRef{Type: "deb", Name: "libssl3", Version: "3.0.11-1~deb12u2", PURL: "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12&upstream=openssl", Ecosystem: "Debian:12", MatchName: "openssl"},
			VulnerabilityID: "CVE-2024-0727", Aliases: []string{"DSA-5621-1"}, Summary: "PKCS12 Decoding crashes",
			Severity: vuln.SeverityMedium, CVSSScore: 5.5, CVSSVector: "CVSS:3.1/AV:L/AC:L/PR:N/UI:R/S:U/C:N/I:N/A:H",
			FixedVersion: "3.0.13-1~deb12u1", AffectedRange: "<3.0.13-1~deb12u1",
		},
		{
			Package:         vuln.PackageRef{Type: "deb", Name: "openssl", Version: "3.0.11-1~deb12u2", PURL: "pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=amd64&distro=debian-12", Ecosystem: "Debian:12", MatchName: "openssl"},
			VulnerabilityID: "CVE-2023-5678", Summary: "Excessive time spent in DH check / generation with large Q parameter value",
			Severity: vuln.SeverityLow, CVSSScore: 5.3, CVSSVector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L",
			FixedVersion: "3.0.13-1~deb12u1", AffectedRange: "<3.0.13-1~deb12u1",
		},
		{
			Package:         vuln.PackageRef{Type: "deb", Name: "zlib1g", Version: "1:1.2.13.dfsg-1", PURL: "pkg:deb/debian/zlib1g@1%3A1.2.13.dfsg-1?arch=amd64&distro=debian-12&upstream=zlib", Ecosystem: "Debian:12", MatchName: "zlib"},
			VulnerabilityID: "CVE-2023-45853", Summary: "MiniZip in zlib through 1.3 has an integer overflow",
			Severity: vuln.SeverityCritical, CVSSScore: 9.8, CVSSVector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
			AffectedRange: ">=0",
		},
		{
			Package:         vuln.PackageRef{Type: "npm", Name: "express", Version: "4.17.1", PURL: "pkg:npm/express@4.17.1", Ecosystem: "npm", MatchName: "express"},
			VulnerabilityID: "GHSA-rv95-896h-c2vc", Aliases: []string{"CVE-2024-29041"},
			Summary:  "Express.js Open Redirect in malformed URLs",
			Severity: vuln.SeverityMedium, CVSSScore: 6.1, CVSSVector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N",
			FixedVersion: "4.19.2", AffectedRange: "<4.19.2", URLs: []string{"https://github.com/expressjs/express/security/advisories/GHSA-rv95-896h-c2vc"},
		},
		{
			Package:         vuln.PackageRef{Type: "deb", Name: "bash", Version: "5.2.15-2+b2", PURL: "pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64&distro=debian-12", Ecosystem: "Debian:12", MatchName: "bash"},
			VulnerabilityID: "CVE-2022-3715", Summary: "a heap-buffer-overflow in valid_parameter_transform",
			Severity: vuln.SeverityUnspecified, FixedVersion: "", AffectedRange: ">=0",
		},
	}
	return &Report{
		SBOM: s, Findings: f, Tool: sbom.Tool{Name: "crowsnest", Version: "v0.3.0"},
		Started:   time.Date(2024, 5, 2, 10, 0, 0, 0, time.UTC),
		Generated: time.Date(2024, 5, 2, 10, 0, 3, 0, time.UTC),
	}
}

func render(t *testing.T, format string, r *Report) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Render(&buf, format, r); err != nil {
		t.Fatalf("render %s: %v", format, err)
	}
	return buf.Bytes()
}
