package format

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
)

func encode(t testing.TB, format string, s *sbom.SBOM, opts Options) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Encode(&buf, format, s, opts); err != nil {
		t.Fatalf("Encode(%s): %v", format, err)
	}
	return buf.Bytes()
}

// samePackages fails the test unless got and want hold the same packages in any order.
func samePackages(t *testing.T, got, want []sbom.Package) {
	t.Helper()
	g, w := sortedCopy(got), sortedCopy(want)
	if len(g) != len(w) {
		t.Fatalf("got %d packages, want %d:\n got  %s\n want %s", len(g), len(w), names(g), names(w))
	}
	for i := range g {
		if !reflect.DeepEqual(g[i], w[i]) {
			t.Errorf("package %d differs:\n got  %+v\n want %+v", i, describe(g[i]), describe(w[i]))
		}
	}
}

func sortedCopy(ps []sbom.Package) []sbom.Package {
	out := slices.Clone(ps)
	for i := range out {
		if len(out[i].Metadata) == 0 {
			out[i].Metadata = nil
		}
		if len(out[i].Licenses) == 0 {
			out[i].Licenses = nil
		}
		if len(out[i].Locations) == 0 {
			out[i].Locations = nil
		}
	}
	slices.SortFunc(out, func(a, b sbom.Package) int {
		return strings.Compare(a.Key()+fmt.Sprint(a.Locations), b.Key()+fmt.Sprint(b.Locations))
	})
	return out
}

func names(ps []sbom.Package) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.Type+":"+p.Name+"@"+p.Version)
	}
	return strings.Join(s, " ")
}

func describe(p sbom.Package) string {
	src := "<nil>"
	if p.Source != nil {
		src = fmt.Sprintf("%+v", *p.Source)
	}
	return fmt.Sprintf("{Type:%s Name:%s Version:%s PURL:%s Licenses:%q Locations:%+v Source:%s Arch:%s OwnedBy:%s Metadata:%v}",
		p.Type, p.Name, p.Version, p.PURL, p.Licenses, p.Locations, src, p.Arch, p.OwnedBy, p.Metadata)
}
