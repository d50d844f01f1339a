package report

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

// Filters are Docker Scout's finding filters. Each list takes several values, and each value may
// itself be a comma-separated list, as with Scout's flags. Empty fields filter nothing.
type Filters struct {
	// OnlySeverity keeps findings of these severities (critical, high, medium, low,
	// unspecified). --only-severity
	OnlySeverity []string
	// OnlyFixed keeps findings that have a fixed version; OnlyUnfixed those that have none.
	// --only-fixed, --only-unfixed
	OnlyFixed, OnlyUnfixed bool
	// OnlyPackage keeps findings whose package name matches one of these regular expressions
	// (unanchored, as Scout matches). --only-package
	OnlyPackage []string
	// OnlyPackageType keeps findings of packages of these types (deb, apk, npm, golang...).
	// --only-package-type
	OnlyPackageType []string
	// OnlyCVEID keeps findings whose vulnerability id or any alias is one of these ids
	// (case-insensitive). --only-cve-id
	OnlyCVEID []string
}

// Active reports whether any filter is set.
func (f *Filters) Active() bool {
	return len(splitList(f.OnlySeverity)) > 0 || f.OnlyFixed || f.OnlyUnfixed || len(splitList(f.OnlyPackage)) > 0 ||
		len(splitList(f.OnlyPackageType)) > 0 || len(splitList(f.OnlyCVEID)) > 0
}

// Bounds on filter input: the values come from a command line, but also from CI variables.
const (
	maxFilterValues = 1024
	maxRegexLen     = 1024
)

var severities = []string{vuln.SeverityCritical, vuln.SeverityHigh, vuln.SeverityMedium, vuln.SeverityLow, vuln.SeverityUnspecified}

// Filter returns the findings that pass every filter, in their order. pkgs are the image's
// packages; they give a finding its package type when the finding itself has none (findings read
// back from an older store). An invalid filter value is an error that names its flag.
func Filter(findings []vuln.Finding, pkgs []sbom.Package, f Filters) ([]vuln.Finding, error) {
	if f.OnlyFixed && f.OnlyUnfixed {
		return nil, fmt.Errorf("--only-fixed and --only-unfixed cannot be used together")
	}
	sev := map[string]bool{}
	for _, s := range splitList(f.OnlySeverity) {
		s = strings.ToLower(s)
		if s == "unknown" {
			s = vuln.SeverityUnspecified // Trivy's and GitLab's word
		}
		if !slices.Contains(severities, s) {
			return nil, fmt.Errorf("--only-severity: invalid severity %q (accepted: %s)", s, strings.Join(severities, ", "))
		}
		sev[s] = true
	}
	var res []*regexp.Regexp
	for _, p := range splitList(f.OnlyPackage) {
		if len(p) > maxRegexLen {
			return nil, fmt.Errorf("--only-package: expression longer than %d characters", maxRegexLen)
		}
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("--only-package: invalid regular expression %q: %w", p, err)
		}
		res = append(res, re)
	}
	types := map[string]bool{}
	for _, t := range splitList(f.OnlyPackageType) {
		types[strings.ToLower(t)] = true
	}
	ids := map[string]bool{}
	for _, id := range splitList(f.OnlyCVEID) {
		ids[strings.ToUpper(id)] = true
	}
	for name, n := range map[string]int{"--only-severity": len(sev), "--only-package": len(res), "--only-package-type": len(types), "--only-cve-id": len(ids)} {
		if n > maxFilterValues {
			return nil, fmt.Errorf("%s: more than %d values", name, maxFilterValues)
		}
	}

	typeOf := packageTypes(pkgs)
	out := make([]vuln.Finding, 0, len(findings))
	for i := range findings {
		fd := &findings[i]
		if len(sev) > 0 && !sev[severityWord(fd.Severity)] {
			continue
		}
		if f.OnlyFixed && fd.FixedVersion == "" || f.OnlyUnfixed && fd.FixedVersion != "" {
			continue
		}
		if len(res) > 0 && !slices.ContainsFunc(res, func(re *regexp.Regexp) bool { return re.MatchString(fd.Package.Name) }) {
			continue
		}
		if len(types) > 0 {
			t := fd.Package.Type
			if t == "" {
				t = typeOf[fd.Package.PURL]
			}
			if !types[strings.ToLower(t)] {
				continue
			}
		}
		if len(ids) > 0 && !matchesID(fd, ids) {
			continue
		}
		out = append(out, *fd)
	}
	return out, nil
}

func matchesID(f *vuln.Finding, ids map[string]bool) bool {
	if ids[strings.ToUpper(f.VulnerabilityID)] {
		return true
	}
	for _, a := range f.Aliases {
		if ids[strings.ToUpper(a)] {
			return true
		}
	}
	return false
}

func packageTypes(pkgs []sbom.Package) map[string]string {
	m := make(map[string]string, len(pkgs))
	for i := range pkgs {
		if pkgs[i].PURL != "" {
			m[pkgs[i].PURL] = pkgs[i].Type
		}
	}
	return m
}

// splitList splits comma-separated values and drops empties ("critical,high" and
// ["critical", "high"] are the same).
func splitList(values []string) []string {
	var out []string
	for _, v := range values {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}
