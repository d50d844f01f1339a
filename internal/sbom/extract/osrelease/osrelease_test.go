package osrelease

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract"
)

func TestExtractRealFiles(t *testing.T) {
	tests := []struct {
		file string
		want sbom.OS
	}{
		{"debian12", sbom.OS{ID: "debian", VersionID: "12", VersionCodename: "bookworm", PrettyName: "Debian GNU/Linux 12 (bookworm)"}},
		{"alpine319", sbom.OS{ID: "alpine", VersionID: "3.19.1", PrettyName: "Alpine Linux v3.19"}},
		{"debian-sid", sbom.OS{ID: "debian", VersionCodename: "trixie", PrettyName: "Debian GNU/Linux trixie/sid"}},
		{"ubi9", sbom.OS{ID: "rhel", VersionID: "9.3", PrettyName: "Red Hat Enterprise Linux 9.3 (Plow)"}},
	}
	e := New()
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			content, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			res, err := e.Extract(context.Background(), extract.Input{Path: etcPath, Content: content})
			if err != nil {
				t.Fatal(err)
			}
			if res.OS == nil || *res.OS != tt.want {
				t.Fatalf("got %+v, want %+v", res.OS, tt.want)
			}
			if len(res.Warnings) != 0 || len(res.Packages) != 0 {
				t.Fatalf("unexpected warnings %v / packages %v", res.Warnings, res.Packages)
			}
		})
	}
}

func TestParseQuoting(t *testing.T) {
	content := "# comment\r\n" +
		"ID='opensuse-leap'\r\n" +
		`PRETTY_NAME="A \"quoted\" \$name with \\ and \n"` + "\r\n" +
		`VERSION_ID=15\.5` + "\r\n" +
		`VERSION_CODENAME="a"'b'c` + "\r\n"
	got, warnings, err := Parse([]byte(content))
	if err != nil {
		t.Fatal(err)
	}
	want := sbom.OS{ID: "opensuse-leap", VersionID: "15.5", VersionCodename: "abc", PrettyName: `A "quoted" $name with \ and \n`}
	if *got != want || len(warnings) != 0 {
		t.Fatalf("got %+v %v, want %+v", got, warnings, want)
	}
}

func TestParseMalformedLines(t *testing.T) {
	content := "ID=fedora\nthis is not an assignment\nVERSION_ID=\"39\nPRETTY_NAME=two words\n1X=y\nVERSION_CODENAME=''\n"
	got, warnings, err := Parse([]byte(content))
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "fedora" || got.VersionID != "" || got.PrettyName != "" || got.VersionCodename != "" {
		t.Fatalf("got %+v", got)
	}
	if len(warnings) != 4 {
		t.Fatalf("want 4 warnings, got %q", warnings)
	}
	for _, w := range warnings {
		if !strings.HasPrefix(w, "line ") {
			t.Fatalf("warning %q does not name a line", w)
		}
	}
}

func TestParseDefaultsAndErrors(t *testing.T) {
	got, _, err := Parse([]byte("NAME=Linux\n"))
	if err != nil || got.ID != "linux" {
		t.Fatalf("got %+v, %v; want ID linux", got, err)
	}
	for _, bad := range []string{"", "\n\n# only comments\n", "garbage garbage\n\x00\xff"} {
		if _, _, err := Parse([]byte(bad)); err == nil {
			t.Fatalf("Parse(%q): no error", bad)
		}
	}
	e := New()
	if _, err := e.Extract(context.Background(), extract.Input{Path: usrPath, Content: []byte("junk")}); err == nil || !strings.Contains(err.Error(), usrPath) {
		t.Fatalf("error %v does not name the path", err)
	}
}

func TestParseBounded(t *testing.T) {
	content := strings.Repeat("\n", maxLines+10) + "ID=late\n"
	_, warnings, err := Parse([]byte(content))
	if err == nil {
		t.Fatal("assignment after the line limit was read")
	}
	if len(warnings) != 1 {
		t.Fatalf("want a limit warning, got %q", warnings)
	}
}

func TestRequired(t *testing.T) {
	e := New()
	tests := []struct {
		path string
		mode fs.FileMode
		want bool
	}{
		{"/etc/os-release", 0o644, true},
		{"/etc/os-release", fs.ModeSymlink | 0o777, true},
		{"/usr/lib/os-release", 0o644, true},
		{"/etc/os-release", fs.ModeDir, false},
		{"/etc/os-release.bak", 0o644, false},
		{"/etc/lsb-release", 0o644, false},
		{"/usr/local/lib/os-release", 0o644, false},
	}
	for _, tt := range tests {
		if got := e.Required(tt.path, tt.mode, 100); got != tt.want {
			t.Errorf("Required(%q, %v) = %v", tt.path, tt.mode, got)
		}
	}
	if n := testing.AllocsPerRun(100, func() { e.Required("/usr/share/doc/x/copyright", 0o644, 10) }); n != 0 {
		t.Fatalf("Required allocates %v times", n)
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"debian12", "alpine319", "debian-sid", "ubi9"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`ID="a\"b\\`))
	f.Add([]byte("ID='x\nID=\\"))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, _, err := Parse(b)
		if err == nil && (o == nil || o.ID == "") {
			t.Fatalf("no error but OS %+v", o)
		}
	})
}
