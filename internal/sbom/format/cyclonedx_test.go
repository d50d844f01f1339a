package format

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
)

func TestCycloneDXOutput(t *testing.T) {
	s := fixture()
	out := encode(t, CycloneDX, s, Options{})
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(out), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		t.Fatalf("cyclonedx-go cannot read our output: %v", err)
	}
	if bom.SpecVersion != cdx.SpecVersion1_6 || bom.BOMFormat != "CycloneDX" {
		t.Fatalf("specVersion %v, bomFormat %q", bom.SpecVersion, bom.BOMFormat)
	}
	if bom.JSONSchema != "http://cyclonedx.org/schema/bom-1.6.schema.json" {
		t.Errorf("$schema = %q", bom.JSONSchema)
	}
	if !strings.HasPrefix(bom.SerialNumber, "urn:uuid:") || len(bom.SerialNumber) != len("urn:uuid:")+36 {
		t.Errorf("serialNumber = %q", bom.SerialNumber)
	}
	// The same SBOM gets the same serial number.
	if again := encode(t, CycloneDX, s, Options{}); !bytes.Equal(again, out) {
		t.Errorf("encoding is not deterministic")
	}

	img := bom.Metadata.Component
	if img.Type != cdx.ComponentTypeContainer || img.Name != "registry.example/shop/web" || img.Version != digest {
		t.Errorf("metadata.component = %+v", img)
	}
	if want := "pkg:oci/web@" + digest + "?arch=amd64&repository_url=registry.example%2Fshop%2Fweb&tag=1.4"; img.PackageURL != want {
		t.Errorf("image purl = %q\nwant %q", img.PackageURL, want)
	}
	if tools := *bom.Metadata.Tools.Components; len(tools) != 1 || tools[0].Name != "crowsnest" || tools[0].Version != "0.3.0" {
		t.Errorf("tools = %+v", tools)
	}
	if bom.Metadata.Timestamp != "2024-03-01T12:30:00Z" {
		t.Errorf("timestamp = %q", bom.Metadata.Timestamp)
	}

	comps := *bom.Components
	refs := map[string]bool{img.BOMRef: true}
	byName := map[string][]cdx.Component{}
	for _, c := range comps {
		if c.BOMRef == "" || refs[c.BOMRef] {
			t.Errorf("component %s: empty or duplicate bom-ref %q", c.Name, c.BOMRef)
		}
		refs[c.BOMRef] = true
		byName[c.Name] = append(byName[c.Name], c)
	}
	if os := byName["debian"]; len(os) != 1 || os[0].Type != cdx.ComponentTypeOS || os[0].Version != "12" ||
		os[0].Description != "Debian GNU/Linux 12 (bookworm)" {
		t.Errorf("operating-system component = %+v", os)
	}
	if len(comps) != len(s.Packages)+1 {
		t.Errorf("%d components, want %d packages + OS", len(comps), len(s.Packages))
	}

	libc := byName["libc6"][0]
	if libc.BOMRef != s.Packages[0].PURL || libc.PackageURL != s.Packages[0].PURL || libc.Type != cdx.ComponentTypeLibrary {
		t.Errorf("libc6 component = %+v", libc)
	}
	wantProps := []cdx.Property{
		{Name: "crowsnest:arch", Value: "amd64"},
		{Name: "crowsnest:source:name", Value: "glibc"},
		{Name: "crowsnest:location:0:path", Value: "/var/lib/dpkg/status"},
		{Name: "crowsnest:location:0:layerDiffID", Value: layer0},
	}
	if !reflect.DeepEqual(*libc.Properties, wantProps) {
		t.Errorf("libc6 properties = %+v", *libc.Properties)
	}
	// Plain SPDX ids become {id}, strings that are not SPDX {name}.
	if got := *byName["libgcrypt20"][0].Licenses; len(got) != 2 || got[0].License.Name != "GPL-2+" || got[1].License.ID != "LGPL-2.1-or-later" {
		t.Errorf("libgcrypt20 licenses = %+v %+v", got[0].License, got[1].License)
	}
	// A compound expression stands alone, as the 1.6 schema requires.
	if got := *byName["spdx-dual"][0].Licenses; len(got) != 1 || got[0].Expression != "MIT OR Apache-2.0" || got[0].License != nil {
		t.Errorf("spdx-dual licenses = %+v", got)
	}
	// Maven group and artifact are split as CycloneDX has fields for both.
	if l := byName["log4j-core"]; len(l) != 1 || l[0].Group != "org.apache.logging.log4j" {
		t.Errorf("log4j-core = %+v", l)
	}
	// Two lodash copies share a PURL: the second bom-ref is disambiguated.
	lodash := byName["lodash"]
	if len(lodash) != 2 || lodash[0].BOMRef != "pkg:npm/lodash@4.17.21" ||
		!strings.HasPrefix(lodash[1].BOMRef, "pkg:npm/lodash@4.17.21?package-id=") {
		t.Errorf("lodash bom-refs: %q %q", lodash[0].BOMRef, lodash[1].BOMRef)
	}
	// Ownership is also a dependency: python3-requests -> requests.
	deps := *bom.Dependencies
	reqs := byName["requests"][0]
	if len(deps) != 1 || deps[0].Ref != byName["python3-requests"][0].BOMRef || !slices.Equal(*deps[0].Dependencies, []string{reqs.BOMRef}) {
		t.Errorf("dependencies = %+v", deps)
	}
	if propValue(*reqs.Properties, propOwnedBy) != s.Packages[2].PURL {
		t.Errorf("requests has no ownedBy property: %+v", *reqs.Properties)
	}
	if p := *bom.Properties; len(p) != 1 || p[0].Name != "crowsnest:warning" {
		t.Errorf("BOM properties = %+v", p)
	}
}

func TestCycloneDXLicenseForms(t *testing.T) {
	lic := newLicenses()
	for _, tt := range []struct {
		in   []string
		want string
	}{
		{[]string{"mit", "GPL-2.0+"}, `[{"license":{"id":"MIT"}},{"license":{"id":"GPL-2.0+"}}]`},
		{[]string{"LicenseRef-Proprietary", "Artistic"}, `[{"license":{"name":"LicenseRef-Proprietary"}},{"license":{"name":"Artistic"}}]`},
		{[]string{"GPL-2.0-only WITH Classpath-exception-2.0"}, `[{"expression":"GPL-2.0-only WITH Classpath-exception-2.0"}]`},
		{[]string{"BSD-3-Clause", "MIT OR Apache-2.0", "Public Domain"},
			`[{"expression":"BSD-3-Clause AND (MIT OR Apache-2.0) AND LicenseRef-Public-Domain-f6960be1"}]`},
		{[]string{" "}, `null`},
	} {
		got, err := json.Marshal(cdxLicenses(tt.in, lic))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tt.want {
			t.Errorf("cdxLicenses(%q) = %s\n want %s", tt.in, got, tt.want)
		}
	}
}

func TestCycloneDXRoundTrip(t *testing.T) {
	want := fixture()
	out := encode(t, CycloneDX, want, Options{})
	got, err := Decode(bytes.NewReader(out), "")
	if err != nil {
		t.Fatal(err)
	}
	samePackages(t, got.Packages, want.Packages)
	if !reflect.DeepEqual(got.OS, want.OS) {
		t.Errorf("OS = %+v, want %+v", got.OS, want.OS)
	}
	if !got.Created.Equal(want.Created) || got.Tool != want.Tool || !slices.Equal(got.Warnings, want.Warnings) {
		t.Errorf("created %v tool %+v warnings %q", got.Created, got.Tool, got.Warnings)
	}
	wantImg := want.Image
	wantImg.Config = sbom.Config{}
	for i := range wantImg.Layers {
		wantImg.Layers[i].CreatedBy = ""
	}
	if !reflect.DeepEqual(got.Image, wantImg) {
		t.Errorf("image = %+v\nwant %+v", got.Image, wantImg)
	}
}

func TestCycloneDXOnlyPackageTypes(t *testing.T) {
	out := encode(t, "cyclonedx-json", fixture(), Options{OnlyTypes: []string{"npm"}})
	got, err := DecodeCycloneDX(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Packages) != 4 {
		t.Fatalf("got %s", names(got.Packages))
	}
	for _, p := range got.Packages {
		if p.Type != "npm" {
			t.Errorf("unfiltered %s", p.Type)
		}
	}
}

func TestCycloneDXFromSyft(t *testing.T) {
	got := decodeFile(t, "testdata/syft.cdx.json", CycloneDX)
	if got.Tool != (sbom.Tool{Name: "syft", Version: "1.0.1"}) || got.Image.Digest != "sha256:2c3b7fb1e1a44b1c5b0e8d7d1f3a2c9b8e7f6d5c4b3a29180f7e6d5c4b3a2918" {
		t.Errorf("tool %+v image %+v", got.Tool, got.Image)
	}
	if got.OS == nil || got.OS.ID != "debian" || got.OS.VersionID != "12" {
		t.Errorf("OS = %+v", got.OS)
	}
	samePackages(t, got.Packages, []sbom.Package{
		{Type: "deb", Name: "libc6", Version: "2.36-9+deb12u4", Arch: "amd64",
			PURL:     "pkg:deb/debian/libc6@2.36-9+deb12u4?arch=amd64&distro=debian-12&upstream=glibc",
			Licenses: []string{"GPL-2.0-only", "LGPL-2.1"}, Source: &sbom.Source{Name: "glibc"},
			Locations: []sbom.Location{{Path: "/usr/share/doc/libc6/copyright", DiffID: layer0}, {Path: "/var/lib/dpkg/status", DiffID: layer0}}},
		{Type: "npm", Name: "@babel/core", Version: "7.24.0", PURL: "pkg:npm/%40babel/core@7.24.0", Licenses: []string{"MIT"},
			Locations: []sbom.Location{{Path: "/app/node_modules/@babel/core/package.json", DiffID: layer2}}},
		{Type: "golang", Name: "github.com/Azure/go-ansiterm", Version: "v0.0.0-20230124172434-306776ec8161",
			PURL:      "pkg:golang/github.com/Azure/go-ansiterm@v0.0.0-20230124172434-306776ec8161",
			Locations: []sbom.Location{{Path: "/usr/local/bin/healthcheck", DiffID: layer2}}},
		{Type: "maven", Name: "org.apache.logging.log4j:log4j-core", Version: "2.14.1",
			PURL: "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1", Licenses: []string{"Apache-2.0"},
			Locations: []sbom.Location{{Path: "/app/lib/log4j-core-2.14.1.jar", DiffID: layer2}}},
	})
}

func TestCycloneDXFromTrivy(t *testing.T) {
	got := decodeFile(t, "testdata/trivy.cdx.json", CycloneDX)
	if got.Tool.Name != "trivy" || got.Image.Name != "node:20-bookworm" ||
		got.Image.Digest != "sha256:2c3b7fb1e1a44b1c5b0e8d7d1f3a2c9b8e7f6d5c4b3a29180f7e6d5c4b3a2918" {
		t.Errorf("tool %+v image %+v", got.Tool, got.Image)
	}
	if got.OS == nil || got.OS.ID != "debian" || got.OS.VersionID != "12.5" {
		t.Errorf("OS = %+v", got.OS)
	}
	samePackages(t, got.Packages, []sbom.Package{
		{Type: "deb", Name: "libc6", Version: "2.36-9+deb12u4", Arch: "amd64",
			PURL:     "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12.5",
			Licenses: []string{"LGPL-2.1", "GPL-2.0"}, Source: &sbom.Source{Name: "glibc", Version: "2.36-9+deb12u4"},
			Locations: []sbom.Location{{DiffID: layer0}}},
		{Type: "deb", Name: "libgcrypt20", Version: "1.10.1-3", Arch: "amd64",
			PURL:      "pkg:deb/debian/libgcrypt20@1.10.1-3?arch=amd64&distro=debian-12.5",
			Source:    &sbom.Source{Name: "libgcrypt20", Version: "1.10.1-3"},
			Locations: []sbom.Location{{DiffID: layer0}}},
		{Type: "npm", Name: "@babel/core", Version: "7.24.0", PURL: "pkg:npm/%40babel/core@7.24.0", Licenses: []string{"MIT"},
			Locations: []sbom.Location{{Path: "/app/node_modules/@babel/core/package.json", DiffID: layer2}}},
		{Type: "maven", Name: "org.apache.logging.log4j:log4j-core", Version: "2.14.1",
			PURL:      "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1",
			Locations: []sbom.Location{{Path: "/app/lib/log4j-core-2.14.1.jar", DiffID: layer2}}},
	})
}

func TestCycloneDXRejects(t *testing.T) {
	for name, doc := range map[string]string{
		"not CycloneDX": `{"bomFormat":"SPDX","specVersion":"1.6"}`,
		"not JSON":      `<bom/>`,
		"too deep":      `{"bomFormat":"CycloneDX","specVersion":"1.6","components":[` + strings.Repeat(`{"type":"library","name":"x","components":[`, 20) + strings.Repeat(`]}`, 20) + `]}`,
	} {
		if _, err := DecodeCycloneDX(strings.NewReader(doc)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func decodeFile(t *testing.T, path, format string) *sbom.SBOM {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := Decode(f, format)
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	// Detection must agree with the format named.
	data, _ := os.ReadFile(path)
	if d, err := Detect(data); err != nil || d != format {
		t.Errorf("Detect(%s) = %q, %v", path, d, err)
	}
	return s
}
