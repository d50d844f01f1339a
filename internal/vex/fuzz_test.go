package vex

import (
	"os"
	"path/filepath"
	"testing"
)

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"@context":["https://openvex.dev/ns/v0.2.0"],"statements":[{"vulnerability":"CVE-1","products":["pkg:npm/a"],"status":"fixed"}]}`))
	fs := findings()
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := ParseBytes(data)
		if err != nil {
			return
		}
		for _, st := range doc.Statements {
			if !st.Status.Valid() {
				t.Fatalf("invalid status %q accepted", st.Status)
			}
		}
		kept, suppressed := Apply(fs, imageDigest, []*Document{doc})
		if len(kept)+len(suppressed) != len(fs) {
			t.Fatalf("Apply lost findings: %d + %d != %d", len(kept), len(suppressed), len(fs))
		}
	})
}
