package vex

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

const imageDigest = "sha256:4b7e6d4c1f0e2a3b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b"

func findings() []vuln.Finding {
	return []vuln.Finding{
		{
			Package:         vuln.PackageRef{Type: "deb", Name: "openssl", Version: "3.0.11-1~deb12u2", PURL: "pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=amd64&distro=debian-12"},
			VulnerabilityID: "DSA-5621-1", Aliases: []string{"CVE-2024-0727"}, Severity: vuln.SeverityMedium,
		},
		{
			Package:         vuln.PackageRef{Type: "deb", Name: "libssl3", Version: "3.0.11-1~deb12u2", PURL: "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12"},
			VulnerabilityID: "CVE-2024-0727", Severity: vuln.SeverityMedium,
		},
		{
			Package:         vuln.PackageRef{Type: "deb", Name: "libssl3", Version: "3.0.11-1~deb12u2", PURL: "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12"},
			VulnerabilityID: "CVE-2023-5678", Severity: vuln.SeverityLow,
		},
		{
			Package:         vuln.PackageRef{Type: "deb", Name: "zlib1g", Version: "1:1.2.13.dfsg-1", PURL: "pkg:deb/debian/zlib1g@1%3A1.2.13.dfsg-1?arch=amd64&distro=debian-12&upstream=zlib%401%3A1.2.13.dfsg-1"},
			VulnerabilityID: "CVE-2023-45853", Severity: vuln.SeverityCritical,
		},
		{
			Package:         vuln.PackageRef{Type: "npm", Name: "qs", Version: "6.10.3", PURL: "pkg:npm/qs@6.10.3"},
			VulnerabilityID: "GHSA-hrpp-h998-j3pp", Aliases: []string{"CVE-2022-24999"}, Severity: vuln.SeverityHigh,
		},
		{
			Package:         vuln.PackageRef{Type: "golang", Name: "golang.org/x/net", Version: "v0.10.0", PURL: "pkg:golang/golang.org/x/net@v0.10.0"},
			VulnerabilityID: "GO-2023-2102", Aliases: []string{"CVE-2023-39325", "GHSA-4374-p667-p6c8"}, Severity: vuln.SeverityHigh,
		},
		{
			Package:         vuln.PackageRef{Type: "golang", Name: "golang.org/x/net", Version: "v0.10.0", PURL: "pkg:golang/golang.org/x/net@v0.10.0"},
			VulnerabilityID: "GO-2023-1988", Aliases: []string{"GHSA-jxhc-q857-3j6g"}, Severity: vuln.SeverityMedium,
		},
	}
}

func load(t *testing.T, names ...string) []*Document {
	t.Helper()
	paths := make([]string, len(names))
	for i, n := range names {
		paths[i] = filepath.Join("testdata", n)
	}
	docs, err := Load(context.Background(), paths)
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

func ids(fs []vuln.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Package.Name+"/"+f.VulnerabilityID)
	}
	return out
}

func TestParseSpecExamples(t *testing.T) {
	docs := load(t, "go-vex-v0.2.0.json", "go-vex-v020-1.json", "go-vex-v0.0.1.json", "spec-image.json")
	if len(docs) != 4 {
		t.Fatalf("got %d documents", len(docs))
	}
	d := docs[0]
	if d.Context != "https://openvex.dev/ns/v0.2.0" || d.Author != "The OpenVEX Project <openvex@openssf.org>" || len(d.Statements) != 5 {
		t.Fatalf("document header: %+v", d)
	}
	st := d.Statements[3]
	if st.Status != StatusNotAffected || st.Justification != "vulnerable_code_not_present" || st.Vulnerability.Name != "CVE-2023-3446" {
		t.Errorf("statement 3: %+v", st)
	}
	if len(st.Products) != 1 || len(st.Products[0].Subcomponents) != 2 || st.Products[0].Subcomponents[1].ID != "pkg:apk/alpine/libcrypto3@3.0.8-r3" {
		t.Errorf("products: %+v", st.Products)
	}
	// Statements without a timestamp take the document's.
	if st.Timestamp == nil || st.Timestamp.Year() != 2023 || st.Timestamp.Month() != 7 {
		t.Errorf("inherited timestamp: %v", st.Timestamp)
	}
	if ts := docs[1].Statements[0].Timestamp; ts == nil || ts.Day() != 22 {
		t.Errorf("own timestamp: %v", ts)
	}
	// 0.0.1: bare strings for the vulnerability and the products.
	old := docs[2].Statements[0]
	if old.Vulnerability.Name != "CVE-2023-12345" || len(old.Products) != 2 || old.Products[1].ID != "pkg:apk/wolfi/git@2.39.0-r1?arch=x86_64" || old.Status != StatusFixed {
		t.Errorf("0.0.1 statement: %+v", old)
	}
	v := docs[3].Statements[0].Vulnerability
	if !slices.Equal(v.IDs(), []string{"CVE-2024-0727", "https://nvd.nist.gov/vuln/detail/CVE-2024-0727", "DSA-5621-1"}) {
		t.Errorf("IDs: %v", v.IDs())
	}
	if docs[3].Source != filepath.Join("testdata", "spec-image.json") {
		t.Errorf("source %q", docs[3].Source)
	}
}

func TestParseRejects(t *testing.T) {
	for name, doc := range map[string]string{
		"not json":      `{`,
		"no context":    `{"statements":[]}`,
		"other context": `{"@context":"https://cyclonedx.org/schema","statements":[]}`,
		"bad status":    `{"@context":"https://openvex.dev/ns/v0.2.0","statements":[{"vulnerability":{"name":"CVE-1"},"status":"fine"}]}`,
		"no vuln":       `{"@context":"https://openvex.dev/ns/v0.2.0","statements":[{"vulnerability":{},"status":"fixed"}]}`,
		"bad timestamp": `{"@context":"https://openvex.dev/ns/v0.2.0","timestamp":"yesterday","statements":[]}`,
	} {
		if _, err := Parse(strings.NewReader(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	_, err := Parse(strings.NewReader(`{"@context":"https://cyclonedx.org/schema"}`))
	if !errors.Is(err, ErrNotOpenVEX) {
		t.Errorf("foreign JSON: %v, want ErrNotOpenVEX", err)
	}
	// JSON-LD allows an array of contexts.
	if _, err := Parse(strings.NewReader(`{"@context":["https://example.com/x","https://openvex.dev/ns/v0.2.0"],"statements":[]}`)); err != nil {
		t.Errorf("context array: %v", err)
	}
}

func TestParseBounds(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"@context":"https://openvex.dev/ns/v0.2.0","statements":[{"vulnerability":{"name":"CVE-1"},"status":"fixed","products":[`)
	for i := 0; i <= MaxProducts; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"pkg:npm/a@1"`)
	}
	b.WriteString(`]}]}`)
	if _, err := Parse(strings.NewReader(b.String())); err == nil || !strings.Contains(err.Error(), "products") {
		t.Errorf("too many products: %v", err)
	}
	big := strings.NewReader(`{"@context":"https://openvex.dev/ns/v0.2.0","author":"` + strings.Repeat("a", MaxDocumentSize) + `"}`)
	if _, err := Parse(big); err == nil || !strings.Contains(err.Error(), "larger") {
		t.Errorf("oversized document: %v", err)
	}
}

func TestApplyImageWithSubcomponents(t *testing.T) {
	docs := load(t, "spec-image.json")
	for _, image := range []string{
		imageDigest,
		"registry.example/team/app@" + imageDigest,
		"pkg:oci/app@sha256%3A" + strings.TrimPrefix(imageDigest, "sha256:") + "?arch=amd64",
	} {
		kept, suppressed := Apply(findings(), image, docs)
		// CVE-2024-0727 is not_affected for openssl (by alias: the finding's id is the DSA) and
		// libssl3; CVE-2023-5678 of libssl3 is not named; under_investigation suppresses nothing.
		if got := ids(suppressed); !slices.Equal(got, []string{"openssl/DSA-5621-1", "libssl3/CVE-2024-0727"}) {
			t.Errorf("%s: suppressed %v", image, got)
		}
		if len(kept)+len(suppressed) != len(findings()) {
			t.Errorf("%s: lost findings", image)
		}
	}
	// Another image: the statement is about a different product.
	_, suppressed := Apply(findings(), "sha256:"+strings.Repeat("0", 64), docs)
	if len(suppressed) != 0 {
		t.Errorf("other image: suppressed %v", ids(suppressed))
	}
	// No image at all (a directory): image products never match.
	if _, suppressed := Apply(findings(), "", docs); len(suppressed) != 0 {
		t.Errorf("no image: suppressed %v", ids(suppressed))
	}
}

func TestApplyPackageProducts(t *testing.T) {
	docs := load(t, "spec-package.json")
	kept, suppressed := Apply(findings(), "", docs)
	// fixed for pkg:npm/qs@6.10.3 matches the GHSA finding through its CVE alias; the Go
	// statement has no version, so it covers every version of golang.org/x/net.
	if got := ids(suppressed); !slices.Equal(got, []string{"qs/GHSA-hrpp-h998-j3pp", "golang.org/x/net/GO-2023-1988"}) {
		t.Errorf("suppressed %v", got)
	}
	if slices.Contains(ids(kept), "golang.org/x/net/GO-2023-1988") {
		t.Error("suppressed finding also kept")
	}
}

func TestApplyLatestStatementWins(t *testing.T) {
	// spec-later.json says "affected" two months after spec-package.json said "not_affected".
	for _, order := range [][]string{{"spec-package.json", "spec-later.json"}, {"spec-later.json", "spec-package.json"}} {
		docs := load(t, order...)
		_, suppressed := Apply(findings(), "", docs)
		if got := ids(suppressed); !slices.Equal(got, []string{"qs/GHSA-hrpp-h998-j3pp"}) {
			t.Errorf("%v: suppressed %v", order, got)
		}
		d, ok := NewIndex(docs).Lookup(&findings()[6], "")
		if !ok || d.Statement.Status != StatusAffected || d.Suppressed() || d.Document.Source != filepath.Join("testdata", "spec-later.json") {
			t.Errorf("%v: decision %+v", order, d)
		}
	}
}

func TestApplyDockerScoutShape(t *testing.T) {
	docs := load(t, "scout-docker.vex.json")
	// The subcomponent carries arch=amd64 and a version with an epoch; the package PURL has
	// more qualifiers, percent-encoded.
	_, suppressed := Apply(findings(), "pkg:docker/team/app@"+imageDigest, docs)
	if got := ids(suppressed); !slices.Equal(got, []string{"zlib1g/CVE-2023-45853"}) {
		t.Errorf("suppressed %v", got)
	}
	f := findings()
	f[3].Package.PURL = "pkg:deb/debian/zlib1g@1%3A1.2.13.dfsg-1?arch=arm64&distro=debian-12"
	if _, suppressed := Apply(f, imageDigest, docs); len(suppressed) != 0 {
		t.Errorf("other arch suppressed: %v", ids(suppressed))
	}
	f[3].Package.PURL = "pkg:deb/debian/zlib1g@1%3A1.2.13.dfsg-2?arch=amd64"
	if _, suppressed := Apply(f, imageDigest, docs); len(suppressed) != 0 {
		t.Errorf("other version suppressed: %v", ids(suppressed))
	}
}

func TestLoadDirectory(t *testing.T) {
	docs := load(t, "dir")
	if len(docs) != 2 {
		t.Fatalf("got %d documents, want the two VEX files (sbom.json and notes.txt skipped)", len(docs))
	}
	if docs[0].Source != filepath.Join("testdata", "dir", "a.json") || docs[1].Source != filepath.Join("testdata", "dir", "nested", "b.vex.json") {
		t.Errorf("order: %s, %s", docs[0].Source, docs[1].Source)
	}
	// Named explicitly, a non-VEX file is an error that names it.
	_, err := Load(context.Background(), []string{filepath.Join("testdata", "dir", "sbom.json")})
	if err == nil || !strings.Contains(err.Error(), "sbom.json") {
		t.Errorf("explicit non-VEX file: %v", err)
	}
	if _, err := Load(context.Background(), []string{filepath.Join("testdata", "missing.json")}); err == nil {
		t.Error("missing file accepted")
	}
	// A broken OpenVEX document inside a directory is reported, not skipped.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x.json"), []byte(`{"@context":"https://openvex.dev/ns/v0.2.0","statements":[{"vulnerability":{"name":"CVE-1"},"status":"maybe"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(context.Background(), []string{dir}); err == nil || !strings.Contains(err.Error(), "maybe") {
		t.Errorf("broken VEX in directory: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Load(ctx, []string{filepath.Join("testdata", "dir")}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestPURLCovers(t *testing.T) {
	ix := NewIndex(nil)
	for _, tc := range []struct {
		vex, pkg string
		want     bool
	}{
		{"pkg:deb/debian/openssl@3.0.11-1~deb12u2", "pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=amd64&distro=debian-12", true},
		{"pkg:deb/debian/openssl?distro=debian-12&arch=amd64", "pkg:deb/debian/openssl@3.0.11-1?arch=amd64&distro=debian-12", true},
		{"pkg:deb/debian/openssl?arch=arm64", "pkg:deb/debian/openssl@3.0.11-1?arch=amd64", false},
		{"pkg:deb/debian/openssl@3.0.12", "pkg:deb/debian/openssl@3.0.11-1", false},
		{"pkg:deb/ubuntu/openssl", "pkg:deb/debian/openssl@3.0.11-1", false},
		{"pkg:pypi/Django_Rest@1.0", "pkg:pypi/django-rest@1.0", true},
		{"pkg:golang/github.com/Foo/bar", "pkg:golang/github.com/foo/bar@v1.0.0", true},
		{"pkg:golang/github.com/foo/baz", "pkg:golang/github.com/foo/bar@v1.0.0", false},
		{"pkg:npm/%40babel/core@7.0.0", "pkg:npm/%40babel/core@7.0.0", true},
		{"pkg:npm/core@7.0.0", "pkg:npm/%40babel/core@7.0.0", false},
		{"not a purl", "pkg:npm/a@1", false},
	} {
		if got := ix.isPackage(&Component{ID: tc.vex}, tc.pkg); got != tc.want {
			t.Errorf("%s covers %s = %v, want %v", tc.vex, tc.pkg, got, tc.want)
		}
	}
}
