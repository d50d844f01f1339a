package dpkg

import (
	"bytes"
	"fmt"

	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract"
)

// Bounds of the deb822 reader. A Debian system with every package of the archive installed has
// well under 100,000 stanzas; a status stanza has a few dozen fields; the longest single lines
// are Depends and Description lines of a few kilobytes.
const (
	maxStanzas  = 200_000
	maxFields   = 512
	maxLineLen  = 256 << 10
	maxWarnings = 100
)

// field is one deb822 field. name and value point into the parsed buffer. The value of a
// multi-line field is its raw text: the first line's value, then the continuation lines as
// written (newlines and leading blanks included); the fields this package reads are one line.
type field struct {
	name, value []byte
}

// stanza is one paragraph of a deb822 file.
type stanza struct {
	line   int // line number of its first field, for warnings
	fields []field
}

// get returns the value of the named field (field names are case-insensitive in deb822).
func (s *stanza) get(name string) []byte {
	for _, f := range s.fields {
		if len(f.name) == len(name) && bytes.EqualFold(f.name, []byte(name)) {
			return f.value
		}
	}
	return nil
}

// readStanzas splits deb822 text (RFC 822-style paragraphs separated by blank lines, as in
// dpkg's status file) and calls fn for each well-formed stanza. The stanza passed to fn is only
// valid during the call. Malformed stanzas are skipped; the returned warnings say which.
// Tolerated: CRLF line ends, several blank lines (or lines of blanks) between stanzas, '#'
// comment lines, a missing final newline.
func readStanzas(content []byte, fn func(*stanza)) []string {
	var (
		w       extract.Warnings
		cur     stanza
		starts  []int  // offset in content where each field's value starts; -1 while empty
		bad     string // why the current stanza is malformed; "" when it is fine
		lineNo  int
		count   int
		stopped bool
	)
	flush := func() {
		switch {
		case bad != "":
			w.Addf("stanza at line %d: %s; skipped", cur.line, bad)
		case len(cur.fields) > 0:
			count++
			if count > maxStanzas {
				w.Addf("more than %d stanzas; rest ignored", maxStanzas)
				stopped = true
				break
			}
			fn(&cur)
		}
		cur.fields, starts = cur.fields[:0], starts[:0]
		cur.line = 0
		bad = ""
	}
	for pos := 0; pos < len(content) && !stopped; {
		lineStart := pos
		lineEnd := len(content)
		if i := bytes.IndexByte(content[pos:], '\n'); i >= 0 {
			lineEnd = pos + i
			pos = lineEnd + 1
		} else {
			pos = lineEnd
		}
		lineNo++
		if lineEnd > lineStart && content[lineEnd-1] == '\r' {
			lineEnd--
		}
		line := content[lineStart:lineEnd]
		if isBlank(line) {
			flush()
			continue
		}
		if cur.line == 0 {
			cur.line = lineNo
		}
		if bad != "" {
			continue // skip to the end of the malformed stanza
		}
		switch {
		case len(line) > maxLineLen:
			bad = fmt.Sprintf("line %d longer than %d bytes", lineNo, maxLineLen)
		case line[0] == '#':
			// Comment: allowed in deb822 control files, harmless elsewhere.
		case line[0] == ' ' || line[0] == '\t':
			if len(cur.fields) == 0 {
				bad = fmt.Sprintf("line %d: continuation line without a field", lineNo)
				break
			}
			i := len(cur.fields) - 1
			if starts[i] < 0 {
				// The value starts on a continuation line ("Description:" then text lines).
				starts[i] = lineStart + skipBlanks(line)
			}
			// The buffer is contiguous, so the raw value spans up to this line's end.
			cur.fields[i].value = content[starts[i]:lineEnd]
		default:
			colon := bytes.IndexByte(line, ':')
			if colon <= 0 || !isFieldName(line[:colon]) {
				bad = fmt.Sprintf("line %d: not a field", lineNo)
				break
			}
			name := line[:colon]
			if cur.has(name) {
				bad = fmt.Sprintf("line %d: duplicate field %q", lineNo, name)
				break
			}
			if len(cur.fields) >= maxFields {
				bad = fmt.Sprintf("more than %d fields", maxFields)
				break
			}
			value := bytes.TrimSpace(line[colon+1:])
			start := -1
			if len(value) > 0 {
				start = lineStart + colon + 1 + skipBlanks(line[colon+1:])
			}
			cur.fields = append(cur.fields, field{name: name, value: value})
			starts = append(starts, start)
		}
	}
	if !stopped {
		flush()
	}
	return w.List()
}

func (s *stanza) has(name []byte) bool {
	for _, f := range s.fields {
		if bytes.EqualFold(f.name, name) {
			return true
		}
	}
	return false
}

func skipBlanks(b []byte) int {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	return i
}

func isBlank(b []byte) bool { return skipBlanks(b) == len(b) }

// isFieldName follows deb822: printable US-ASCII except space and colon, not starting with '#'
// or '-'.
func isFieldName(b []byte) bool {
	if len(b) == 0 || b[0] == '#' || b[0] == '-' {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c > '~' || c == ':' {
			return false
		}
	}
	return true
}
