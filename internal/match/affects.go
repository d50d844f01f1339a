package match

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/osv-scalibr/semantic"

	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

// Verdict is the outcome of evaluating one affected[] entry against an installed version.
type Verdict struct {
	Affected bool
	// Fixed is the lowest fixed version above the installed one in the range that matched;
	// empty when there is none (unfixed, last_affected, or matched through the versions list
	// only).
	Fixed string
	// Range describes the matching interval for people: ">=1.2.0 <1.2.5", "<3.0.11-1~deb12u2",
	// "<=2.4.1", ">=4.7", "=1.1.0f-3" (versions list), "*" (every version).
	Range string
	// Warnings name range events that could not be parsed and were skipped.
	Warnings []string
}

// ErrUnparsable is returned (wrapped) when the installed version cannot be parsed in its
// ecosystem; the package is then reported as not affected.
var ErrUnparsable = errors.New("unparsable version")

// Affects reports whether version (as the ecosystem writes it, see MatchVersion) of the
// package described by a falls in any of a's versions or ECOSYSTEM/SEMVER ranges, with OSV's
// semantics: events evaluated in version order, introduced "0" meaning "from the start",
// fixed excluded, last_affected included, and limit events (when present) bounding the range
// from above. GIT ranges are ignored: they name commits, not versions.
//
// An unparsable installed version is not affected (Evaluate returns the error, for a warning);
// unparsable events are skipped.
func Affects(a *vuln.Affected, version string) (affected bool, fixed string, rangeText string) {
	v, _ := Evaluate(a, version)
	return v.Affected, v.Fixed, v.Range
}

// Evaluate is Affects with the details: warnings about skipped events, and an error wrapping
// ErrUnparsable when the installed version cannot be parsed.
func Evaluate(a *vuln.Affected, version string) (Verdict, error) {
	return evaluate(a, version, nil)
}

// versionCache memoizes parsed versions across one match run, per ecosystem ordering: the
// same event versions recur in every advisory of a package and parsing dominates the cost of
// matching.
type versionCache map[string]map[string]parsed

func (c versionCache) size() int {
	n := 0
	for _, m := range c {
		n += len(m)
	}
	return n
}

type parsed struct {
	v   semantic.Version
	err error
}

func (c versionCache) parse(ecosystem, s string) (semantic.Version, error) {
	if c == nil {
		return parseVersion(ecosystem, s)
	}
	base := ecosystemBase(ecosystem)
	m := c[base]
	if m == nil {
		m = map[string]parsed{}
		c[base] = m
	}
	if p, ok := m[s]; ok {
		return p.v, p.err
	}
	v, err := parseVersion(base, s)
	m[s] = parsed{v, err}
	return v, err
}

// parseVersion parses s in an ecosystem, turning the library's panics on hostile input (if
// any) into errors.
func parseVersion(ecosystem, s string) (v semantic.Version, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("%w %q: %v", ErrUnparsable, s, r)
		}
	}()
	if !plausible(s) {
		return nil, fmt.Errorf("%w %q", ErrUnparsable, s)
	}
	v, err = semantic.Parse(s, ecosystemBase(ecosystem))
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrUnparsable, s, err)
	}
	return v, nil
}

func compare(a, b semantic.Version) (c int, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("compare: %v", r)
		}
	}()
	return a.Compare(b)
}

type event struct {
	kind string // "introduced", "fixed", "last_affected", "limit"
	raw  string
	v    semantic.Version // nil for introduced "0" and limit "*"
}

func evaluate(a *vuln.Affected, version string, cache versionCache) (Verdict, error) {
	var out Verdict
	if a == nil {
		return out, nil
	}
	eco := a.Ecosystem
	iv, err := cache.parse(eco, version)
	if err != nil {
		return out, fmt.Errorf("%s %s: %w", eco, a.Name, err)
	}
	// The versions list enumerates exact version strings, as the ecosystem writes them (OSV
	// compares them as strings too).
	for _, lv := range a.Versions {
		if lv == version {
			out.Affected, out.Range = true, "="+lv
			break
		}
	}
	for _, r := range a.Ranges {
		if r.Type != "ECOSYSTEM" && r.Type != "SEMVER" {
			continue
		}
		ok, fixed, text, warns := evalRange(r, eco, iv, cache)
		out.Warnings = append(out.Warnings, warns...)
		if !ok {
			continue
		}
		// Several ranges may match; the fix to report is the lowest one (the nearest upgrade).
		if !out.Affected || out.Fixed == "" && out.Range[0] == '=' || fixed != "" && lowerFixed(eco, fixed, out.Fixed, cache) {
			out.Fixed, out.Range = fixed, text
		}
		out.Affected = true
	}
	return out, nil
}

// lowerFixed reports whether fixed a is lower than b (b empty: a is lower).
func lowerFixed(eco, a, b string, cache versionCache) bool {
	if b == "" {
		return true
	}
	va, err1 := cache.parse(eco, a)
	vb, err2 := cache.parse(eco, b)
	if err1 != nil || err2 != nil {
		return false
	}
	c, err := compare(va, vb)
	return err == nil && c < 0
}

// evalRange applies OSV's algorithm to one range: sort the events by version (introduced "0"
// first), walk them, and let each introduced open and each fixed / last_affected close the
// affected interval. Limits bound the whole range from above.
func evalRange(r vuln.Range, eco string, iv semantic.Version, cache versionCache) (affected bool, fixed, text string, warns []string) {
	// Ranges hold a handful of events: keep them on the stack.
	var evBuf, limBuf [8]event
	events, limits := evBuf[:0], limBuf[:0]
	for _, e := range r.Events {
		var ev event
		switch {
		case e.Introduced != "":
			ev = event{kind: "introduced", raw: e.Introduced}
		case e.Fixed != "":
			ev = event{kind: "fixed", raw: e.Fixed}
		case e.LastAffected != "":
			ev = event{kind: "last_affected", raw: e.LastAffected}
		case e.Limit != "":
			ev = event{kind: "limit", raw: e.Limit}
		default:
			continue
		}
		if !(ev.kind == "introduced" && ev.raw == "0") && !(ev.kind == "limit" && ev.raw == "*") {
			v, err := cache.parse(eco, ev.raw)
			if err != nil {
				warns = append(warns, fmt.Sprintf("%s %s: skipped %s event: %v", eco, r.Type, ev.kind, err))
				continue
			}
			ev.v = v
		}
		if ev.kind == "limit" {
			limits = append(limits, ev)
			continue
		}
		events = append(events, ev)
	}
	if len(limits) > 0 {
		below := false
		for _, l := range limits {
			if l.v == nil {
				below = true
				break
			}
			if c, err := compare(iv, l.v); err == nil && c < 0 {
				below = true
				break
			}
		}
		if !below {
			return false, "", "", warns
		}
	}
	var sortErr error
	slices.SortStableFunc(events, func(a, b event) int {
		if a.v == nil || b.v == nil {
			switch {
			case a.v == nil && b.v != nil:
				return -1
			case a.v != nil && b.v == nil:
				return 1
			}
			return 0
		}
		c, err := compare(a.v, b.v)
		if err != nil {
			sortErr = err
		}
		return c
	})
	if sortErr != nil {
		return false, "", "", append(warns, fmt.Sprintf("%s %s: %v", eco, r.Type, sortErr))
	}
	var open *event // the introduced event of the interval the version is in
	for i := range events {
		ev := &events[i]
		var c int
		if ev.v != nil {
			var err error
			if c, err = compare(iv, ev.v); err != nil {
				continue
			}
		} else {
			c = 1 // introduced "0": every version is at or above it
		}
		switch ev.kind {
		case "introduced":
			if c >= 0 && open == nil {
				open = ev
			}
		case "fixed":
			if open == nil {
				continue
			}
			if c >= 0 {
				open = nil
				continue
			}
			// The version is inside [open, fixed): this is the nearest fix.
			return true, ev.raw, rangeText(open, ev), warns
		case "last_affected":
			if open == nil {
				continue
			}
			if c > 0 {
				open = nil
				continue
			}
			return true, "", rangeText(open, ev), warns
		}
	}
	if open != nil {
		return true, "", rangeText(open, nil), warns
	}
	return false, "", "", warns
}

func rangeText(from, to *event) string {
	var parts []string
	if from != nil && from.v != nil {
		parts = append(parts, ">="+from.raw)
	}
	if to != nil {
		switch to.kind {
		case "fixed":
			parts = append(parts, "<"+to.raw)
		case "last_affected":
			parts = append(parts, "<="+to.raw)
		}
	}
	if len(parts) == 0 {
		return "*"
	}
	return strings.Join(parts, " ")
}

// plausible rejects strings that are no version in any ecosystem before the ordering library
// sees them: it parses nearly anything ("(devel)", "not a version") into something comparable,
// which would turn garbage into matches. Every OSV ecosystem's versions start with a digit
// once an epoch ("1:", PEP 440 "1!") and a "v" prefix are set aside, and none holds spaces or
// control characters.
func plausible(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return false
		}
	}
	rest := s
	if i := strings.IndexAny(rest, ":!"); i > 0 && allDigits(rest[:i]) {
		rest = rest[i+1:]
	}
	rest = strings.TrimPrefix(strings.TrimPrefix(rest, "v"), "V")
	return rest != "" && rest[0] >= '0' && rest[0] <= '9'
}
