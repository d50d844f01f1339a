// Package vuln holds crowsnest's vulnerability model: advisories as imported (OSV), and findings
// (a package of an image affected by an advisory). The advisory importer, the matcher, the store
// and the report formats all read this one model.
package vuln

import "time"

// Severity ratings, lowest first. Docker Scout's words.
const (
	SeverityUnspecified = "unspecified"
	SeverityLow         = "low"
	SeverityMedium      = "medium"
	SeverityHigh        = "high"
	SeverityCritical    = "critical"
)

// SeverityRank orders ratings (unspecified 0 ... critical 4); unknown words rank 0.
func SeverityRank(s string) int {
	switch s {
	case SeverityLow:
		return 1
	case SeverityMedium:
		return 2
	case SeverityHigh:
		return 3
	case SeverityCritical:
		return 4
	}
	return 0
}

// Advisory is one OSV record, reduced to what matching and reporting need.
type Advisory struct {
	ID        string    `json:"id"`
	Aliases   []string  `json:"aliases,omitempty"` // CVE, GHSA, DSA... (OSV aliases + upstream)
	Summary   string    `json:"summary,omitempty"`
	Details   string    `json:"details,omitempty"`
	Published time.Time `json:"published,omitzero"`
	Modified  time.Time `json:"modified,omitzero"`
	// Withdrawn advisories are removed from the store on import.
	Withdrawn  *time.Time `json:"withdrawn,omitempty"`
	Severity   []CVSS     `json:"severity,omitempty"` // OSV severity[]: CVSS vectors
	References []string   `json:"references,omitempty"`
	Affected   []Affected `json:"affected"`
	// Source names where the record came from (e.g. "osv:Debian", a file path).
	Source string `json:"source,omitempty"`
}

// CVSS is one scored vector.
type CVSS struct {
	Type   string  `json:"type"` // CVSS_V2, CVSS_V3, CVSS_V4
	Vector string  `json:"vector"`
	Score  float64 `json:"score,omitempty"`
}

// Affected is one affected[] entry of an OSV record: a package in one ecosystem and the versions
// of it that are affected.
type Affected struct {
	// Ecosystem as OSV writes it: "Debian:12", "Alpine:v3.19", "PyPI", "Go", "Maven", "npm",
	// "crates.io", "RubyGems", "Packagist", "NuGet", "Ubuntu:22.04:LTS", "Red Hat:...".
	Ecosystem string `json:"ecosystem"`
	// Name is normalized for lookup (see match.NormalizeName): PEP 503 for PyPI, lowercase for
	// ecosystems that compare case-insensitively.
	Name     string   `json:"name"`
	Ranges   []Range  `json:"ranges,omitempty"`
	Versions []string `json:"versions,omitempty"`
	// Severity given by the ecosystem's database for this package (Debian's urgency, Ubuntu's
	// priority, GHSA's severity), mapped to a rating; empty when none.
	EcosystemSeverity string `json:"ecosystemSeverity,omitempty"`
}

// Range is an OSV range: ECOSYSTEM, SEMVER or GIT with its ordered events.
type Range struct {
	Type   string  `json:"type"`
	Events []Event `json:"events"`
}

// Event is one OSV range event; exactly one field is set.
type Event struct {
	Introduced   string `json:"introduced,omitempty"`
	Fixed        string `json:"fixed,omitempty"`
	LastAffected string `json:"last_affected,omitempty"`
	Limit        string `json:"limit,omitempty"`
}

// PackageRef identifies an installed package of an image, enough to report and to match.
type PackageRef struct {
	Type    string `json:"type"`
	Name    string `json:"name"`
	Version string `json:"version"`
	PURL    string `json:"purl"`
	// Ecosystem and MatchName are the OSV lookup key the package was matched under (for Debian
	// packages the source package name).
	Ecosystem string `json:"ecosystem"`
	MatchName string `json:"matchName"`
}

// Finding says one package of one image is affected by one vulnerability.
type Finding struct {
	Package         PackageRef `json:"package"`
	VulnerabilityID string     `json:"vulnerability"` // the advisory's OSV id (e.g. DSA-5678-1, GHSA-..., GO-2024-...)
	Aliases         []string   `json:"aliases,omitempty"`
	Summary         string     `json:"summary,omitempty"`
	Severity        string     `json:"severity"` // one of the Severity* ratings
	CVSSScore       float64    `json:"cvssScore,omitempty"`
	CVSSVector      string     `json:"cvssVector,omitempty"`
	FixedVersion    string     `json:"fixedVersion,omitempty"`
	// AffectedRange describes the matching range for people (">=1.2.0 <1.2.5").
	AffectedRange string   `json:"affectedRange,omitempty"`
	URLs          []string `json:"urls,omitempty"`
}

// CVEs returns the CVE ids among the vulnerability's id and aliases.
func (f *Finding) CVEs() []string {
	var out []string
	for _, id := range append([]string{f.VulnerabilityID}, f.Aliases...) {
		if len(id) > 4 && id[:4] == "CVE-" {
			out = append(out, id)
		}
	}
	return out
}

// Key identifies a finding within one image.
func (f *Finding) Key() string {
	return f.Package.Type + "\x00" + f.Package.Name + "\x00" + f.Package.Version + "\x00" + f.VulnerabilityID
}

// Change kinds.
const (
	ChangeAdded   = "added"
	ChangeRemoved = "removed"
)

// Change records a finding appearing on or disappearing from an image, with its time and why
// ("push", "advisory-update", "rescan").
type Change struct {
	ID          int64     `json:"id,omitempty"`
	Time        time.Time `json:"time"`
	ImageDigest string    `json:"imageDigest"`
	Kind        string    `json:"kind"`
	Reason      string    `json:"reason,omitempty"`
	Finding     Finding   `json:"finding"`
}
