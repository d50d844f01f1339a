package artifactory

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
)

type jsonFrame struct {
	object bool
	n      int // entries written so far
}

// jackson re-indents compact JSON the way Artifactory's Jackson DefaultPrettyPrinter does:
// `"key" : value`, objects broken over lines with two-space indents, arrays kept inline with a
// space inside the brackets (`[ 1, 2 ]`, `[ {` ... `} ]`), and `{ }` / `[ ]` when empty. Arrays
// do not add to the indentation (Jackson's array indenter is inline). Receivers must parse JSON,
// but byte-faithful bodies keep clients honest about that.
func jackson(compact []byte) []byte {
	var out bytes.Buffer
	out.Grow(len(compact) + len(compact)/2)
	var stack []jsonFrame
	nesting := 0
	indent := func(level int) {
		out.WriteByte('\n')
		for i := 0; i < level; i++ {
			out.WriteString("  ")
		}
	}
	inObject := func() bool { return len(stack) > 0 && stack[len(stack)-1].object }
	// entry writes what precedes a key (in an object) or a value (in an array).
	entry := func() {
		if len(stack) == 0 {
			return
		}
		top := &stack[len(stack)-1]
		switch {
		case top.object:
			if top.n > 0 {
				out.WriteByte(',')
			}
			indent(nesting)
		case top.n > 0:
			out.WriteString(", ")
		default:
			out.WriteByte(' ')
		}
		top.n++
	}
	afterColon := false // the next token is an object member's value
	for i := 0; i < len(compact); i++ {
		c := compact[i]
		switch c {
		case '{', '[':
			if !afterColon {
				entry()
			}
			afterColon = false
			out.WriteByte(c)
			stack = append(stack, jsonFrame{object: c == '{'})
			if c == '{' {
				nesting++
			}
		case '}':
			top := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			nesting--
			if top.n > 0 {
				indent(nesting)
			} else {
				out.WriteByte(' ')
			}
			out.WriteByte('}')
		case ']':
			stack = stack[:len(stack)-1]
			out.WriteString(" ]")
		case ',':
			// entry writes separators
		case ':':
			out.WriteString(" : ")
			afterColon = true
		default:
			j := i
			if c == '"' {
				j++
				for j < len(compact) && compact[j] != '"' {
					if compact[j] == '\\' {
						j++
					}
					j++
				}
				j++
			} else {
				for j < len(compact) && bytes.IndexByte([]byte(",:]}"), compact[j]) < 0 {
					j++
				}
			}
			j = min(j, len(compact))
			if !afterColon || !inObject() {
				entry()
			}
			afterColon = false
			out.Write(compact[i:j])
			i = j - 1
		}
	}
	return out.Bytes()
}

// writeJackson writes v as Artifactory REST JSON (Jackson pretty printing).
func writeJackson(w http.ResponseWriter, status int, v any) {
	b, err := marshalCompact(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	b = jackson(b)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// marshalCompact encodes without HTML escaping (Java encoders do not escape <, > and &).
func marshalCompact(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

type restError struct {
	Status  int    `json:"status"`
	Message string `json:"message"`
}

type restErrors struct {
	Errors []restError `json:"errors"`
}

// writeRESTError writes the REST API error envelope (spec §6.1).
func writeRESTError(w http.ResponseWriter, status int, message string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="Artifactory Realm"`)
	}
	writeJackson(w, status, restErrors{Errors: []restError{{Status: status, Message: message}}})
}

type dockerError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail"`
}

// writeDockerError writes the Docker Distribution envelope with Artifactory's Docker-route
// content type and a trailing newline (spec §1.2, §6.2).
func writeDockerError(w http.ResponseWriter, status int, code, message string) {
	b, _ := marshalCompact(struct {
		Errors []dockerError `json:"errors"`
	}{Errors: []dockerError{{Code: code, Message: message}}})
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json;charset=ISO-8859-1")
	w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
