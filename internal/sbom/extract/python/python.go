// Package python reports installed Python distributions from their core metadata: wheel installs
// (*.dist-info/METADATA), setuptools installs (*.egg-info/PKG-INFO) and the older single-file
// form (a regular file named *.egg-info), wherever they are (site-packages, dist-packages, virtual
// environments).
//
// Names are kept as written ("PyYAML"); PEP 503 normalization is the PURL code's job. Licenses
// come from the first of: License-Expression (PEP 639); License, unless it is empty, "UNKNOWN"
// or a pasted license text (several lines or over 120 characters); the "License ::" trove
// classifiers (their last part, e.g. "MIT License").
package python

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
	// maxSize bounds metadata files; the body is the long description, which can be large, but
	// only the header before it is read.
	maxSize = 16 << 20
	// maxHeaderBytes bounds the header part; real headers are a few kilobytes.
	maxHeaderBytes = 1 << 20
	// maxLicenses bounds the licenses kept from classifiers.
	maxLicenses = 16
	// maxLicenseField is the longest License value taken as a license name rather than a text.
	maxLicenseField = 120
)

// Extractor reads Python package metadata.
type Extractor struct{}

var (
	_ extract.Extractor = (*Extractor)(nil)
	_ extract.MaxSizer  = (*Extractor)(nil)
)

// New returns a Python metadata extractor.
func New() *Extractor { return &Extractor{} }

// Name implements extract.Extractor.
func (*Extractor) Name() string { return "python" }

// Version implements extract.Extractor.
func (*Extractor) Version() int { return 1 }

// MaxFileSize implements extract.MaxSizer.
func (*Extractor) MaxFileSize() int64 { return maxSize }

// Required implements extract.Extractor.
func (*Extractor) Required(path string, mode fs.FileMode, size int64) bool {
	if !mode.IsRegular() || size <= 0 || size > maxSize {
		return false
	}
	return isMetadataPath(path)
}

// isMetadataPath reports, without allocating, whether path is one of the metadata files.
func isMetadataPath(path string) bool {
	slash := strings.LastIndexByte(path, '/')
	base, dir := path[slash+1:], ""
	if slash >= 0 {
		dir = path[:slash]
	}
	switch base {
	case "METADATA":
		return hasStem(dir, ".dist-info")
	case "PKG-INFO":
		return hasStem(dir, ".egg-info")
	}
	return hasStem(path, ".egg-info")
}

// hasStem reports whether the last element of p ends in suffix after a non-empty stem.
func hasStem(p, suffix string) bool {
	if !strings.HasSuffix(p, suffix) {
		return false
	}
	stem := p[:len(p)-len(suffix)]
	return stem != "" && stem[len(stem)-1] != '/'
}

// Extract implements extract.Extractor.
func (*Extractor) Extract(ctx context.Context, in extract.Input) (extract.Result, error) {
	if err := ctx.Err(); err != nil {
		return extract.Result{}, err
	}
	p, err := Parse(in.Content)
	if err != nil {
		return extract.Result{}, fmt.Errorf("parse %s: %w", in.Path, err)
	}
	return extract.Result{Packages: []sbom.Package{p}}, nil
}

// header is the parsed header part of a core metadata file: field names as written, values in
// order of appearance, continuation lines joined with "\n".
type header map[string][]string

// Get returns the first value of a field, compared case-insensitively as email headers are.
func (h header) Get(name string) string {
	if v := h.values(name); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (h header) values(name string) []string {
	if v, ok := h[name]; ok {
		return v
	}
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return nil
}

// parseHeader reads the email-header format of core metadata up to the first blank line.
// Lines that are neither "Name: value" nor continuations are skipped: old PKG-INFO files
// written by hand contain such lines and the fields around them are still good.
func parseHeader(content []byte) (header, error) {
	h := header{}
	var last string // field the previous line belonged to
	rest := content
	read := 0
	for len(rest) > 0 {
		var line []byte
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
			read += i + 1
		} else {
			line, rest = rest, nil
			read += len(line)
		}
		if read > maxHeaderBytes {
			return nil, fmt.Errorf("header longer than %d bytes", maxHeaderBytes)
		}
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(line) == 0 {
			break // the body (long description) follows
		}
		if line[0] == ' ' || line[0] == '\t' {
			if last != "" {
				vals := h[last]
				vals[len(vals)-1] += "\n" + strings.TrimSpace(string(line))
			}
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			last = ""
			continue
		}
		name := strings.TrimSpace(string(line[:colon]))
		h[name] = append(h[name], strings.TrimSpace(string(line[colon+1:])))
		last = name
	}
	return h, nil
}

// Parse turns a METADATA or PKG-INFO file into a package.
func Parse(content []byte) (sbom.Package, error) {
	h, err := parseHeader(content)
	if err != nil {
		return sbom.Package{}, err
	}
	name, version := h.Get("Name"), h.Get("Version")
	if name == "" || strings.ContainsAny(name, "\n") {
		return sbom.Package{}, errors.New("no Name field")
	}
	if version == "" || strings.ContainsAny(version, "\n") {
		return sbom.Package{}, errors.New("no Version field")
	}
	return sbom.Package{Type: sbom.TypePyPI, Name: name, Version: version, Licenses: licenses(h)}, nil
}

func licenses(h header) []string {
	if e := h.Get("License-Expression"); e != "" {
		return []string{e}
	}
	if l := h.Get("License"); l != "" && !strings.EqualFold(l, "UNKNOWN") && !strings.Contains(l, "\n") && len(l) <= maxLicenseField {
		return []string{l}
	}
	var out []string
	for _, c := range h.values("Classifier") {
		parts := strings.Split(c, "::")
		if len(parts) < 2 || strings.TrimSpace(parts[0]) != "License" {
			continue
		}
		last := strings.TrimSpace(parts[len(parts)-1])
		// "License :: OSI Approved" alone says nothing about which license.
		if len(parts) == 2 && last == "OSI Approved" {
			continue
		}
		if last == "" || contains(out, last) {
			continue
		}
		out = append(out, last)
		if len(out) == maxLicenses {
			break
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
