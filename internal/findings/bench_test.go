package findings

// Benchmarks of issue 3's targets through the Service, on SQLite and PostgreSQL:
//
//	go test -run='^$' -bench=. -benchtime=5x ./internal/findings
//
// They only run with -bench: setup fills stores with 200k advisories and 10k images x 300
// packages, which takes tens of seconds per backend.

import (
	"archive/zip"
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/advisory"
	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/store"
	"github.com/crowsnest-dev/crowsnest/internal/testutil/pgtest"
)

// Sizes from issue 3.
const (
	benchAdvisories    = 200_000
	benchImages        = 10_000
	benchImagePackages = 300
	benchMatchPackages = 500
	// benchKeyPool is the number of distinct package keys: 200k advisories give 5 per key, and
	// an image's 300 packages are drawn from it.
	benchKeyPool = 40_000
	// benchArchiveRecords of about 1 KB each make the ~100 MB (uncompressed JSON) archive.
	benchArchiveRecords = 100_000
)

// mix is splitmix64: deterministic, well spread, no shared state.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// benchEco describes key i of the pool: its OSV ecosystem, package name and the SBOM package
// type that produces it. Two thirds are Debian source packages, the rest spread over language
// ecosystems, like a typical estate.
func benchEco(i int) (eco, name, typ string) {
	n := strconv.Itoa(i)
	switch i % 12 {
	case 8:
		return "PyPI", "py-package-" + n, sbom.TypePyPI
	case 9:
		return "npm", "@scope/npm-package-" + n, sbom.TypeNPM
	case 10:
		return "Go", "github.com/example/module-" + n, sbom.TypeGolang
	case 11:
		return "Maven", "org.example:artifact-" + n, sbom.TypeMaven
	}
	return "Debian:12", "source-package-" + n, sbom.TypeDeb
}

// advisoryKey is the pool key advisory i affects.
func advisoryKey(i int) int { return int(mix(uint64(i)) % benchKeyPool) }

// fixedFor is the fixed version of advisory i at revision rev: a change moves it, so images
// gain or lose findings (package versions are 1.0.0 .. 1.9.0).
func fixedFor(i, rev int) string {
	if rev%2 == 1 {
		return "1.3.0"
	}
	return "1." + strconv.Itoa(4+i%3) + ".0"
}

// osvRecord writes advisory i at revision rev as genuine OSV JSON of about 1 KB, shaped like
// osv.dev's Debian and GHSA records (aliases, versions list, references, severity).
func osvRecord(i, rev int) []byte {
	eco, name, _ := benchEco(advisoryKey(i))
	id := fmt.Sprintf("CVE-2024-%06d", i)
	rec := map[string]any{
		"schema_version": "1.7.3",
		"id":             id,
		"published":      "2024-01-01T00:00:00Z",
		"modified":       time.Date(2024, 2, 1, 0, 0, rev, 0, time.UTC).Format(time.RFC3339),
		"aliases":        []string{"GHSA-" + fmt.Sprintf("%04x-%04x-%04x", i&0xffff, mix(uint64(i))&0xffff, i>>4&0xffff)},
		"summary":        "Buffer overflow in the frobnicator of " + name + " allows remote attackers to execute code",
		"details":        strings.Repeat(fmt.Sprintf("Details of %s, revision %d. ", id, rev), 8),
		"severity":       []map[string]string{{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}},
		"references": []map[string]string{
			{"type": "ADVISORY", "url": "https://security-tracker.debian.org/tracker/" + id},
			{"type": "WEB", "url": "https://nvd.nist.gov/vuln/detail/" + id},
			{"type": "FIX", "url": "https://github.com/example/project/commit/" + fmt.Sprintf("%040x", mix(uint64(i)))},
		},
		"affected": []map[string]any{{
			"package": map[string]string{"ecosystem": eco, "name": name},
			"ranges": []map[string]any{{"type": "ECOSYSTEM", "events": []map[string]string{
				{"introduced": "0"}, {"fixed": fixedFor(i, rev)}}}},
			"versions": []string{"1.0.0", "1.1.0", "1.2.0"},
		}},
	}
	out, err := json.Marshal(rec)
	if err != nil {
		panic(err) // maps of strings always encode
	}
	return out
}

// writeArchive writes records [0, n) (those with keep(i)) at revision rev as an osv.dev-style
// all.zip at path, via a temporary file so an interrupted run leaves no half archive behind.
func writeArchive(tb testing.TB, path string, n, rev int, keep func(int) bool) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".archive-*")
	if err != nil {
		tb.Fatal(err)
	}
	defer os.Remove(f.Name())
	zw := zip.NewWriter(f)
	for i := range n {
		if keep != nil && !keep(i) {
			continue
		}
		w, err := zw.Create(fmt.Sprintf("CVE-2024-%06d.json", i))
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := w.Write(osvRecord(i, rev)); err != nil {
			tb.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		tb.Fatal(err)
	}
}

// cachedArchive returns the path of an archive kept across runs under the user cache dir
// (CROWSNEST_BENCH_CACHE overrides it), generating it on first use.
func cachedArchive(tb testing.TB, name string, n, rev int, keep func(int) bool) string {
	tb.Helper()
	dir := cacheDir()
	// The generator's version is in the name: a changed generator must not reuse old archives.
	path := filepath.Join(dir, "v1-"+name+".zip")
	if _, err := os.Stat(path); err == nil {
		return path
	}
	start := time.Now()
	writeArchive(tb, path, n, rev, keep)
	tb.Logf("generated %s in %v", path, time.Since(start).Round(time.Millisecond))
	return path
}

// cacheDir holds generated archives and snapshots across runs: the user cache dir, or
// CROWSNEST_BENCH_CACHE.
func cacheDir() string {
	if dir := os.Getenv("CROWSNEST_BENCH_CACHE"); dir != "" {
		return dir
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "crowsnest-bench")
}

func benchBackends(b *testing.B, fn func(b *testing.B, s *Service)) {
	run := func(b *testing.B, dsn string) {
		st, err := store.Open(context.Background(), dsn, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		fn(b, &Service{Store: st})
	}
	b.Run("sqlite", func(b *testing.B) { run(b, "sqlite://"+filepath.Join(b.TempDir(), "bench.db")) })
	b.Run("postgres", func(b *testing.B) { run(b, pgtest.DSN(b)) })
}

// preparedBackends is benchBackends for a store that setup fills. With CROWSNEST_BENCH_SNAPSHOT=1
// the filled store is kept (a copy of the SQLite file in the cache directory, a template database
// on the PostgreSQL server) and later runs start from a copy of it instead of filling for
// minutes. The copy is of the files as setup left them, so the layout measured is the same. The
// snapshot's name holds the newest migration's: a schema change fills anew.
func preparedBackends(b *testing.B, name string, setup, fn func(b *testing.B, s *Service)) {
	if os.Getenv("CROWSNEST_BENCH_SNAPSHOT") != "1" {
		benchBackends(b, func(b *testing.B, s *Service) {
			setup(b, s)
			fn(b, s)
		})
		return
	}
	entries, err := os.ReadDir("../store/migrations")
	if err != nil || len(entries) == 0 {
		b.Fatalf("read the migrations for the snapshot's name: %v", err)
	}
	schema := strings.TrimSuffix(entries[len(entries)-1].Name(), ".sql")
	// v2: the re-match estate's findings come from a comparing re-match.
	key := "v2-" + name + "-" + schema
	open := func(b *testing.B, dsn string) *Service {
		st, err := store.Open(context.Background(), dsn, nil)
		if err != nil {
			b.Fatal(err)
		}
		return &Service{Store: st}
	}
	b.Run("sqlite", func(b *testing.B) {
		snap := filepath.Join(cacheDir(), key+".db")
		path := filepath.Join(b.TempDir(), "bench.db")
		if _, err := os.Stat(snap); err != nil {
			s := open(b, "sqlite://"+path)
			setup(b, s)
			if _, err := s.Store.DB().Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
				b.Fatal(err)
			}
			s.Store.Close()
			copyFile(b, path, snap)
		} else {
			copyFile(b, snap, path)
		}
		s := open(b, "sqlite://"+path)
		b.Cleanup(func() { s.Store.Close() })
		fn(b, s)
	})
	b.Run("postgres", func(b *testing.B) {
		tmpl := "crowsnest_bench_" + strings.ReplaceAll(key, "-", "_")
		if !pgtest.TemplateExists(b, tmpl) {
			dsn := pgtest.DSN(b)
			s := open(b, dsn)
			setup(b, s)
			s.Store.Close()
			pgtest.SaveTemplate(b, dsn, tmpl)
		}
		s := open(b, pgtest.FromTemplate(b, tmpl))
		b.Cleanup(func() { s.Store.Close() })
		fn(b, s)
	})
}

func copyFile(tb testing.TB, from, to string) {
	tb.Helper()
	src, err := os.Open(from)
	if err != nil {
		tb.Fatal(err)
	}
	defer src.Close()
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		tb.Fatal(err)
	}
	tmp := to + ".tmp"
	dst, err := os.Create(tmp)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		tb.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, to); err != nil {
		tb.Fatal(err)
	}
}

// profileLoop writes a CPU profile of what follows until the returned function is called to
// $CROWSNEST_BENCH_CPUPROFILE-<dialect> when that is set: go test's -cpuprofile covers the
// minutes of setup too.
func profileLoop(tb testing.TB, dialect string) func() {
	base := os.Getenv("CROWSNEST_BENCH_CPUPROFILE")
	if base == "" {
		return func() {}
	}
	f, err := os.Create(base + "-" + dialect)
	if err != nil {
		tb.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		tb.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// loadAdvisories imports the 200k baseline advisories (revision 0) through the store.
func loadAdvisories(b *testing.B, s *Service) {
	b.Helper()
	start := time.Now()
	imp, err := s.Store.BeginImport(context.Background(), "bench", false)
	if err != nil {
		b.Fatal(err)
	}
	for i := range benchAdvisories {
		a, err := advisory.Parse(osvRecord(i, 0))
		if err != nil {
			b.Fatal(err)
		}
		a.Source = "bench"
		if err := imp.Put(a); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := imp.Commit(); err != nil {
		b.Fatal(err)
	}
	b.Logf("%s: %d advisories stored in %v", s.Store.Dialect(), benchAdvisories, time.Since(start).Round(time.Millisecond))
}

// benchPackage is package p of image img: a pool key and a version 1.0.0 .. 1.9.0.
func benchPackage(img, p int) (key int, version string) {
	h := mix(uint64(img)<<20 | uint64(p))
	return int(h % benchKeyPool), "1." + strconv.Itoa(int(h>>32%10)) + ".0"
}

func benchSBOM(img, n int) *sbom.SBOM {
	d := fmt.Sprintf("sha256:%064x", img)
	sb := &sbom.SBOM{
		Image: sbom.Image{Digest: d, Reference: "registry.example/app@" + d, Name: "registry.example/app"},
		OS:    &sbom.OS{ID: "debian", VersionID: "12"},
	}
	for p := range n {
		k, v := benchPackage(img, p)
		_, name, typ := benchEco(k)
		pkg := sbom.Package{Type: typ, Name: name, Version: v, PURL: "pkg:" + typ + "/" + name + "@" + v}
		if typ == sbom.TypeDeb {
			pkg.Source = &sbom.Source{Name: name}
		}
		sb.Packages = append(sb.Packages, pkg)
	}
	return sb
}

// fillImages stores benchImages images of benchImagePackages packages with multi-row INSERTs:
// the rows PutImage writes, minus the SBOM blob (a stub), which re-matching never reads. Each
// image's packages are one package set of its own (its packages are drawn at random, so no two
// images share a layer's set; PutImage names a set by the hash of its rows, the fill by the
// image's number). Package rows go in in key order, the order SQLite clusters them by: random
// order makes every insert touch a different page of a 3M-row tree (8.5 minutes instead of
// seconds). PutImage itself is measured by BenchmarkPutImage.
func fillImages(b *testing.B, s *Service) {
	b.Helper()
	ctx := context.Background()
	start := time.Now()
	db := s.Store.DB()
	sqlite := s.Store.Dialect() == "sqlite"
	digest := func(img int) string { return fmt.Sprintf("sha256:%064x", img) }
	setID := func(img int) string { return fmt.Sprintf("%064x", img) }
	type keyName struct{ eco, name, typ string }
	keys := make([]keyName, benchKeyPool)
	order := make([]int, benchKeyPool)
	for k := range keys {
		e, n, t := benchEco(k)
		keys[k] = keyName{e, n, t}
		order[k] = k
	}
	slices.SortFunc(order, func(a, b int) int {
		return cmp.Or(strings.Compare(keys[a].eco, keys[b].eco), strings.Compare(keys[a].name, keys[b].name))
	})
	rank := make([]int, benchKeyPool)
	for r, k := range order {
		rank[k] = r
	}
	type ref struct {
		rank    int32
		img     int32
		idx     int16
		version uint8
	}
	// The rows must hold what PutImage would: check the match keys against Keys.
	for i, k := range Keys(benchSBOM(0, benchImagePackages)) {
		kp, _ := benchPackage(0, i)
		if k.Ecosystem != keys[kp].eco || k.Name != keys[kp].name {
			b.Fatalf("package %d: key %+v, fill writes %+v", i, k, keys[kp])
		}
	}
	refs := make([]ref, 0, benchImages*benchImagePackages)
	for img := range benchImages {
		for p := range benchImagePackages {
			k, v := benchPackage(img, p)
			refs = append(refs, ref{int32(rank[k]), int32(img), int16(p), v[2] - '0'})
		}
	}
	slices.SortFunc(refs, func(a, b ref) int {
		return cmp.Or(cmp.Compare(a.rank, b.rank), cmp.Compare(a.img, b.img), cmp.Compare(a.idx, b.idx))
	})
	exec := func(fn func(tx *sql.Tx) error) {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := fn(tx); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	exec(func(tx *sql.Tx) error {
		imgs := make([][]any, benchImages)
		for img := range imgs {
			d := digest(img)
			imgs[img] = []any{d, "registry.example/app@" + d, "registry.example/app", "linux/amd64", "debian", "12", int64(1), benchImagePackages, []byte{}}
		}
		if err := insertMany(ctx, tx, sqlite, `INSERT INTO images (digest, reference, name, platform, os_id, os_version, indexed_at, package_count, sbom) VALUES `, imgs); err != nil {
			return err
		}
		sets := make([][]any, benchImages)
		links := make([][]any, benchImages)
		for img := range sets {
			sets[img] = []any{setID(img), benchImagePackages}
			links[img] = []any{digest(img), 0, setID(img)}
		}
		if err := insertMany(ctx, tx, sqlite, `INSERT INTO package_sets (id, package_count) VALUES `, sets); err != nil {
			return err
		}
		return insertMany(ctx, tx, sqlite, `INSERT INTO image_sets (image_digest, pos, set_id) VALUES `, links)
	})
	const perTx = 250_000
	for len(refs) > 0 {
		chunk := refs[:min(perTx, len(refs))]
		refs = refs[len(chunk):]
		exec(func(tx *sql.Tx) error {
			rows := make([][]any, len(chunk))
			for i, r := range chunk {
				k := keys[order[r.rank]]
				v := "1." + strconv.Itoa(int(r.version)) + ".0"
				// Keys() of such a package: Debian keys are the source name, others the name.
				rows[i] = []any{setID(int(r.img)), int(r.idx), k.typ, k.name, v, "pkg:" + k.typ + "/" + k.name + "@" + v, k.eco, k.name}
			}
			return insertMany(ctx, tx, sqlite, `INSERT INTO set_packages (set_id, idx, type, name, version, purl, ecosystem, match_name) VALUES `, rows)
		})
	}
	b.Logf("%s: %d images x %d packages stored in %v", s.Store.Dialect(), benchImages, benchImagePackages, time.Since(start).Round(time.Millisecond))
}

func insertMany(ctx context.Context, tx *sql.Tx, sqlite bool, prefix string, rows [][]any) error {
	cols := len(rows[0])
	per := 30000 / cols
	for len(rows) > 0 {
		chunk := rows[:min(per, len(rows))]
		rows = rows[len(chunk):]
		var q strings.Builder
		q.WriteString(prefix)
		args := make([]any, 0, len(chunk)*cols)
		for r, row := range chunk {
			if r > 0 {
				q.WriteByte(',')
			}
			q.WriteByte('(')
			for c := range cols {
				if c > 0 {
					q.WriteByte(',')
				}
				if sqlite {
					q.WriteByte('?')
				} else {
					q.WriteString("$" + strconv.Itoa(len(args)+c+1))
				}
			}
			q.WriteByte(')')
			args = append(args, row...)
		}
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkMatchImage matches one image of 500 packages of mixed ecosystems against 200k
// stored advisories (issue 3 target: <= 50 ms).
func BenchmarkMatchImage(b *testing.B) {
	benchBackends(b, func(b *testing.B, s *Service) {
		loadAdvisories(b, s)
		sb := benchSBOM(1_000_000, benchMatchPackages)
		ctx := context.Background()
		var found int
		for b.Loop() {
			f, _, err := s.Match(ctx, sb)
			if err != nil {
				b.Fatal(err)
			}
			found = len(f)
		}
		if found == 0 {
			b.Fatal("no findings: the benchmark matches nothing")
		}
		b.ReportMetric(float64(found), "findings/op")
	})
}

// BenchmarkRematch1Percent imports a change of 1% of the 200k advisories (2000 records whose
// fixed version moves) as an OSV archive through Service.Import, with 10k images x 300 packages
// stored, and so measures the import plus the re-match of every image the change concerns
// (issue 3 target: <= 5 s). Rounds alternate between two revisions, so every round changes all
// 2000 records and images gain or lose findings each time.
func BenchmarkRematch1Percent(b *testing.B) {
	changed := func(i int) bool { return i%100 == 0 }
	revs := [2]string{
		cachedArchive(b, "change-rev1", benchAdvisories, 1, changed),
		cachedArchive(b, "change-rev2", benchAdvisories, 2, changed),
	}
	preparedBackends(b, "rematch", func(b *testing.B, s *Service) {
		loadAdvisories(b, s)
		fillImages(b, s)
		// The findings of the packages the changes concern, as if the estate had been matched
		// before: a first change, then a re-match that compares with the stored findings (none
		// yet) and so writes them all. An import alone writes only what the change changes.
		start := time.Now()
		ctx := context.Background()
		rep, err := s.Import(ctx, revs[1], "bench", false)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Rematch(ctx, rep.Import.ChangedKeys); err != nil {
			b.Fatal(err)
		}
		b.Logf("%s: initial findings in %v", s.Store.Dialect(), time.Since(start).Round(time.Millisecond))
	}, func(b *testing.B, s *Service) {
		ctx := context.Background()
		round := 0
		var rep ImportReport
		defer profileLoop(b, s.Store.Dialect())()
		for b.Loop() {
			var err error
			rep, err = s.Import(ctx, revs[round%2], "bench", false)
			if err != nil {
				b.Fatal(err)
			}
			round++
			if rep.Import.Updated != benchAdvisories/100 {
				b.Fatalf("import %+v: want %d updated", rep.Import, benchAdvisories/100)
			}
		}
		if rep.Changes.Added+rep.Changes.Removed == 0 {
			b.Fatalf("change %+v: no finding changed", rep.Changes)
		}
		b.ReportMetric(float64(rep.Changes.Added+rep.Changes.Removed), "finding-changes/op")
		b.ReportMetric(float64(len(rep.Import.ChangedKeys)), "keys/op")
	})
}

// BenchmarkImportArchive imports a ~100 MB (uncompressed JSON) OSV all.zip of 100k records
// into an empty advisory table (issue 3 target: <= 60 s).
func BenchmarkImportArchive(b *testing.B) {
	path := cachedArchive(b, "all-100k", benchArchiveRecords, 0, nil)
	size := archiveJSONBytes(b, path)
	b.Logf("archive %s: %d MB of JSON", path, size>>20)
	benchBackends(b, func(b *testing.B, s *Service) {
		ctx := context.Background()
		for b.Loop() {
			rep, err := s.Import(ctx, path, "bench", true)
			if err != nil {
				b.Fatal(err)
			}
			if rep.Import.Added != benchArchiveRecords {
				b.Fatalf("import %+v", rep.Import)
			}
			b.StopTimer()
			if _, err := s.Store.DB().Exec(`DELETE FROM affected`); err != nil {
				b.Fatal(err)
			}
			if _, err := s.Store.DB().Exec(`DELETE FROM advisories`); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		b.ReportMetric(float64(benchArchiveRecords)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
}

func archiveJSONBytes(tb testing.TB, path string) uint64 {
	zr, err := zip.OpenReader(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer zr.Close()
	var n uint64
	for _, f := range zr.File {
		n += f.UncompressedSize64
	}
	return n
}

// BenchmarkPutImage stores one image of 300 packages (SBOM blob included) the way indexing
// does, to say what filling the 10k-image store through PutImage would cost.
func BenchmarkPutImage(b *testing.B) {
	benchBackends(b, func(b *testing.B, s *Service) {
		ctx := context.Background()
		sbs := make([]*sbom.SBOM, 64)
		for i := range sbs {
			sbs[i] = benchSBOM(i, benchImagePackages)
		}
		var raw bytes.Buffer
		_ = json.NewEncoder(&raw).Encode(sbs[0])
		i := 0
		for b.Loop() {
			sb := sbs[i%len(sbs)]
			if err := s.Store.PutImage(ctx, sb, Keys(sb)); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(raw.Len()), "sbom-bytes")
	})
}
