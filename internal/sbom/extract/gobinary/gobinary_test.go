package gobinary

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract"
)

// The test program depends on a local module through a directory replace and on pflag through
// a version replace (v1.0.5 => v1.0.10). pflag is one of crowsnest's own dependencies, so it is
// in the module cache of any machine that built crowsnest; the build runs with GOPROXY=off.
const (
	helloGoMod = `module example.com/hello

go 1.22

require (
	github.com/spf13/pflag v1.0.5
	example.com/lib v0.0.0
)

replace github.com/spf13/pflag v1.0.5 => github.com/spf13/pflag v1.0.10

replace example.com/lib => ./lib
`
	helloMain = `package main

import (
	"fmt"

	"example.com/lib"
	"github.com/spf13/pflag"
)

func main() { pflag.Parse(); fmt.Println(lib.Hi()) }
`
	plainMain = `package main

import "fmt"

func main() { fmt.Println("plain") }
`
)

func goBuild(t *testing.T, files map[string]string, flags ...string) []byte {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool is needed to build test binaries: %v", err)
	}
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "prog")
	args := append([]string{"build", "-o", out}, flags...)
	cmd := exec.Command(goTool, append(args, ".")...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOSUMDB=off", "GOWORK=off", "CGO_ENABLED=0",
		"GOFLAGS=-mod=mod -buildvcs=false", "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func helloFiles() map[string]string {
	return map[string]string{
		"go.mod":     helloGoMod,
		"main.go":    helloMain,
		"lib/go.mod": "module example.com/lib\n\ngo 1.22\n",
		"lib/lib.go": "package lib\n\nfunc Hi() string { return \"hi\" }\n",
	}
}

func run(t *testing.T, content []byte) extract.Result {
	t.Helper()
	res, err := New().Extract(context.Background(), extract.Input{Path: "/usr/local/bin/prog", Mode: 0o755, Content: content})
	if err != nil {
		t.Fatalf("Extract: %v", err)
	}
	return res
}

func byName(pkgs []sbom.Package) map[string]sbom.Package {
	m := map[string]sbom.Package{}
	for _, p := range pkgs {
		m[p.Name] = p
	}
	return m
}

func wantStdlib() string {
	v, _, _ := strings.Cut(strings.TrimPrefix(runtime.Version(), "go"), " ")
	return v
}

func checkHello(t *testing.T, res extract.Result) {
	t.Helper()
	if len(res.Packages) != 4 {
		t.Fatalf("got %d packages, want 4 (main, lib, pflag, stdlib): %+v", len(res.Packages), res.Packages)
	}
	pkgs := byName(res.Packages)
	main := pkgs["example.com/hello"]
	if main.Type != sbom.TypeGolang || main.Version != "(devel)" || main.Metadata["mainModule"] != "true" {
		t.Errorf("main module = %+v", main)
	}
	if main.Metadata["goVersion"] != runtime.Version() {
		t.Errorf("main goVersion = %q, want %q", main.Metadata["goVersion"], runtime.Version())
	}
	lib := pkgs["example.com/lib"]
	if lib.Version != "(devel)" || lib.Metadata["replacedBy"] != "./lib" || lib.Metadata["mainModulePath"] != "example.com/hello" {
		t.Errorf("locally replaced module = %+v", lib)
	}
	pflag := pkgs["github.com/spf13/pflag"]
	if pflag.Version != "v1.0.10" || pflag.Metadata["replaces"] != "github.com/spf13/pflag@v1.0.5" {
		t.Errorf("version-replaced module = %+v", pflag)
	}
	std := pkgs["stdlib"]
	if std.Version != wantStdlib() || std.Type != sbom.TypeGolang || std.Metadata["mainModulePath"] != "example.com/hello" {
		t.Errorf("stdlib = %+v, want version %s", std, wantStdlib())
	}
	for _, p := range res.Packages {
		if p.PURL != "" || len(p.Locations) != 0 {
			t.Errorf("%s: PURL and Locations are the pipeline's to fill", p.Name)
		}
	}
}

func TestBuiltBinaryWithReplacements(t *testing.T) {
	checkHello(t, run(t, goBuild(t, helloFiles())))
}

func TestStrippedBinary(t *testing.T) {
	checkHello(t, run(t, goBuild(t, helloFiles(), "-ldflags=-s -w", "-trimpath")))
}

func TestBinaryWithoutDependencies(t *testing.T) {
	bin := goBuild(t, map[string]string{"go.mod": "module example.com/plain\n\ngo 1.22\n", "main.go": plainMain})
	res := run(t, bin)
	if len(res.Packages) != 2 {
		t.Fatalf("got %+v, want main module and stdlib", res.Packages)
	}
	pkgs := byName(res.Packages)
	if pkgs["example.com/plain"].Metadata["mainModule"] != "true" || pkgs["stdlib"].Version != wantStdlib() {
		t.Errorf("got %+v", res.Packages)
	}
}

func TestOwnTestBinary(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	content, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	pkgs := byName(run(t, content).Packages)
	if m, ok := pkgs["github.com/crowsnest-dev/crowsnest"]; !ok || m.Metadata["mainModule"] != "true" {
		t.Errorf("main module missing: %+v", pkgs)
	}
	if pkgs["stdlib"].Version != wantStdlib() {
		t.Errorf("stdlib = %+v", pkgs["stdlib"])
	}
}

func TestNonGoBinaries(t *testing.T) {
	for _, path := range []string{"/bin/ls", "/bin/true"} {
		content, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%s is a real non-Go ELF this test needs: %v", path, err)
		}
		if !bytes.HasPrefix(content, []byte("\x7fELF")) {
			t.Fatalf("%s is not ELF", path)
		}
		if res := run(t, content); len(res.Packages) != 0 || len(res.Warnings) != 0 {
			t.Errorf("%s: got %+v, want nothing", path, res)
		}
	}
	for _, content := range [][]byte{nil, []byte("#!/bin/sh\necho hi\n"), []byte("MZ")} {
		if res := run(t, content); len(res.Packages) != 0 {
			t.Errorf("%q: got %+v", content, res)
		}
	}
}

func TestTruncatedGoBinary(t *testing.T) {
	bin := goBuild(t, map[string]string{"go.mod": "module example.com/plain\n\ngo 1.22\n", "main.go": plainMain})
	// Cutting a Go binary must never panic; cut inside the headers it is just not recognised.
	for _, n := range []int{16, 64, 4096, len(bin) / 3, len(bin) / 2} {
		_, _ = New().Extract(context.Background(), extract.Input{Path: "/x", Content: bin[:n]})
	}
}

func TestBuildInfoText(t *testing.T) {
	// The textual module information `go version -m` prints and the linker embeds.
	bi, err := debug.ParseBuildInfo("go\tgo1.22.3 X:boringcrypto\n" +
		"path\texample.com/cmd/app\n" +
		"mod\texample.com\tv1.4.0\th1:abc=\n" +
		"dep\tgolang.org/x/net\tv0.20.0\th1:def=\n" +
		"=>\tgithub.com/fork/net\tv0.20.1-fix\th1:ghi=\n" +
		"dep\tgolang.org/x/text\tv0.14.0\th1:jkl=\n" +
		"dep\texample.com/local\tv1.0.0\n" +
		"=>\t../local\t(devel)\t\n")
	if err != nil {
		t.Fatal(err)
	}
	bi.GoVersion = "go1.22.3 X:boringcrypto"
	pkgs := byName(fromBuildInfo(bi).Packages)
	if len(pkgs) != 5 {
		t.Fatalf("got %+v", pkgs)
	}
	if p := pkgs["example.com"]; p.Version != "v1.4.0" || p.Metadata["mainModule"] != "true" {
		t.Errorf("main = %+v", p)
	}
	if p := pkgs["github.com/fork/net"]; p.Version != "v0.20.1-fix" || p.Metadata["replaces"] != "golang.org/x/net@v0.20.0" {
		t.Errorf("replaced = %+v", p)
	}
	if _, ok := pkgs["golang.org/x/net"]; ok {
		t.Error("the replaced module's original path must not be reported")
	}
	if p := pkgs["golang.org/x/text"]; p.Version != "v0.14.0" || p.Metadata["mainModulePath"] != "example.com" || p.Metadata["goVersion"] != "go1.22.3 X:boringcrypto" {
		t.Errorf("dep = %+v", p)
	}
	if p := pkgs["example.com/local"]; p.Version != "(devel)" || p.Metadata["replacedBy"] != "../local" {
		t.Errorf("local = %+v", p)
	}
	if p := pkgs["stdlib"]; p.Version != "1.22.3" {
		t.Errorf("stdlib = %+v", p)
	}
}

func TestStdlibVersion(t *testing.T) {
	for in, want := range map[string]string{
		"go1.22.3":                 "1.22.3",
		"go1.22.3 X:boringcrypto":  "1.22.3",
		"go1.21rc2":                "1.21rc2",
		"go1.20":                   "1.20",
		"devel go1.23-e8a4bb8 Tue": "",
		"":                         "",
		"go":                       "",
		"gox":                      "",
	} {
		if got := StdlibVersion(in); got != want {
			t.Errorf("StdlibVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRequired(t *testing.T) {
	e := New()
	cases := []struct {
		path string
		mode fs.FileMode
		size int64
		want bool
	}{
		{"/usr/local/bin/app", 0o755, 10 << 20, true},
		{"/app/server", 0o700, 1, true},
		{"/usr/lib/x86_64-linux-gnu/libfoo.so.1", 0o644, 1000, false}, // not executable
		{"/usr/bin/app", 0o755, 0, false},
		{"/usr/bin/app", 0o755, maxSize + 1, false},
		{"/usr/bin/app", fs.ModeSymlink | 0o777, 10, false},
		{"/usr/bin/app", fs.ModeDir | 0o755, 10, false},
		{"/docker-entrypoint.sh", 0o755, 100, false},
		{"/usr/lib/python3/foo.PY", 0o755, 100, false},
		{"/opt/v1.2/app", 0o755, 100, true}, // dot in a directory name, not the file
		{"/usr/lib/libgo.so", 0o755, 100, true},
	}
	for _, c := range cases {
		if got := e.Required(c.path, c.mode, c.size); got != c.want {
			t.Errorf("Required(%q, %v, %d) = %v, want %v", c.path, c.mode, c.size, got, c.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { e.Required("/usr/local/bin/some-tool", 0o755, 1000) }); n != 0 {
		t.Errorf("Required allocates %v times", n)
	}
}

func FuzzExtract(f *testing.F) {
	f.Add([]byte("\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00"))
	f.Add([]byte("\xcf\xfa\xed\xfe\x07\x00\x00\x01\x03\x00\x00\x00\x02\x00\x00\x00"))
	f.Add([]byte("\xca\xfe\xba\xbe\x00\x00\x00\x02"))
	if b, err := os.ReadFile("/bin/true"); err == nil && len(b) > 8192 {
		f.Add(b[:8192])
	}
	e := New()
	f.Fuzz(func(t *testing.T, content []byte) {
		_, _ = e.Extract(context.Background(), extract.Input{Path: "/bin/x", Mode: 0o755, Content: content})
	})
}

func FuzzBuildInfoText(f *testing.F) {
	f.Add("go\tgo1.22.3\npath\tex.com/a\nmod\tex.com/a\t(devel)\t\ndep\tgolang.org/x/net\tv0.20.0\th1:x=\n=>\t../net\t\n")
	f.Add("go\tgo1.21 X:boringcrypto\ndep\ta\tv1\n=>\tb\tv2\th1:y=\n")
	f.Fuzz(func(t *testing.T, text string) {
		bi, err := debug.ParseBuildInfo(text)
		if err != nil {
			return
		}
		res := fromBuildInfo(bi)
		for _, p := range res.Packages {
			if p.Name == "" || p.Type != sbom.TypeGolang {
				t.Fatalf("bad package %+v", p)
			}
		}
	})
}
