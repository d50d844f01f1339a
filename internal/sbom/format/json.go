package format

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
)

// encodeJSON writes crowsnest's own schema (docs/SBOM-JSON.md): the JSON encoding of sbom.SBOM.
func encodeJSON(w io.Writer, s *sbom.SBOM) error {
	out := *s
	if out.SchemaVersion == "" {
		out.SchemaVersion = sbom.SchemaVersion
	}
	// The schema says "packages" and each package's "locations" are always arrays.
	out.Packages = make([]sbom.Package, len(s.Packages))
	copy(out.Packages, s.Packages)
	for i := range out.Packages {
		if out.Packages[i].Locations == nil {
			out.Packages[i].Locations = []sbom.Location{}
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(&out)
}

// DecodeJSON reads crowsnest's own JSON schema. Unknown fields are ignored (a newer crowsnest may
// add some), but a different schema version is refused.
func DecodeJSON(r io.Reader) (*sbom.SBOM, error) {
	data, err := readBounded(r, MaxDecodeSize)
	if err != nil {
		return nil, err
	}
	return decodeJSON(data)
}

func decodeJSON(data []byte) (*sbom.SBOM, error) {
	var s sbom.SBOM
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("decode crowsnest JSON: %w", err)
	}
	if s.SchemaVersion != sbom.SchemaVersion {
		return nil, fmt.Errorf("decode crowsnest JSON: schema version %q, this crowsnest reads %q", s.SchemaVersion, sbom.SchemaVersion)
	}
	if len(s.Packages) > maxPackages {
		return nil, fmt.Errorf("decode crowsnest JSON: %d packages, at most %d", len(s.Packages), maxPackages)
	}
	return &s, nil
}
