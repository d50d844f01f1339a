package imagebuild

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
)

// Fixture Go module: a main module requiring a dependency at a release version, satisfied by a
// local replace so the build needs no network. Its build info lists both.
const (
	GoFixtureModule     = "example.com/crowsnest/gofixture"
	GoFixtureDep        = "example.com/crowsnest/gofixturedep"
	GoFixtureDepVersion = "v1.4.2"
)

var goFixtureFiles = map[string]string{
	"go.mod": "module " + GoFixtureModule + "\n\ngo 1.22\n\nrequire " + GoFixtureDep + " " + GoFixtureDepVersion +
		"\n\nreplace " + GoFixtureDep + " => ./dep\n",
	"main.go": "package main\n\nimport (\n\t\"fmt\"\n\n\tdep \"" + GoFixtureDep + "\"\n)\n\n" +
		"func main() { fmt.Println(dep.Greeting()) }\n",
	"dep/go.mod": "module " + GoFixtureDep + "\n\ngo 1.22\n",
	"dep/dep.go": "// Package gofixturedep is a dependency of the crowsnest Go fixture binary.\npackage gofixturedep\n\n" +
		"// Greeting is what the fixture prints.\nfunc Greeting() string { return \"hello from crowsnest's fixture\" }\n",
}

// WriteGoFixtureModule writes the fixture module into dir.
func WriteGoFixtureModule(t testing.TB, dir string) {
	t.Helper()
	for name, content := range goFixtureFiles {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatalf("imagebuild: %v", err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatalf("imagebuild: %v", err)
		}
	}
}

// goBuilds caches binaries per test-binary run, keyed by a hash of the module's files: `go build`
// costs seconds and many tests want the same binary.
var goBuilds = struct {
	sync.Mutex
	bin map[string][]byte
}{bin: map[string][]byte{}}

// GoBinary builds the main package of the Go module in dir (the fixture module of
// WriteGoFixtureModule when dir is "") for linux/amd64 with the local toolchain, offline
// (GOPROXY=off: only the standard library and local replaces), and returns the executable.
// Results are cached per test binary run by the content of dir.
func GoBinary(t testing.TB, dir string) []byte {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
		WriteGoFixtureModule(t, dir)
	}
	key, err := hashDir(dir)
	if err != nil {
		t.Fatalf("imagebuild: GoBinary: %v", err)
	}
	goBuilds.Lock()
	defer goBuilds.Unlock() // builds are serialized: the machine is small and builds are cached
	if b, ok := goBuilds.bin[key]; ok {
		return b
	}
	out, err := os.MkdirTemp("", "imagebuild-gobinary-")
	if err != nil {
		t.Fatalf("imagebuild: %v", err)
	}
	defer os.RemoveAll(out)
	exe := filepath.Join(out, "fixture")
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-o", exe, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOPROXY=off",
		"GOFLAGS=-mod=mod", "GOWORK=off", "GOTOOLCHAIN=local")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("imagebuild: go build in %s: %v\n%s", dir, err, msg)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatalf("imagebuild: %v", err)
	}
	goBuilds.bin[key] = b
	return b
}

func hashDir(dir string) (string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		rel, _ := filepath.Rel(dir, f)
		h.Write([]byte(rel + "\x00"))
		sum := sha256.Sum256(b)
		h.Write(sum[:])
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
