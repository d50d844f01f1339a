package dashboard

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/findings"
	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/server"
	"github.com/crowsnest-dev/crowsnest/internal/store"
)

// benchImage is image i: Alpine 3.19 with musl (ALPINE-CVE-2025-26519 affects every image), zlib,
// ansi-html 0.0.7 on every tenth image (GHSA-whgm-jr23-g3j9) and 25 npm packages shared across
// images, in 500 repositories of 20 tags each.
func benchImage(i int) *sbom.SBOM {
	repo := fmt.Sprintf("registry.example/team%d/app%d", i%20, i%500)
	base, app := "sha256:"+fmt.Sprintf("%064x", 1), fmt.Sprintf("sha256:%064x", 1<<40+i)
	created := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)
	s := &sbom.SBOM{SchemaVersion: sbom.SchemaVersion, Created: created,
		Image: sbom.Image{Reference: repo, Name: repo, Digest: fmt.Sprintf("sha256:%064x", i+1), Created: &created,
			Platform: sbom.Platform{OS: "linux", Architecture: "amd64"},
			Config:   sbom.Config{User: "app", EnvNames: []string{"PATH", "PORT"}, ExposedPorts: []string{"8080/tcp"}},
			Layers:   []sbom.Layer{{Index: 0, DiffID: base, CreatedBy: "alpine"}, {Index: 1, DiffID: app, CreatedBy: "COPY app /app"}}},
		OS: &sbom.OS{ID: "alpine", VersionID: "3.19.1"}}
	add := func(typ, name, version, purl, layer string) {
		s.Packages = append(s.Packages, sbom.Package{Type: typ, Name: name, Version: version, PURL: purl,
			Locations: []sbom.Location{{Path: "x/" + name, DiffID: layer}}})
	}
	add(sbom.TypeAPK, "musl", "1.2.4_git20230717-r4", "pkg:apk/alpine/musl@1.2.4_git20230717-r4", base)
	add(sbom.TypeAPK, "zlib", "1.3.1-r0", "pkg:apk/alpine/zlib@1.3.1-r0", base)
	if i%10 == 0 {
		add(sbom.TypeNPM, "ansi-html", "0.0.7", "pkg:npm/ansi-html@0.0.7", app)
	}
	for k := range 25 {
		name, version := fmt.Sprintf("lib-%d", k), fmt.Sprintf("1.%d.%d", k%7, i%3)
		add(sbom.TypeNPM, name, version, "pkg:npm/"+name+"@"+version, app)
	}
	return s
}

// BenchmarkPages renders every dashboard page with 10k images stored (SQLite). The bar:
// each page in at most 200 ms.
func BenchmarkPages(b *testing.B) {
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(b.TempDir(), "c.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	now := time.Now().UTC()
	clock := now.Add(-20 * 24 * time.Hour)
	svc := &findings.Service{Store: st, Now: func() time.Time { return clock }}
	if _, err := svc.Import(ctx, advisoriesDir(), "osv", true); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	const images = 10_000
	for i := range images {
		// Spread the indexing over 20 days so the trend has history.
		clock = now.Add(-20*24*time.Hour + time.Duration(i)*20*24*time.Hour/images)
		s := benchImage(i)
		if _, err := svc.Ingest(ctx, s, findings.ReasonIndex); err != nil {
			b.Fatal(err)
		}
		if err := st.SetTag(ctx, s.Image.Name, fmt.Sprintf("1.%d", i/500), s.Image.Digest); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := st.DB().ExecContext(ctx, "ANALYZE"); err != nil {
		b.Fatal(err)
	}
	sum, _ := st.Stats(ctx)
	b.Logf("stored %d images, %d packages, findings %v in %s", sum.Images, sum.Packages, sum.FindingsBySeverity, time.Since(start).Round(time.Second))
	secret, rec, err := server.NewToken("bench", server.ScopeAdmin, now)
	if err != nil {
		b.Fatal(err)
	}
	if err := st.CreateToken(ctx, rec); err != nil {
		b.Fatal(err)
	}
	ui, err := New(Config{Store: st, Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	img := benchImage(4321)
	for _, c := range []struct{ name, path string }{
		{"overview", "/ui/"},
		{"images", "/ui/images?page=100"},
		{"images-filtered", "/ui/images?severity=high&package=ansi-html&sort=-indexed"},
		{"image", "/ui/images/" + img.Image.Digest},
		{"vulnerabilities", "/ui/vulnerabilities"},
		{"vulnerability", "/ui/vulnerabilities/ALPINE-CVE-2025-26519?page=100"},
		{"search-cve", "/ui/search?q=CVE-2021-23424"},
		{"packages", "/ui/packages?name=lib-3&version=1.3.1&page=20"},
		{"compare", "/ui/compare?from=" + url.QueryEscape(img.Image.Name+":1.8") + "&to=" + url.QueryEscape(benchImage(4821).Image.Name+":1.9")},
		{"settings", "/ui/settings"},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				req := httptest.NewRequest("GET", c.path, nil)
				req.AddCookie(&http.Cookie{Name: CookieName, Value: secret})
				w := httptest.NewRecorder()
				ui.ServeHTTP(w, req)
				if w.Code != http.StatusOK && w.Code != http.StatusSeeOther {
					b.Fatalf("%s: %d %.300s", c.path, w.Code, w.Body.String())
				}
			}
		})
	}
}
