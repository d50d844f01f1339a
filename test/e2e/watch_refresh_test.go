package e2e

import (
	"archive/zip"
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	ib "github.com/crowsnest-dev/crowsnest/internal/testutil/imagebuild"
	"github.com/crowsnest-dev/crowsnest/internal/testutil/registryproc"
)

// TestWatcherRefreshesAdvisories indexes an image while the store has no advisories, then lets the
// watcher's periodic refresh fetch them from a mirror: the stored image gains its finding without
// being pulled again.
func TestWatcherRefreshesAdvisories(t *testing.T) {
	reg := registryproc.Start(t)
	ib.Push(t, reg.Ref("team/app:1.0"), ib.Image(t, ib.NewLayer(
		ib.File("etc/os-release", []byte("ID=alpine\nVERSION_ID=3.19.1\n")),
		ib.File("lib/apk/db/installed", ib.APKInstalled(ib.APKPkg{Name: "musl", Version: "1.2.4_git20230717-r4", Arch: "x86_64", Origin: "musl"})),
	)))
	var archive bytes.Buffer
	zw := zip.NewWriter(&archive)
	rec, err := os.ReadFile(filepath.Join(advisoriesDir(t), "Alpine", "ALPINE-CVE-2025-26519.json"))
	if err != nil {
		t.Fatal(err)
	}
	w, _ := zw.Create("ALPINE-CVE-2025-26519.json")
	w.Write(rec)
	zw.Close()
	serve := make(chan struct{})
	mirror := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		select {
		case <-serve: // advisories are published only once the image is indexed
		default:
			http.Error(rw, "not yet", http.StatusServiceUnavailable)
			return
		}
		if r.URL.Path != "/Alpine/all.zip" {
			http.NotFound(rw, r)
			return
		}
		rw.Write(archive.Bytes())
	}))
	defer mirror.Close()

	dataDir := t.TempDir()
	wt := startWatch(t, "--data-dir", dataDir, "--registry", reg.Addr(), "--all-images", "--interval", "3600",
		"--advisory-refresh", "1s", "--osv-mirror", mirror.URL)
	eventually(t, wt, "the image indexed without findings", func() bool {
		return regexp.MustCompile(`team/app\s+1\.0\s+\S+\s+linux/amd64\s+1\s+0C 0H 0M 0L 0\?`).MatchString(images(t, dataDir))
	})
	reg.Reset()
	close(serve)
	eventually(t, wt, "the refresh to add the musl finding", func() bool {
		return regexp.MustCompile(`team/app\s+1\.0\s+\S+\s+linux/amd64\s+1\s+0C 1H 0M 0L 0\?`).MatchString(images(t, dataDir))
	})
	if n := reg.CountBlobGETs("team/app"); n != 0 {
		t.Fatalf("re-evaluation pulled %d blobs; it must not touch the registry", n)
	}
}
