package demo

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// fixture is one generated image and the repository:tag it is pushed to in docker-local.
type fixture struct {
	Name, Tag string
	Image     v1.Image
	// Why tells the newcomer what the image shows.
	Why string
}

// fileTime is every entry's modification time: the same fixture always has the same digest, so
// every run prints the same digests and the docs can quote them.
var fileTime = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

type file struct {
	path    string
	content []byte
}

// layer is a gzip-compressed tar layer holding files (parent directories are implied, as in
// many real layers).
func layer(files ...file) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Typeflag: tar.TypeReg, Name: f.path, Mode: 0o644, Size: int64(len(f.content)), ModTime: fileTime}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.content); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}

// stack stacks layers on an empty linux/amd64 image.
func stack(layers ...v1.Layer) (v1.Image, error) {
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	cfg.Created = v1.Time{Time: fileTime}
	cfg.Config.Cmd = []string{"/bin/sh"}
	return mutate.ConfigFile(img, cfg)
}

const alpineOSRelease = `NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.19.1
PRETTY_NAME="Alpine Linux v3.19"
HOME_URL="https://alpinelinux.org/"
`

// apkInstalled is /lib/apk/db/installed with musl at muslVersion and zlib, in apk-tools' format.
func apkInstalled(muslVersion string) []byte {
	return fmt.Appendf(nil, `C:Q1gs7CSHt1Fh1rlzRMJmWsAdAqR2s=
P:musl
V:%s
A:x86_64
S:383152
I:622592
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Natanael Copa <ncopa@alpinelinux.org>
F:lib
R:ld-musl-x86_64.so.1
Z:Q1Yx3ymNpJ6p8TTnTHQF3ZrzNvXQo=
R:libc.musl-x86_64.so.1
Z:Q17yJ3JFNypA4mxhJJr0ou6CzsJVI=

C:Q1Ekf5HWgLQwCfdmDcJrYpQkr3ZAA=
P:zlib
V:1.3.1-r0
A:x86_64
S:53346
I:110592
T:A compression/decompression Library
U:https://zlib.net/
L:Zlib
o:zlib
m:Natanael Copa <ncopa@alpinelinux.org>
D:so:libc.musl-x86_64.so.1
p:so:libz.so.1=1.3.1
F:lib
R:libz.so.1
Z:Q1+URKTWFx4nEHo4cF7bBWx2tJ8nM=

`, muslVersion)
}

const debianOSRelease = `PRETTY_NAME="Debian GNU/Linux 9 (stretch)"
NAME="Debian GNU/Linux"
VERSION_ID="9"
VERSION="9 (stretch)"
VERSION_CODENAME=stretch
ID=debian
`

// dpkgStatus is /var/lib/dpkg/status of a Debian 9 image with OpenSSL before DLA-3008-1.
const dpkgStatus = `Package: libssl1.1
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 3548
Maintainer: Debian OpenSSL Team <pkg-openssl-devel@lists.alioth.debian.org>
Architecture: amd64
Multi-Arch: same
Source: openssl
Version: 1.1.0l-1~deb9u5
Depends: libc6 (>= 2.14), debconf (>= 0.5) | debconf-2.0
Description: Secure Sockets Layer toolkit - shared libraries
 This package is part of the OpenSSL project's implementation of the SSL
 and TLS cryptographic protocols for secure communication over the
 Internet.
Homepage: https://www.openssl.org/

Package: openssl
Status: install ok installed
Priority: optional
Section: utils
Installed-Size: 1253
Maintainer: Debian OpenSSL Team <pkg-openssl-devel@lists.alioth.debian.org>
Architecture: amd64
Version: 1.1.0l-1~deb9u5
Depends: libc6 (>= 2.15), libssl1.1 (>= 1.1.0)
Suggests: ca-certificates
Conffiles:
 /etc/ssl/openssl.cnf 5ba35e3ba5ebc3ff7ebd63ac9de4a2b3
Description: Secure Sockets Layer toolkit - cryptographic utility
 This package is part of the OpenSSL project's implementation of the SSL
 and TLS cryptographic protocols for secure communication over the
 Internet.
Homepage: https://www.openssl.org/

Package: zlib1g
Status: install ok installed
Priority: required
Section: libs
Installed-Size: 156
Maintainer: Mark Brown <broonie@debian.org>
Architecture: amd64
Multi-Arch: same
Source: zlib
Version: 1:1.2.8.dfsg-5
Depends: libc6 (>= 2.14)
Description: compression library - runtime
 zlib is a library implementing the deflate compression method found
 in gzip and PKZIP.
Homepage: http://zlib.net/

`

// jar is a Maven-built jar: its pom.properties names the artifact.
func jar(group, artifact, version string) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	entries := []struct{ name, body string }{
		{"META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\nImplementation-Title: " + artifact + "\r\nImplementation-Version: " + version + "\r\n\r\n"},
		{"META-INF/maven/" + group + "/" + artifact + "/pom.properties", "#Generated by Maven\ngroupId=" + group + "\nartifactId=" + artifact + "\nversion=" + version + "\n"},
	}
	for _, e := range entries {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: fileTime})
		if err != nil {
			return nil, err
		}
		if _, err := io.WriteString(w, e.body); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// appLayer holds an application's language packages: an npm module, a Python distribution and a
// Java library.
func appLayer(ansiHTML string) (v1.Layer, error) {
	junit, err := jar("junit", "junit", "4.12")
	if err != nil {
		return nil, err
	}
	return layer(
		file{"app/package.json", []byte(`{"name":"frontend-web","version":"1.0.0","private":true,"dependencies":{"ansi-html":"` + ansiHTML + `"}}`)},
		file{"app/node_modules/ansi-html/package.json", []byte(`{"name":"ansi-html","version":"` + ansiHTML + `","license":"Apache-2.0"}`)},
		file{"usr/lib/python3.11/site-packages/requests-2.28.1.dist-info/METADATA", []byte("Metadata-Version: 2.1\nName: requests\nVersion: 2.28.1\nSummary: Python HTTP for Humans.\nLicense: Apache 2.0\n")},
		file{"opt/app/lib/junit-4.12.jar", junit},
	)
}

// alpine is an Alpine 3.19 base with the given musl and an application layer on top.
func alpine(muslVersion, ansiHTML string) (v1.Image, error) {
	base, err := layer(
		file{"etc/os-release", []byte(alpineOSRelease)},
		file{"lib/apk/db/installed", apkInstalled(muslVersion)},
	)
	if err != nil {
		return nil, err
	}
	app, err := appLayer(ansiHTML)
	if err != nil {
		return nil, err
	}
	return stack(base, app)
}

func debian() (v1.Image, error) {
	base, err := layer(
		file{"etc/os-release", []byte(debianOSRelease)},
		file{"var/lib/dpkg/status", []byte(dpkgStatus)},
	)
	if err != nil {
		return nil, err
	}
	return stack(base)
}

// seedImages are in docker-local before the watcher starts. The include glob */frontend* keeps
// the first two; backend is not included and dta/frontend-old is dropped by the exclude glob
// */dta/*.
func seedImages() ([]fixture, error) {
	web, err := alpine("1.2.4_git20230717-r4", "0.0.7")
	if err != nil {
		return nil, fmt.Errorf("build frontend-web: %w", err)
	}
	api, err := debian()
	if err != nil {
		return nil, fmt.Errorf("build frontend-api: %w", err)
	}
	return []fixture{
		{Name: "frontend-web", Tag: "1.0", Image: web, Why: "Alpine 3.19 + npm, Python and Java packages"},
		{Name: "frontend-api", Tag: "1.0", Image: api, Why: "Debian 9 with OpenSSL"},
		{Name: "backend", Tag: "1.0", Image: web, Why: "not matched by include=*/frontend*"},
		{Name: "dta/frontend-old", Tag: "1.0", Image: api, Why: "dropped by exclude=*/dta/*"},
	}, nil
}

// pushedImage arrives after the backfill, by webhook: musl and ansi-html fixed.
func pushedImage() (fixture, error) {
	img, err := alpine("1.2.4_git20230717-r5", "0.0.8")
	if err != nil {
		return fixture{}, fmt.Errorf("build frontend-web:1.1: %w", err)
	}
	return fixture{Name: "frontend-web", Tag: "1.1", Image: img, Why: "musl and ansi-html upgraded; pushed after the backfill"}, nil
}
