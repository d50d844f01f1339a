package dotnet

import (
	"context"
	"io/fs"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract"
)

var (
	_ extract.Extractor = (*Extractor)(nil)
	_ extract.MaxSizer  = (*Extractor)(nil)
)

func extractFile(t *testing.T, file, path string) extract.Result {
	t.Helper()
	b, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	e := New()
	if !e.Required(path, 0o644, int64(len(b))) {
		t.Fatalf("Required(%s) = false", path)
	}
	res, err := e.Extract(context.Background(), extract.Input{Path: path, Mode: 0o644, Content: b})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) > 0 {
		t.Errorf("warnings %q", res.Warnings)
	}
	return res
}

func nameVersions(pkgs []sbom.Package) []string {
	var out []string
	for _, p := range pkgs {
		if p.Type != sbom.TypeNuGet || len(p.Licenses) != 0 {
			out = append(out, "unexpected type or licenses: "+p.Type)
		}
		out = append(out, p.Name+"@"+p.Version)
	}
	return out
}

// The order follows the "Name/Version" keys, so "A/..." sorts after "A.B/...".
func TestSDKDepsJSON(t *testing.T) {
	res := extractFile(t, "TestLibrary.deps.json", "/app/TestLibrary.deps.json")
	want := []string{
		"AWSSDK.Core@3.7.10.6",
		"Microsoft.Extensions.DependencyInjection.Abstractions@6.0.0",
		"Microsoft.Extensions.DependencyInjection@6.0.0",
		"Microsoft.Extensions.Logging.Abstractions@6.0.0",
		"Microsoft.Extensions.Logging@6.0.0",
		"Microsoft.Extensions.Options@6.0.0",
		"Microsoft.Extensions.Primitives@6.0.0",
		"Newtonsoft.Json@13.0.1",
		"Serilog.Sinks.Console@4.0.1",
		"Serilog@2.10.0",
		"System.Diagnostics.DiagnosticSource@6.0.0",
		"System.Runtime.CompilerServices.Unsafe@6.0.0",
	}
	if got := nameVersions(res.Packages); !reflect.DeepEqual(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	nj := res.Packages[7]
	if nj.Metadata[MetaSHA512] != "sha512-ppPFpBcvxdsfUonNcvITKqLl3bqxWbDCZIzDWHzjpdAHRFfZe0Dw9HmA0+za13IdyrgJwpkDTDA9fHaxOrt20A==" || nj.Metadata[MetaLibraryType] != "" {
		t.Errorf("metadata %v", nj.Metadata)
	}
}

func TestSelfContainedASPNET(t *testing.T) {
	res := extractFile(t, "Shop.Api.deps.json", "/app/Shop.Api.deps.json")
	want := []string{
		"Microsoft.AspNetCore.OpenApi@8.0.0",
		"Microsoft.Extensions.ApiDescription.Server@6.0.5",
		"Microsoft.OpenApi@1.4.3",
		"Swashbuckle.AspNetCore.Swagger@6.5.0",
		"Swashbuckle.AspNetCore@6.5.0",
		"Microsoft.AspNetCore.App.Runtime.linux-x64@8.0.0",
		"Microsoft.NETCore.App.Runtime.linux-x64@8.0.0",
	}
	if got := nameVersions(res.Packages); !reflect.DeepEqual(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	rt := res.Packages[6]
	if !reflect.DeepEqual(rt.Metadata, map[string]string{MetaLibraryType: "runtimepack"}) {
		t.Errorf("runtime pack metadata %v", rt.Metadata)
	}
}

func TestMalformed(t *testing.T) {
	e := New()
	in := `{"libraries":{"NoVersion":{"type":"package"},"Bad Name/1.0":{"type":"package"},"A/1/2":{"type":"package"},"Good/2.0.0-beta.1":{"type":"Package"},"P/1":{"type":"project"}}}`
	res, err := e.Extract(context.Background(), extract.Input{Path: "/a.deps.json", Content: []byte("\xef\xbb\xbf" + in)})
	if err != nil {
		t.Fatal(err)
	}
	if got := nameVersions(res.Packages); !reflect.DeepEqual(got, []string{"Good@2.0.0-beta.1"}) {
		t.Errorf("got %q", got)
	}
	if len(res.Warnings) != 3 {
		t.Errorf("warnings %q", res.Warnings)
	}
	for _, bad := range []string{``, `[]`, `{"runtimeTarget":{}}`, `{"libraries":[1]}`, `{"libraries":{"A/1":{"type":7}}}`} {
		if _, err := e.Extract(context.Background(), extract.Input{Path: "/x/b.deps.json", Content: []byte(bad)}); err == nil || !strings.Contains(err.Error(), "/x/b.deps.json") {
			t.Errorf("%q: want an error naming the file, got %v", bad, err)
		}
	}
}

func TestRequired(t *testing.T) {
	e := New()
	tests := []struct {
		path string
		mode fs.FileMode
		size int64
		want bool
	}{
		{"/app/Shop.Api.deps.json", 0o644, 10, true},
		{"/usr/share/dotnet/shared/Microsoft.NETCore.App/8.0.0/Microsoft.NETCore.App.deps.json", 0o644, 10, true},
		{"/app/Shop.Api.runtimeconfig.json", 0o644, 10, false},
		{"/app/deps.json.bak", 0o644, 10, false},
		{"/app/a.deps.json", fs.ModeSymlink, 10, false},
		{"/app/a.deps.json", 0o644, 0, false},
		{"/app/a.deps.json", 0o644, maxFile + 1, false},
	}
	for _, tt := range tests {
		if got := e.Required(tt.path, tt.mode, tt.size); got != tt.want {
			t.Errorf("Required(%q) = %v", tt.path, got)
		}
	}
	if n := testing.AllocsPerRun(100, func() { e.Required("/app/x.deps.json", 0o644, 10) }); n != 0 {
		t.Errorf("Required allocates %v times", n)
	}
}

func FuzzDepsJSON(f *testing.F) {
	for _, n := range []string{"TestLibrary.deps.json", "Shop.Api.deps.json"} {
		b, err := os.ReadFile("testdata/" + n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"libraries":{"runtimepack./1":{"type":"runtimepack"}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := parse(b)
		if err != nil {
			return
		}
		for _, p := range res.Packages {
			if !validID(p.Name) || p.Version == "" {
				t.Fatalf("accepted %+v", p)
			}
		}
	})
}
