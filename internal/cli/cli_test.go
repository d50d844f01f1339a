package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/crowsnest-dev/crowsnest/internal/image"
)

// run executes the CLI in-process and returns exit code, stdout and stderr.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(context.Background(), args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestVersion(t *testing.T) {
	code, out, _ := run(t, "version")
	if code != 0 || !strings.HasPrefix(out, "crowsnest ") {
		t.Fatalf("version: code %d, out %q", code, out)
	}
}

func TestSBOMRejectsUnknownFormatBeforeWork(t *testing.T) {
	code, _, errOut := run(t, "sbom", "--data-dir", t.TempDir(), "--format", "xml", "registry://127.0.0.1:1/x:y")
	if code != 1 || !strings.Contains(errOut, `--format "xml": accepted formats are list, json, cyclonedx, spdx`) {
		t.Fatalf("code %d, stderr %q", code, errOut)
	}
}

func TestSBOMRejectsBadPlatform(t *testing.T) {
	code, _, errOut := run(t, "sbom", "--data-dir", t.TempDir(), "--platform", "linux", "fs://.")
	if code != 1 || !strings.Contains(errOut, "--platform") {
		t.Fatalf("code %d, stderr %q", code, errOut)
	}
}

func TestPickPlatform(t *testing.T) {
	host := image.HostPlatform().String()
	for _, c := range []struct {
		platforms []string
		platform  string
		want      int
	}{
		{[]string{"linux/s390x", host}, "", 1},            // this machine's platform wins
		{[]string{"linux/s390x", "linux/ppc64le"}, "", 0}, // else the first
		{[]string{"linux/s390x", host}, "linux/s390x", 0},
		{[]string{host}, "linux/riscv64", -1}, // an explicit platform that is not there
		{nil, "", -1},
	} {
		if got := pickPlatform(c.platforms, c.platform); got != c.want {
			t.Errorf("pickPlatform(%v, %q) = %d, want %d", c.platforms, c.platform, got, c.want)
		}
	}
}
