package dashboard

import (
	"archive/zip"
	"bytes"
	"context"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/findings"
	"github.com/crowsnest-dev/crowsnest/internal/image"
	"github.com/crowsnest-dev/crowsnest/internal/index"
	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract/catalog"
	"github.com/crowsnest-dev/crowsnest/internal/server"
	"github.com/crowsnest-dev/crowsnest/internal/store"
	ib "github.com/crowsnest-dev/crowsnest/internal/testutil/imagebuild"
)

// Names of the fixture: an Alpine base, and two versions of a web app built on it. web:1.0 holds
// musl (ALPINE-CVE-2025-26519, alias CVE-2025-26519), ansi-html 0.0.7 (GHSA-whgm-jr23-g3j9, alias
// CVE-2021-23424), requests 2.28.1 (PYSEC-2023-74) and junit 4.12 (GHSA-269g-pwp5-87pp); web:1.1
// upgraded ansi-html and requests.
const (
	baseRepo = "registry.example/base/alpine"
	webRepo  = "registry.example/team/web"
)

type fixture struct {
	st         *store.Store
	svc        *findings.Service
	srv        *httptest.Server
	read       string // a read-scope token
	admin      string
	base, web1 string
	web2       string
}

func advisoriesDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "advisory", "testdata", "osv")
}

func jarOf(t testing.TB, group, artifact, version string) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("META-INF/MANIFEST.MF")
	w.Write([]byte("Manifest-Version: 1.0\r\nImplementation-Title: " + artifact + "\r\n\r\n"))
	w, _ = zw.Create("META-INF/maven/" + group + "/" + artifact + "/pom.properties")
	w.Write([]byte("groupId=" + group + "\nartifactId=" + artifact + "\nversion=" + version + "\n"))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func baseLayer() ib.Layer {
	return ib.NewLayer(
		ib.File("etc/os-release", []byte("NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME=\"Alpine Linux v3.19\"\n")),
		ib.File("lib/apk/db/installed", ib.APKInstalled(
			ib.APKPkg{Name: "musl", Version: "1.2.4_git20230717-r4", Arch: "x86_64", Origin: "musl", License: "MIT", Description: "the musl c library", Files: []string{"lib/ld-musl-x86_64.so.1"}},
			ib.APKPkg{Name: "zlib", Version: "1.3.1-r0", Arch: "x86_64", Origin: "zlib", License: "Zlib", Description: "compression library", Files: []string{"lib/libz.so.1.3.1"}},
		)),
	)
}

func appLayer(t testing.TB, ansi, requests string) ib.Layer {
	return ib.NewLayer(
		ib.File("app/node_modules/ansi-html/package.json", []byte(`{"name":"ansi-html","version":"`+ansi+`","license":"Apache-2.0"}`)),
		ib.File("usr/lib/python3.11/site-packages/requests-"+requests+".dist-info/METADATA", []byte("Metadata-Version: 2.1\nName: requests\nVersion: "+requests+"\n")),
		ib.File("opt/lib/junit-4.12.jar", jarOf(t, "junit", "junit", "4.12")),
	)
}

// indexed indexes img through the real pipeline (OCI layout, index.Indexer, the default
// extractor catalog) and names it repo.
func indexed(t testing.TB, img ib.Layer, cfg ib.Config, repo string, layers ...ib.Layer) *sbom.SBOM {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "layout")
	ib.WriteOCILayout(t, dir, "x", ib.ImageWithConfig(t, cfg, append([]ib.Layer{img}, layers...)...))
	target, err := image.Open(ctx, "oci-dir://"+dir+":x", image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	im, err := target.Image(ctx)
	if err != nil {
		t.Fatal(err)
	}
	set, err := catalog.Default(catalog.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	sb, _, err := (&index.Indexer{Extractors: set}).Index(ctx, im)
	if err != nil {
		t.Fatal(err)
	}
	sb.Image.Name, sb.Image.Reference = repo, repo
	return sb
}

// newFixture fills a SQLite store through the real indexer and matcher with genuine OSV records
// and serves the API with the dashboard.
func newFixture(t testing.TB) *fixture {
	t.Helper()
	return newFixtureOn(t, "sqlite://"+filepath.Join(t.TempDir(), "c.db"))
}

func newFixtureOn(t testing.TB, dsn string) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Now().UTC()
	clock := now
	svc := &findings.Service{Store: st, Now: func() time.Time { return clock }}
	if _, err := svc.Import(ctx, advisoriesDir(), "osv", true); err != nil {
		t.Fatal(err)
	}
	f := &fixture{st: st, svc: svc}
	ingest := func(sb *sbom.SBOM, at time.Time, tags ...string) string {
		clock = at
		if _, err := svc.Ingest(ctx, sb, findings.ReasonIndex); err != nil {
			t.Fatal(err)
		}
		for _, tag := range tags {
			if err := st.SetTag(ctx, sb.Image.Name, tag, sb.Image.Digest); err != nil {
				t.Fatal(err)
			}
		}
		return sb.Image.Digest
	}
	cfg := ib.DefaultConfig()
	f.base = ingest(indexed(t, baseLayer(), cfg, baseRepo), now.Add(-12*24*time.Hour), "3.19")
	web := cfg
	web.User = "app"
	web.Env = append(web.Env, "APP_SECRET_KEY=s3cret", "PORT=8080")
	web.ExposedPorts = []string{"8080/tcp"}
	web.Labels = map[string]string{"org.opencontainers.image.title": "web", "team": "payments"}
	f.web1 = ingest(indexed(t, baseLayer(), web, webRepo, appLayer(t, "0.0.7", "2.28.1")), now.Add(-6*24*time.Hour), "1.0")
	f.web2 = ingest(indexed(t, baseLayer(), web, webRepo, appLayer(t, "0.0.8", "2.31.0")), now.Add(-1*time.Hour), "1.1", "latest")
	if err := st.MarkFailed(ctx, "sha256:"+string(bytes.Repeat([]byte("f"), 64)), "registry.example/team/broken", "2.0",
		"layer sha256:ab…: unexpected EOF", 5); err != nil {
		t.Fatal(err)
	}
	clock = now
	f.read = token(t, st, "ci-reader", server.ScopeRead)
	f.admin = token(t, st, "ops", server.ScopeAdmin)
	metrics := server.NewMetrics()
	ui, err := New(Config{Store: st, Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Service: svc, Metrics: metrics, Dashboard: ui})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(srv.Handler())
	t.Cleanup(f.srv.Close)
	return f
}

func token(t testing.TB, st *store.Store, name, scope string) string {
	secret, rec, err := server.NewToken(name, scope, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateToken(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	return secret
}
