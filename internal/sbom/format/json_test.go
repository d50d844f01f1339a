package format

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
)

func TestJSONRoundTrip(t *testing.T) {
	want := fixture()
	out := encode(t, JSON, want, Options{})
	if !bytes.HasPrefix(out, []byte("{\n  \"schemaVersion\": \"1\",")) {
		t.Fatalf("not indented crowsnest JSON:\n%.200s", out)
	}
	got, err := DecodeJSON(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip differs:\n got  %+v\n want %+v", got, want)
	}
	// Detection finds the same.
	got2, err := Decode(bytes.NewReader(out), "")
	if err != nil || !reflect.DeepEqual(got2, want) {
		t.Fatalf("Decode with detection: %v", err)
	}
}

func TestJSONRejectsOtherSchemaVersion(t *testing.T) {
	_, err := DecodeJSON(strings.NewReader(`{"schemaVersion":"2","image":{"reference":"x"},"packages":[]}`))
	if err == nil || !strings.Contains(err.Error(), `schema version "2"`) {
		t.Fatalf("err = %v, want schema version error", err)
	}
}

func TestJSONEmptyPackagesIsArray(t *testing.T) {
	s := &sbom.SBOM{Image: sbom.Image{Reference: "fs:///tmp/x"}}
	out := encode(t, JSON, s, Options{})
	if !bytes.Contains(out, []byte(`"packages": []`)) || !bytes.Contains(out, []byte(`"schemaVersion": "1"`)) {
		t.Fatalf("output:\n%s", out)
	}
}

// TestJSONSchemaDocumented keeps docs/SBOM-JSON.md in step with the model: every JSON field
// name of every type reachable from sbom.SBOM must be documented there.
func TestJSONSchemaDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/SBOM-JSON.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type, string)
	walk = func(ty reflect.Type, path string) {
		for ty.Kind() == reflect.Pointer || ty.Kind() == reflect.Slice || ty.Kind() == reflect.Map {
			ty = ty.Elem()
		}
		if ty.Kind() != reflect.Struct || seen[ty] || ty.PkgPath() != reflect.TypeFor[sbom.SBOM]().PkgPath() {
			return
		}
		seen[ty] = true
		for i := 0; i < ty.NumField(); i++ {
			f := ty.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			if !bytes.Contains(doc, []byte("`"+path+name+"`")) {
				t.Errorf("docs/SBOM-JSON.md does not document `%s%s`", path, name)
			}
			sub := path + name
			if f.Type.Kind() == reflect.Slice {
				sub += "[]"
			}
			walk(f.Type, sub+".")
		}
	}
	walk(reflect.TypeFor[sbom.SBOM](), "")
}
