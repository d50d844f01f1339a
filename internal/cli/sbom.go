package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/crowsnest-dev/crowsnest/internal/image"
	"github.com/crowsnest-dev/crowsnest/internal/index"
	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/format"
)

// imageFlags are the flags of every command that reads an image.
type imageFlags struct {
	platform string
	ref      string
	insecure []string
}

func (f *imageFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.platform, "platform", "", "platform of a multi-platform image, os/arch[/variant] (default: this machine's)")
	cmd.Flags().StringVar(&f.ref, "ref", "", "which image of an archive holding several (a tag such as app:1.0)")
	cmd.Flags().StringSliceVar(&f.insecure, "insecure-registry", splitEnv("CROWSNEST_INSECURE_REGISTRIES"),
		"registry hosts reached over plain HTTP (localhost always is; env CROWSNEST_INSECURE_REGISTRIES)")
}

func splitEnv(name string) []string {
	v := os.Getenv(name)
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

func (f *imageFlags) options(dataDir string) (image.Options, error) {
	opts := image.Options{Ref: f.ref, Insecure: f.insecure, CacheDir: filepath.Join(dataDir, "blobs")}
	if f.platform != "" {
		p, err := v1.ParsePlatform(f.platform)
		if err != nil || p.OS == "" || p.Architecture == "" {
			return opts, fmt.Errorf("--platform %q: want os/arch[/variant], e.g. linux/arm64", f.platform)
		}
		opts.Platform = p
	}
	return opts, nil
}

// indexImage opens input and indexes the selected platform, reading only layers the cache lacks.
func (g *globals) indexImage(ctx context.Context, input string, f *imageFlags) (*sbom.SBOM, error) {
	log, err := g.logger()
	if err != nil {
		return nil, err
	}
	opts, err := f.options(g.dataDir)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	target, err := image.Open(ctx, input, opts)
	if err != nil {
		return nil, err
	}
	img, err := target.Image(ctx)
	if err != nil {
		return nil, err
	}
	ix, err := index.New(g.dataDir, log)
	if err != nil {
		return nil, err
	}
	s, stats, err := ix.Index(ctx, img)
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", input, err)
	}
	for _, w := range s.Warnings {
		log.Warn(w)
	}
	log.Debug("indexed", "image", input, "digest", s.Image.Digest, "packages", len(s.Packages),
		"layersRead", stats.LayersRead, "layersCached", stats.LayersCached, "took", time.Since(start).Round(time.Millisecond))
	return s, nil
}

// openOutput returns stdout, or a file written atomically so a failed run leaves no half file.
func (g *globals) openOutput(path string) (w io.Writer, commit func() error, err error) {
	if path == "" || path == "-" {
		return g.stdout, func() error { return nil }, nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return nil, nil, fmt.Errorf("output %s: %w", path, err)
	}
	return tmp, func() error {
		if err := tmp.Close(); err != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("output %s: %w", path, err)
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("output %s: %w", path, err)
		}
		return nil
	}, nil
}

func newSBOMCmd(g *globals) *cobra.Command {
	var (
		img       imageFlags
		formatArg string
		output    string
		onlyTypes []string
		serverURL string
	)
	cmd := &cobra.Command{
		Use:   "sbom IMAGE",
		Short: "Index an image and print its SBOM",
		Long: `Index an image into a software bill of materials.

IMAGE is registry://REF or a bare reference (host/repo:tag, repo@sha256:...), oci-dir://PATH[:TAG],
archive://FILE (docker save or OCI archive) or fs://DIR. Registry credentials come from
CROWSNEST_REGISTRY_TOKEN or CROWSNEST_REGISTRY_USER/_PASSWORD (DOCKER_SCOUT_REGISTRY_* accepted),
else from the Docker config and its credential helpers.

Layers already indexed (by any image) are read from the layer cache in --data-dir and not
downloaded again.`,
		Example: `  crowsnest sbom alpine:3.20
  crowsnest sbom --format cyclonedx -o app.cdx.json registry.example.com/team/app:1.4
  crowsnest sbom archive://app.tar --ref app:1.4 --format spdx`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, ok := format.Canonical(formatArg); !ok {
				return fmt.Errorf("--format %q: accepted formats are %s", formatArg, strings.Join(format.Formats(), ", "))
			}
			var s *sbom.SBOM
			var err error
			if serverURL != "" {
				s, err = g.serverSBOM(cmd.Context(), serverURL, args[0], img.platform)
			} else {
				s, err = g.indexImage(cmd.Context(), args[0], &img)
			}
			if err != nil {
				return err
			}
			w, commit, err := g.openOutput(output)
			if err != nil {
				return err
			}
			if err := format.Encode(w, formatArg, s, format.Options{OnlyTypes: onlyTypes}); err != nil {
				return err
			}
			return commit()
		},
	}
	img.register(cmd)
	cmd.Flags().StringVar(&formatArg, "format", format.List, "output format: "+strings.Join(format.Formats(), ", "))
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to this file instead of stdout")
	cmd.Flags().StringVar(&serverURL, "server", os.Getenv("CROWSNEST_SERVER"), "read the stored SBOM from this crowsnest server instead of indexing")
	cmd.Flags().StringSliceVar(&onlyTypes, "only-package-type", nil, "only these package types (deb, apk, rpm, golang, npm, pypi, maven, ...)")
	return cmd
}

// serverSBOM reads the SBOM a server stored for ref.
func (g *globals) serverSBOM(ctx context.Context, serverURL, ref, platform string) (*sbom.SBOM, error) {
	c, err := serverClient(serverURL)
	if err != nil {
		return nil, err
	}
	digest, err := remoteDigest(ctx, c, ref, platform)
	if err != nil {
		return nil, err
	}
	return remoteSBOM(ctx, c, digest)
}
