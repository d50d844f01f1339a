package sbom

import (
	"testing"

	"github.com/package-url/packageurl-go"
)

func TestPURL(t *testing.T) {
	debian := &OS{ID: "debian", VersionID: "12", VersionCodename: "bookworm"}
	ubuntu := &OS{ID: "ubuntu", VersionID: "22.04"}
	alpine := &OS{ID: "alpine", VersionID: "3.19.1"}
	rhel := &OS{ID: "rhel", VersionID: "9.2"}
	fedora := &OS{ID: "fedora", VersionID: "39"}
	tests := []struct {
		name string
		p    Package
		os   *OS
		want string
	}{
		// Expected strings are those Syft writes for the same packages, except that '+' is
		// percent-encoded as the PURL specification (and packageurl-go) requires.
		{"deb with differing source", Package{Type: TypeDeb, Name: "libc6", Version: "2.36-9+deb12u4", Arch: "amd64",
			Source: &Source{Name: "glibc"}}, debian,
			"pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12&upstream=glibc"},
		{"deb whose source is itself", Package{Type: TypeDeb, Name: "bash", Version: "5.2.15-2+b2", Arch: "amd64",
			Source: &Source{Name: "bash", Version: "5.2.15-2"}}, debian,
			"pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64&distro=debian-12&upstream=bash%405.2.15-2"},
		{"deb same source same version", Package{Type: TypeDeb, Name: "tzdata", Version: "2024a-0+deb12u1", Arch: "all",
			Source: &Source{Name: "tzdata", Version: "2024a-0+deb12u1"}}, debian,
			"pkg:deb/debian/tzdata@2024a-0%2Bdeb12u1?arch=all&distro=debian-12"},
		{"deb epoch stays in version", Package{Type: TypeDeb, Name: "libgcrypt20", Version: "1:1.10.1-3", Arch: "arm64"}, debian,
			"pkg:deb/debian/libgcrypt20@1:1.10.1-3?arch=arm64&distro=debian-12"},
		{"ubuntu", Package{Type: TypeDeb, Name: "libssl3", Version: "3.0.2-0ubuntu1.15", Arch: "amd64",
			Source: &Source{Name: "openssl"}}, ubuntu,
			"pkg:deb/ubuntu/libssl3@3.0.2-0ubuntu1.15?arch=amd64&distro=ubuntu-22.04&upstream=openssl"},
		{"deb without os-release", Package{Type: TypeDeb, Name: "zlib1g", Version: "1:1.2.13.dfsg-1", Arch: "amd64"}, nil,
			"pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64"},
		{"apk", Package{Type: TypeAPK, Name: "libcrypto3", Version: "3.1.4-r5", Arch: "x86_64",
			Source: &Source{Name: "openssl"}}, alpine,
			"pkg:apk/alpine/libcrypto3@3.1.4-r5?arch=x86_64&distro=alpine-3.19.1&upstream=openssl"},
		{"apk own origin", Package{Type: TypeAPK, Name: "musl", Version: "1.2.4_git20230717-r4", Arch: "x86_64",
			Source: &Source{Name: "musl"}}, alpine,
			"pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=x86_64&distro=alpine-3.19.1"},
		{"rpm rhel", Package{Type: TypeRPM, Name: "bash", Version: "5.1.8-6.el9", Arch: "x86_64",
			Source: &Source{Name: "bash", Version: "5.1.8-6.el9"}}, rhel,
			"pkg:rpm/redhat/bash@5.1.8-6.el9?arch=x86_64&distro=rhel-9.2&upstream=bash-5.1.8-6.el9.src.rpm"},
		{"rpm epoch in version", Package{Type: TypeRPM, Name: "openssl-libs", Version: "1:3.0.7-24.el9", Arch: "x86_64",
			Source: &Source{Name: "openssl", Version: "1:3.0.7-24.el9"}}, rhel,
			"pkg:rpm/redhat/openssl-libs@3.0.7-24.el9?arch=x86_64&distro=rhel-9.2&epoch=1&upstream=openssl-3.0.7-24.el9.src.rpm"},
		{"rpm epoch in metadata, srpm file name", Package{Type: TypeRPM, Name: "curl", Version: "8.2.1-3.fc39", Arch: "aarch64",
			Metadata: map[string]string{"epoch": "0"}, Source: &Source{Name: "curl-8.2.1-3.fc39.src.rpm"}}, fedora,
			"pkg:rpm/fedora/curl@8.2.1-3.fc39?arch=aarch64&distro=fedora-39&epoch=0&upstream=curl-8.2.1-3.fc39.src.rpm"},
		{"go module", Package{Type: TypeGolang, Name: "github.com/sirupsen/logrus", Version: "v1.9.3"}, debian,
			"pkg:golang/github.com/sirupsen/logrus@v1.9.3"},
		{"go module keeps case", Package{Type: TypeGolang, Name: "github.com/Azure/azure-sdk-for-go/sdk/azcore", Version: "v1.9.1"}, nil,
			"pkg:golang/github.com/Azure/azure-sdk-for-go/sdk/azcore@v1.9.1"},
		{"go pseudo-version", Package{Type: TypeGolang, Name: "golang.org/x/net", Version: "v0.0.0-20220722155237-a158d28d115b"}, nil,
			"pkg:golang/golang.org/x/net@v0.0.0-20220722155237-a158d28d115b"},
		{"go stdlib", Package{Type: TypeGolang, Name: "stdlib", Version: "go1.21.5"}, nil,
			"pkg:golang/stdlib@1.21.5"},
		{"npm scoped", Package{Type: TypeNPM, Name: "@babel/core", Version: "7.24.0"}, debian,
			"pkg:npm/%40babel/core@7.24.0"},
		{"npm", Package{Type: TypeNPM, Name: "lodash", Version: "4.17.21"}, nil,
			"pkg:npm/lodash@4.17.21"},
		{"pypi", Package{Type: TypePyPI, Name: "requests", Version: "2.31.0"}, nil,
			"pkg:pypi/requests@2.31.0"},
		{"pypi normalized", Package{Type: TypePyPI, Name: "Zope.Interface__x", Version: "6.1"}, nil,
			"pkg:pypi/zope-interface-x@6.1"},
		{"maven", Package{Type: TypeMaven, Name: "org.apache.logging.log4j:log4j-core", Version: "2.14.1"}, nil,
			"pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"},
		{"gem", Package{Type: TypeGem, Name: "rack", Version: "3.0.8"}, nil, "pkg:gem/rack@3.0.8"},
		{"cargo", Package{Type: TypeCargo, Name: "serde", Version: "1.0.195"}, nil, "pkg:cargo/serde@1.0.195"},
		{"composer", Package{Type: TypeComposer, Name: "laravel/framework", Version: "v10.40.0"}, nil,
			"pkg:composer/laravel/framework@v10.40.0"},
		{"nuget", Package{Type: TypeNuGet, Name: "Newtonsoft.Json", Version: "13.0.3"}, nil,
			"pkg:nuget/Newtonsoft.Json@13.0.3"},
		{"no name", Package{Type: TypeNPM, Version: "1"}, nil, ""},
		{"invalid type", Package{Type: "9bad type", Name: "x", Version: "1"}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := PURL(&tt.p, tt.os)
			if got != tt.want {
				t.Fatalf("PURL() = %q\n want %q", got, tt.want)
			}
			if got == "" {
				return
			}
			// Every PURL must parse back to the same string.
			u, err := packageurl.FromString(got)
			if err != nil {
				t.Fatalf("parse %q: %v", got, err)
			}
			if tt.p.Type != TypeGolang && u.ToString() != got {
				t.Fatalf("round trip %q -> %q", got, u.ToString())
			}
		})
	}
}

func TestNormalizePyPIName(t *testing.T) {
	for in, want := range map[string]string{
		"Django":            "django",
		"typing_extensions": "typing-extensions",
		"zope.interface":    "zope-interface",
		"A--B__C..d":        "a-b-c-d",
		"_leading":          "-leading",
		"trailing-":         "trailing-",
	} {
		if got := NormalizePyPIName(in); got != want {
			t.Errorf("NormalizePyPIName(%q) = %q, want %q", in, got, want)
		}
	}
}
