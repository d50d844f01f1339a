// Package advisory reads OSV advisories: the parser from OSV JSON (schema 1.x) to crowsnest's
// vuln.Advisory, readers for files, directory trees and osv.dev's per-ecosystem all.zip
// archives, and conditional downloads of those archives.
package advisory

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/match"
	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

// Bounds on one record. osv.dev's largest records (kernel CVEs with thousands of versions)
// are a few MB.
const (
	MaxRecordSize = 32 << 20
	maxAffected   = 10000
	maxRanges     = 1000
	maxEvents     = 10000
	maxVersions   = 100000
	maxAliases    = 1000
	maxRefs       = 1000
	maxSeverities = 100
)

// ErrNotOSV is returned (wrapped) for JSON that is not an OSV record.
var ErrNotOSV = errors.New("not an OSV record")

// The decoding structs hold only what crowsnest keeps: encoding/json skips the rest without
// building it, and no protobuf runtime (osv-schema's bindings are protobuf types) enters the
// binary.
type osvRecord struct {
	ID         string          `json:"id"`
	Modified   string          `json:"modified"`
	Published  string          `json:"published"`
	Withdrawn  string          `json:"withdrawn"`
	Aliases    []string        `json:"aliases"`
	Upstream   []string        `json:"upstream"`
	Summary    string          `json:"summary"`
	Details    string          `json:"details"`
	Severity   []osvSeverity   `json:"severity"`
	Affected   []osvAffected   `json:"affected"`
	References []osvReference  `json:"references"`
	DBSpecific json.RawMessage `json:"database_specific"`
}

type osvSeverity struct {
	Type  string `json:"type"`
	Score string `json:"score"`
}

type osvAffected struct {
	Package struct {
		Ecosystem string `json:"ecosystem"`
		Name      string `json:"name"`
	} `json:"package"`
	Severity    []osvSeverity   `json:"severity"`
	Ranges      []osvRange      `json:"ranges"`
	Versions    []string        `json:"versions"`
	EcoSpecific json.RawMessage `json:"ecosystem_specific"`
	DBSpecific  json.RawMessage `json:"database_specific"`
}

type osvRange struct {
	Type   string       `json:"type"`
	Events []vuln.Event `json:"events"`
}

type osvReference struct {
	Type string `json:"type"`
	URL  string `json:"url"`
}

// Parse decodes one OSV record (schema 1.x) into a vuln.Advisory:
//   - Aliases are OSV's aliases plus upstream (distribution records name their CVE there).
//   - Severity keeps the CVSS_V2/V3/V4 vectors with their computed base scores (a bare number
//     where a vector belongs is kept as the score).
//   - Each affected package's name is normalized with match.NormalizeName; entries without a
//     package (GIT-only records) are dropped, as they match no installed package.
//   - EcosystemSeverity is the database's own rating for the package (Debian urgency, Ubuntu
//     priority, GHSA / Red Hat / SUSE severity), mapped by match.RatingFromWord.
//
// A record without an id, or whose JSON does not decode, is an error.
func Parse(data []byte) (*vuln.Advisory, error) {
	if len(data) > MaxRecordSize {
		return nil, fmt.Errorf("OSV record of %d bytes exceeds %d", len(data), MaxRecordSize)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var r osvRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decode OSV JSON: %w", err)
	}
	if strings.TrimSpace(r.ID) == "" {
		return nil, fmt.Errorf("%w: no id", ErrNotOSV)
	}
	if len(r.Affected) > maxAffected || len(r.Aliases)+len(r.Upstream) > maxAliases ||
		len(r.References) > maxRefs || len(r.Severity) > maxSeverities {
		return nil, fmt.Errorf("OSV record %s: too many entries", r.ID)
	}
	a := &vuln.Advisory{
		ID:      r.ID,
		Summary: strings.TrimSpace(r.Summary),
		Details: r.Details,
	}
	var err error
	if a.Published, err = parseTime(r.Published); err != nil {
		return nil, fmt.Errorf("OSV record %s: published: %w", r.ID, err)
	}
	if a.Modified, err = parseTime(r.Modified); err != nil {
		return nil, fmt.Errorf("OSV record %s: modified: %w", r.ID, err)
	}
	if r.Withdrawn != "" {
		w, err := parseTime(r.Withdrawn)
		if err != nil {
			return nil, fmt.Errorf("OSV record %s: withdrawn: %w", r.ID, err)
		}
		a.Withdrawn = &w
	}
	seen := map[string]bool{r.ID: true}
	for _, id := range append(r.Aliases, r.Upstream...) {
		id = strings.TrimSpace(id)
		if id != "" && !seen[id] {
			seen[id] = true
			a.Aliases = append(a.Aliases, id)
		}
	}
	a.Severity = cvssList(r.Severity)
	for _, ref := range r.References {
		if ref.URL != "" {
			a.References = append(a.References, ref.URL)
		}
	}
	topSeverity := wordSeverity(r.Severity)
	if topSeverity == "" {
		topSeverity = dbSeverity(r.DBSpecific)
	}
	a.Affected = make([]vuln.Affected, 0, len(r.Affected))
	for i := range r.Affected {
		oa := &r.Affected[i]
		eco, name := strings.TrimSpace(oa.Package.Ecosystem), strings.TrimSpace(oa.Package.Name)
		if eco == "" || name == "" {
			continue
		}
		if len(oa.Ranges) > maxRanges || len(oa.Versions) > maxVersions {
			return nil, fmt.Errorf("OSV record %s: %s %s: too many ranges or versions", r.ID, eco, name)
		}
		aff := vuln.Affected{
			Ecosystem: eco,
			Name:      match.NormalizeName(eco, name),
			Versions:  oa.Versions,
		}
		for _, or := range oa.Ranges {
			if len(or.Events) > maxEvents {
				return nil, fmt.Errorf("OSV record %s: %s %s: too many range events", r.ID, eco, name)
			}
			aff.Ranges = append(aff.Ranges, vuln.Range{Type: or.Type, Events: or.Events})
		}
		aff.EcosystemSeverity = affectedSeverity(oa)
		if aff.EcosystemSeverity == "" {
			aff.EcosystemSeverity = topSeverity
		}
		// Schema 1.7 lets an affected entry carry its own CVSS; keep them when the record
		// has none at the top.
		if len(r.Severity) == 0 {
			for _, c := range cvssList(oa.Severity) {
				if !containsCVSS(a.Severity, c) {
					a.Severity = append(a.Severity, c)
				}
			}
		}
		a.Affected = append(a.Affected, aff)
	}
	return a, nil
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

// cvssList keeps the CVSS entries of an OSV severity[] list, scored.
func cvssList(in []osvSeverity) []vuln.CVSS {
	var out []vuln.CVSS
	for _, s := range in {
		typ := strings.ToUpper(strings.TrimSpace(s.Type))
		if typ != match.CVSSv2 && typ != match.CVSSv3 && typ != match.CVSSv4 {
			continue
		}
		vec := strings.TrimSpace(s.Score)
		if vec == "" {
			continue
		}
		if f, err := strconv.ParseFloat(vec, 64); err == nil {
			if f > 0 && f <= 10 {
				out = append(out, vuln.CVSS{Type: typ, Score: f})
			}
			continue
		}
		score, _ := match.ScoreCVSS(typ, vec) // an unscorable vector is still worth showing
		out = append(out, vuln.CVSS{Type: typ, Vector: vec, Score: score})
	}
	return out
}

func containsCVSS(list []vuln.CVSS, c vuln.CVSS) bool {
	for _, x := range list {
		if x == c {
			return true
		}
	}
	return false
}

// wordSeverity finds a database's rating among severity[] entries that are not CVSS (Ubuntu's
// records write {"type": "Ubuntu", "score": "medium"}).
func wordSeverity(in []osvSeverity) string {
	best := ""
	for _, s := range in {
		if strings.HasPrefix(strings.ToUpper(s.Type), "CVSS") {
			continue
		}
		best = higher(best, match.RatingFromWord(s.Score))
	}
	return best
}

func higher(a, b string) string {
	if vuln.SeverityRank(b) > vuln.SeverityRank(a) {
		return b
	}
	return a
}

// severityFields are the names databases give their own rating inside ecosystem_specific and
// database_specific: GHSA, Red Hat, SUSE and others write "severity", Debian "urgency", Ubuntu
// "priority".
var severityFields = []string{"severity", "urgency", "priority"}

func dbSeverity(raw json.RawMessage) string {
	if len(raw) == 0 || raw[0] != '{' {
		return ""
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return ""
	}
	for _, f := range severityFields {
		v, ok := m[f]
		if !ok {
			continue
		}
		var s string
		if json.Unmarshal(v, &s) == nil {
			if r := match.RatingFromWord(s); r != "" {
				return r
			}
		}
	}
	return ""
}

// affectedSeverity is the database's rating of one affected package: a severity field in
// ecosystem_specific or database_specific, or, for Ubuntu's USN records, the highest Ubuntu
// priority of the CVEs the notice fixes (database_specific.cves_map).
func affectedSeverity(oa *osvAffected) string {
	if s := dbSeverity(oa.EcoSpecific); s != "" {
		return s
	}
	if s := dbSeverity(oa.DBSpecific); s != "" {
		return s
	}
	if len(oa.DBSpecific) == 0 || !bytes.Contains(oa.DBSpecific, []byte(`"cves_map"`)) {
		return ""
	}
	var ds struct {
		CVEsMap struct {
			CVEs []struct {
				Severity []osvSeverity `json:"severity"`
			} `json:"cves"`
		} `json:"cves_map"`
	}
	if json.Unmarshal(oa.DBSpecific, &ds) != nil {
		return ""
	}
	best := ""
	for _, c := range ds.CVEsMap.CVEs {
		best = higher(best, wordSeverity(c.Severity))
	}
	return best
}
