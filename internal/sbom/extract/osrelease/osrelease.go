// Package osrelease reads os-release(5) files to tell which distribution an image runs; the
// vulnerability matcher needs the distribution and release to pick the right advisories.
package osrelease

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract"
)

const (
	etcPath = "/etc/os-release"
	usrPath = "/usr/lib/os-release"

	// maxFileSize is far above any real os-release (a few hundred bytes) yet keeps a hostile
	// file from costing much.
	maxFileSize = 64 << 10
	// maxLines bounds the work on a file of empty lines.
	maxLines = 4096
)

// Extractor reads /etc/os-release and /usr/lib/os-release. When an image has both (the usual
// case is /etc/os-release being a symlink to the other), both yield the same OS; which one wins
// is the pipeline's choice.
type Extractor struct{}

// New returns the os-release extractor.
func New() *Extractor { return &Extractor{} }

var _ extract.Extractor = (*Extractor)(nil)
var _ extract.MaxSizer = (*Extractor)(nil)

// Name implements extract.Extractor.
func (*Extractor) Name() string { return "osrelease" }

// Version implements extract.Extractor.
func (*Extractor) Version() int { return 1 }

// MaxFileSize implements extract.MaxSizer.
func (*Extractor) MaxFileSize() int64 { return maxFileSize }

// Required implements extract.Extractor.
func (*Extractor) Required(path string, mode fs.FileMode, _ int64) bool {
	if !mode.IsRegular() && mode&fs.ModeSymlink == 0 {
		return false
	}
	return path == etcPath || path == usrPath
}

// Extract implements extract.Extractor.
func (*Extractor) Extract(_ context.Context, in extract.Input) (extract.Result, error) {
	osInfo, warnings, err := Parse(in.Content)
	if err != nil {
		return extract.Result{}, fmt.Errorf("parse %s: %w", in.Path, err)
	}
	return extract.Result{OS: osInfo, Warnings: warnings}, nil
}

// ErrEmpty is returned for a file without a single valid assignment.
var ErrEmpty = errors.New("no os-release assignments")

// Parse reads an os-release file. Malformed lines are skipped and reported as warnings. ID
// defaults to "linux" as os-release(5) says, but only when the file has some valid assignment:
// a file of garbage is an error, not Linux.
//
// Debian testing and unstable ship no VERSION_ID; their PRETTY_NAME reads "Debian GNU/Linux
// trixie/sid". When VERSION_CODENAME is missing too (older images), the codename is taken from
// PRETTY_NAME so that the matcher can still tell the release.
func Parse(content []byte) (*sbom.OS, []string, error) {
	vars, valid, warnings := parseVars(content)
	if valid == 0 {
		return nil, warnings, ErrEmpty
	}
	o := &sbom.OS{
		ID:              vars["ID"],
		VersionID:       vars["VERSION_ID"],
		VersionCodename: vars["VERSION_CODENAME"],
		PrettyName:      vars["PRETTY_NAME"],
	}
	if o.ID == "" {
		o.ID = "linux"
	}
	if o.ID == "debian" && o.VersionID == "" && o.VersionCodename == "" {
		o.VersionCodename = debianCodename(o.PrettyName)
	}
	return o, warnings, nil
}

// debianCodename extracts "trixie" from "Debian GNU/Linux trixie/sid".
func debianCodename(pretty string) string {
	fields := strings.Fields(pretty)
	if len(fields) == 0 {
		return ""
	}
	last := fields[len(fields)-1]
	name, ok := strings.CutSuffix(last, "/sid")
	if !ok || name == "" || !isName(name) {
		return ""
	}
	return name
}

func isName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// parseVars reads the shell-compatible assignments of os-release(5). Only the four variables the
// model needs are kept, so a file of thousands of variables costs no memory. valid counts all
// well-formed assignments.
func parseVars(content []byte) (vars map[string]string, valid int, warnings []string) {
	vars = map[string]string{}
	lines := 0
	for len(content) > 0 {
		lines++
		if lines > maxLines {
			warnings = append(warnings, fmt.Sprintf("more than %d lines, rest ignored", maxLines))
			break
		}
		var line []byte
		if i := bytes.IndexByte(content, '\n'); i >= 0 {
			line, content = content[:i], content[i+1:]
		} else {
			line, content = content, nil
		}
		line = bytes.TrimSpace(line) // also drops the CR of CRLF files
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		eq := bytes.IndexByte(line, '=')
		if eq <= 0 || !isVarName(line[:eq]) {
			warnings = append(warnings, fmt.Sprintf("line %d: not an assignment", lines))
			continue
		}
		value, ok := unquote(line[eq+1:])
		if !ok {
			warnings = append(warnings, fmt.Sprintf("line %d: bad quoting", lines))
			continue
		}
		valid++
		switch name := string(line[:eq]); name {
		case "ID", "VERSION_ID", "VERSION_CODENAME", "PRETTY_NAME":
			vars[name] = value
		}
	}
	return vars, valid, warnings
}

func isVarName(b []byte) bool {
	for i, c := range b {
		switch {
		case c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'):
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// unquote applies the shell quoting os-release(5) allows: a double-quoted string with \" \\ \$
// and \` escapes, a single-quoted literal string, or an unquoted word where a backslash escapes
// the next character. Several quoted parts may follow each other ("a"'b'), as in a shell.
func unquote(v []byte) (string, bool) {
	var sb strings.Builder
	for i := 0; i < len(v); {
		switch c := v[i]; c {
		case '"':
			i++
			for {
				if i >= len(v) {
					return "", false
				}
				c := v[i]
				if c == '"' {
					i++
					break
				}
				if c == '\\' && i+1 < len(v) {
					switch n := v[i+1]; n {
					case '"', '\\', '$', '`':
						sb.WriteByte(n)
						i += 2
						continue
					}
				}
				sb.WriteByte(c)
				i++
			}
		case '\'':
			end := bytes.IndexByte(v[i+1:], '\'')
			if end < 0 {
				return "", false
			}
			sb.Write(v[i+1 : i+1+end])
			i += end + 2
		case '\\':
			if i+1 >= len(v) {
				return "", false
			}
			sb.WriteByte(v[i+1])
			i += 2
		case ' ', '\t', '`', '$', ';', '&', '|', '<', '>', '(', ')':
			// Unquoted whitespace or shell syntax: not a plain assignment.
			return "", false
		default:
			sb.WriteByte(c)
			i++
		}
	}
	return sb.String(), true
}
