package java

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxAttributes bounds how many attributes or properties one file may yield.
const maxAttributes = 10_000

// parseManifest returns the main section of a JAR manifest. The format wraps lines at 72 bytes
// with a leading space on each continuation line; the main section ends at the first blank line.
// Malformed lines are skipped: manifests in the wild are often hand-edited.
func parseManifest(b []byte) map[string]string {
	attrs := map[string]string{}
	s := strings.TrimPrefix(string(b), "\ufeff")
	var key string
	var val strings.Builder
	flush := func() {
		if key != "" && len(attrs) < maxAttributes {
			if _, dup := attrs[key]; !dup {
				attrs[key] = strings.TrimSpace(val.String())
			}
		}
		key = ""
		val.Reset()
	}
	for s != "" {
		var line string
		line, s = nextLine(s)
		if line == "" {
			break
		}
		if line[0] == ' ' {
			if key != "" {
				val.WriteString(line[1:])
			}
			continue
		}
		flush()
		i := strings.IndexByte(line, ':')
		if i <= 0 {
			continue
		}
		key = strings.TrimSpace(line[:i])
		val.WriteString(strings.TrimPrefix(line[i+1:], " "))
	}
	flush()
	return attrs
}

// nextLine splits off one line ended by CRLF, LF or CR (all three are legal in manifests).
func nextLine(s string) (line, rest string) {
	i := strings.IndexAny(s, "\r\n")
	if i < 0 {
		return s, ""
	}
	line, rest = s[:i], s[i+1:]
	if s[i] == '\r' && rest != "" && rest[0] == '\n' {
		rest = rest[1:]
	}
	return line, rest
}

// parseProperties reads a java.util.Properties text file (as Maven writes pom.properties):
// "#" and "!" comments, "=", ":" or blank separators, backslash continuations and escapes.
func parseProperties(b []byte) map[string]string {
	props := map[string]string{}
	s := string(b)
	for s != "" && len(props) < maxAttributes {
		var logical strings.Builder
		for s != "" {
			var line string
			line, s = nextLine(s)
			line = strings.TrimLeft(line, " \t\f")
			if logical.Len() == 0 && (line == "" || line[0] == '#' || line[0] == '!') {
				continue
			}
			// An odd number of trailing backslashes continues the line.
			n := 0
			for n < len(line) && line[len(line)-1-n] == '\\' {
				n++
			}
			if n%2 == 1 {
				logical.WriteString(line[:len(line)-1])
				continue
			}
			logical.WriteString(line)
			break
		}
		if logical.Len() == 0 {
			continue
		}
		k, v := splitProperty(logical.String())
		if _, dup := props[k]; !dup {
			props[k] = v
		}
	}
	return props
}

// splitProperty splits a logical line at the first unescaped separator.
func splitProperty(line string) (key, val string) {
	i := 0
	for i < len(line) {
		c := line[i]
		if c == '\\' {
			i += 2
			continue
		}
		if c == '=' || c == ':' || c == ' ' || c == '\t' || c == '\f' {
			break
		}
		i++
	}
	if i > len(line) {
		i = len(line)
	}
	key = line[:i]
	rest := strings.TrimLeft(line[i:], " \t\f")
	if rest != "" && (rest[0] == '=' || rest[0] == ':') {
		rest = strings.TrimLeft(rest[1:], " \t\f")
	}
	return unescape(key), unescape(rest)
}

func unescape(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch s[i] {
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 'f':
			b.WriteByte('\f')
		case 'u':
			if i+5 <= len(s) {
				if r, err := strconv.ParseUint(s[i+1:i+5], 16, 16); err == nil {
					b.WriteRune(rune(r))
					i += 4
					continue
				}
			}
			b.WriteByte('u')
		default:
			b.WriteByte(s[i])
		}
	}
	if !utf8.ValidString(b.String()) {
		return strings.ToValidUTF8(b.String(), "\uFFFD")
	}
	return b.String()
}

// bundleLicenses splits an OSGi Bundle-License header: a comma-separated list of licenses, each
// optionally followed by ";attr=value" parameters and possibly quoted, e.g.
// `Apache-2.0;link="https://www.apache.org/licenses/LICENSE-2.0.txt", MIT`.
func bundleLicenses(h string) []string {
	h = strings.TrimSpace(h)
	if h == "" || h == "<<EXTERNAL>>" {
		return nil
	}
	var out []string
	var cur strings.Builder
	quoted := false
	emit := func() {
		v := cur.String()
		cur.Reset()
		if i := strings.IndexByte(v, ';'); i >= 0 {
			v = v[:i]
		}
		v = strings.Trim(strings.TrimSpace(v), `"`)
		if v != "" && len(out) < 32 {
			out = append(out, v)
		}
	}
	for i := 0; i < len(h); i++ {
		switch c := h[i]; {
		case c == '"':
			quoted = !quoted
			cur.WriteByte(c)
		case c == ',' && !quoted:
			emit()
		default:
			cur.WriteByte(c)
		}
	}
	emit()
	return out
}

// splitFilename guesses artifact and version from an archive's file name, as Maven and Gradle
// name them: "commons-lang3-3.12.0.jar" -> ("commons-lang3", "3.12.0"). The version starts at
// a "-" followed by a digit; when several qualify, the first one not followed by a lettered part
// (other than a release qualifier such as "rc" or "beta") that itself precedes a numbered part
// wins, so "log4j-1.2-api-2.17.1" gives "log4j-1.2-api"
// while "guava-31.1-jre" keeps "31.1-jre". A name without such a part yields no version.
func splitFilename(base string) (artifact, version string) {
	if isArchiveName(base) {
		base = base[:len(base)-4]
	}
	if base == "" {
		return "", ""
	}
	parts := strings.Split(base, "-")
	if len(parts) > 256 {
		return base, ""
	}
	isNum := func(p string) bool { return p != "" && p[0] >= '0' && p[0] <= '9' }
	for i := 1; i < len(parts); i++ {
		if !isNum(parts[i]) || i == 1 && parts[0] == "" {
			continue
		}
		ok := true
		for j := i + 1; j < len(parts)-1 && ok; j++ {
			if !isNum(parts[j]) && !isQualifier(parts[j]) && isNum(parts[j+1]) {
				ok = false
			}
		}
		if ok {
			return strings.Join(parts[:i], "-"), strings.Join(parts[i:], "-")
		}
	}
	return base, ""
}

// isQualifier reports whether p is a Maven release qualifier that may stand between numbers in a
// version ("1.0-rc-1", "2.0-beta-3").
func isQualifier(p string) bool {
	switch strings.ToLower(p) {
	case "alpha", "a", "beta", "b", "milestone", "m", "rc", "cr", "snapshot", "final", "ga",
		"release", "sp", "build", "patch", "pre", "preview", "dev", "incubating", "jre", "android":
		return true
	}
	return false
}
