package format

import (
	"bytes"
	"io"
	"os"
	"testing"

	"github.com/github/go-spdx/v2/spdxexp"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
)

func addSeeds(f *testing.F, format string, files ...string) {
	f.Add(encode(f, format, fixture(), Options{}))
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
}

// reencode checks that whatever a decoder accepted can be written in every format.
func reencode(t *testing.T, s *sbom.SBOM) {
	for _, name := range Formats() {
		if err := Encode(io.Discard, name, s, Options{}); err != nil {
			t.Fatalf("re-encode %s: %v", name, err)
		}
	}
}

func FuzzDecodeCycloneDX(f *testing.F) {
	addSeeds(f, CycloneDX, "testdata/syft.cdx.json", "testdata/trivy.cdx.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := DecodeCycloneDX(bytes.NewReader(data))
		if err != nil {
			return
		}
		reencode(t, s)
	})
}

func FuzzDecodeSPDX(f *testing.F) {
	addSeeds(f, SPDX, "testdata/syft.spdx.json", "testdata/trivy.spdx.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := DecodeSPDX(bytes.NewReader(data))
		if err != nil {
			return
		}
		reencode(t, s)
	})
}

func FuzzDecode(f *testing.F) {
	addSeeds(f, JSON)
	f.Add(encode(f, CycloneDX, fixture(), Options{}))
	f.Add(encode(f, SPDX, fixture(), Options{}))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Decode(bytes.NewReader(data), "")
		if err != nil {
			return
		}
		reencode(t, s)
	})
}

// FuzzLicenseExpression feeds hostile license strings (package metadata is untrusted) through the
// SPDX mapping: the result must always be a valid expression or NOASSERTION.
func FuzzLicenseExpression(f *testing.F) {
	for _, s := range []string{"MIT", "GPL-2+", "MIT OR Apache-2.0", "(MIT AND", "LicenseRef-x", "DocumentRef-a:LicenseRef-b",
		"Apache-2.0 WITH LLVM-exception", "GPL-2.0+ WITH Classpath-exception-2.0", "", "  ", "and or with", "((((MIT))))"} {
		f.Add(s, "BSD-3-Clause")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		l := newLicenses()
		e := l.expression([]string{a, b})
		if e == noAssertion {
			return
		}
		if ok, bad := spdxexp.ValidateLicenses([]string{e}); !ok {
			t.Fatalf("expression(%q, %q) = %q is invalid: %v", a, b, e, bad)
		}
		for _, r := range licenseRefsIn(e) {
			if _, ok := l.refs[r]; !ok {
				t.Fatalf("expression(%q, %q) = %q uses undeclared %s", a, b, e, r)
			}
		}
	})
}
