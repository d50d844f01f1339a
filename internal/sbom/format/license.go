package format

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/github/go-spdx/v2/spdxexp"
)

const (
	noAssertion = "NOASSERTION"
	// maxLicenseLen bounds a license string handed to the SPDX expression parser; longer strings
	// (whole license texts pasted into a metadata field) are not expressions anyway.
	maxLicenseLen = 512
)

// licenses turns license strings from package databases into SPDX terms. Results are cached:
// an image has many packages under few licenses.
type licenses struct {
	cache map[string]licenseTerm
	// refs maps each LicenseRef- identifier handed out to the string it stands for.
	refs map[string]string
}

// licenseTerm is one license string in SPDX terms: a valid SPDX expression (valid), or a
// LicenseRef- standing for a string that is not one.
type licenseTerm struct {
	expr    string
	valid   bool
	simple  bool // a single license identifier (possibly "WITH" an exception), not a compound
	refsUse []string
}

func newLicenses() *licenses {
	return &licenses{cache: map[string]licenseTerm{}, refs: map[string]string{}}
}

func (l *licenses) term(s string) licenseTerm {
	if t, ok := l.cache[s]; ok {
		return t
	}
	t := l.classify(s)
	for _, r := range t.refsUse {
		if _, ok := l.refs[r]; !ok {
			l.refs[r] = s
		}
	}
	l.cache[s] = t
	return t
}

func (l *licenses) classify(s string) licenseTerm {
	if len(s) <= maxLicenseLen && strings.IndexFunc(s, isControl) < 0 {
		norm, invalid := spdxexp.ValidateAndNormalizeLicensesWithOptions([]string{s},
			spdxexp.ValidateLicensesOptions{FailAllDocumentRefs: true})
		if len(invalid) == 0 && len(norm) == 1 && norm[0] != "" {
			e := norm[0]
			return licenseTerm{expr: e, valid: true, simple: !hasOperator(e), refsUse: licenseRefsIn(e)}
		}
	}
	ref := licenseRef(s)
	return licenseTerm{expr: ref, simple: true, refsUse: []string{ref}}
}

func hasOperator(e string) bool {
	u := strings.ToUpper(e)
	return strings.Contains(u, " AND ") || strings.Contains(u, " OR ") || strings.Contains(e, "(")
}

// licenseRefsIn lists the LicenseRef- identifiers a valid expression uses: each needs a
// declaration in an SPDX document.
func licenseRefsIn(e string) []string {
	var refs []string
	for _, f := range strings.FieldsFunc(e, func(r rune) bool { return r == ' ' || r == '(' || r == ')' }) {
		if strings.HasPrefix(f, "LicenseRef-") {
			refs = append(refs, f)
		}
	}
	return refs
}

// licenseRef makes a LicenseRef- identifier (letters, digits, '.', '-') for a string that is not
// an SPDX expression, keeping it readable ("GPL-2+" -> "LicenseRef-GPL-2-<hash>"); a hash of the
// original keeps different strings apart when the readable part is the same.
func licenseRef(s string) string {
	var b strings.Builder
	b.WriteString("LicenseRef-")
	changed := false
	for i := 0; i < len(s) && i < 64; i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' {
			b.WriteByte(c)
		} else {
			b.WriteByte('-')
			changed = true
		}
	}
	if changed || len(s) > 64 || s == "" {
		sum := sha256.Sum256([]byte(s))
		b.WriteString("-")
		b.WriteString(hex.EncodeToString(sum[:4]))
	}
	return b.String()
}

// expression joins a package's license strings into one valid SPDX expression ("NOASSERTION"
// when there are none).
func (l *licenses) expression(ls []string) string {
	var parts []string
	seen := map[string]bool{}
	for _, s := range ls {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		t := l.term(s)
		e := t.expr
		if !t.simple && len(ls) > 1 {
			e = "(" + e + ")"
		}
		if !seen[e] {
			seen[e] = true
			parts = append(parts, e)
		}
	}
	if len(parts) == 0 {
		return noAssertion
	}
	return strings.Join(parts, " AND ")
}

// splitConjunction splits a top-level "A AND B AND (C OR D)" into its parts, so that a package's
// license list survives an SPDX round trip; anything else is returned whole.
func splitConjunction(e string) []string {
	e = strings.TrimSpace(e)
	var parts []string
	depth, start := 0, 0
	for i := 0; i < len(e); i++ {
		switch e[i] {
		case '(':
			depth++
		case ')':
			depth--
		case ' ':
			if depth == 0 && i+5 <= len(e) && strings.EqualFold(e[i:i+5], " AND ") {
				parts = append(parts, e[start:i])
				start = i + 5
				i += 4
			}
		}
	}
	parts = append(parts, e[start:])
	for i, p := range parts {
		parts[i] = stripParens(strings.TrimSpace(p))
	}
	return parts
}

// stripParens removes parentheses that enclose the whole of e.
func stripParens(e string) string {
	for len(e) >= 2 && e[0] == '(' && e[len(e)-1] == ')' {
		depth := 0
		whole := true
		for i := 0; i < len(e)-1; i++ {
			switch e[i] {
			case '(':
				depth++
			case ')':
				depth--
			}
			if depth == 0 {
				whole = false
				break
			}
		}
		if !whole {
			return e
		}
		e = strings.TrimSpace(e[1 : len(e)-1])
	}
	return e
}
