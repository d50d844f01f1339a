// Package format writes an sbom.SBOM as a human table, crowsnest's own JSON, CycloneDX 1.6 JSON or
// SPDX 2.3 JSON, and reads the three JSON formats back (also when another tool such as Syft or
// Trivy wrote them).
package format

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
)

// Format names, as given to --format.
const (
	List      = "list"
	JSON      = "json"
	CycloneDX = "cyclonedx"
	SPDX      = "spdx"
)

// aliases are other names users type for the same formats (Syft's and Trivy's spellings).
var aliases = map[string]string{
	"table":          List,
	"cyclonedx-json": CycloneDX,
	"cdx":            CycloneDX,
	"spdx-json":      SPDX,
}

// MaxDecodeSize bounds how much a decoder reads: SBOMs may come from anywhere.
const MaxDecodeSize = 256 << 20

// maxPackages bounds how many packages a decoder accepts from one document.
const maxPackages = 1 << 20

// Options tune an encoding.
type Options struct {
	// OnlyTypes keeps only packages of these types ("deb", "npm", ...); empty keeps every package.
	OnlyTypes []string
}

// Formats lists the accepted format names, encoders first in the order the CLI shows them.
func Formats() []string { return []string{List, JSON, CycloneDX, SPDX} }

// DecodeFormats lists the formats Decode reads.
func DecodeFormats() []string { return []string{JSON, CycloneDX, SPDX} }

// Canonical maps a format name or alias to its canonical name; ok is false for an unknown name.
func Canonical(name string) (string, bool) {
	n := strings.ToLower(strings.TrimSpace(name))
	if a, ok := aliases[n]; ok {
		return a, true
	}
	return n, slices.Contains(Formats(), n)
}

// Encode writes s to w in the named format.
func Encode(w io.Writer, format string, s *sbom.SBOM, opts Options) error {
	if s == nil {
		return errors.New("encode: no SBOM")
	}
	name, ok := Canonical(format)
	if !ok {
		return fmt.Errorf("unknown SBOM format %q (accepted: %s)", format, strings.Join(Formats(), ", "))
	}
	s = Filter(s, opts.OnlyTypes)
	bw := bufio.NewWriter(w)
	var err error
	switch name {
	case List:
		err = encodeList(bw, s)
	case JSON:
		err = encodeJSON(bw, s)
	case CycloneDX:
		err = encodeCycloneDX(bw, s)
	case SPDX:
		err = encodeSPDX(bw, s)
	}
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	return nil
}

// Decode reads an SBOM in the named format; an empty format means: detect it from the content.
// Input larger than MaxDecodeSize is refused.
func Decode(r io.Reader, format string) (*sbom.SBOM, error) {
	data, err := readBounded(r, MaxDecodeSize)
	if err != nil {
		return nil, err
	}
	name := format
	if strings.TrimSpace(format) == "" {
		if name, err = Detect(data); err != nil {
			return nil, err
		}
	} else {
		var ok bool
		name, ok = Canonical(format)
		if !ok || name == List {
			return nil, fmt.Errorf("cannot decode SBOM format %q (accepted: %s)", format, strings.Join(DecodeFormats(), ", "))
		}
	}
	switch name {
	case JSON:
		return decodeJSON(data)
	case CycloneDX:
		return decodeCycloneDX(data)
	default:
		return decodeSPDX(data)
	}
}

// Detect names the format of an SBOM document by its identifying top-level fields.
func Detect(data []byte) (string, error) {
	var head struct {
		BOMFormat     string          `json:"bomFormat"`
		SPDXVersion   string          `json:"spdxVersion"`
		SchemaVersion string          `json:"schemaVersion"`
		Image         json.RawMessage `json:"image"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return "", fmt.Errorf("detect SBOM format: not a JSON object: %w", err)
	}
	switch {
	case head.BOMFormat == "CycloneDX":
		return CycloneDX, nil
	case strings.HasPrefix(head.SPDXVersion, "SPDX-2."):
		return SPDX, nil
	case head.SchemaVersion != "" && head.Image != nil:
		return JSON, nil
	}
	return "", fmt.Errorf("detect SBOM format: neither CycloneDX JSON, SPDX 2 JSON nor crowsnest JSON")
}

func readBounded(r io.Reader, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read SBOM: %w", err)
	}
	if n > limit {
		return nil, fmt.Errorf("read SBOM: larger than %d bytes", limit)
	}
	return buf.Bytes(), nil
}

// Filter returns s with only the packages of the given types (all of them when types is empty).
// s itself is not changed.
func Filter(s *sbom.SBOM, types []string) *sbom.SBOM {
	if len(types) == 0 {
		return s
	}
	keep := map[string]bool{}
	for _, t := range types {
		keep[strings.ToLower(strings.TrimSpace(t))] = true
	}
	out := *s
	out.Packages = make([]sbom.Package, 0, len(s.Packages))
	for _, p := range s.Packages {
		if keep[p.Type] {
			out.Packages = append(out.Packages, p)
		}
	}
	return &out
}

// purlOf is the package's PURL, computed when the pipeline left it empty.
func purlOf(p *sbom.Package, os *sbom.OS) string {
	if p.PURL != "" {
		return p.PURL
	}
	return sbom.PURL(p, os)
}

// sortedPackages returns indexes of s.Packages ordered by type, name, version, arch, so every
// encoder writes packages in one stable order.
func sortedPackages(pkgs []sbom.Package) []int {
	idx := make([]int, len(pkgs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		pa, pb := &pkgs[a], &pkgs[b]
		for _, c := range [][2]string{{pa.Type, pb.Type}, {pa.Name, pb.Name}, {pa.Version, pb.Version}, {pa.Arch, pb.Arch}} {
			if r := strings.Compare(c[0], c[1]); r != 0 {
				return r
			}
		}
		return 0
	})
	return idx
}
