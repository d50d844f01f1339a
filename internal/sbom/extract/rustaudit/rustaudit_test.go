package rustaudit

import (
	"bytes"
	"compress/zlib"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract"
)

// auditJSON is shaped like `cargo auditable build` output for a small program using
// serde_json and a build-time dependency (cc for a build script).
const auditJSON = `{"packages":[` +
	`{"name":"cc","version":"1.0.83","source":"crates.io","kind":"build"},` +
	`{"name":"itoa","version":"1.0.9","source":"crates.io"},` +
	`{"name":"libc","version":"0.2.149","source":"crates.io"},` +
	`{"name":"myapp","version":"0.3.1","source":"local","dependencies":[0,1,2,5,6],"root":true},` +
	`{"name":"ryu","version":"1.0.15","source":"crates.io"},` +
	`{"name":"serde","version":"1.0.190","source":"crates.io","kind":"runtime"},` +
	`{"name":"serde_json","version":"1.0.108","source":"crates.io","dependencies":[1,4,5]},` +
	`{"name":"vendored","version":"0.1.0","source":"git"}` +
	`],"format":1}`

func compress(t testing.TB, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w := zlib.NewWriter(&b)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

type tb interface {
	testing.TB
	TempDir() string
}

// buildBinary compiles a tiny C program and adds section as .dep-v0, the way cargo-auditable's
// linker step does; objFormat "" keeps ELF, "pei-x86-64" converts to a Windows PE executable.
func buildBinary(t tb, section []byte, objFormat string) []byte {
	return build(t, section, objFormat, false)
}

// build compiles and links, or with compileOnly stops at a (much smaller) ELF object file.
func build(t tb, section []byte, objFormat string, compileOnly bool) []byte {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "main.c")
	if err := os.WriteFile(src, []byte("int main(void) { return 0; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "prog")
	cmds := [][]string{{"cc", "-o", bin, src}}
	if compileOnly {
		cmds[0] = []string{"cc", "-c", "-o", bin, src}
	}
	if section != nil {
		sec := filepath.Join(dir, "dep")
		if err := os.WriteFile(sec, section, 0o644); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, []string{"objcopy", "--add-section", ".dep-v0=" + sec,
			"--set-section-flags", ".dep-v0=noload,readonly", bin})
	}
	if objFormat != "" {
		cmds = append(cmds, []string{"objcopy", "-O", objFormat, bin, bin})
	}
	for _, c := range cmds {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", c, err, out)
		}
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func extractFrom(content []byte) (extract.Result, error) {
	return New().Extract(context.Background(), extract.Input{Path: "/usr/local/bin/myapp", Mode: 0o755, Content: content})
}

func checkPackages(t *testing.T, res extract.Result) {
	t.Helper()
	got := map[string]sbom.Package{}
	for _, p := range res.Packages {
		if p.Type != sbom.TypeCargo {
			t.Errorf("%s: type %q", p.Name, p.Type)
		}
		got[p.Name+"@"+p.Version] = p
	}
	want := []string{"itoa@1.0.9", "libc@0.2.149", "myapp@0.3.1", "ryu@1.0.15", "serde@1.0.190", "serde_json@1.0.108", "vendored@0.1.0"}
	if len(got) != len(want) || len(res.Packages) != len(want) {
		t.Fatalf("got %d packages %v, want %v", len(res.Packages), got, want)
	}
	for _, w := range want {
		if _, ok := got[w]; !ok {
			t.Errorf("missing %s", w)
		}
	}
	if _, ok := got["cc@1.0.83"]; ok {
		t.Error("build dependency reported")
	}
	if m := got["myapp@0.3.1"].Metadata; m["root"] != "true" || m["source"] != "local" {
		t.Errorf("root crate metadata = %v", m)
	}
	if m := got["serde@1.0.190"].Metadata; m["root"] != "" || m["source"] != "crates.io" {
		t.Errorf("serde metadata = %v", m)
	}
}

func TestELF(t *testing.T) {
	res, err := extractFrom(buildBinary(t, compress(t, []byte(auditJSON)), ""))
	if err != nil {
		t.Fatal(err)
	}
	checkPackages(t, res)
}

func TestObjectFile(t *testing.T) {
	res, err := extractFrom(build(t, compress(t, []byte(auditJSON)), "", true))
	if err != nil {
		t.Fatal(err)
	}
	checkPackages(t, res)
}

func TestPE(t *testing.T) {
	bin := buildBinary(t, compress(t, []byte(auditJSON)), "pei-x86-64")
	if !bytes.HasPrefix(bin, []byte("MZ")) {
		t.Fatal("objcopy did not produce a PE file")
	}
	res, err := extractFrom(bin)
	if err != nil {
		t.Fatal(err)
	}
	checkPackages(t, res)
}

func TestWithoutAuditData(t *testing.T) {
	bins := map[string][]byte{"plain cc": buildBinary(t, nil, "")}
	for _, p := range []string{"/bin/ls", "/bin/true"} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		bins[p] = b
	}
	bins["script"] = []byte("#!/bin/sh\nexit 0\n")
	bins["empty"] = nil
	for name, b := range bins {
		res, err := extractFrom(b)
		if err != nil || len(res.Packages) != 0 {
			t.Errorf("%s: got %+v, %v; want nothing", name, res, err)
		}
	}
}

func TestZlibBomb(t *testing.T) {
	// 64 MiB of spaces compress to about 64 KiB; decoding must stop at the bound.
	bomb := compress(t, bytes.Repeat([]byte(" "), 64<<20))
	_, err := extractFrom(buildBinary(t, bomb, ""))
	if err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("err = %v, want size bound error", err)
	}
}

func TestMalformedSection(t *testing.T) {
	for name, sec := range map[string][]byte{
		"not zlib":     []byte("this is not zlib data at all"),
		"not json":     compress(t, []byte("packages: [")),
		"wrong schema": compress(t, []byte(`{"packages":{"name":"x"}}`)),
	} {
		_, err := extractFrom(buildBinary(t, sec, ""))
		if err == nil || !strings.Contains(err.Error(), "/usr/local/bin/myapp") {
			t.Errorf("%s: err = %v, want an error naming the file", name, err)
		}
	}
}

func TestParseSkipsNamelessCrates(t *testing.T) {
	res, err := Parse(compress(t, []byte(`{"packages":[{"name":"a","version":"1.0.0"},{"name":"","version":"1"},{"version":"2"}]}`)))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Packages) != 1 || res.Packages[0].Name != "a" || res.Packages[0].Metadata != nil || len(res.Warnings) != 1 {
		t.Errorf("got %+v", res)
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
		{"/usr/local/bin/ripgrep", 0o755, 5 << 20, true},
		{"/usr/local/bin/ripgrep", 0o644, 5 << 20, false},
		{"/usr/local/bin/ripgrep", fs.ModeSymlink | 0o777, 5, false},
		{"/usr/local/bin/ripgrep", 0o755, 0, false},
		{"/usr/local/bin/ripgrep", 0o755, maxSize + 1, false},
		{"/src/main.rs", 0o755, 100, false},
		{"/entrypoint.SH", 0o755, 100, false},
	}
	for _, c := range cases {
		if got := e.Required(c.path, c.mode, c.size); got != c.want {
			t.Errorf("Required(%q, %v, %d) = %v, want %v", c.path, c.mode, c.size, got, c.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { e.Required("/usr/local/bin/ripgrep", 0o755, 1000) }); n != 0 {
		t.Errorf("Required allocates %v times", n)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(compress(f, []byte(auditJSON)))
	f.Add(compress(f, []byte(`{"packages":[{"name":"a","version":"1","kind":"build"}]}`)))
	f.Add([]byte("x\x9c"))
	f.Fuzz(func(t *testing.T, section []byte) {
		res, err := Parse(section)
		if err != nil {
			return
		}
		for _, p := range res.Packages {
			if p.Name == "" || p.Version == "" {
				t.Fatalf("package without name or version: %+v", p)
			}
		}
	})
}

func FuzzExtract(f *testing.F) {
	// An object file has the same ELF layout as a program at a tenth of the size; whole programs
	// make each fuzzing step (and minimisation) too slow.
	obj := build(f, compress(f, []byte(auditJSON)), "", true)
	f.Add(obj)
	f.Add(obj[:64])
	f.Add([]byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00"))
	f.Add([]byte("\xcf\xfa\xed\xfe\x07\x00\x00\x01\x03\x00\x00\x00\x02\x00\x00\x00"))
	f.Add([]byte("\xca\xfe\xba\xbe\x00\x00\x00\x01\x01\x00\x00\x07\x00\x00\x00\x03"))
	e := New()
	f.Fuzz(func(t *testing.T, content []byte) {
		_, _ = e.Extract(context.Background(), extract.Input{Path: "/bin/x", Mode: 0o755, Content: content})
	})
}
