// Package e2e runs crowsnest's commands against real components: Debian's distribution registry
// as a child process, images pushed to it, and the CLI as a user runs it.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/crowsnest-dev/crowsnest/internal/cli"
	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	ib "github.com/crowsnest-dev/crowsnest/internal/testutil/imagebuild"
	"github.com/crowsnest-dev/crowsnest/internal/testutil/registryproc"
)

func crowsnest(t *testing.T, args ...string) (string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := cli.Main(context.Background(), args, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("crowsnest %s: exit %d\n%s", strings.Join(args, " "), code, errOut.String())
	}
	return out.String(), errOut.String()
}

func sbomJSON(t *testing.T, dataDir, ref string) *sbom.SBOM {
	t.Helper()
	out, _ := crowsnest(t, "sbom", "--data-dir", dataDir, "--format", "json", ref)
	var s sbom.SBOM
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("sbom JSON: %v\n%s", err, out)
	}
	return &s
}

var debianBase = ib.NewLayer(
	ib.File("usr/lib/os-release", []byte("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n")),
	ib.Symlink("etc/os-release", "../usr/lib/os-release"),
	ib.File("var/lib/dpkg/status", ib.DpkgStatus(
		ib.DebPkg{Package: "libc6", Version: "2.36-9+deb12u4", Architecture: "amd64", Source: "glibc", MultiArch: "same", Maintainer: "GNU Libc Maintainers <debian-glibc@lists.debian.org>", Description: "GNU C Library: Shared libraries"},
		ib.DebPkg{Package: "zlib1g", Version: "1:1.2.13.dfsg-1", Architecture: "amd64", Source: "zlib", Maintainer: "Mark Brown <broonie@debian.org>", Description: "compression library - runtime"},
	)),
)

func pkgByName(s *sbom.SBOM, name string) *sbom.Package {
	for i := range s.Packages {
		if s.Packages[i].Name == name {
			return &s.Packages[i]
		}
	}
	return nil
}

// TestLayerCacheAgainstARealRegistry proves with the registry's own access log that a known image
// downloads no blob and an image sharing layers downloads only the layers not seen before.
func TestLayerCacheAgainstARealRegistry(t *testing.T) {
	reg := registryproc.Start(t)
	app := ib.NewLayer(ib.File("app/node_modules/express/package.json", []byte(`{"name":"express","version":"4.18.2","license":"MIT"}`)))
	other := ib.NewLayer(ib.File("srv/node_modules/lodash/package.json", []byte(`{"name":"lodash","version":"4.17.21","license":"MIT"}`)))
	ib.Push(t, reg.Ref("team/app:1.0"), ib.Image(t, debianBase, app))
	ib.Push(t, reg.Ref("team/other:2.0"), ib.Image(t, debianBase, other))
	dataDir := t.TempDir()

	reg.Reset()
	a := sbomJSON(t, dataDir, "registry://"+reg.Ref("team/app:1.0"))
	if got := reg.CountBlobGETs("team/app"); got != 3 { // config + 2 layers
		t.Fatalf("cold index of app: %d blob GETs, want 3: %v", got, reg.BlobGETs("team/app"))
	}
	if a.OS == nil || a.OS.ID != "debian" || a.OS.VersionID != "12" || a.OS.VersionCodename != "bookworm" {
		t.Fatalf("OS = %+v", a.OS)
	}
	libc := pkgByName(a, "libc6")
	if libc == nil || libc.Source == nil || libc.Source.Name != "glibc" || libc.Locations[0].DiffID != a.Image.Layers[0].DiffID {
		t.Fatalf("libc6 = %+v", libc)
	}
	if !strings.Contains(libc.PURL, "distro=debian-12") {
		t.Errorf("libc6 PURL %q lacks the distro qualifier", libc.PURL)
	}
	express := pkgByName(a, "express")
	if express == nil || express.Locations[0].DiffID != a.Image.Layers[1].DiffID || express.Locations[0].Path != "/app/node_modules/express/package.json" {
		t.Fatalf("express = %+v", express)
	}

	reg.Reset()
	again := sbomJSON(t, dataDir, "registry://"+reg.Ref("team/app:1.0"))
	if got := reg.CountBlobGETs("team/app"); got != 0 {
		t.Fatalf("re-index of a known image: %d blob GETs, want 0: %v", got, reg.BlobGETs("team/app"))
	}
	if len(again.Packages) != len(a.Packages) {
		t.Fatalf("re-index found %d packages, first run %d", len(again.Packages), len(a.Packages))
	}

	reg.Reset()
	b := sbomJSON(t, dataDir, reg.Ref("team/other:2.0"))  // a bare reference works too
	if got := reg.CountBlobGETs("team/other"); got != 2 { // config + the one unseen layer
		t.Fatalf("image sharing the base: %d blob GETs, want 2: %v", got, reg.BlobGETs("team/other"))
	}
	if pkgByName(b, "lodash") == nil || pkgByName(b, "zlib1g") == nil || pkgByName(b, "express") != nil {
		t.Fatalf("other image packages wrong: %+v", b.Packages)
	}
}

// TestOwnershipLayersAndInputs indexes one image through each local input kind and checks that a
// Python package installed by apt is attributed to its Debian package, that a file deleted in an
// upper layer is gone, and that the image's config facts come through.
func TestOwnershipLayersAndInputs(t *testing.T) {
	pkgInfo := []byte("Metadata-Version: 2.1\nName: PyYAML\nVersion: 6.0\nLicense: MIT\n\nYAML parser\n")
	aptLayer := ib.NewLayer(
		ib.File("var/lib/dpkg/status", ib.DpkgStatus(
			ib.DebPkg{Package: "libc6", Version: "2.36-9+deb12u4", Architecture: "amd64", Source: "glibc", Maintainer: "GNU Libc Maintainers <debian-glibc@lists.debian.org>", Description: "GNU C Library: Shared libraries"},
			ib.DebPkg{Package: "zlib1g", Version: "1:1.2.13.dfsg-1", Architecture: "amd64", Source: "zlib", Maintainer: "Mark Brown <broonie@debian.org>", Description: "compression library - runtime"},
			ib.DebPkg{Package: "python3-yaml", Version: "6.0-3+b2", Architecture: "amd64", Source: "pyyaml (6.0-3)", Maintainer: "Debian Python Team <team+python@tracker.debian.org>", Description: "YAML parser and emitter for Python3"},
		)),
		ib.File("var/lib/dpkg/info/python3-yaml.list", []byte("/.\n/usr\n/usr/lib\n/usr/lib/python3\n/usr/lib/python3/dist-packages\n/usr/lib/python3/dist-packages/PyYAML-6.0.egg-info\n/usr/lib/python3/dist-packages/PyYAML-6.0.egg-info/PKG-INFO\n")),
		ib.File("usr/lib/python3/dist-packages/PyYAML-6.0.egg-info/PKG-INFO", pkgInfo),
		ib.File("opt/tool/node_modules/left-pad/package.json", []byte(`{"name":"left-pad","version":"1.3.0","license":"WTFPL"}`)),
		ib.File("srv/venv/lib/python3.11/site-packages/requests-2.31.0.dist-info/METADATA", []byte("Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\nLicense: Apache 2.0\n")),
	)
	cleanup := ib.NewLayer(ib.Whiteout("opt/tool"), ib.File("srv/venv/lib/python3.11/site-packages/.wh..wh..opq", nil))
	cfg := ib.DefaultConfig()
	cfg.User = "1000:1000"
	cfg.Env = append(cfg.Env, "API_TOKEN=s3cret-value")
	cfg.ExposedPorts = []string{"8080/tcp"}
	cfg.Entrypoint = []string{"/usr/bin/python3", "-m", "app"}
	img := ib.ImageWithConfig(t, cfg, debianBase, aptLayer, cleanup)

	dir := t.TempDir()
	ib.WriteOCILayout(t, dir+"/layout", "app:1", img)
	ib.WriteDockerTarball(t, dir+"/app.tar", "example.com/app:1", img)
	for _, input := range []string{"oci-dir://" + dir + "/layout:app:1", "archive://" + dir + "/app.tar"} {
		t.Run(strings.SplitN(input, ":", 2)[0], func(t *testing.T) {
			out, _ := crowsnest(t, "sbom", "--data-dir", t.TempDir(), "--format", "json", input)
			if strings.Contains(out, "s3cret-value") {
				t.Fatal("an environment variable's value leaked into the SBOM")
			}
			var s sbom.SBOM
			if err := json.Unmarshal([]byte(out), &s); err != nil {
				t.Fatal(err)
			}
			yaml := pkgByName(&s, "PyYAML")
			deb := pkgByName(&s, "python3-yaml")
			if yaml == nil || deb == nil || yaml.OwnedBy != deb.PURL || deb.PURL == "" {
				t.Fatalf("PyYAML = %+v, python3-yaml = %+v", yaml, deb)
			}
			if deb.Source == nil || deb.Source.Name != "pyyaml" || deb.Source.Version != "6.0-3" {
				t.Errorf("python3-yaml source = %+v", deb.Source)
			}
			if libc := pkgByName(&s, "libc6"); libc == nil || libc.Locations[0].DiffID != s.Image.Layers[0].DiffID {
				t.Errorf("libc6 must stay attributed to the base layer after apt rewrote the status: %+v", libc)
			}
			if deb.Locations[0].DiffID != s.Image.Layers[1].DiffID {
				t.Errorf("python3-yaml attributed to %s, want layer 1", deb.Locations[0].DiffID)
			}
			if pkgByName(&s, "left-pad") != nil || pkgByName(&s, "requests") != nil {
				t.Errorf("packages deleted by the upper layer are reported: %+v", s.Packages)
			}
			c := s.Image.Config
			if c.User != "1000:1000" || len(c.ExposedPorts) != 1 || c.ExposedPorts[0] != "8080/tcp" || len(c.Entrypoint) != 3 {
				t.Errorf("config facts = %+v", c)
			}
			var envNames string
			for _, e := range c.EnvNames {
				envNames += e + " "
			}
			if !strings.Contains(envNames, "API_TOKEN") {
				t.Errorf("env names = %v", c.EnvNames)
			}
			if len(s.Image.Layers) != 3 || s.Image.Platform.OS != "linux" {
				t.Errorf("layers/platform = %+v / %+v", s.Image.Layers, s.Image.Platform)
			}
		})
	}
}
