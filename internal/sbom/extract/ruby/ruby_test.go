package ruby

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

func TestRealGemspecs(t *testing.T) {
	tests := []struct {
		file, path string
		want       sbom.Package
	}{
		{
			"specifications/debug-1.4.0.gemspec", "/usr/lib/ruby/gems/3.1.0/specifications/debug-1.4.0.gemspec",
			sbom.Package{Type: "gem", Name: "debug", Version: "1.4.0", Licenses: []string{"Ruby", "BSD-2-Clause"}},
		},
		{
			"specifications/default/bundler-2.3.7.gemspec", "/usr/lib/ruby/gems/3.1.0/specifications/default/bundler-2.3.7.gemspec",
			sbom.Package{Type: "gem", Name: "bundler", Version: "2.3.7", Licenses: []string{"MIT"}, Metadata: map[string]string{MetaDefault: "true"}},
		},
		{
			"specifications/default/base64-0.1.1.gemspec", "/usr/local/lib/ruby/gems/3.1.0/specifications/default/base64-0.1.1.gemspec",
			sbom.Package{Type: "gem", Name: "base64", Version: "0.1.1", Licenses: []string{"Ruby", "BSD-2-Clause"}, Metadata: map[string]string{MetaDefault: "true"}},
		},
		{
			"rubygems-integration/rack-2.2.22.gemspec", "/usr/share/rubygems-integration/all/specifications/rack-2.2.22.gemspec",
			sbom.Package{Type: "gem", Name: "rack", Version: "2.2.22", Licenses: []string{"MIT"}},
		},
		{
			"vendor-bundle/specifications/nokogiri-1.15.4-x86_64-linux.gemspec", "/app/vendor/bundle/ruby/3.2.0/specifications/nokogiri-1.15.4-x86_64-linux.gemspec",
			sbom.Package{Type: "gem", Name: "nokogiri", Version: "1.15.4", Licenses: []string{"MIT"}, Metadata: map[string]string{MetaPlatform: "x86_64-linux"}},
		},
	}
	e := New()
	for _, tt := range tests {
		b, err := os.ReadFile("testdata/" + tt.file)
		if err != nil {
			t.Fatal(err)
		}
		if !e.Required(tt.path, 0o644, int64(len(b))) {
			t.Errorf("Required(%s) = false", tt.path)
		}
		res, err := e.Extract(context.Background(), extract.Input{Path: tt.path, Mode: 0o644, Content: b})
		if err != nil {
			t.Fatalf("%s: %v", tt.file, err)
		}
		if len(res.Packages) != 1 || !reflect.DeepEqual(res.Packages[0], tt.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.file, res.Packages, tt.want)
		}
	}
}

func TestGemspecVariants(t *testing.T) {
	tests := []struct {
		name, in          string
		gem, ver, license string
	}{
		{"old %q form", "Gem::Specification.new do |s|\n  s.name = %q{rake}\n  s.version = \"0.8.7\"\n  s.license = %q{MIT}\nend\n", "rake", "0.8.7", "MIT"},
		{"spec receiver, single quotes", "Gem::Specification.new do |spec|\n  spec.name = 'foo-bar_baz.x'\n  spec.version = Gem::Version.new(\"1.0.0.pre\")\nend\n", "foo-bar_baz.x", "1.0.0.pre", ""},
		{"stub header only", "# stub: thor 1.2.1 ruby lib\nGem::Specification.new do |s|\nend\n", "thor", "1.2.1", ""},
		{"escapes", "Gem::Specification.new do |s|\n  s.name = \"a\".freeze\n  s.version = \"1\\x2E0\"\n  s.licenses = [\"Nonstandard \\u{1F600} \\\"x\\\"\".freeze, \"GPL-2.0\".freeze]\nend\n", "a", "1.0", "Nonstandard \U0001F600 \"x\""},
		{"comparison is not assignment", "Gem::Specification.new do |s|\n  if s.name == \"x\" then end\n  s.name = \"y\"\n  s.version = \"2\"\n  s.name = \"z\"\nend\n", "y", "2", ""},
	}
	for _, tt := range tests {
		g, err := parseGemspec([]byte(tt.in))
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		lic := ""
		if len(g.licenses) > 0 {
			lic = g.licenses[0]
		}
		if g.name != tt.gem || g.version != tt.ver || lic != tt.license {
			t.Errorf("%s: got %q %q %q", tt.name, g.name, g.version, g.licenses)
		}
	}
}

func TestGemspecErrors(t *testing.T) {
	for _, in := range []string{
		"",
		"puts 'hello'\n",
		"Gem::Specification.new do |s|\n  s.version = \"1\"\nend\n",
		"Gem::Specification.new do |s|\n  s.name = \"a b\"\n  s.version = \"1\"\nend\n",
		"Gem::Specification.new do |s|\n  s.name = \"ok\"\nend\n",
		"Gem::Specification.new do |s|\n  s.name = \"ok\"\n  s.version = \"1 2\"\nend\n",
		"Gem::Specification.new do |s|\n  s.name = \"unterminated\n  s.version = \"1\"\nend\n",
	} {
		_, err := New().Extract(context.Background(), extract.Input{Path: "/g/specifications/x.gemspec", Content: []byte(in)})
		if err == nil || !strings.Contains(err.Error(), "/g/specifications/x.gemspec") {
			t.Errorf("%q: want an error naming the file, got %v", in, err)
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
		{"/usr/lib/ruby/gems/3.1.0/specifications/rake-13.0.6.gemspec", 0o644, 100, true},
		{"/usr/lib/ruby/gems/3.1.0/specifications/default/json-2.6.1.gemspec", 0o644, 100, true},
		{"/usr/share/rubygems-integration/all/specifications/rack-2.2.22.gemspec", 0o644, 100, true},
		{"/usr/lib/ruby/gems/3.1.0/gems/rake-13.0.6/rake.gemspec", 0o644, 100, false},
		{"/src/app/app.gemspec", 0o644, 100, false},
		{"/specifications/x.gemspec", 0o644, 100, true},
		{"/a/specifications/sub/x.gemspec", 0o644, 100, false},
		{"/a/specifications/x.gemspec.bak", 0o644, 100, false},
		{"/a/specifications/x.gemspec", fs.ModeSymlink, 100, false},
		{"/a/specifications/x.gemspec", 0o644, 0, false},
		{"/a/specifications/x.gemspec", 0o644, maxGemspec + 1, false},
	}
	for _, tt := range tests {
		if got := e.Required(tt.path, tt.mode, tt.size); got != tt.want {
			t.Errorf("Required(%q) = %v", tt.path, got)
		}
	}
	if n := testing.AllocsPerRun(100, func() { e.Required("/usr/lib/ruby/gems/3.1.0/specifications/default/x.gemspec", 0o644, 10) }); n != 0 {
		t.Errorf("Required allocates %v times", n)
	}
}

func FuzzGemspec(f *testing.F) {
	for _, n := range []string{"specifications/debug-1.4.0.gemspec", "rubygems-integration/rack-2.2.22.gemspec", "vendor-bundle/specifications/nokogiri-1.15.4-x86_64-linux.gemspec"} {
		b, err := os.ReadFile("testdata/" + n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("s.name = \"\\u{41 42\"\ns.licenses = [\"\\x4\", %q<a>]\ns.version = Gem::Version.new(\"1\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := parseGemspec(b)
		if err != nil {
			return
		}
		if !validName(g.name) || g.version == "" {
			t.Fatalf("accepted %+v", g)
		}
	})
}
