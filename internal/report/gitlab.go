package report

import (
	"encoding/json"
	"io"
	"net/url"
	"strings"

	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

// GitLab security report schema, container-scanning flavour
// (https://gitlab.com/gitlab-org/security-products/security-report-schemas, v15).
const (
	gitlabVersion  = "15.0.7"
	gitlabTimeForm = "2006-01-02T15:04:05" // the schema's pattern has no zone: UTC is written
	// Bounds of the schema's string fields.
	gitlabMaxName        = 255
	gitlabMaxDescription = 1048576
	gitlabMaxSolution    = 7000
)

// GitLabReport is a container-scanning report.
type GitLabReport struct {
	Version         string                `json:"version"`
	Schema          string                `json:"schema,omitempty"`
	Scan            GitLabScan            `json:"scan"`
	Vulnerabilities []GitLabVulnerability `json:"vulnerabilities"`
	Remediations    []any                 `json:"remediations"`
}

// GitLabScan describes the scan.
type GitLabScan struct {
	Analyzer  GitLabTool `json:"analyzer"`
	Scanner   GitLabTool `json:"scanner"`
	Type      string     `json:"type"`
	StartTime string     `json:"start_time"`
	EndTime   string     `json:"end_time"`
	Status    string     `json:"status"`
}

// GitLabTool is the analyzer or the scanner.
type GitLabTool struct {
	ID      string       `json:"id"`
	Name    string       `json:"name"`
	URL     string       `json:"url,omitempty"`
	Version string       `json:"version"`
	Vendor  GitLabVendor `json:"vendor"`
}

// GitLabVendor names the tool's vendor.
type GitLabVendor struct {
	Name string `json:"name"`
}

// GitLabVulnerability is one finding.
type GitLabVulnerability struct {
	ID          string             `json:"id"`
	Name        string             `json:"name,omitempty"`
	Description string             `json:"description,omitempty"`
	Severity    string             `json:"severity"`
	Solution    string             `json:"solution,omitempty"`
	Identifiers []GitLabIdentifier `json:"identifiers"`
	Links       []GitLabLink       `json:"links,omitempty"`
	Location    GitLabLocation     `json:"location"`
}

// GitLabIdentifier is one id of the vulnerability (CVE, GHSA, OSV).
type GitLabIdentifier struct {
	Type  string `json:"type"`
	Name  string `json:"name"`
	Value string `json:"value"`
	URL   string `json:"url,omitempty"`
}

// GitLabLink is a reference URL.
type GitLabLink struct {
	Name string `json:"name,omitempty"`
	URL  string `json:"url"`
}

// GitLabLocation is where the vulnerable package is: the image, its OS and the package.
type GitLabLocation struct {
	Dependency         GitLabDependency `json:"dependency"`
	OperatingSystem    string           `json:"operating_system"`
	Image              string           `json:"image"`
	DefaultBranchImage string           `json:"default_branch_image,omitempty"`
}

// GitLabDependency is the vulnerable package.
type GitLabDependency struct {
	Package GitLabPackage `json:"package"`
	Version string        `json:"version"`
}

// GitLabPackage names the package.
type GitLabPackage struct {
	Name string `json:"name"`
}

func gitlabSeverity(s string) string {
	switch s {
	case vuln.SeverityCritical:
		return "Critical"
	case vuln.SeverityHigh:
		return "High"
	case vuln.SeverityMedium:
		return "Medium"
	case vuln.SeverityLow:
		return "Low"
	}
	return "Unknown"
}

func renderGitLab(w io.Writer, v *view) error {
	tool := GitLabTool{
		ID: "crowsnest", Name: "crowsnest", URL: "https://github.com/crowsnest-dev/crowsnest",
		Version: v.tool.Version, Vendor: GitLabVendor{Name: "crowsnest"},
	}
	start := v.Started
	if start.IsZero() || start.After(v.when) {
		start = v.when
	}
	rep := GitLabReport{
		Version: gitlabVersion,
		Schema:  "https://gitlab.com/gitlab-org/security-products/security-report-schemas/-/raw/v" + gitlabVersion + "/dist/container-scanning-report-format.json",
		Scan: GitLabScan{
			Analyzer: tool, Scanner: tool, Type: "container_scanning",
			StartTime: start.UTC().Format(gitlabTimeForm), EndTime: v.when.Format(gitlabTimeForm),
			Status: "success",
		},
		Vulnerabilities: []GitLabVulnerability{},
		Remediations:    []any{},
	}
	osName := "Unknown"
	if v.os != nil && v.os.ID != "" {
		osName = strings.TrimSpace(v.os.ID + " " + v.os.VersionID)
	}
	for _, g := range v.groups {
		for i := range g.findings {
			f := &g.findings[i]
			gv := GitLabVulnerability{
				ID:          stableUUID(v.image.Digest, v.imageName(), f.Key()),
				Name:        truncate(oneLine(gitlabName(f)), gitlabMaxName),
				Description: truncate(cmpOr(f.Summary, f.VulnerabilityID+" in "+f.Package.Name), gitlabMaxDescription),
				Severity:    gitlabSeverity(f.Severity),
				Identifiers: gitlabIdentifiers(f),
				Location: GitLabLocation{
					Dependency:      GitLabDependency{Package: GitLabPackage{Name: f.Package.Name}, Version: f.Package.Version},
					OperatingSystem: osName,
					Image:           v.imageName(),
				},
			}
			if f.FixedVersion != "" {
				gv.Solution = truncate("Upgrade "+f.Package.Name+" to "+f.FixedVersion, gitlabMaxSolution)
			} else {
				gv.Solution = "No solution provided"
			}
			gv.Links = append(gv.Links, GitLabLink{URL: OSVURL(f.VulnerabilityID)})
			for _, u := range f.URLs {
				if strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "http://") {
					gv.Links = append(gv.Links, GitLabLink{URL: u})
				}
			}
			rep.Vulnerabilities = append(rep.Vulnerabilities, gv)
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(rep)
}

func gitlabName(f *vuln.Finding) string {
	name := f.VulnerabilityID
	if cves := f.CVEs(); len(cves) > 0 {
		name = cves[0]
	}
	return name + " in " + f.Package.Name + " " + f.Package.Version
}

// gitlabIdentifiers lists the finding's id and aliases, typed as GitLab groups them; the CVE
// comes first because GitLab deduplicates findings across scanners by the first identifier.
func gitlabIdentifiers(f *vuln.Finding) []GitLabIdentifier {
	var cves, others []GitLabIdentifier
	seen := map[string]bool{}
	for _, id := range append([]string{f.VulnerabilityID}, f.Aliases...) {
		id = strings.TrimSpace(id)
		if id == "" || seen[id] {
			continue
		}
		seen[id] = true
		up := strings.ToUpper(id)
		switch {
		case strings.HasPrefix(up, "CVE-"):
			cves = append(cves, GitLabIdentifier{Type: "cve", Name: id, Value: id, URL: "https://www.cve.org/CVERecord?id=" + url.QueryEscape(id)})
		case strings.HasPrefix(up, "GHSA-"):
			others = append(others, GitLabIdentifier{Type: "ghsa", Name: id, Value: id, URL: "https://github.com/advisories/" + url.PathEscape(id)})
		default:
			others = append(others, GitLabIdentifier{Type: "osv", Name: id, Value: id, URL: OSVURL(id)})
		}
	}
	return append(cves, others...)
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && (s[n]&0xc0) == 0x80 {
		n--
	}
	return s[:n]
}
