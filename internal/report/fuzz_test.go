package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// FuzzRender feeds hostile advisory and package text (the matcher copies it from OSV records and
// image metadata) and filter values through every format: no panic, the JSON formats stay
// valid JSON, the text formats keep terminal controls out and Markdown rows intact.
func FuzzRender(f *testing.F) {
	f.Add("openssl", "3.0.11-1~deb12u2", "CVE-2024-0727", "PKCS12 Decoding crashes", "high", "^lib")
	f.Add("evil|pkg](x)", "1\n2", "ID\x1b[2J", "<script>", "bogus", "(")
	f.Add("", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, name, version, id, summary, severity, regex string) {
		r := fixture()
		r.Locations = true
		fd := &r.Findings[0]
		fd.Package.Name, fd.Package.Version, fd.VulnerabilityID, fd.Summary, fd.Severity = name, version, id, summary, severity
		fd.Aliases = append(fd.Aliases, id)
		if _, err := Filter(r.Findings, r.SBOM.Packages, Filters{OnlyPackage: []string{regex}, OnlySeverity: []string{severity}, OnlyCVEID: []string{id}}); err != nil && !strings.HasPrefix(err.Error(), "--only-") {
			t.Fatalf("filter error without its flag: %v", err)
		}
		for _, format := range Formats() {
			var buf bytes.Buffer
			if err := Render(&buf, format, r); err != nil {
				t.Fatalf("%s: %v", format, err)
			}
			switch format {
			case JSON, SARIF, GitLab, CycloneDX:
				if !json.Valid(buf.Bytes()) {
					t.Fatalf("%s: invalid JSON", format)
				}
			case Packages:
				if bytes.ContainsAny(buf.Bytes(), "\x1b\x07\r") {
					t.Fatal("packages: control characters in output")
				}
			case Markdown:
				for _, line := range strings.Split(buf.String(), "\n") {
					if strings.HasPrefix(line, "| ") && strings.Contains(line, "osv.dev") {
						if n := strings.Count(line, "|") - strings.Count(line, `\|`); n != 8 {
							t.Fatalf("markdown row with %d cell bars: %q", n, line)
						}
					}
				}
			}
		}
	})
}
