package report

import (
	"io"
	"net/url"
	"strconv"
	"strings"
)

// renderMarkdown writes a summary and a table of findings, sized for a pull-request comment.
func renderMarkdown(w io.Writer, v *view) error {
	ew := &errWriter{w: w}
	p := ew.printf
	p("### Vulnerabilities in %s\n\n", mdCode(v.imageName()))
	var facts []string
	if v.image.Digest != "" {
		facts = append(facts, "digest "+mdCode(v.image.Digest))
	}
	if v.image.Platform.OS != "" {
		facts = append(facts, "platform "+mdCode(v.image.Platform.String()))
	}
	if len(facts) > 0 {
		p("%s\n\n", strings.Join(facts, ", "))
	}
	c := v.counts
	p("| Critical | High | Medium | Low | Unspecified | Vulnerable packages |\n")
	p("| ---: | ---: | ---: | ---: | ---: | ---: |\n")
	p("| %d | %d | %d | %d | %d | %d |\n\n", c.Critical, c.High, c.Medium, c.Low, c.Unspecified, len(v.groups))
	var notes []string
	if v.Filtered {
		notes = append(notes, "filters applied")
	}
	if v.Suppressed > 0 {
		notes = append(notes, plural(v.Suppressed, "finding", "findings")+" suppressed by VEX")
	}
	if len(notes) > 0 {
		p("_%s_\n\n", strings.Join(notes, "; "))
	}
	if len(v.groups) == 0 {
		p("No vulnerable package detected.\n")
		return ew.err
	}
	header := "| Severity | Vulnerability | Package | Installed | Fixed in | CVSS |"
	rule := "| --- | --- | --- | --- | --- | ---: |"
	if v.Locations {
		header += " Locations |"
		rule += " --- |"
	}
	p("%s\n%s\n", header, rule)
	for _, g := range v.groups {
		for i := range g.findings {
			f := &g.findings[i]
			score := ""
			if f.CVSSScore > 0 {
				score = strconv.FormatFloat(f.CVSSScore, 'f', 1, 64)
			}
			fixed := mdEscape(f.FixedVersion)
			if f.FixedVersion == "" {
				fixed = "_not fixed_"
			}
			p("| %s | [%s](%s) | %s | %s | %s | %s |",
				strings.ToUpper(severityWord(f.Severity)), mdEscape(f.VulnerabilityID), OSVURL(f.VulnerabilityID),
				mdEscape(f.Package.Name), mdEscape(f.Package.Version), fixed, score)
			if v.Locations {
				locs := make([]string, 0, len(g.locations))
				for _, l := range g.locations {
					locs = append(locs, mdEscape(l.Path))
				}
				p(" %s |", strings.Join(locs, "<br>"))
			}
			p("\n")
		}
	}
	return ew.err
}

// mdEscape makes hostile text (package names, versions, advisory ids) inert in a Markdown table:
// no links, HTML, emphasis or cell breaks.
func mdEscape(s string) string {
	var b strings.Builder
	for _, r := range oneLine(s) {
		if strings.ContainsRune("\\`*_{}[]()<>#|!~&", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// mdCode renders s as inline code, with a fence longer than any backtick run inside it.
func mdCode(s string) string {
	s = oneLine(s)
	fence := "`"
	for strings.Contains(s, fence) {
		fence += "`"
	}
	pad := ""
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		pad = " "
	}
	return fence + pad + s + pad + fence
}

func pathEscape(s string) string {
	// ':' is escaped too: "localhost:5000" as a first segment would read as a URI scheme.
	return strings.ReplaceAll(url.PathEscape(s), ":", "%3A")
}
