package format

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

func TestFormats(t *testing.T) {
	if got := Formats(); !slices.Equal(got, []string{"list", "json", "cyclonedx", "spdx"}) {
		t.Fatalf("Formats() = %q", got)
	}
	for alias, want := range map[string]string{"table": "list", "CycloneDX-JSON": "cyclonedx", "spdx-json": "spdx", " json ": "json"} {
		if got, ok := Canonical(alias); !ok || got != want {
			t.Errorf("Canonical(%q) = %q, %v", alias, got, ok)
		}
	}
}

func TestEncodeUnknownFormat(t *testing.T) {
	var buf bytes.Buffer
	err := Encode(&buf, "sarif", fixture(), Options{})
	if err == nil || !strings.Contains(err.Error(), `"sarif"`) || !strings.Contains(err.Error(), "list, json, cyclonedx, spdx") {
		t.Fatalf("err = %v, want one naming the format and the accepted ones", err)
	}
	if buf.Len() != 0 {
		t.Errorf("wrote %d bytes for an unknown format", buf.Len())
	}
	if err := Encode(&buf, "json", nil, Options{}); err == nil {
		t.Error("nil SBOM: no error")
	}
}

func TestEncodeWriteError(t *testing.T) {
	boom := errors.New("disk full")
	for _, name := range Formats() {
		err := Encode(failingWriter{boom}, name, fixture(), Options{})
		if !errors.Is(err, boom) {
			t.Errorf("%s: err = %v, want the writer's error", name, err)
		}
	}
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

func TestDecodeNamedFormats(t *testing.T) {
	s := fixture()
	for _, name := range DecodeFormats() {
		got, err := Decode(bytes.NewReader(encode(t, name, s, Options{})), name)
		if err != nil {
			t.Fatalf("Decode(%s): %v", name, err)
		}
		if len(got.Packages) != len(s.Packages) {
			t.Errorf("%s: %d packages, want %d", name, len(got.Packages), len(s.Packages))
		}
	}
	if _, err := Decode(strings.NewReader("{}"), "list"); err == nil || !strings.Contains(err.Error(), "json, cyclonedx, spdx") {
		t.Errorf("decoding the list format: err = %v", err)
	}
	// A named format that does not match the content fails rather than guessing.
	if _, err := Decode(bytes.NewReader(encode(t, SPDX, s, Options{})), CycloneDX); err == nil {
		t.Error("SPDX decoded as CycloneDX")
	}
}

func TestDetect(t *testing.T) {
	for doc, want := range map[string]string{
		`{"bomFormat":"CycloneDX","specVersion":"1.5"}`:                 CycloneDX,
		`{"spdxVersion":"SPDX-2.2","SPDXID":"SPDXRef-DOCUMENT"}`:        SPDX,
		`{"schemaVersion":"1","image":{"reference":"x"},"packages":[]}`: JSON,
		`{"schemaVersion":2,"artifacts":[]}`:                            "",
		`{"spdxVersion":"SPDX-3.0"}`:                                    "",
		`not json`:                                                      "",
	} {
		got, err := Detect([]byte(doc))
		if got != want || (want == "") != (err != nil) {
			t.Errorf("Detect(%s) = %q, %v; want %q", doc, got, err, want)
		}
	}
}

func TestReadBounded(t *testing.T) {
	if _, err := readBounded(strings.NewReader(strings.Repeat("x", 11)), 10); err == nil || !strings.Contains(err.Error(), "larger than 10 bytes") {
		t.Errorf("err = %v", err)
	}
	if b, err := readBounded(strings.NewReader(strings.Repeat("x", 10)), 10); err != nil || len(b) != 10 {
		t.Errorf("exactly at the limit: %d bytes, %v", len(b), err)
	}
	if _, err := Decode(iotest.ErrReader(io.ErrUnexpectedEOF), ""); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("read error: %v", err)
	}
}

func TestFilterLeavesInputAlone(t *testing.T) {
	s := fixture()
	f := Filter(s, []string{"deb"})
	if len(f.Packages) != 3 || len(s.Packages) != 12 {
		t.Fatalf("filtered %d, original %d", len(f.Packages), len(s.Packages))
	}
	if Filter(s, nil) != s {
		t.Error("no filter should return the SBOM as is")
	}
}
