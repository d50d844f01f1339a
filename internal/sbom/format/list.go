package format

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
)

// encodeList writes a header about the image and a table of packages sorted by type and name.
// The LAYER column (the index of the layer that introduced the package) appears only when some
// package's layer is known.
func encodeList(w io.Writer, s *sbom.SBOM) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := [][2]string{{"Image", s.Image.Reference}}
	if s.Image.Digest != "" {
		header = append(header, [2]string{"Digest", s.Image.Digest})
	}
	if s.Image.Platform.OS != "" || s.Image.Platform.Architecture != "" {
		header = append(header, [2]string{"Platform", s.Image.Platform.String()})
	}
	header = append(header, [2]string{"OS", osLine(s.OS)})
	header = append(header, [2]string{"Packages", countLine(s.Packages)})
	for _, h := range header {
		fmt.Fprintf(tw, "%s\t%s\n", h[0], oneLine(h[1]))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(s.Packages) == 0 {
		return nil
	}

	layerIndex := map[string]int{}
	for _, l := range s.Image.Layers {
		if l.DiffID != "" {
			layerIndex[l.DiffID] = l.Index
		}
	}
	layers := make([]string, len(s.Packages))
	anyLayer := false
	for i := range s.Packages {
		layers[i] = "-"
		for _, loc := range s.Packages[i].Locations {
			if n, ok := layerIndex[loc.DiffID]; ok && loc.DiffID != "" {
				layers[i] = strconv.Itoa(n)
				anyLayer = true
				break
			}
		}
	}

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if anyLayer {
		fmt.Fprintln(tw, "TYPE\tNAME\tVERSION\tLAYER")
	} else {
		fmt.Fprintln(tw, "TYPE\tNAME\tVERSION")
	}
	for _, i := range sortedPackages(s.Packages) {
		p := &s.Packages[i]
		if anyLayer {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", oneLine(p.Type), oneLine(p.Name), oneLine(p.Version), layers[i])
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", oneLine(p.Type), oneLine(p.Name), oneLine(p.Version))
		}
	}
	return tw.Flush()
}

func osLine(os *sbom.OS) string {
	switch {
	case os == nil:
		return "unknown"
	case os.PrettyName != "":
		return os.PrettyName
	case os.VersionID != "":
		return os.ID + " " + os.VersionID
	}
	return os.ID
}

// countLine is "9 (apk 1, deb 3, golang 2, ...)".
func countLine(pkgs []sbom.Package) string {
	counts := map[string]int{}
	for i := range pkgs {
		counts[pkgs[i].Type]++
	}
	types := make([]string, 0, len(counts))
	for t := range counts {
		types = append(types, t)
	}
	slices.Sort(types)
	parts := make([]string, len(types))
	for i, t := range types {
		parts[i] = fmt.Sprintf("%s %d", t, counts[t])
	}
	if len(parts) == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%s)", len(pkgs), strings.Join(parts, ", "))
}

// oneLine keeps names from a hostile package database from breaking the table: tabs and line
// breaks become spaces, other control characters are dropped.
func oneLine(s string) string {
	if strings.IndexFunc(s, isControl) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			return ' '
		case isControl(r):
			return -1
		}
		return r
	}, s)
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }
