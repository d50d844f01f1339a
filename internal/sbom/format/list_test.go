package format

import (
	"strings"
	"testing"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
)

func TestList(t *testing.T) {
	got := string(encode(t, List, fixture(), Options{}))
	want := `Image     registry.example/shop/web:1.4
Digest    sha256:4e5f6a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091
Platform  linux/amd64
OS        Debian GNU/Linux 12 (bookworm)
Packages  12 (apk 1, deb 3, golang 2, maven 1, npm 4, pypi 1)

TYPE    NAME                                 VERSION                             LAYER
apk     libcrypto3                           3.1.4-r5                            2
deb     libc6                                2.36-9+deb12u4                      0
deb     libgcrypt20                          1.10.1-3                            0
deb     python3-requests                     2.28.1+dfsg-1                       1
golang  github.com/Azure/go-ansiterm         v0.0.0-20230124172434-306776ec8161  2
golang  stdlib                               go1.21.5                            2
maven   org.apache.logging.log4j:log4j-core  2.14.1                              2
npm     @babel/core                          7.24.0                              2
npm     lodash                               4.17.21                             2
npm     lodash                               4.17.21                             2
npm     spdx-dual                            1.0.0                               2
pypi    requests                             2.28.1                              1
`
	if got != want {
		t.Fatalf("list output:\n%s\nwant:\n%s", got, want)
	}
}

func TestListOnlyPackageTypes(t *testing.T) {
	got := string(encode(t, "table", fixture(), Options{OnlyTypes: []string{"deb", " PyPI "}}))
	if !strings.Contains(got, "Packages  4 (deb 3, pypi 1)\n") {
		t.Fatalf("header does not count the filtered packages:\n%s", got)
	}
	for _, line := range strings.Split(got, "\n")[7:] {
		if line != "" && !strings.HasPrefix(line, "deb ") && !strings.HasPrefix(line, "pypi ") {
			t.Errorf("unfiltered row %q", line)
		}
	}
}

// A directory input has no layers and no OS: no LAYER column, OS "unknown", and a package
// name from a hostile database cannot add rows or columns.
func TestListWithoutLayers(t *testing.T) {
	s := &sbom.SBOM{
		Image: sbom.Image{Reference: "fs:///srv/app"},
		Packages: []sbom.Package{
			{Type: "npm", Name: "evil\npkg\tx", Version: "1.0.0\x1b[31m", Locations: []sbom.Location{{Path: "/package.json"}}},
			{Type: "cargo", Name: "serde", Version: "1.0.195"},
		},
	}
	got := string(encode(t, List, s, Options{}))
	want := `Image     fs:///srv/app
OS        unknown
Packages  2 (cargo 1, npm 1)

TYPE   NAME        VERSION
cargo  serde       1.0.195
npm    evil pkg x  1.0.0[31m
`
	if got != want {
		t.Fatalf("list output:\n%q\nwant:\n%q", got, want)
	}
}

func TestListEmpty(t *testing.T) {
	got := string(encode(t, List, &sbom.SBOM{Image: sbom.Image{Reference: "scratch"}}, Options{}))
	if got != "Image     scratch\nOS        unknown\nPackages  0\n" {
		t.Fatalf("got %q", got)
	}
}
