package match

import (
	"fmt"
	"strings"

	gocvss20 "github.com/pandatix/go-cvss/20"
	gocvss30 "github.com/pandatix/go-cvss/30"
	gocvss31 "github.com/pandatix/go-cvss/31"
	gocvss40 "github.com/pandatix/go-cvss/40"

	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

// CVSS vector types as OSV's severity[].type writes them.
const (
	CVSSv2 = "CVSS_V2"
	CVSSv3 = "CVSS_V3"
	CVSSv4 = "CVSS_V4"
)

// maxVectorLen bounds the vectors handed to the scoring library; real vectors are < 200 bytes.
const maxVectorLen = 512

// ScoreCVSS computes the base score of a CVSS vector of the given OSV type: v3.0 and v3.1
// vectors (CVSS_V3, told apart by their "CVSS:3.x/" prefix), v4.0 and v2.
func ScoreCVSS(typ, vector string) (score float64, err error) {
	if len(vector) > maxVectorLen {
		return 0, fmt.Errorf("cvss vector of %d bytes", len(vector))
	}
	defer func() {
		if r := recover(); r != nil {
			score, err = 0, fmt.Errorf("cvss vector %q: %v", vector, r)
		}
	}()
	switch {
	case strings.HasPrefix(vector, "CVSS:3.1/"):
		c, err := gocvss31.ParseVector(vector)
		if err != nil {
			return 0, fmt.Errorf("cvss 3.1 vector %q: %w", vector, err)
		}
		return c.BaseScore(), nil
	case strings.HasPrefix(vector, "CVSS:3.0/"):
		c, err := gocvss30.ParseVector(vector)
		if err != nil {
			return 0, fmt.Errorf("cvss 3.0 vector %q: %w", vector, err)
		}
		return c.BaseScore(), nil
	case strings.HasPrefix(vector, "CVSS:4.0/"):
		c, err := gocvss40.ParseVector(vector)
		if err != nil {
			return 0, fmt.Errorf("cvss 4.0 vector %q: %w", vector, err)
		}
		return c.Score(), nil
	case typ == CVSSv2:
		c, err := gocvss20.ParseVector(strings.TrimSuffix(strings.TrimPrefix(vector, "("), ")"))
		if err != nil {
			return 0, fmt.Errorf("cvss 2 vector %q: %w", vector, err)
		}
		return c.BaseScore(), nil
	}
	return 0, fmt.Errorf("cvss vector %q of type %s: unknown version", vector, typ)
}

// RatingFromScore maps a CVSS v3/v4 base score to a rating: 0.1-3.9 low, 4.0-6.9 medium,
// 7.0-8.9 high, 9.0-10.0 critical; 0 (or less) is unspecified.
func RatingFromScore(score float64) string {
	switch {
	case score >= 9.0:
		return vuln.SeverityCritical
	case score >= 7.0:
		return vuln.SeverityHigh
	case score >= 4.0:
		return vuln.SeverityMedium
	case score > 0:
		return vuln.SeverityLow
	}
	return vuln.SeverityUnspecified
}

// ratingFromV2 maps a CVSS v2 base score with v2's own bands (no critical: 7.0-10.0 high).
func ratingFromV2(score float64) string {
	if score >= 7.0 {
		return vuln.SeverityHigh
	}
	return RatingFromScore(score)
}

// RatingFromWord maps the severity words of distribution and ecosystem databases to a rating:
// Debian urgencies (unimportant, low, medium, high), Ubuntu priorities (negligible ... critical),
// GHSA (LOW, MODERATE, HIGH, CRITICAL), Red Hat / SUSE (low, moderate, important, critical).
// Words that rate nothing ("not yet assigned", "end-of-life", "unknown") return "".
func RatingFromWord(word string) string {
	w := strings.ToLower(strings.TrimSpace(word))
	// Debian appends "**" to urgencies it inferred rather than assessed ("low**").
	w = strings.TrimRight(w, "*")
	switch w {
	case "critical":
		return vuln.SeverityCritical
	case "high", "important":
		return vuln.SeverityHigh
	case "medium", "moderate":
		return vuln.SeverityMedium
	case "low", "negligible", "unimportant", "minor":
		return vuln.SeverityLow
	}
	return ""
}

// Rate rates one advisory for one affected package:
//   - for OS packages, the distribution's own severity (aff.EcosystemSeverity) wins when present;
//   - else the highest CVSS v4 or v3.x base score, mapped by RatingFromScore;
//   - else the ecosystem database's severity for language packages (GHSA's), when present;
//   - else a CVSS v2 score with v2's bands;
//   - else unspecified.
//
// score and vector are those of the highest-scoring vector (v4/v3 first, v2 last) whatever
// decided the rating, so reports can show them next to a distribution rating.
func Rate(adv *vuln.Advisory, aff *vuln.Affected, osPackage bool) (rating string, score float64, vector string) {
	var best, bestV2 vuln.CVSS
	if adv != nil {
		for _, c := range adv.Severity {
			s := c.Score
			if s == 0 && c.Vector != "" {
				s, _ = ScoreCVSS(c.Type, c.Vector)
			}
			switch {
			case c.Type == CVSSv2 || strings.HasPrefix(c.Vector, "AV:"):
				if s > bestV2.Score {
					bestV2 = vuln.CVSS{Type: c.Type, Vector: c.Vector, Score: s}
				}
			default:
				if s > best.Score {
					best = vuln.CVSS{Type: c.Type, Vector: c.Vector, Score: s}
				}
			}
		}
	}
	eco := ""
	if aff != nil {
		eco = RatingFromWord(aff.EcosystemSeverity)
	}
	if osPackage && eco != "" {
		if best.Score > 0 {
			return eco, best.Score, best.Vector
		}
		return eco, bestV2.Score, bestV2.Vector
	}
	if best.Score > 0 {
		return RatingFromScore(best.Score), best.Score, best.Vector
	}
	if eco != "" {
		return eco, bestV2.Score, bestV2.Vector
	}
	if bestV2.Score > 0 {
		return ratingFromV2(bestV2.Score), bestV2.Score, bestV2.Vector
	}
	return vuln.SeverityUnspecified, 0, ""
}
