package php

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract"
)

var (
	_ extract.Extractor = (*Extractor)(nil)
	_ extract.MaxSizer  = (*Extractor)(nil)
)

func extractFile(t *testing.T, e *Extractor, file, path string) extract.Result {
	t.Helper()
	b, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	if !e.Required(path, 0o644, int64(len(b))) {
		t.Fatalf("Required(%s) = false", path)
	}
	res, err := e.Extract(context.Background(), extract.Input{Path: path, Mode: 0o644, Content: b})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// summary renders "name@version licenses metadata" sorted by name.
func summary(pkgs []sbom.Package) []string {
	var out []string
	for _, p := range pkgs {
		s := fmt.Sprintf("%s %s@%s %s", p.Type, p.Name, p.Version, strings.Join(p.Licenses, "|"))
		var keys []string
		for k, v := range p.Metadata {
			keys = append(keys, k+"="+v)
		}
		sort.Strings(keys)
		if len(keys) > 0 {
			s += " " + strings.Join(keys, ",")
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func check(t *testing.T, res extract.Result, want ...string) {
	t.Helper()
	if got := summary(res.Packages); !reflect.DeepEqual(got, want) {
		t.Errorf("got\n  %q\nwant\n  %q", got, want)
	}
	if len(res.Warnings) > 0 {
		t.Errorf("warnings %q", res.Warnings)
	}
}

func TestInstalledV2(t *testing.T) {
	res := extractFile(t, New(), "v2/vendor/composer/installed.json", "/var/www/html/vendor/composer/installed.json")
	check(t, res,
		"composer doctrine/lexer@3.0.0 MIT",
		"composer monolog/monolog@3.5.0 MIT",
		"composer phpunit/phpunit@10.5.2 BSD-3-Clause dev=true",
		"composer psr/log@3.0.0 MIT",
		"composer symfony/polyfill-mbstring@v1.28.0 MIT versionNormalized=1.28.0",
	)
}

func TestInstalledV1(t *testing.T) {
	res := extractFile(t, New(), "v1/vendor/composer/installed.json", "/app/vendor/composer/installed.json")
	check(t, res,
		"composer guzzlehttp/guzzle@6.3.3 MIT",
		"composer phpseclib/phpseclib@2.0.11 MIT",
		"composer psr/http-message@1.0.1 MIT",
		"composer symfony/console@v4.1.4 MIT versionNormalized=4.1.4",
	)
}

func TestLock(t *testing.T) {
	prod := []string{
		"composer doctrine/lexer@3.0.0 MIT",
		"composer monolog/monolog@3.5.0 MIT",
		"composer psr/log@3.0.0 MIT",
		"composer symfony/polyfill-mbstring@v1.28.0 MIT versionNormalized=1.28.0",
	}
	check(t, extractFile(t, New(), "app/composer.lock", "/srv/app/composer.lock"), prod...)
	withDev := New(WithLockDev())
	check(t, extractFile(t, withDev, "app/composer.lock", "/srv/app/composer.lock"),
		append(prod[:2:2], append([]string{"composer phpunit/phpunit@10.5.2 BSD-3-Clause dev=true"}, prod[2:]...)...)...)
	if withDev.Version() == New().Version() {
		t.Error("WithLockDev must change Version")
	}
}

func TestLenientAndBroken(t *testing.T) {
	e := New()
	in := `{"packages":[{"name":"a/b","version":"1.0","license":"GPL-2.0-or-later"},{"name":"nameless","version":"1"},{"name":"c/d"},{"name":"e/f","version":"2","license":{"x":1}}]}`
	res, err := e.Extract(context.Background(), extract.Input{Path: "/v/composer/installed.json", Content: []byte(in)})
	if err != nil {
		t.Fatal(err)
	}
	if got := summary(res.Packages); !reflect.DeepEqual(got, []string{"composer a/b@1.0 GPL-2.0-or-later", "composer e/f@2 "}) {
		t.Errorf("got %q", got)
	}
	if len(res.Warnings) != 2 {
		t.Errorf("warnings %q", res.Warnings)
	}
	for path, content := range map[string]string{
		"/v/composer/installed.json": `"just a string"`,
		"/x/composer.lock":           `{"packages": 3}`,
		"/y/composer.lock":           `{"packages": [`,
	} {
		if _, err := e.Extract(context.Background(), extract.Input{Path: path, Content: []byte(content)}); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: want an error naming the file, got %v", path, err)
		}
	}
	if _, err := e.Extract(context.Background(), extract.Input{Path: "/e/composer/installed.json", Content: []byte("  ")}); err == nil {
		t.Error("empty installed.json accepted")
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
		{"/var/www/vendor/composer/installed.json", 0o644, 10, true},
		{"/app/lib/composer/installed.json", 0o644, 10, true},
		{"/app/composer.lock", 0o644, 10, true},
		{"/app/composer.json", 0o644, 10, false},
		{"/app/vendor/composer/installed.php", 0o644, 10, false},
		{"/app/mycomposer.lock", 0o644, 10, false},
		{"/app/composer.lock", fs.ModeSymlink, 10, false},
		{"/app/composer.lock", 0o644, 0, false},
		{"/app/composer.lock", 0o644, maxFile + 1, false},
	}
	for _, tt := range tests {
		if got := e.Required(tt.path, tt.mode, tt.size); got != tt.want {
			t.Errorf("Required(%q) = %v", tt.path, got)
		}
	}
	if n := testing.AllocsPerRun(100, func() { e.Required("/srv/www/app/composer.lock", 0o644, 10) }); n != 0 {
		t.Errorf("Required allocates %v times", n)
	}
}

func FuzzComposer(f *testing.F) {
	for _, n := range []string{"v1/vendor/composer/installed.json", "v2/vendor/composer/installed.json", "app/composer.lock"} {
		b, err := os.ReadFile("testdata/" + n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, true)
		f.Add(b, false)
	}
	e := New(WithLockDev())
	f.Fuzz(func(t *testing.T, b []byte, installed bool) {
		path := "/a/composer.lock"
		if installed {
			path = "/a/vendor/composer/installed.json"
		}
		res, err := e.Extract(context.Background(), extract.Input{Path: path, Content: b})
		if err != nil {
			return
		}
		for _, p := range res.Packages {
			if !validName(p.Name) || p.Version == "" || p.Type != sbom.TypeComposer {
				t.Fatalf("accepted %+v", p)
			}
		}
	})
}
