package format

import (
	"bytes"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/github/go-spdx/v2/spdxexp"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx"
	"github.com/spdx/tools-golang/spdx/v2/common"
	"github.com/spdx/tools-golang/spdxlib"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
)

var spdxIDPattern = regexp.MustCompile(`^[A-Za-z0-9.-]+$`)

func TestSPDXOutput(t *testing.T) {
	s := fixture()
	out := encode(t, SPDX, s, Options{})
	doc, err := spdxjson.Read(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("tools-golang cannot read our output: %v", err)
	}
	if err := spdxlib.ValidateDocument(doc); err != nil {
		t.Fatalf("invalid document: %v", err)
	}
	if doc.SPDXVersion != "SPDX-2.3" || doc.DataLicense != "CC0-1.0" || doc.SPDXIdentifier != "DOCUMENT" {
		t.Errorf("header: %s %s %s", doc.SPDXVersion, doc.DataLicense, doc.SPDXIdentifier)
	}
	if !regexp.MustCompile(`^https://crowsnest\.dev/spdx/sha256:4e5f[0-9a-f]{60}-[0-9a-f-]{36}$`).MatchString(doc.DocumentNamespace) {
		t.Errorf("documentNamespace = %q", doc.DocumentNamespace)
	}
	// Unique per image digest, the same for the same image.
	other := fixture()
	other.Image.Digest = "sha256:" + strings.Repeat("ab", 32)
	otherDoc, err := spdxjson.Read(bytes.NewReader(encode(t, SPDX, other, Options{})))
	if err != nil || otherDoc.DocumentNamespace == doc.DocumentNamespace {
		t.Errorf("namespace not unique per digest: %v", err)
	}
	if again := encode(t, SPDX, s, Options{}); !bytes.Equal(again, out) {
		t.Errorf("encoding is not deterministic")
	}
	if c := doc.CreationInfo; c.Created != "2024-03-01T12:30:00Z" || len(c.Creators) != 1 || c.Creators[0].Creator != "crowsnest-0.3.0" || c.Creators[0].CreatorType != "Tool" {
		t.Errorf("creationInfo = %+v", c)
	}

	ids := map[common.ElementID]*spdx.Package{}
	for _, p := range doc.Packages {
		if !spdxIDPattern.MatchString(string(p.PackageSPDXIdentifier)) || ids[p.PackageSPDXIdentifier] != nil {
			t.Errorf("bad or duplicate SPDXID %q", p.PackageSPDXIdentifier)
		}
		ids[p.PackageSPDXIdentifier] = p
	}
	if len(doc.Packages) != len(s.Packages)+2 {
		t.Errorf("%d packages, want %d + image + OS", len(doc.Packages), len(s.Packages))
	}
	image := ids["Image"]
	if image == nil || image.PrimaryPackagePurpose != "CONTAINER" || image.PackageVersion != digest || image.PackageName != "registry.example/shop/web" {
		t.Fatalf("image package = %+v", image)
	}
	if os := ids["OperatingSystem"]; os == nil || os.PrimaryPackagePurpose != "OPERATING-SYSTEM" || os.PackageName != "debian" || os.PackageVersion != "12" {
		t.Errorf("OS package = %+v", os)
	}

	declared := map[string]bool{}
	for _, ol := range doc.OtherLicenses {
		declared[ol.LicenseIdentifier] = true
		if ol.ExtractedText == "" {
			t.Errorf("%s has no extracted text", ol.LicenseIdentifier)
		}
	}
	contained := map[common.ElementID]bool{}
	describes := 0
	for _, r := range doc.Relationships {
		switch {
		case r.Relationship == "DESCRIBES" && r.RefA.ElementRefID == "DOCUMENT" && r.RefB.ElementRefID == "Image":
			describes++
		case r.Relationship == "CONTAINS" && r.RefA.ElementRefID == "Image":
			contained[r.RefB.ElementRefID] = true
		}
	}
	if describes != 1 {
		t.Errorf("%d DESCRIBES DOCUMENT -> image relationships", describes)
	}
	byName := map[string]*spdx.Package{}
	for _, p := range doc.Packages {
		if p == image || p.PackageSPDXIdentifier == "OperatingSystem" {
			continue
		}
		byName[p.PackageName] = p
		if !contained[p.PackageSPDXIdentifier] {
			t.Errorf("image does not CONTAIN %s", p.PackageSPDXIdentifier)
		}
		if len(p.PackageExternalReferences) != 1 || p.PackageExternalReferences[0].Category != "PACKAGE-MANAGER" ||
			p.PackageExternalReferences[0].RefType != "purl" || !strings.HasPrefix(p.PackageExternalReferences[0].Locator, "pkg:") {
			t.Errorf("%s external refs = %+v", p.PackageName, p.PackageExternalReferences)
		}
		// licenseDeclared is NOASSERTION or a valid expression whose LicenseRefs are declared.
		lic := p.PackageLicenseDeclared
		if lic == "NOASSERTION" {
			continue
		}
		if ok, bad := spdxexp.ValidateLicenses([]string{lic}); !ok {
			t.Errorf("%s: invalid licenseDeclared %q (%v)", p.PackageName, lic, bad)
		}
		for _, ref := range licenseRefsIn(lic) {
			if !declared[ref] {
				t.Errorf("%s: %s not in hasExtractedLicensingInfos", p.PackageName, ref)
			}
		}
	}
	for name, want := range map[string]string{
		"libc6":             "GPL-2.0-only AND LGPL-2.1-only",
		"spdx-dual":         "MIT OR Apache-2.0",
		"golang.org/x/none": "",
		"stdlib":            "NOASSERTION",
	} {
		if want == "" {
			continue
		}
		if got := byName[name].PackageLicenseDeclared; got != want {
			t.Errorf("%s licenseDeclared = %q, want %q", name, got, want)
		}
	}
	if got := byName["libgcrypt20"].PackageLicenseDeclared; !regexp.MustCompile(`^LicenseRef-GPL-2--[0-9a-f]{8} AND LGPL-2\.1-or-later$`).MatchString(got) {
		t.Errorf("libgcrypt20 licenseDeclared = %q", got)
	}
	if got := byName["requests"].PackageLicenseDeclared; !strings.HasPrefix(got, "LicenseRef-Apache-2.0-") {
		t.Errorf(`"Apache 2.0" became %q`, got)
	}
	if got := byName["libc6"].PackageSourceInfo; got != "acquired package info from /var/lib/dpkg/status" {
		t.Errorf("sourceInfo = %q", got)
	}
}

func TestSPDXRoundTrip(t *testing.T) {
	want := fixture()
	out := encode(t, "spdx-json", want, Options{})
	got, err := Decode(bytes.NewReader(out), "")
	if err != nil {
		t.Fatal(err)
	}
	samePackages(t, got.Packages, want.Packages)
	if got.OS == nil || *got.OS != *want.OS {
		t.Errorf("OS = %+v", got.OS)
	}
	if !got.Created.Equal(want.Created) || got.Tool != want.Tool || !slices.Equal(got.Warnings, want.Warnings) {
		t.Errorf("created %v tool %+v warnings %q", got.Created, got.Tool, got.Warnings)
	}
	if got.Image.Reference != want.Image.Reference || got.Image.Digest != want.Image.Digest ||
		got.Image.Platform != want.Image.Platform || len(got.Image.Layers) != 3 || got.Image.Layers[2].DiffID != layer2 {
		t.Errorf("image = %+v", got.Image)
	}
}

func TestSPDXFromSyft(t *testing.T) {
	got := decodeFile(t, "testdata/syft.spdx.json", SPDX)
	if got.Tool != (sbom.Tool{Name: "syft", Version: "1.0.1"}) || got.Image.Digest != "sha256:2c3b7fb1e1a44b1c5b0e8d7d1f3a2c9b8e7f6d5c4b3a29180f7e6d5c4b3a2918" {
		t.Errorf("tool %+v image %+v", got.Tool, got.Image)
	}
	samePackages(t, got.Packages, []sbom.Package{
		{Type: "deb", Name: "libc6", Version: "2.36-9+deb12u4", Arch: "amd64",
			PURL:     "pkg:deb/debian/libc6@2.36-9+deb12u4?arch=amd64&upstream=glibc&distro=debian-12",
			Licenses: []string{"GPL-2.0-only", "LicenseRef-LGPL-2.1"}, Source: &sbom.Source{Name: "glibc"}},
		{Type: "npm", Name: "@babel/core", Version: "7.24.0", PURL: "pkg:npm/%40babel/core@7.24.0", Licenses: []string{"MIT"}},
	})
}

func TestSPDXFromTrivy(t *testing.T) {
	got := decodeFile(t, "testdata/trivy.spdx.json", SPDX)
	if got.Tool != (sbom.Tool{Name: "trivy", Version: "0.50.0"}) || got.Image.Name != "node:20-bookworm" ||
		got.Image.Digest != "sha256:2c3b7fb1e1a44b1c5b0e8d7d1f3a2c9b8e7f6d5c4b3a29180f7e6d5c4b3a2918" {
		t.Errorf("tool %+v image %+v", got.Tool, got.Image)
	}
	if got.OS == nil || got.OS.ID != "debian" || got.OS.VersionID != "12.5" {
		t.Errorf("OS = %+v", got.OS)
	}
	samePackages(t, got.Packages, []sbom.Package{
		{Type: "deb", Name: "libc6", Version: "2.36-9+deb12u4", Arch: "amd64",
			PURL:     "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12.5",
			Licenses: []string{"LGPL-2.1-only", "GPL-2.0-only"}, Source: &sbom.Source{Name: "glibc", Version: "2.36-9+deb12u4"},
			Locations: []sbom.Location{{DiffID: layer0}}},
		{Type: "maven", Name: "org.apache.logging.log4j:log4j-core", Version: "2.14.1",
			PURL:      "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1",
			Locations: []sbom.Location{{Path: "/app/lib/log4j-core-2.14.1.jar", DiffID: layer2}}},
	})
}

func TestSPDXRejects(t *testing.T) {
	for name, doc := range map[string]string{
		"SPDX 3":    `{"spdxVersion":"SPDX-3.0"}`,
		"no object": `[1,2]`,
		"bad id":    `{"spdxVersion":"SPDX-2.3","SPDXID":"DOCUMENT","packages":[{"SPDXID":"nope"}]}`,
	} {
		if _, err := DecodeSPDX(strings.NewReader(doc)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
