// Package ruby extracts installed Ruby gems from the gemspecs RubyGems writes into
// .../specifications/ (and .../specifications/default/ for gems bundled with Ruby).
//
// Those gemspecs are Ruby source, but machine-written by Gem::Specification#to_ruby in a regular
// shape (`s.name = "rake".freeze`), so a few line patterns read them without evaluating Ruby.
package ruby

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract"
)

// Metadata keys.
const (
	// MetaPlatform is the gem's platform when it is not plain "ruby" (e.g. "x86_64-linux",
	// "java"): native gems differ per platform.
	MetaPlatform = "platform"
	// MetaDefault is "true" for default gems, those shipped inside Ruby itself.
	MetaDefault = "default"
)

// maxGemspec bounds a gemspec; real ones are a few KB (the largest list every file of the gem).
const maxGemspec = 4 << 20

// Extractor reads installed gemspecs.
type Extractor struct{}

// New returns a gemspec extractor.
func New() *Extractor { return &Extractor{} }

// Name implements extract.Extractor.
func (*Extractor) Name() string { return "gemspec" }

// Version implements extract.Extractor.
func (*Extractor) Version() int { return 1 }

// MaxFileSize implements extract.MaxSizer.
func (*Extractor) MaxFileSize() int64 { return maxGemspec }

// Required implements extract.Extractor: *.gemspec directly inside a "specifications" or
// "specifications/default" directory.
func (*Extractor) Required(path string, mode fs.FileMode, size int64) bool {
	if !mode.IsRegular() || size <= 0 || size > maxGemspec || !strings.HasSuffix(path, ".gemspec") {
		return false
	}
	i := strings.LastIndexByte(path, '/')
	if i < 0 {
		return false
	}
	dir := path[:i]
	return strings.HasSuffix(dir, "/specifications") || strings.HasSuffix(dir, "/specifications/default")
}

// Extract implements extract.Extractor.
func (*Extractor) Extract(_ context.Context, in extract.Input) (extract.Result, error) {
	spec, err := parseGemspec(in.Content)
	if err != nil {
		return extract.Result{}, fmt.Errorf("parse gemspec %s: %w", in.Path, err)
	}
	p := sbom.Package{Type: sbom.TypeGem, Name: spec.name, Version: spec.version, Licenses: spec.licenses}
	md := map[string]string{}
	if spec.platform != "" && spec.platform != "ruby" {
		md[MetaPlatform] = spec.platform
	}
	if strings.HasSuffix(in.Path[:strings.LastIndexByte(in.Path, '/')+1], "/specifications/default/") {
		md[MetaDefault] = "true"
	}
	if len(md) > 0 {
		p.Metadata = md
	}
	return extract.Result{Packages: []sbom.Package{p}}, nil
}

type gemspec struct {
	name, version, platform string
	licenses                []string
}

// parseGemspec reads the attributes that identify a gem. The first assignment of each wins:
// to_ruby writes each once, before any conditional block.
func parseGemspec(b []byte) (gemspec, error) {
	var g gemspec
	var stubName, stubVersion string
	var haveLicenses, sawSpec bool
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), maxGemspec)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "# stub: ") && stubName == "" {
			// "# stub: bundler 2.1.4 ruby lib": RubyGems' fast-load header.
			if f := strings.Fields(line[len("# stub: "):]); len(f) >= 2 {
				stubName, stubVersion = f[0], f[1]
			}
			continue
		}
		if strings.Contains(line, "Gem::Specification.new") {
			sawSpec = true
			continue
		}
		attr, val, ok := assignment(line)
		if !ok {
			continue
		}
		switch attr {
		case "name":
			if g.name == "" {
				g.name, _ = stringValue(val)
			}
		case "version":
			if g.version == "" {
				g.version, _ = stringValue(strings.TrimPrefix(val, "Gem::Version.new("))
			}
		case "platform":
			if g.platform == "" {
				g.platform, _ = stringValue(val)
			}
		case "licenses", "license":
			if !haveLicenses {
				if strings.HasPrefix(val, "[") {
					g.licenses = arrayValue(val)
				} else if s, ok := stringValue(val); ok && s != "" {
					g.licenses = []string{s}
				}
				haveLicenses = true
			}
		}
	}
	if err := sc.Err(); err != nil {
		return g, err
	}
	if !sawSpec && g.name == "" {
		return g, errors.New("no Gem::Specification")
	}
	if g.name == "" {
		g.name = stubName
	}
	if g.version == "" && g.name == stubName {
		g.version = stubVersion
	}
	if !validName(g.name) {
		return g, fmt.Errorf("invalid gem name %q", g.name)
	}
	if g.version == "" || strings.ContainsAny(g.version, " \t") || !utf8.ValidString(g.version) {
		return g, fmt.Errorf("gem %s: invalid version %q", g.name, g.version)
	}
	return g, nil
}

// assignment splits "s.attr = value" (any receiver name) into attr and value.
func assignment(line string) (attr, val string, ok bool) {
	dot := strings.IndexByte(line, '.')
	if dot <= 0 || !isIdent(line[:dot]) {
		return "", "", false
	}
	rest := line[dot+1:]
	eq := strings.IndexByte(rest, '=')
	if eq <= 0 {
		return "", "", false
	}
	attr = strings.TrimSpace(rest[:eq])
	val = strings.TrimSpace(rest[eq+1:])
	if !isIdent(attr) || strings.HasPrefix(val, "=") { // "==" is a comparison
		return "", "", false
	}
	return attr, val, true
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// validName accepts the characters RubyGems allows in a gem name.
func validName(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c == '-' || c == '.' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// stringValue reads the Ruby string literal at the start of s: "..." (with escapes), '...' or
// %q{...}; a trailing .freeze or other code is ignored.
func stringValue(s string) (string, bool) {
	v, _, ok := literal(s)
	return v, ok
}

// literal reads one string literal at the start of s and returns it with the rest of s.
func literal(s string) (val, rest string, ok bool) {
	switch {
	case strings.HasPrefix(s, `"`):
		return doubleQuoted(s[1:])
	case strings.HasPrefix(s, `'`):
		end := strings.IndexByte(s[1:], '\'')
		if end < 0 {
			return "", "", false
		}
		return s[1 : 1+end], s[2+end:], true
	case strings.HasPrefix(s, "%q") && len(s) > 2:
		closer := map[byte]byte{'{': '}', '(': ')', '[': ']', '<': '>'}[s[2]]
		if closer == 0 {
			closer = s[2]
		}
		end := strings.IndexByte(s[3:], closer)
		if end < 0 {
			return "", "", false
		}
		return s[3 : 3+end], s[4+end:], true
	}
	return "", "", false
}

// doubleQuoted reads the body of a "..." literal (after its opening quote). to_ruby escapes
// with String#dump: \" \\ \n \t \uXXXX \u{...} \xNN and \#.
func doubleQuoted(s string) (val, rest string, ok bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			return b.String(), s[i+1:], true
		case c != '\\':
			b.WriteByte(c)
		case i+1 < len(s):
			i++
			switch e := s[i]; e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'u':
				if i+1 < len(s) && s[i+1] == '{' {
					end := strings.IndexByte(s[i:], '}')
					if end < 0 {
						return "", "", false
					}
					for _, h := range strings.Fields(s[i+2 : i+end]) {
						r, err := strconv.ParseUint(h, 16, 32)
						if err != nil {
							return "", "", false
						}
						b.WriteRune(rune(r))
					}
					i += end
				} else if i+4 < len(s) {
					r, err := strconv.ParseUint(s[i+1:i+5], 16, 32)
					if err != nil {
						return "", "", false
					}
					b.WriteRune(rune(r))
					i += 4
				} else {
					return "", "", false
				}
			case 'x':
				if i+2 >= len(s) {
					return "", "", false
				}
				n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
				if err != nil {
					return "", "", false
				}
				b.WriteByte(byte(n))
				i += 2
			default:
				b.WriteByte(e)
			}
		}
	}
	return "", "", false
}

// arrayValue reads the string literals of a one-line array: ["MIT".freeze, "Ruby".freeze].
func arrayValue(s string) []string {
	s = strings.TrimPrefix(s, "[")
	var out []string
	for len(out) < 64 {
		s = strings.TrimLeft(s, " \t,")
		v, rest, ok := literal(s)
		if !ok {
			break
		}
		if v != "" {
			out = append(out, strings.ToValidUTF8(v, "\uFFFD"))
		}
		rest = strings.TrimPrefix(rest, ".freeze")
		s = rest
	}
	return out
}
