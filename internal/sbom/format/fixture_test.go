package format

import (
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
)

const (
	layer0 = "sha256:1a5fc1184c48b4ea8b2f3ba03f5c25f1cbc1a3de6c89ff5ed4c0bc9e08e4f0b8"
	layer1 = "sha256:8b1c0a5f9e7d4c3b2a1908f7e6d5c4b3a2918f7e6d5c4b3a2918f7e6d5c4b3a2"
	layer2 = "sha256:c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2"
	digest = "sha256:4e5f6a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091"
)

// fixture is a realistic SBOM of a Debian-based Node image with a Go helper binary and a
// vendored jar, plus one Alpine package from a copied-in apk database: every ecosystem and
// every optional field the encoders handle.
func fixture() *sbom.SBOM {
	created := time.Date(2024, 3, 1, 12, 30, 0, 0, time.UTC)
	debian := &sbom.OS{ID: "debian", VersionID: "12", VersionCodename: "bookworm", PrettyName: "Debian GNU/Linux 12 (bookworm)"}
	s := &sbom.SBOM{
		SchemaVersion: sbom.SchemaVersion,
		Tool:          sbom.Tool{Name: "crowsnest", Version: "0.3.0"},
		Created:       created,
		Image: sbom.Image{
			Reference:    "registry.example/shop/web:1.4",
			Name:         "registry.example/shop/web",
			Tag:          "1.4",
			Digest:       digest,
			MediaType:    "application/vnd.oci.image.manifest.v1+json",
			ConfigDigest: "sha256:0f0e0d0c0b0a09080706050403020100f0e0d0c0b0a090807060504030201000",
			Platform:     sbom.Platform{OS: "linux", Architecture: "amd64"},
			Config:       sbom.Config{User: "node", EnvNames: []string{"PATH", "NODE_VERSION"}, Labels: map[string]string{"org.opencontainers.image.source": "https://git.example/shop/web"}},
			Layers: []sbom.Layer{
				{Index: 0, Digest: "sha256:aa00", DiffID: layer0, Size: 29150000, CreatedBy: "# debian.sh"},
				{Index: 1, Digest: "sha256:aa01", DiffID: layer1, Size: 41000000, CreatedBy: "RUN apt-get install -y python3-requests"},
				{Index: 2, Digest: "sha256:aa02", DiffID: layer2, Size: 12000000, CreatedBy: "COPY . /app"},
			},
		},
		OS: debian,
		Warnings: []string{
			"layer 2 (" + layer2 + "): /app/node_modules/broken/package.json: unexpected end of JSON input",
		},
	}
	dpkg := []sbom.Location{{Path: "/var/lib/dpkg/status", DiffID: layer0}}
	pkgs := []sbom.Package{
		{Type: sbom.TypeDeb, Name: "libc6", Version: "2.36-9+deb12u4", Arch: "amd64",
			Licenses: []string{"GPL-2.0-only", "LGPL-2.1-only"}, Locations: dpkg,
			Source: &sbom.Source{Name: "glibc"}},
		{Type: sbom.TypeDeb, Name: "libgcrypt20", Version: "1.10.1-3", Arch: "amd64",
			Licenses: []string{"GPL-2+", "LGPL-2.1-or-later"}, Locations: dpkg},
		{Type: sbom.TypeDeb, Name: "python3-requests", Version: "2.28.1+dfsg-1", Arch: "all",
			Licenses: []string{"Apache-2.0"}, Locations: []sbom.Location{{Path: "/var/lib/dpkg/status", DiffID: layer1}},
			Source: &sbom.Source{Name: "requests", Version: "2.28.1+dfsg-1"}},
		{Type: sbom.TypePyPI, Name: "requests", Version: "2.28.1",
			Locations: []sbom.Location{{Path: "/usr/lib/python3/dist-packages/requests-2.28.1.egg-info/PKG-INFO", DiffID: layer1}},
			Licenses:  []string{"Apache 2.0"}},
		{Type: sbom.TypeAPK, Name: "libcrypto3", Version: "3.1.4-r5", Arch: "x86_64",
			Licenses: []string{"Apache-2.0"}, Locations: []sbom.Location{{Path: "/opt/alpine/lib/apk/db/installed", DiffID: layer2}},
			Source: &sbom.Source{Name: "openssl"}},
		{Type: sbom.TypeNPM, Name: "@babel/core", Version: "7.24.0", Licenses: []string{"MIT"},
			Locations: []sbom.Location{{Path: "/app/node_modules/@babel/core/package.json", DiffID: layer2}}},
		{Type: sbom.TypeNPM, Name: "lodash", Version: "4.17.21", Licenses: []string{"MIT"},
			Locations: []sbom.Location{{Path: "/app/node_modules/lodash/package.json", DiffID: layer2}}},
		// The same lodash vendored twice: same PURL, different location.
		{Type: sbom.TypeNPM, Name: "lodash", Version: "4.17.21", Licenses: []string{"MIT"},
			Locations: []sbom.Location{{Path: "/app/tools/node_modules/lodash/package.json", DiffID: layer2}}},
		{Type: sbom.TypeNPM, Name: "spdx-dual", Version: "1.0.0", Licenses: []string{"MIT OR Apache-2.0"},
			Locations: []sbom.Location{{Path: "/app/node_modules/spdx-dual/package.json", DiffID: layer2}}},
		{Type: sbom.TypeGolang, Name: "github.com/Azure/go-ansiterm", Version: "v0.0.0-20230124172434-306776ec8161",
			Locations: []sbom.Location{{Path: "/usr/local/bin/healthcheck", DiffID: layer2}},
			Metadata:  map[string]string{"goVersion": "go1.21.5", "mainModule": "example.com/healthcheck"}},
		{Type: sbom.TypeGolang, Name: "stdlib", Version: "go1.21.5",
			Locations: []sbom.Location{{Path: "/usr/local/bin/healthcheck", DiffID: layer2}}},
		{Type: sbom.TypeMaven, Name: "org.apache.logging.log4j:log4j-core", Version: "2.14.1", Licenses: []string{"Apache-2.0"},
			Locations: []sbom.Location{{Path: "/app/lib/log4j-core-2.14.1.jar", DiffID: layer2}}},
	}
	for i := range pkgs {
		pkgs[i].PURL = sbom.PURL(&pkgs[i], debian)
	}
	// python3-requests installed the requests distribution.
	pkgs[3].OwnedBy = pkgs[2].PURL
	// The apk package came from an Alpine database, not from Debian.
	pkgs[4].PURL = sbom.PURL(&pkgs[4], &sbom.OS{ID: "alpine", VersionID: "3.19.1"})
	s.Packages = pkgs
	return s
}
