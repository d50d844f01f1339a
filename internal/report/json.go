package report

import (
	"encoding/json"
	"io"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

// JSONSchemaVersion is the version of the cves JSON schema (docs/CVES-JSON.md).
const JSONSchemaVersion = "1"

// JSONReport is the document the json format writes (docs/CVES-JSON.md).
type JSONReport struct {
	SchemaVersion string        `json:"schemaVersion"`
	Tool          sbom.Tool     `json:"tool"`
	Generated     time.Time     `json:"generated"`
	Image         JSONImage     `json:"image"`
	OS            *sbom.OS      `json:"os,omitempty"`
	Filtered      bool          `json:"filtered"`
	Suppressed    int           `json:"suppressed"`
	Summary       JSONSummary   `json:"summary"`
	Findings      []JSONFinding `json:"findings"`
}

// JSONImage names the image the findings are about.
type JSONImage struct {
	Reference string `json:"reference"`
	Name      string `json:"name,omitempty"`
	Tag       string `json:"tag,omitempty"`
	Digest    string `json:"digest,omitempty"`
	Platform  string `json:"platform,omitempty"`
}

// JSONSummary counts findings by severity, in total and vulnerable packages.
type JSONSummary struct {
	Counts
	Total    int `json:"total"`
	Packages int `json:"packages"`
}

// JSONFinding is a finding with its osv.dev page and, with --locations, its package's files.
type JSONFinding struct {
	vuln.Finding
	URL       string          `json:"url"`
	Locations []sbom.Location `json:"locations,omitempty"`
}

func renderJSON(w io.Writer, v *view) error {
	doc := JSONReport{
		SchemaVersion: JSONSchemaVersion,
		Tool:          v.tool,
		Generated:     v.when,
		Image: JSONImage{
			Reference: v.image.Reference, Name: v.image.Name, Tag: v.image.Tag, Digest: v.image.Digest,
		},
		OS:         v.os,
		Filtered:   v.Filtered,
		Suppressed: v.Suppressed,
		Summary:    JSONSummary{Counts: v.counts, Total: v.counts.Total(), Packages: len(v.groups)},
		Findings:   make([]JSONFinding, 0, len(v.Findings)),
	}
	if v.image.Platform.OS != "" || v.image.Platform.Architecture != "" {
		doc.Image.Platform = v.image.Platform.String()
	}
	for _, g := range v.groups {
		for _, f := range g.findings {
			jf := JSONFinding{Finding: f, URL: OSVURL(f.VulnerabilityID)}
			if v.Locations {
				jf.Locations = g.locations
			}
			doc.Findings = append(doc.Findings, jf)
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(doc)
}
