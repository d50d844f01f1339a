package server

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/testutil/pgtest"
)

// benchSBOM is image i with n packages: musl (vulnerable, so one advisory affects every image),
// ansi-html on every tenth image, and npm packages shared across images.
func benchSBOM(i, n int) *sbom.SBOM {
	s := alpineSBOM(fmt.Sprintf("bench/app%d:1", i%500), muslVulnerable, "")
	s.Image.Digest = fmt.Sprintf("sha256:%064x", i+1)
	s.Image.Layers = append(s.Image.Layers, sbom.Layer{Index: 1, DiffID: fmt.Sprintf("sha256:%064x", 1<<40+i)})
	for k := 1; k < n; k++ {
		name, version := fmt.Sprintf("lib-%d", k), fmt.Sprintf("1.%d.%d", k%7, i%3)
		if k == 1 && i%10 == 0 {
			name, version = "ansi-html", "0.0.7"
		}
		s.Packages = append(s.Packages, sbom.Package{Type: sbom.TypeNPM, Name: name, Version: version, PURL: "pkg:npm/" + name + "@" + version,
			Locations: []sbom.Location{{Path: "app/node_modules/" + name + "/package.json", DiffID: s.Image.Layers[1].DiffID}}})
	}
	return s
}

func percentile(d []time.Duration, p float64) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

// BenchmarkAPILatency measures the image list and a vulnerability detail with 10k images stored
// (30 packages each; the vulnerability affects all 10k). Reports p50/p99 in ms.
func BenchmarkAPILatency(b *testing.B) {
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			d := "sqlite://" + filepath.Join(b.TempDir(), "c.db")
			if name == "postgres" {
				d = pgtest.DSN(b)
			}
			e := newEnv(b, d, Config{})
			ctx := context.Background()
			start := time.Now()
			for i := range 10_000 {
				s := benchSBOM(i, 30)
				if _, err := e.svc.Ingest(ctx, s, ReasonPush); err != nil {
					b.Fatal(err)
				}
			}
			b.Logf("%s: stored 10k images in %s", name, time.Since(start).Round(time.Second))
			// Steady state: PostgreSQL's autovacuum (and SQLite's optimize) would have gathered
			// planner statistics on tables this size.
			if _, err := e.st.DB().ExecContext(ctx, "ANALYZE"); err != nil {
				b.Fatal(err)
			}
			for _, c := range []struct{ name, path string }{
				{"images", "/api/v1/images?limit=50&offset=5000"},
				{"images-filtered", "/api/v1/images?severity=high&package=ansi-html&limit=50"},
				{"vulnerability", "/api/v1/vulnerabilities/" + alpineCVE + "?limit=100&offset=5000"},
			} {
				b.Run(c.name, func(b *testing.B) {
					var lat []time.Duration
					for b.Loop() {
						t0 := time.Now()
						code, data, _ := e.do("GET", c.path, e.read, nil)
						lat = append(lat, time.Since(t0))
						if code != http.StatusOK {
							b.Fatalf("%d %s", code, data)
						}
					}
					b.ReportMetric(float64(percentile(lat, 0.50).Microseconds())/1000, "p50-ms")
					b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
				})
			}
		})
	}
}

// BenchmarkPush measures SBOM pushes of 300 packages through the HTTP API (decode, validate,
// store, match, tag). Reports images/s.
func BenchmarkPush(b *testing.B) {
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			d := "sqlite://" + filepath.Join(b.TempDir(), "c.db")
			if name == "postgres" {
				d = pgtest.DSN(b)
			}
			e := newEnv(b, d, Config{})
			bodies := make([][]byte, 0, 64)
			for i := range cap(bodies) {
				bodies = append(bodies, encode(b, benchSBOM(i, 300)))
			}
			n := 0
			start := time.Now()
			for b.Loop() {
				code, data, _ := e.do("POST", "/api/v1/images?tag=bench/app:"+fmt.Sprint(n), e.push, bodies[n%len(bodies)])
				if code != http.StatusCreated {
					b.Fatalf("%d %s", code, data)
				}
				n++
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "images/s")
		})
	}
}
