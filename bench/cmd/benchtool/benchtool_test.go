package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

func mkfile(t *testing.T, p, content string, mtime time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// readTar returns name -> (typeflag, content or link target) of a layer.
func readTar(t *testing.T, b []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		v := string(h.Typeflag) + ":" + string(body)
		if h.Typeflag == tar.TypeSymlink || h.Typeflag == tar.TypeLink {
			v = string(h.Typeflag) + ":" + h.Linkname
		}
		out[h.Name] = v
	}
}

func TestWriteLayerDiff(t *testing.T) {
	tmp := t.TempDir()
	lower, upper := filepath.Join(tmp, "lower"), filepath.Join(tmp, "upper")
	old := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	later := old.Add(time.Hour)
	for _, root := range []string{lower, upper} {
		mkfile(t, filepath.Join(root, "etc/keep.conf"), "same", old)
		mkfile(t, filepath.Join(root, "usr/share/doc/a/copyright"), "same", old)
		if err := os.MkdirAll(filepath.Join(root, "dev"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mkfile(t, filepath.Join(lower, "etc/changed.conf"), "v1", old)
	mkfile(t, filepath.Join(upper, "etc/changed.conf"), "v2", later)
	mkfile(t, filepath.Join(lower, "var/lib/gone/x"), "x", old)
	mkfile(t, filepath.Join(lower, "etc/removed.conf"), "r", old)
	mkfile(t, filepath.Join(upper, "usr/lib/python3/dist-packages/new.py"), "print(1)", later)
	if err := os.Link(filepath.Join(upper, "usr/lib/python3/dist-packages/new.py"), filepath.Join(upper, "usr/lib/python3/dist-packages/same.py")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("new.py", filepath.Join(upper, "usr/lib/python3/dist-packages/link.py")); err != nil {
		t.Fatal(err)
	}
	// Kernel filesystems' contents never go in a layer.
	mkfile(t, filepath.Join(upper, "dev/null"), "", later)
	if err := os.MkdirAll(filepath.Join(upper, "var/lib"), 0o755); err != nil {
		t.Fatal(err)
	}

	var buf bytes.Buffer
	if err := writeLayer(&buf, upper, lower); err != nil {
		t.Fatal(err)
	}
	got := readTar(t, buf.Bytes())
	want := map[string]string{
		"etc/":                                  "5:",
		"etc/changed.conf":                      "0:v2",
		"etc/.wh.removed.conf":                  "0:",
		"usr/":                                  "5:",
		"usr/lib/":                              "5:",
		"usr/lib/python3/":                      "5:",
		"usr/lib/python3/dist-packages/":        "5:",
		"usr/lib/python3/dist-packages/link.py": "2:new.py",
		"usr/lib/python3/dist-packages/new.py":  "0:print(1)",
		"usr/lib/python3/dist-packages/same.py": "1:usr/lib/python3/dist-packages/new.py",
		"var/":                                  "5:",
		"var/lib/":                              "5:",
		"var/lib/.wh.gone":                      "0:",
	}
	var diffs []string
	for k, v := range want {
		if got[k] != v {
			diffs = append(diffs, k+": got "+got[k]+" want "+v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, "unexpected "+k)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Errorf("layer diff:\n%s", strings.Join(diffs, "\n"))
	}
}

func TestWriteLayerFull(t *testing.T) {
	root := t.TempDir()
	mkfile(t, filepath.Join(root, "app/package.json"), `{"name":"x"}`, time.Now())
	mkfile(t, filepath.Join(root, "dev/zero"), "", time.Now())
	var buf bytes.Buffer
	if err := writeLayer(&buf, root, ""); err != nil {
		t.Fatal(err)
	}
	got := readTar(t, buf.Bytes())
	if got["app/package.json"] != `0:{"name":"x"}` || got["app/"] != "5:" || got["dev/"] != "5:" {
		t.Errorf("layer = %v", got)
	}
	if _, ok := got["dev/zero"]; ok {
		t.Errorf("dev contents written: %v", got)
	}
}

const syftJSON = `{"artifacts":[
 {"name":"libc6","version":"2.36-9+deb12u10","type":"deb","purl":"pkg:deb/debian/libc6@2.36-9%2Bdeb12u10?arch=amd64&distro=debian-12"},
 {"name":"bsdutils","version":"1:2.38.1-5+deb12u3","type":"deb","purl":"pkg:deb/debian/bsdutils@1:2.38.1-5%2Bdeb12u3?arch=amd64&upstream=util-linux"},
 {"name":"PyYAML","version":"6.0","type":"python","purl":"pkg:pypi/PyYAML@6.0"},
 {"name":"commons-lang3","version":"3.12.0","type":"java-archive","purl":"pkg:maven/org.apache.commons/commons-lang3@3.12.0"},
 {"name":"@babel/core","version":"7.1.0","type":"npm","purl":"pkg:npm/%40babel/core@7.1.0"},
 {"name":"github.com/spf13/cobra","version":"v1.8.1","type":"go-module","purl":"pkg:golang/github.com/spf13/cobra@v1.8.1"},
 {"name":"weird","version":"1","type":"binary","purl":""}
]}`

const trivyCDX = `{"bomFormat":"CycloneDX","components":[
 {"type":"operating-system","name":"debian","version":"12.10"},
 {"name":"bsdutils","version":"2.38.1-5+deb12u3","purl":"pkg:deb/debian/bsdutils@2.38.1-5%2Bdeb12u3?arch=amd64&distro=debian-12.10&epoch=1"},
 {"name":"cobra","group":"github.com/spf13","version":"v1.8.1","purl":"pkg:golang/github.com/spf13/cobra@v1.8.1"},
 {"name":"app","components":[{"name":"lodash","version":"4.17.21","purl":"pkg:npm/lodash@4.17.21"}]}
]}`

const crowsnestJSON = `{"schemaVersion":"1","packages":[
 {"type":"deb","name":"bsdutils","version":"1:2.38.1-5+deb12u3","purl":""},
 {"type":"maven","name":"org.apache.commons:commons-lang3","version":"3.12.0","purl":""},
 {"type":"pypi","name":"Jinja2","version":"3.1.2","purl":"pkg:pypi/jinja2@3.1.2"}
]}`

func TestParseSBOMAndRecall(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		eco       string
		truth     []nv
		want      float64
	}{
		{"syft deb epoch", syftJSON, "deb", []nv{{"bsdutils", "1:2.38.1-5+deb12u3"}, {"libc6", "2.36-9+deb12u10"}, {"tar", "1.34"}}, 2.0 / 3},
		{"syft pypi normalized", syftJSON, "pypi", []nv{{"pyyaml", "6.0"}}, 1},
		{"syft maven artifact", syftJSON, "maven", []nv{{"commons-lang3", "3.12.0"}}, 1},
		{"syft npm scoped", syftJSON, "npm", []nv{{"@babel/core", "7.1.0"}, {"lodash", "4.17.21"}}, 0.5},
		{"syft go", syftJSON, "golang", []nv{{"github.com/spf13/cobra", "v1.8.1"}}, 1},
		{"trivy deb epoch qualifier", trivyCDX, "deb", []nv{{"bsdutils", "1:2.38.1-5+deb12u3"}}, 1},
		{"trivy nested npm", trivyCDX, "npm", []nv{{"lodash", "4.17.21"}}, 1},
		{"trivy go", trivyCDX, "golang", []nv{{"github.com/spf13/cobra", "v1.8.1"}}, 1},
		{"crowsnest without purl", crowsnestJSON, "maven", []nv{{"commons-lang3", "3.12.0"}}, 1},
		{"crowsnest deb", crowsnestJSON, "deb", []nv{{"bsdutils", "1:2.38.1-5+deb12u3"}}, 1},
		{"crowsnest pypi wrong version", crowsnestJSON, "pypi", []nv{{"jinja2", "3.1.3"}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := parseSBOM([]byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			got, missed := recall(tc.truth, tc.eco, f)
			if got != tc.want {
				t.Errorf("recall = %v (missed %v), want %v; found %v", got, missed, tc.want, f[tc.eco])
			}
		})
	}
	f, _ := parseSBOM([]byte(syftJSON))
	if n := len(f["deb"]) + len(f["pypi"]) + len(f["maven"]) + len(f["npm"]) + len(f["golang"]); n != 6 {
		t.Errorf("syft packages counted = %d, want 6 (the binary without PURL is no ecosystem's)", n)
	}
}

func TestNPMTruth(t *testing.T) {
	ls := `{"name":"app","version":"1.0.0","dependencies":{
	  "express":{"version":"4.21.2","dependencies":{"debug":{"version":"2.6.9","dependencies":{"ms":{"version":"2.0.0"}}},"ms":{"version":"2.0.0"}}},
	  "winston":{"version":"3.17.0","dependencies":{"debug":{"version":"4.3.7"}}}}}`
	got, err := npmTruth([]byte(ls))
	if err != nil {
		t.Fatal(err)
	}
	want := []nv{{"debug", "2.6.9"}, {"debug", "4.3.7"}, {"express", "4.21.2"}, {"ms", "2.0.0"}, {"winston", "3.17.0"}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("got %v, want %v", got, want)
		}
	}
}

func TestPythonTruth(t *testing.T) {
	root := t.TempDir()
	dp := filepath.Join(root, "usr/lib/python3/dist-packages")
	mkfile(t, filepath.Join(dp, "Jinja2-3.1.2.egg-info/PKG-INFO"), "Metadata-Version: 2.1\nName: Jinja2\nVersion: 3.1.2\n\nName: not-a-header\n", time.Now())
	mkfile(t, filepath.Join(dp, "ruamel.yaml-0.17.21.dist-info/METADATA"), "Name: ruamel.yaml\nVersion: 0.17.21\n", time.Now())
	mkfile(t, filepath.Join(dp, "six-1.16.0.egg-info"), "Name: six\nVersion: 1.16.0\n", time.Now())
	got, err := pythonTruth(root)
	if err != nil {
		t.Fatal(err)
	}
	want := "[{jinja2 3.1.2} {ruamel-yaml 0.17.21} {six 1.16.0}]"
	if s := fmtNV(got); s != want {
		t.Errorf("got %s, want %s", s, want)
	}
}

func fmtNV(s []nv) string {
	var b strings.Builder
	b.WriteString("[")
	for i, p := range s {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString("{" + p.Name + " " + p.Version + "}")
	}
	b.WriteString("]")
	return b.String()
}

func FuzzParseSBOM(f *testing.F) {
	for _, s := range []string{syftJSON, trivyCDX, crowsnestJSON, `{"components":[{"components":[{}]}]}`, `{"packages":[{"purl":"pkg:"}]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fd, err := parseSBOM(b)
		if err != nil {
			return
		}
		for _, e := range ecosystems {
			recall([]nv{{"a", "1"}}, e, fd)
		}
	})
}

func FuzzNPMTruth(f *testing.F) {
	f.Add([]byte(`{"dependencies":{"a":{"version":"1","dependencies":{"b":{"version":"2"}}}}}`))
	f.Add([]byte(`{"dependencies":{"a":null}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = npmTruth(b)
	})
}

func writeJar(t *testing.T, p string, files map[string]string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for name, body := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, body)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func TestJavaTruth(t *testing.T) {
	root := t.TempDir()
	java := filepath.Join(root, "usr/share/java")
	writeJar(t, filepath.Join(java, "commons-lang3-3.12.0.jar"), map[string]string{
		"META-INF/maven/org.apache.commons/commons-lang3/pom.properties": "#Generated\nversion=3.12.0\ngroupId=org.apache.commons\nartifactId=commons-lang3\n",
	})
	if err := os.Symlink("commons-lang3-3.12.0.jar", filepath.Join(java, "commons-lang3.jar")); err != nil {
		t.Fatal(err)
	}
	writeJar(t, filepath.Join(java, "commons-logging-1.2.jar"), map[string]string{"META-INF/MANIFEST.MF": "Manifest-Version: 1.0\n"})
	writeJar(t, filepath.Join(java, "hamcrest.jar"), map[string]string{"META-INF/MANIFEST.MF": "Manifest-Version: 1.0\n"})
	writeJar(t, filepath.Join(java, "orphan.jar"), map[string]string{"META-INF/MANIFEST.MF": "Manifest-Version: 1.0\n"})
	mkfile(t, filepath.Join(root, "var/lib/dpkg/status"), "Package: libhamcrest-java\nStatus: install ok installed\nVersion: 1:2.2-1\n\n", time.Now())
	mkfile(t, filepath.Join(root, "var/lib/dpkg/info/libhamcrest-java.list"), "/usr/share/java\n/usr/share/java/hamcrest.jar\n", time.Now())
	got, unnamed, err := javaTruth(root)
	if err != nil {
		t.Fatal(err)
	}
	if s, want := fmtNV(got), "[{commons-lang3 3.12.0} {commons-logging 1.2} {hamcrest 2.2}]"; s != want {
		t.Errorf("got %s, want %s", s, want)
	}
	if len(unnamed) != 1 || unnamed[0] != "usr/share/java/orphan.jar" {
		t.Errorf("unnamed = %v", unnamed)
	}
}

func TestMedians(t *testing.T) {
	runs := []*run{
		{Image: "a", Tool: "syft", Phase: "cold", Wall: 3},
		{Image: "a", Tool: "crowsnest", Phase: "cold", Wall: 0.5},
		{Image: "a", Tool: "syft", Phase: "cold", Wall: 9},
		{Image: "a", Tool: "crowsnest", Phase: "cold", Wall: 0.7},
		{Image: "a", Tool: "syft", Phase: "cold", Wall: 2},
	}
	got := medians(runs)
	if len(got) != 2 || got[0].Tool != "syft" || got[0].Wall != 3 || got[1].Tool != "crowsnest" || got[1].Wall != 0.7 {
		for _, r := range got {
			t.Logf("%+v", *r)
		}
		t.Errorf("medians wrong")
	}
}
