package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/crowsnest-dev/crowsnest/internal/cli"
	ib "github.com/crowsnest-dev/crowsnest/internal/testutil/imagebuild"
	"github.com/crowsnest-dev/crowsnest/internal/testutil/registryproc"
)

// hostLayer packs directories of this machine (a Debian system) into a gzip layer: real package
// databases, Python metadata, jars and ELF binaries, at realistic sizes.
func hostLayer(b *testing.B, roots ...string) v1.Layer {
	b.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, root := range roots {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil // unreadable parts of the host are simply left out
			}
			info, err := d.Info()
			if err != nil || !(info.Mode().IsRegular() || info.IsDir() || info.Mode()&fs.ModeSymlink != 0) {
				return nil
			}
			link := ""
			if info.Mode()&fs.ModeSymlink != 0 {
				link, _ = os.Readlink(p)
			}
			hdr, err := tar.FileInfoHeader(info, link)
			if err != nil {
				return nil
			}
			hdr.Name = strings.TrimPrefix(p, "/")
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if info.Mode().IsRegular() {
				f, err := os.Open(p)
				if err != nil {
					return err
				}
				defer f.Close()
				_, err = io.CopyN(tw, f, hdr.Size)
				return err
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		b.Fatal(err)
	}
	return l
}

// BenchmarkSBOM indexes an image built from this machine's package databases, Python and Java
// libraries and binaries, pulled from a real registry: cold (empty data directory) and warm
// (every layer cached). bench/run.sh compares the same with Syft and Trivy on larger images.
func BenchmarkSBOM(b *testing.B) {
	reg := registryproc.Start(b)
	img := ib.ImageOfLayers(b, ib.DefaultConfig(),
		hostLayer(b, "/etc/os-release", "/usr/lib/os-release", "/var/lib/dpkg"),
		hostLayer(b, "/usr/lib/python3", "/usr/share/java"),
		hostLayer(b, "/usr/bin", "/usr/local/go/pkg/tool"),
	)
	ref := "registry://" + ib.Push(b, reg.Ref("bench/host:1"), img)
	sbomOnce := func(dataDir string) int {
		var out, errOut bytes.Buffer
		if code := cli.Main(context.Background(), []string{"sbom", "--data-dir", dataDir, "--format", "json", ref}, nil, &out, &errOut); code != 0 {
			b.Fatalf("sbom: exit %d: %s", code, errOut.String())
		}
		var s struct{ Packages []json.RawMessage }
		if err := json.Unmarshal(out.Bytes(), &s); err != nil {
			b.Fatal(err)
		}
		return len(s.Packages)
	}
	b.Run("cold", func(b *testing.B) {
		var n int
		for b.Loop() {
			n = sbomOnce(b.TempDir())
		}
		b.ReportMetric(float64(n), "packages")
	})
	b.Run("warm", func(b *testing.B) {
		dataDir := b.TempDir()
		n := sbomOnce(dataDir)
		for b.Loop() {
			sbomOnce(dataDir)
		}
		b.ReportMetric(float64(n), "packages")
	})
}
