package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
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
