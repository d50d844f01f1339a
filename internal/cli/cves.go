package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/crowsnest-dev/crowsnest/internal/image"
	"github.com/crowsnest-dev/crowsnest/internal/report"
	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/format"
	"github.com/crowsnest-dev/crowsnest/internal/store"
	"github.com/crowsnest-dev/crowsnest/internal/vex"
	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

// exitVulnerable is Docker Scout's exit code for "vulnerabilities found" with -e.
const exitVulnerable = 2

// maxSBOMInput bounds an SBOM read from a file or stdin.
const maxSBOMInput = 256 << 20

func newCVEsCmd(g *globals) *cobra.Command {
	var (
		img         imageFlags
		formatArg   string
		output      string
		locations   bool
		exitCode    bool
		vexLocation []string
		filters     report.Filters
		serverURL   string
	)
	cmd := &cobra.Command{
		Use:   "cves IMAGE|sbom://FILE",
		Short: "Show the vulnerabilities of an image",
		Long: `Index an image (or read an SBOM) and match its packages against the advisories in the local
store (see crowsnest db). Works with no server.

IMAGE takes every input of crowsnest sbom, plus sbom://FILE for a CycloneDX or SPDX JSON document
(or crowsnest's own JSON); sbom:// alone reads standard input.`,
		Example: `  crowsnest cves registry.example.com/team/app:1.4
  crowsnest cves --only-severity critical,high --only-fixed -e app:1.4
  crowsnest cves --format sarif -o scan.sarif sbom://app.cdx.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if _, ok := report.Canonical(formatArg); !ok {
				return fmt.Errorf("--format %q: accepted formats are %s", formatArg, strings.Join(report.Formats(), ", "))
			}
			// Check the filters before any work: a typo must not cost an image pull.
			if _, err := report.Filter(nil, nil, filters); err != nil {
				return err
			}
			docs, err := vex.Load(ctx, vexLocation)
			if err != nil {
				return err
			}
			started := time.Now()
			if serverURL != "" {
				c, err := serverClient(serverURL)
				if err != nil {
					return err
				}
				digest, err := remoteDigest(ctx, c, args[0], img.platform)
				if err != nil {
					return err
				}
				s, err := remoteSBOM(ctx, c, digest)
				if err != nil {
					return err
				}
				found, err := remoteFindings(ctx, c, digest)
				if err != nil {
					return err
				}
				return g.renderCVEs(s, found, docs, filters, formatArg, output, locations, exitCode, started)
			}
			svc, closeFn, err := g.openService(ctx)
			if err != nil {
				return err
			}
			defer closeFn()
			log, _ := g.logger()
			if stats, err := svc.Store.Stats(ctx); err == nil && stats.Advisories == 0 {
				log.Warn("the advisory store is empty: import advisories with `crowsnest db import` or `crowsnest db update`")
			}
			s, found, err := g.storedResult(ctx, svc.Store, args[0], img.platform)
			if err != nil {
				return err
			}
			if s == nil {
				if s, err = g.loadSBOM(cmd, args[0], &img); err != nil {
					return err
				}
				var warnings []string
				if found, warnings, err = svc.Match(ctx, s); err != nil {
					return err
				}
				for _, w := range warnings {
					log.Warn(w)
				}
			}
			return g.renderCVEs(s, found, docs, filters, formatArg, output, locations, exitCode, started)
		},
	}
	img.register(cmd)
	f := cmd.Flags()
	f.StringVar(&formatArg, "format", report.Packages, "output format: "+strings.Join(report.Formats(), ", "))
	f.StringVarP(&output, "output", "o", "", "write to this file instead of stdout")
	f.BoolVar(&locations, "locations", false, "print the file paths and layer diffIDs of vulnerable packages")
	f.BoolVarP(&exitCode, "exit-code", "e", false, "exit with code 2 when vulnerabilities remain after filtering")
	f.StringSliceVar(&vexLocation, "vex-location", nil, "OpenVEX documents (files or directories); not_affected and fixed statements suppress findings")
	f.StringSliceVar(&filters.OnlySeverity, "only-severity", nil, "only these severities: critical, high, medium, low, unspecified")
	f.BoolVar(&filters.OnlyFixed, "only-fixed", false, "only vulnerabilities with a fixed version")
	f.BoolVar(&filters.OnlyUnfixed, "only-unfixed", false, "only vulnerabilities without a fixed version")
	f.StringSliceVar(&filters.OnlyPackage, "only-package", nil, "only packages whose name matches one of these regular expressions")
	f.StringSliceVar(&filters.OnlyPackageType, "only-package-type", nil, "only these package types: deb, apk, rpm, golang, npm, pypi, maven, gem, cargo, composer, nuget")
	f.StringVar(&serverURL, "server", os.Getenv("CROWSNEST_SERVER"), "read the stored result from this crowsnest server (token from CROWSNEST_TOKEN or crowsnest login)")
	f.StringSliceVar(&filters.OnlyCVEID, "only-cve-id", nil, "only these vulnerability ids (CVE, GHSA, ... matched against aliases too)")
	return cmd
}

// renderCVEs applies VEX and filters and prints; with exitCode, remaining findings exit 2.
func (g *globals) renderCVEs(s *sbom.SBOM, found []vuln.Finding, docs []*vex.Document, filters report.Filters,
	formatArg, output string, locations, exitCode bool, started time.Time) error {
	kept, suppressed := vex.Apply(found, s.Image.Digest, docs)
	shown, err := report.Filter(kept, s.Packages, filters)
	if err != nil {
		return err
	}
	w, commit, err := g.openOutput(output)
	if err != nil {
		return err
	}
	r := &report.Report{SBOM: s, Findings: shown, Locations: locations, Started: started,
		Filtered: filters.Active(), Suppressed: len(suppressed)}
	if err := report.Render(w, formatArg, r); err != nil {
		return err
	}
	if err := commit(); err != nil {
		return err
	}
	if exitCode && len(shown) > 0 {
		return &ExitError{Code: exitVulnerable}
	}
	return nil
}

// storedResult returns the stored SBOM and findings of an image the watcher indexed, when input
// is a bare reference (repository:tag, host/repository:tag or a digest) the store knows. Inputs
// with a scheme (registry://, oci-dir://, ...) are always indexed afresh.
func (g *globals) storedResult(ctx context.Context, st *store.Store, input, platform string) (*sbom.SBOM, []vuln.Finding, error) {
	if strings.Contains(input, "://") {
		return nil, nil, nil
	}
	digest := ""
	if strings.HasPrefix(input, "sha256:") {
		digest = input
	} else {
		repo, tag, ok := splitTag(input)
		if !ok {
			return nil, nil, nil
		}
		// The watcher names repositories as the registry lists them, without the host.
		candidates := repositoryCandidates(repo)
		for _, r := range candidates {
			rows, err := st.Images(ctx, r)
			if err != nil {
				return nil, nil, err
			}
			var digests, platforms []string
			for _, row := range rows {
				if row.Tag == tag {
					digests, platforms = append(digests, row.Digest), append(platforms, row.Platform)
				}
			}
			if i := pickPlatform(platforms, platform); i >= 0 {
				digest = digests[i]
			}
			if digest != "" {
				break
			}
		}
	}
	if digest == "" {
		return nil, nil, nil
	}
	s, err := st.Image(ctx, digest)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	found, err := st.Findings(ctx, digest)
	if err != nil {
		return nil, nil, err
	}
	return s, found, nil
}

// pickPlatform chooses among the platform images of one tag: --platform when given, else this
// machine's platform, else the first. It returns -1 when none fits.
func pickPlatform(platforms []string, platform string) int {
	want := platform
	if want == "" {
		want = image.HostPlatform().String()
	}
	for i, p := range platforms {
		if p == want {
			return i
		}
	}
	if platform == "" && len(platforms) > 0 {
		return 0
	}
	return -1
}

// repositoryCandidates are the names the watcher may have stored a pulled repository under: as
// given, without the registry host, and for Artifactory's subdomain method (<key>.<host>/<image>)
// as <key>/<image>.
func repositoryCandidates(repo string) []string {
	candidates := []string{repo}
	host, rest, ok := strings.Cut(repo, "/")
	if !ok || !strings.ContainsAny(host, ".:") && host != "localhost" {
		return candidates
	}
	candidates = append(candidates, rest)
	if key, _, ok := strings.Cut(host, "."); ok {
		candidates = append(candidates, key+"/"+rest)
	}
	return candidates
}

// splitTag splits repository:tag (a port in the host is not a tag).
func splitTag(ref string) (repo, tag string, ok bool) {
	i := strings.LastIndex(ref, ":")
	if i < 0 || strings.Contains(ref[i:], "/") || strings.Contains(ref, "@") {
		return "", "", false
	}
	return ref[:i], ref[i+1:], true
}

// loadSBOM reads an sbom:// input or indexes an image.
func (g *globals) loadSBOM(cmd *cobra.Command, input string, img *imageFlags) (*sbom.SBOM, error) {
	file, ok := strings.CutPrefix(input, "sbom://")
	if !ok {
		return g.indexImage(cmd.Context(), input, img)
	}
	var r io.Reader = g.stdin
	name := "standard input"
	if file != "" && file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("read SBOM: %w", err)
		}
		defer f.Close()
		r, name = f, file
	}
	s, err := format.Decode(io.LimitReader(r, maxSBOMInput), "")
	if err != nil {
		return nil, fmt.Errorf("read SBOM from %s: %w", name, err)
	}
	if s.Image.Reference == "" {
		s.Image.Reference = input
	}
	return s, nil
}
