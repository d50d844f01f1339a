package report

import (
	"fmt"
	"io"
	"strings"
)

// renderPackages writes Docker Scout's `cves` text layout: an overview, then each vulnerable
// package with its vulnerabilities, then a summary.
func renderPackages(w io.Writer, v *view) error {
	ew := &errWriter{w: w}
	p := ew.printf
	img := &v.image
	p("## Overview\n\n")
	p("  %-17s %s\n", "Target", oneLine(v.imageName()))
	if img.Digest != "" {
		p("    %-15s %s\n", "digest", oneLine(img.Digest))
	}
	if img.Platform.OS != "" || img.Platform.Architecture != "" {
		p("    %-15s %s\n", "platform", oneLine(img.Platform.String()))
	}
	if v.os != nil && (v.os.PrettyName != "" || v.os.ID != "") {
		name := v.os.PrettyName
		if name == "" {
			name = strings.TrimSpace(v.os.ID + " " + v.os.VersionID)
		}
		p("    %-15s %s\n", "os", oneLine(name))
	}
	p("    %-15s %s\n", "vulnerabilities", v.counts)
	if v.SBOM != nil {
		p("    %-15s %d\n", "packages", len(v.SBOM.Packages))
	}
	if v.Filtered {
		p("    %-15s %s\n", "filtered", "yes (only the findings the --only-* flags selected)")
	}
	if v.Suppressed > 0 {
		p("    %-15s %d (VEX)\n", "suppressed", v.Suppressed)
	}

	p("\n## Packages and Vulnerabilities\n\n")
	if len(v.groups) == 0 {
		p("  No vulnerable package detected\n")
	}
	for _, g := range v.groups {
		p("  %s  %s %s\n", g.counts, oneLine(g.ref.Name), oneLine(g.ref.Version))
		if g.ref.PURL != "" {
			p("%s\n", oneLine(g.ref.PURL))
		}
		if v.Locations && len(g.locations) > 0 {
			p("\n")
			for _, l := range g.locations {
				p("    %s\n", oneLine(l.Path))
				if l.DiffID != "" {
					if i, ok := v.layers[l.DiffID]; ok {
						p("      layer %d: %s\n", i, oneLine(l.DiffID))
					} else {
						p("      layer %s\n", oneLine(l.DiffID))
					}
				}
			}
		}
		p("\n")
		for i := range g.findings {
			f := &g.findings[i]
			p("    ✗ %s %s\n", strings.ToUpper(severityWord(f.Severity)), oneLine(f.VulnerabilityID))
			p("      %s\n", OSVURL(f.VulnerabilityID))
			if f.Summary != "" {
				p("      %-15s: %s\n", "Summary", oneLine(f.Summary))
			}
			if len(f.Aliases) > 0 {
				p("      %-15s: %s\n", "Aliases", oneLine(strings.Join(f.Aliases, ", ")))
			}
			if f.AffectedRange != "" {
				p("      %-15s: %s\n", "Affected range", oneLine(f.AffectedRange))
			}
			p("      %-15s: %s\n", "Fixed version", oneLine(fixText(f)))
			if f.CVSSScore > 0 {
				p("      %-15s: %.1f\n", "CVSS Score", f.CVSSScore)
			}
			if f.CVSSVector != "" {
				p("      %-15s: %s\n", "CVSS Vector", oneLine(f.CVSSVector))
			}
			p("\n")
		}
	}

	c := v.counts
	p("%s found in %s\n", plural(c.Total(), "vulnerability", "vulnerabilities"), plural(len(v.groups), "package", "packages"))
	for _, row := range []struct {
		name string
		n    int
	}{{"CRITICAL", c.Critical}, {"HIGH", c.High}, {"MEDIUM", c.Medium}, {"LOW", c.Low}, {"UNSPECIFIED", c.Unspecified}} {
		p("  %-12s %d\n", row.name, row.n)
	}
	return ew.err
}

func severityWord(s string) string {
	if severityRank(s) == 0 {
		return "unspecified"
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// errWriter keeps the first write error so that renderers can print line after line.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}
