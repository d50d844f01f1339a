package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/testutil/pgtest"
	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

// Sizes of the benchmark targets.
const (
	benchAdvisories    = 200_000
	benchImportRecords = 100_000 // ~100 MB of OSV JSON in genuine archives (details included)
	benchImages        = 10_000
	benchImagePackages = 300
	benchMatchPackages = 500
	benchKeyPool       = 40_000
)

func benchBackends(b *testing.B, fn func(b *testing.B, dsn string)) {
	b.Run("sqlite", func(b *testing.B) {
		fn(b, "sqlite://"+filepath.Join(b.TempDir(), "bench.db"))
	})
	b.Run("postgres", func(b *testing.B) {
		fn(b, pgtest.DSN(b))
	})
}

// benchKey returns key i of the synthetic pool: mostly Debian source packages, some PyPI and
// npm, like a typical estate.
func benchKey(i int) PackageKey {
	switch {
	case i%8 == 6:
		return PackageKey{"PyPI", "py-package-" + strconv.Itoa(i)}
	case i%8 == 7:
		return PackageKey{"npm", "@scope/npm-package-" + strconv.Itoa(i)}
	}
	return PackageKey{"Debian:12", "source-package-" + strconv.Itoa(i)}
}

// benchAdvisory builds a record the size of a typical OSV one (about 1 KB of JSON without
// details, 2-3 KB with).
func benchAdvisory(i, rev int, r *rand.Rand) *vuln.Advisory {
	id := fmt.Sprintf("CVE-2024-%06d", i)
	k := benchKey(r.IntN(benchKeyPool))
	a := &vuln.Advisory{
		ID:        id,
		Aliases:   []string{"DSA-" + strconv.Itoa(i) + "-1", "GHSA-xxxx-" + strconv.Itoa(i)},
		Summary:   "Buffer overflow in the frobnicator of a package allows remote attackers to execute code " + strconv.Itoa(rev),
		Details:   fmt.Sprintf("%01500d", i),
		Published: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
		Modified:  time.Date(2024, 2, 1, 0, 0, rev, 0, time.UTC),
		Severity:  []vuln.CVSS{{Type: "CVSS_V3", Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", Score: 9.8}},
		References: []string{
			"https://security-tracker.debian.org/tracker/" + id,
			"https://nvd.nist.gov/vuln/detail/" + id,
			"https://github.com/example/project/commit/0123456789abcdef0123456789abcdef01234567",
		},
		Affected: []vuln.Affected{{Ecosystem: k.Ecosystem, Name: k.Name, EcosystemSeverity: vuln.SeverityMedium,
			Ranges: []vuln.Range{{Type: "ECOSYSTEM", Events: []vuln.Event{{Introduced: "0"}, {Fixed: "1.2.3-" + strconv.Itoa(i%9+1)}}}}}},
	}
	if i%10 == 0 {
		k2 := benchKey(r.IntN(benchKeyPool))
		a.Affected = append(a.Affected, vuln.Affected{Ecosystem: k2.Ecosystem, Name: k2.Name,
			Ranges: []vuln.Range{{Type: "ECOSYSTEM", Events: []vuln.Event{{Introduced: "2.0"}, {Fixed: "2.4.1"}}}}})
	}
	return a
}

func benchImport(tb testing.TB, s *Store, source string, n int) ImportResult {
	tb.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	im, err := s.BeginImport(context.Background(), source, true)
	if err != nil {
		tb.Fatal(err)
	}
	for i := range n {
		if err := im.Put(benchAdvisory(i, 0, r)); err != nil {
			tb.Fatal(err)
		}
	}
	res, err := im.Commit()
	if err != nil {
		tb.Fatal(err)
	}
	return res
}

// BenchmarkImport imports 100k fresh records (a 100 MB archive) into an empty store.
func BenchmarkImport(b *testing.B) {
	benchBackends(b, func(b *testing.B, dsn string) {
		s := open(b, dsn)
		i := 0
		for b.Loop() {
			// A new source each round is a complete first import, as into an empty store;
			// the previous round's records stay and only enlarge the indexes.
			res := benchImport(b, s, "bench-"+strconv.Itoa(i), benchImportRecords)
			i++
			if res.Added+res.Updated != benchImportRecords {
				b.Fatalf("import %+v", res)
			}
			b.StopTimer()
			if _, err := s.DB().Exec(`DELETE FROM advisories`); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		b.ReportMetric(float64(benchImportRecords)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
}

// BenchmarkAdvisoriesFor looks up the advisories of one image of 500 packages among 200k.
func BenchmarkAdvisoriesFor(b *testing.B) {
	benchBackends(b, func(b *testing.B, dsn string) {
		s := open(b, dsn)
		benchImport(b, s, "bench", benchAdvisories)
		r := rand.New(rand.NewPCG(3, 4))
		keys := make([]PackageKey, benchMatchPackages)
		for i := range keys {
			keys[i] = benchKey(r.IntN(benchKeyPool))
		}
		var found int
		for b.Loop() {
			m, err := s.AdvisoriesFor(context.Background(), keys)
			if err != nil {
				b.Fatal(err)
			}
			found = 0
			for _, as := range m {
				found += len(as)
			}
		}
		b.ReportMetric(float64(found), "advisories/op")
	})
}

// fillImages stores n images of per packages each, directly (the SBOM blob is a stub): the
// benchmark is about the key index, not about SBOM encoding.
func fillImages(tb testing.TB, s *Store, n, per int) {
	tb.Helper()
	ctx := context.Background()
	r := rand.New(rand.NewPCG(5, 6))
	const imagesPerTx = 500
	for start := 0; start < n; start += imagesPerTx {
		end := min(n, start+imagesPerTx)
		err := s.write(ctx, func(tx *txw) error {
			if err := insertRows(ctx, tx, `INSERT INTO images (digest, reference, name, platform, os_id, os_version,
				created, indexed_at, package_count, sbom) VALUES `, 10, end-start, func(i int, args []any) []any {
				d := benchDigest(start + i)
				return append(args, d, "registry.example/app@"+d, "registry.example/app", "linux/amd64", "debian", "12", nil, int64(1), per, []byte{})
			}); err != nil {
				return err
			}
			// One package set per image, named by its digest (as migrated databases have them).
			if err := insertRows(ctx, tx, `INSERT INTO package_sets (id, package_count) VALUES `, 2, end-start, func(i int, args []any) []any {
				return append(args, benchDigest(start+i), per)
			}); err != nil {
				return err
			}
			if err := insertRows(ctx, tx, `INSERT INTO image_sets (image_digest, pos, set_id) VALUES `, 3, end-start, func(i int, args []any) []any {
				return append(args, benchDigest(start+i), 0, benchDigest(start+i))
			}); err != nil {
				return err
			}
			return insertRows(ctx, tx, `INSERT INTO set_packages (set_id, idx, type, name, version, purl, ecosystem, match_name) VALUES `,
				8, (end-start)*per, func(i int, args []any) []any {
					k := benchKey(r.IntN(benchKeyPool))
					return append(args, benchDigest(start+i/per), i%per, "deb", k.Name, "1.0-1", "pkg:deb/debian/"+k.Name+"@1.0-1", k.Ecosystem, k.Name)
				})
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
}

func benchDigest(i int) string { return fmt.Sprintf("sha256:%064d", i) }

// BenchmarkPackagesWithKeys finds the stored packages (10k images x 300) holding the keys of a
// 1% advisory change (2000 advisories).
func BenchmarkPackagesWithKeys(b *testing.B) {
	benchBackends(b, func(b *testing.B, dsn string) {
		s := open(b, dsn)
		fillImages(b, s, benchImages, benchImagePackages)
		r := rand.New(rand.NewPCG(7, 8))
		keys := make([]PackageKey, benchAdvisories/100)
		for i := range keys {
			keys[i] = benchKey(r.IntN(benchKeyPool))
		}
		var n int
		for b.Loop() {
			n = 0
			images := map[string]struct{}{}
			if err := s.PackagesWithKeys(context.Background(), keys, func(p StoredPackage) error {
				n++
				images[p.ImageDigest] = struct{}{}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n), "packages/op")
	})
}

// BenchmarkReplaceFindingsBatch re-writes the findings of 5000 of 10k stored images (30
// findings each) within a scope of 3 keys, each image losing 3 findings and gaining 3: the
// write side of a re-match after an advisory change.
func BenchmarkReplaceFindingsBatch(b *testing.B) {
	const images, perImage, touched, scoped = benchImages, 30, benchImages / 2, 3
	benchBackends(b, func(b *testing.B, dsn string) {
		s := open(b, dsn)
		ctx := context.Background()
		fillImages(b, s, images, 0)
		findingsOf := func(img int, from, to int, state string) []vuln.Finding {
			var fs []vuln.Finding
			for f := from; f < to; f++ {
				k := benchKey((img*7 + f) % benchKeyPool)
				id := fmt.Sprintf("CVE-2024-%d", f)
				if f < scoped {
					id += state
				}
				fs = append(fs, vuln.Finding{
					Package:         vuln.PackageRef{Type: "deb", Name: k.Name, Version: "1.0-1", PURL: "pkg:deb/debian/" + k.Name + "@1.0-1", Ecosystem: k.Ecosystem, MatchName: k.Name},
					VulnerabilityID: id, Aliases: []string{"DSA-1234-1", "GHSA-aaaa-bbbb-cccc"}, Summary: "Buffer overflow in the frobnicator",
					Severity: vuln.SeverityHigh, CVSSScore: 8.1, CVSSVector: "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H", FixedVersion: "1.0-2",
					AffectedRange: "<1.0-2", URLs: []string{"https://security-tracker.debian.org/tracker/" + id},
				})
			}
			return fs
		}
		now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
		for start := 0; start < images; start += 1000 {
			var ups []FindingsUpdate
			for img := start; img < min(images, start+1000); img++ {
				ups = append(ups, FindingsUpdate{Digest: benchDigest(img), Findings: findingsOf(img, 0, perImage, "-a")})
			}
			if _, err := s.ReplaceFindingsBatch(ctx, ups, "push", now); err != nil {
				b.Fatal(err)
			}
		}
		state := []string{"-b", "-a"}
		i := 0
		for b.Loop() {
			ups := make([]FindingsUpdate, touched)
			for img := range ups {
				var scope []PackageKey
				for f := range scoped {
					scope = append(scope, benchKey((img*7+f)%benchKeyPool))
				}
				ups[img] = FindingsUpdate{Digest: benchDigest(img), Scope: scope, Findings: findingsOf(img, 0, scoped, state[i%2])}
			}
			sum, err := s.ReplaceFindingsBatch(ctx, ups, "advisory-update", now)
			if err != nil {
				b.Fatal(err)
			}
			if sum.Added != touched*scoped || sum.Removed != touched*scoped {
				b.Fatalf("summary %+v", sum)
			}
			i++
		}
		b.ReportMetric(float64(touched)*float64(b.N)/b.Elapsed().Seconds(), "images/s")
	})
}
