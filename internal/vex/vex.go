// Package vex reads OpenVEX documents and applies their statements to findings, so that a
// vendor's or a team's "not affected" verdicts suppress what the matcher reported.
//
// The model is OpenVEX 0.2.0 (https://github.com/openvex/spec); the 0.0.1 shorthands (a
// vulnerability or product given as a bare string) are read too. openvex/go-vex is not used: it
// pulls in-toto, protobuf and YAML modules for what here are a few structs.
package vex

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Bounds on what one document may hold: VEX files come from anywhere.
const (
	MaxDocumentSize  = 16 << 20
	MaxStatements    = 1 << 16
	MaxProducts      = 1 << 12 // per statement
	MaxSubcomponents = 1 << 12 // per product
	MaxAliases       = 1 << 8  // per vulnerability
)

// ContextPrefix starts the @context of every OpenVEX document.
const ContextPrefix = "https://openvex.dev/ns"

// Status is a statement's verdict.
type Status string

// The four OpenVEX statuses.
const (
	StatusNotAffected        Status = "not_affected"
	StatusAffected           Status = "affected"
	StatusFixed              Status = "fixed"
	StatusUnderInvestigation Status = "under_investigation"
)

// Valid reports whether s is one of the four statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusNotAffected, StatusAffected, StatusFixed, StatusUnderInvestigation:
		return true
	}
	return false
}

// Suppresses reports whether a finding covered by a statement of this status stops being
// reported: the product is said not to be affected, or to carry the fix already.
func (s Status) Suppresses() bool { return s == StatusNotAffected || s == StatusFixed }

// Document is one OpenVEX document.
type Document struct {
	Context     string      `json:"@context"`
	ID          string      `json:"@id"`
	Author      string      `json:"author"`
	Role        string      `json:"role,omitempty"`
	Timestamp   *time.Time  `json:"timestamp,omitempty"`
	LastUpdated *time.Time  `json:"last_updated,omitempty"`
	Version     json.Number `json:"version,omitempty"`
	Tooling     string      `json:"tooling,omitempty"`
	Statements  []Statement `json:"statements"`
	// Source is where the document was read from (a file path); not part of the format.
	Source string `json:"-"`
}

// Statement gives one status of one vulnerability for some products.
type Statement struct {
	ID              string        `json:"@id,omitempty"`
	Vulnerability   Vulnerability `json:"vulnerability"`
	Timestamp       *time.Time    `json:"timestamp,omitempty"`
	LastUpdated     *time.Time    `json:"last_updated,omitempty"`
	Products        []Product     `json:"products,omitempty"`
	Status          Status        `json:"status"`
	StatusNotes     string        `json:"status_notes,omitempty"`
	Justification   string        `json:"justification,omitempty"`
	ImpactStatement string        `json:"impact_statement,omitempty"`
	ActionStatement string        `json:"action_statement,omitempty"`
}

// Vulnerability names the vulnerability a statement is about.
type Vulnerability struct {
	ID          string   `json:"@id,omitempty"`
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Aliases     []string `json:"aliases,omitempty"`
}

// UnmarshalJSON also reads the 0.0.1 form, where the vulnerability is a bare string.
func (v *Vulnerability) UnmarshalJSON(b []byte) error {
	if s, ok := bareString(b); ok {
		*v = Vulnerability{Name: s}
		return nil
	}
	type plain Vulnerability
	return json.Unmarshal(b, (*plain)(v))
}

// IDs returns the vulnerability's name, @id and aliases, without empties.
func (v *Vulnerability) IDs() []string {
	out := make([]string, 0, 2+len(v.Aliases))
	for _, s := range append([]string{v.Name, v.ID}, v.Aliases...) {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Component identifies a piece of software: by @id (usually a PURL), by identifiers (purl,
// cpe22, cpe23) or by hashes.
type Component struct {
	ID          string            `json:"@id,omitempty"`
	Identifiers map[string]string `json:"identifiers,omitempty"`
	Hashes      map[string]string `json:"hashes,omitempty"`
}

// UnmarshalJSON also reads the 0.0.1 form, where a product is a bare string.
func (c *Component) UnmarshalJSON(b []byte) error {
	if s, ok := bareString(b); ok {
		*c = Component{ID: s}
		return nil
	}
	type plain Component
	return json.Unmarshal(b, (*plain)(c))
}

// Product is a component a statement applies to, optionally narrowed to some of its
// subcomponents (the packages of an image).
type Product struct {
	Component
	Subcomponents []Component `json:"subcomponents,omitempty"`
}

// UnmarshalJSON reads both forms; Component's method would otherwise swallow Subcomponents.
func (p *Product) UnmarshalJSON(b []byte) error {
	if s, ok := bareString(b); ok {
		*p = Product{Component: Component{ID: s}}
		return nil
	}
	var raw struct {
		ID            string            `json:"@id"`
		Identifiers   map[string]string `json:"identifiers"`
		Hashes        map[string]string `json:"hashes"`
		Subcomponents []Component       `json:"subcomponents"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*p = Product{Component: Component{ID: raw.ID, Identifiers: raw.Identifiers, Hashes: raw.Hashes}, Subcomponents: raw.Subcomponents}
	return nil
}

func bareString(b []byte) (string, bool) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '"' {
		return "", false
	}
	var s string
	if json.Unmarshal(b, &s) != nil {
		return "", false
	}
	return s, true
}

// ErrNotOpenVEX is returned (wrapped) by Parse for JSON that is not an OpenVEX document.
var ErrNotOpenVEX = errors.New("not an OpenVEX document")

// Parse reads one OpenVEX document, checks it and bounds it. Statements without a timestamp
// take the document's, as the specification says.
func Parse(r io.Reader) (*Document, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxDocumentSize+1))
	if err != nil {
		return nil, fmt.Errorf("read OpenVEX document: %w", err)
	}
	if len(data) > MaxDocumentSize {
		return nil, fmt.Errorf("OpenVEX document larger than %d bytes", MaxDocumentSize)
	}
	return parse(data)
}

func parse(data []byte) (*Document, error) {
	var head struct {
		Context json.RawMessage `json:"@context"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotOpenVEX, err)
	}
	var ctx string
	if !isContext(head.Context, &ctx) {
		return nil, fmt.Errorf("%w: @context does not start with %s", ErrNotOpenVEX, ContextPrefix)
	}
	// MaxDocumentSize bounds the memory decoding takes; the counts are checked afterwards so
	// that later stages (matching every statement against every finding) stay bounded too.
	var body struct {
		Document
		Context json.RawMessage `json:"@context"` // a string or a JSON-LD array, read above
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil {
		return nil, fmt.Errorf("decode OpenVEX document: %w", err)
	}
	doc := body.Document
	doc.Context = ctx
	if n := len(doc.Statements); n > MaxStatements {
		return nil, fmt.Errorf("OpenVEX document has %d statements, more than %d", n, MaxStatements)
	}
	for i := range doc.Statements {
		st := &doc.Statements[i]
		if !st.Status.Valid() {
			return nil, fmt.Errorf("statement %d: invalid status %q (want not_affected, affected, fixed or under_investigation)", i, st.Status)
		}
		if len(st.Vulnerability.IDs()) == 0 {
			return nil, fmt.Errorf("statement %d: no vulnerability name", i)
		}
		if n := len(st.Products); n > MaxProducts {
			return nil, fmt.Errorf("statement %d has %d products, more than %d", i, n, MaxProducts)
		}
		for j := range st.Products {
			if n := len(st.Products[j].Subcomponents); n > MaxSubcomponents {
				return nil, fmt.Errorf("statement %d product %d has %d subcomponents, more than %d", i, j, n, MaxSubcomponents)
			}
		}
		if n := len(st.Vulnerability.Aliases); n > MaxAliases {
			return nil, fmt.Errorf("statement %d has %d vulnerability aliases, more than %d", i, n, MaxAliases)
		}
		if st.Timestamp == nil {
			st.Timestamp = doc.Timestamp
		}
	}
	return &doc, nil
}

// isContext accepts "https://openvex.dev/ns/v0.2.0" or a JSON-LD array that contains it.
func isContext(raw json.RawMessage, out *string) bool {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		*out = s
		return strings.HasPrefix(s, ContextPrefix)
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil || len(list) > 16 {
		return false
	}
	for _, item := range list {
		if json.Unmarshal(item, &s) == nil && strings.HasPrefix(s, ContextPrefix) {
			*out = s
			return true
		}
	}
	return false
}
