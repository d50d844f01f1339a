package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

// SARIF 2.1.0, the subset GitHub code scanning reads. Own structs: go-sarif would add a module
// for a dozen fields.
const (
	sarifVersion = "2.1.0"
	sarifSchema  = "https://json.schemastore.org/sarif-2.1.0.json"
)

// SARIFLog is a SARIF log with one run.
type SARIFLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []SARIFRun `json:"runs"`
}

// SARIFRun is the run of one tool.
type SARIFRun struct {
	Tool    SARIFTool     `json:"tool"`
	Results []SARIFResult `json:"results"`
	// Properties carry the image the run was about.
	Properties map[string]any `json:"properties,omitempty"`
}

// SARIFTool describes crowsnest and its rules.
type SARIFTool struct {
	Driver SARIFDriver `json:"driver"`
}

// SARIFDriver is the tool's component that produced the results.
type SARIFDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version,omitempty"`
	InformationURI string      `json:"informationUri,omitempty"`
	Rules          []SARIFRule `json:"rules"`
}

// SARIFRule is one vulnerability.
type SARIFRule struct {
	ID                   string          `json:"id"`
	Name                 string          `json:"name,omitempty"`
	ShortDescription     SARIFMessage    `json:"shortDescription"`
	FullDescription      *SARIFMessage   `json:"fullDescription,omitempty"`
	HelpURI              string          `json:"helpUri,omitempty"`
	Help                 *SARIFMessage   `json:"help,omitempty"`
	DefaultConfiguration SARIFRuleConfig `json:"defaultConfiguration"`
	Properties           map[string]any  `json:"properties,omitempty"`
}

// SARIFRuleConfig holds a rule's default level.
type SARIFRuleConfig struct {
	Level string `json:"level"`
}

// SARIFMessage is a SARIF message or multiformat string.
type SARIFMessage struct {
	Text     string `json:"text"`
	Markdown string `json:"markdown,omitempty"`
}

// SARIFResult is one finding.
type SARIFResult struct {
	RuleID     string          `json:"ruleId"`
	RuleIndex  int             `json:"ruleIndex"`
	Level      string          `json:"level"`
	Message    SARIFMessage    `json:"message"`
	Locations  []SARIFLocation `json:"locations"`
	Properties map[string]any  `json:"properties,omitempty"`
}

// SARIFLocation is where a finding is: the file that declares the package.
type SARIFLocation struct {
	PhysicalLocation SARIFPhysicalLocation `json:"physicalLocation"`
	Message          *SARIFMessage         `json:"message,omitempty"`
}

// SARIFPhysicalLocation is a file and a region of it.
type SARIFPhysicalLocation struct {
	ArtifactLocation SARIFArtifactLocation `json:"artifactLocation"`
	Region           SARIFRegion           `json:"region"`
}

// SARIFArtifactLocation names the file.
type SARIFArtifactLocation struct {
	URI string `json:"uri"`
}

// SARIFRegion is the part of the file; GitHub wants a start line, and a package database has
// no better one than the first.
type SARIFRegion struct {
	StartLine   int `json:"startLine"`
	StartColumn int `json:"startColumn"`
	EndLine     int `json:"endLine"`
	EndColumn   int `json:"endColumn"`
}

// sarifLevel maps a severity to a SARIF level: error for critical and high, warning for medium,
// note below.
func sarifLevel(severity string) string {
	switch severity {
	case vuln.SeverityCritical, vuln.SeverityHigh:
		return "error"
	case vuln.SeverityMedium:
		return "warning"
	}
	return "note"
}

// securitySeverity is the number GitHub ranks alerts by ("security-severity", a string of a
// score 0.0-10.0): the CVSS score when there is one, else a score inside the rating's band.
func securitySeverity(f *vuln.Finding) string {
	score := f.CVSSScore
	if score <= 0 {
		switch f.Severity {
		case vuln.SeverityCritical:
			score = 9.5
		case vuln.SeverityHigh:
			score = 8.0
		case vuln.SeverityMedium:
			score = 5.5
		case vuln.SeverityLow:
			score = 2.0
		}
	}
	if score <= 0 {
		return ""
	}
	return strconv.FormatFloat(score, 'f', 1, 64)
}

func renderSARIF(w io.Writer, v *view) error {
	run := SARIFRun{
		Tool: SARIFTool{Driver: SARIFDriver{
			Name:           v.tool.Name,
			Version:        v.tool.Version,
			InformationURI: "https://github.com/crowsnest-dev/crowsnest",
			Rules:          []SARIFRule{},
		}},
		Results: []SARIFResult{},
	}
	props := map[string]any{}
	for k, val := range map[string]string{"imageReference": v.image.Reference, "imageDigest": v.image.Digest} {
		if val != "" {
			props[k] = val
		}
	}
	if len(props) > 0 {
		run.Properties = props
	}
	ruleIndex := map[string]int{}
	for _, g := range v.groups {
		for i := range g.findings {
			f := &g.findings[i]
			idx, ok := ruleIndex[f.VulnerabilityID]
			if !ok {
				idx = len(run.Tool.Driver.Rules)
				ruleIndex[f.VulnerabilityID] = idx
				run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, sarifRule(f))
			} else {
				raiseRule(&run.Tool.Driver.Rules[idx], f)
			}
			run.Results = append(run.Results, sarifResult(v, g, f, idx))
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(SARIFLog{Schema: sarifSchema, Version: sarifVersion, Runs: []SARIFRun{run}})
}

func sarifRule(f *vuln.Finding) SARIFRule {
	short := f.Summary
	if short == "" {
		short = f.VulnerabilityID
	}
	kind := "LanguagePackageVulnerability"
	if sbom.IsOS(f.Package.Type) {
		kind = "OsPackageVulnerability"
	}
	r := SARIFRule{
		ID:                   f.VulnerabilityID,
		Name:                 kind,
		ShortDescription:     SARIFMessage{Text: oneLine(short)},
		FullDescription:      &SARIFMessage{Text: oneLine(short)},
		HelpURI:              OSVURL(f.VulnerabilityID),
		DefaultConfiguration: SARIFRuleConfig{Level: sarifLevel(f.Severity)},
		Properties: map[string]any{
			"tags":      []string{"vulnerability", "security", strings.ToUpper(severityWord(f.Severity))},
			"precision": "very-high",
		},
	}
	if s := securitySeverity(f); s != "" {
		r.Properties["security-severity"] = s
	}
	help := fmt.Sprintf("Vulnerability %s\nSeverity: %s\nPackage: %s\nFixed version: %s\nLink: %s",
		f.VulnerabilityID, strings.ToUpper(severityWord(f.Severity)), f.Package.Name, fixText(f), OSVURL(f.VulnerabilityID))
	md := fmt.Sprintf("**Vulnerability %s**\n| Severity | Package | Fixed version | Link |\n| --- | --- | --- | --- |\n| %s | %s | %s | [%s](%s) |",
		mdEscape(f.VulnerabilityID), strings.ToUpper(severityWord(f.Severity)), mdEscape(f.Package.Name), mdEscape(fixText(f)), mdEscape(f.VulnerabilityID), OSVURL(f.VulnerabilityID))
	r.Help = &SARIFMessage{Text: help, Markdown: md}
	return r
}

// raiseRule keeps a rule shared by several packages at the most severe of its findings.
func raiseRule(r *SARIFRule, f *vuln.Finding) {
	if sarifRank(sarifLevel(f.Severity)) > sarifRank(r.DefaultConfiguration.Level) {
		r.DefaultConfiguration.Level = sarifLevel(f.Severity)
	}
	s := securitySeverity(f)
	if old, _ := r.Properties["security-severity"].(string); s != "" {
		a, _ := strconv.ParseFloat(old, 64)
		b, _ := strconv.ParseFloat(s, 64)
		if b > a {
			r.Properties["security-severity"] = s
		}
	}
}

func sarifRank(level string) int {
	switch level {
	case "error":
		return 2
	case "warning":
		return 1
	}
	return 0
}

func sarifResult(v *view, g *group, f *vuln.Finding, rule int) SARIFResult {
	text := fmt.Sprintf("Package: %s\nInstalled Version: %s\nVulnerability: %s\nSeverity: %s\nFixed Version: %s\nLink: %s",
		oneLine(f.Package.Name), oneLine(f.Package.Version), oneLine(f.VulnerabilityID), strings.ToUpper(severityWord(f.Severity)), oneLine(fixText(f)), OSVURL(f.VulnerabilityID))
	res := SARIFResult{
		RuleID:    f.VulnerabilityID,
		RuleIndex: rule,
		Level:     sarifLevel(f.Severity),
		Message:   SARIFMessage{Text: text},
		Properties: map[string]any{
			"purl": f.Package.PURL,
		},
	}
	if len(f.Aliases) > 0 {
		res.Properties["aliases"] = f.Aliases
	}
	paths := make([]string, 0, len(g.locations))
	for _, l := range g.locations {
		if p := strings.TrimLeft(l.Path, "/"); p != "" {
			paths = append(paths, p)
		}
	}
	if len(paths) == 0 {
		// No file (an SBOM input): the image is the artifact, as Trivy reports OS packages.
		paths = append(paths, cmpOr(v.image.Name, v.imageName()))
	}
	for _, p := range paths {
		res.Locations = append(res.Locations, SARIFLocation{
			PhysicalLocation: SARIFPhysicalLocation{
				ArtifactLocation: SARIFArtifactLocation{URI: sarifURI(p)},
				Region:           SARIFRegion{StartLine: 1, StartColumn: 1, EndLine: 1, EndColumn: 1},
			},
			Message: &SARIFMessage{Text: oneLine(v.imageName() + ": " + f.Package.Name + "@" + f.Package.Version)},
		})
	}
	return res
}

// sarifURI makes a relative URI reference of a path: SARIF consumers resolve it, so characters
// such as spaces and '%' must be escaped, while '/' stays.
func sarifURI(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = pathEscape(s)
	}
	return strings.Join(parts, "/")
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
