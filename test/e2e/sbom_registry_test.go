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
	b := sbomJSON(t, dataDir, reg.Ref("team/other:2.0")) // a bare reference works too
	if got := reg.CountBlobGETs("team/other"); got != 2 { // config + the one unseen layer
		t.Fatalf("image sharing the base: %d blob GETs, want 2: %v", got, reg.BlobGETs("team/other"))
	}
	if pkgByName(b, "lodash") == nil || pkgByName(b, "zlib1g") == nil || pkgByName(b, "express") != nil {
		t.Fatalf("other image packages wrong: %+v", b.Packages)
	}
}
