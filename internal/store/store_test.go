package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/testutil/pgtest"
	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

// backends runs fn against SQLite and PostgreSQL, each with a fresh database.
func backends(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t, "sqlite://"+filepath.Join(t.TempDir(), "crowsnest.db"))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		fn(t, pgtest.DSN(t))
	})
}

func open(t testing.TB, dsn string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var (
	keyOpenSSL = PackageKey{"Debian:12", "openssl"}
	keyCurl    = PackageKey{"Debian:12", "curl"}
	keyZlib    = PackageKey{"Debian:12", "zlib"}
	keyJinja   = PackageKey{"PyPI", "jinja2"}
	keyLodash  = PackageKey{"npm", "lodash"}
)

func advisory(id string, keys ...PackageKey) *vuln.Advisory {
	a := &vuln.Advisory{
		ID:        id,
		Aliases:   []string{"CVE-2024-" + strings.TrimPrefix(id, "DSA-")},
		Summary:   "summary of " + id,
		Details:   "long details of " + id,
		Published: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC),
		Modified:  time.Date(2024, 5, 2, 3, 4, 5, 0, time.UTC),
		Severity:  []vuln.CVSS{{Type: "CVSS_V3", Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", Score: 9.8}},
	}
	for _, k := range keys {
		a.Affected = append(a.Affected, vuln.Affected{Ecosystem: k.Ecosystem, Name: k.Name,
			Ranges: []vuln.Range{{Type: "ECOSYSTEM", Events: []vuln.Event{{Introduced: "0"}, {Fixed: "1.2.3-1"}}}}})
	}
	return a
}

func importAll(t *testing.T, s *Store, source string, full bool, advs ...*vuln.Advisory) ImportResult {
	t.Helper()
	im, err := s.BeginImport(context.Background(), source, full)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range advs {
		if err := im.Put(a); err != nil {
			t.Fatal(err)
		}
	}
	res, err := im.Commit()
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// advisoryIDs returns, per key, the ids AdvisoriesFor gives.
func advisoryIDs(t *testing.T, s *Store, keys ...PackageKey) map[PackageKey][]string {
	t.Helper()
	m, err := s.AdvisoriesFor(context.Background(), keys)
	if err != nil {
		t.Fatal(err)
	}
	out := map[PackageKey][]string{}
	for k, as := range m {
		for _, a := range as {
			out[k] = append(out[k], a.ID)
		}
		slices.Sort(out[k])
	}
	return out
}

func allKeys() []PackageKey { return []PackageKey{keyOpenSSL, keyCurl, keyZlib, keyJinja, keyLodash} }

func TestOpenTwiceKeepsDataAndSchema(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s, err := Open(ctx, dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		importAll(t, s, "osv:Debian", true, advisory("DSA-1", keyOpenSSL))
		s.Close()
		s2 := open(t, dsn)
		s3 := open(t, dsn)
		if got := advisoryIDs(t, s3, keyOpenSSL); !reflect.DeepEqual(got[keyOpenSSL], []string{"DSA-1"}) {
			t.Fatalf("after reopening: %v", got)
		}
		var n int
		if err := s2.DB().QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		ms, _ := loadMigrations(s2.dialect)
		if n != len(ms) {
			t.Fatalf("schema_migrations has %d rows, want %d", n, len(ms))
		}
	})
}

func TestAdvisoryRoundTrip(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		s := open(t, dsn)
		ctx := context.Background()
		a := advisory("GHSA-h5c8-rqwp-cp95", keyJinja, keyLodash)
		a.References = []string{"https://github.com/advisories/GHSA-h5c8-rqwp-cp95"}
		a.Affected[0].Versions = []string{"3.1.0", "3.1.1"}
		a.Affected[0].EcosystemSeverity = vuln.SeverityMedium
		importAll(t, s, "osv:PyPI", false, a)

		got, err := s.AdvisoriesFor(ctx, []PackageKey{keyJinja, keyLodash, keyCurl, keyJinja, {}})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || len(got[keyJinja]) != 1 || len(got[keyLodash]) != 1 {
			t.Fatalf("AdvisoriesFor = %v", got)
		}
		if got[keyJinja][0] != got[keyLodash][0] {
			t.Error("one advisory affecting two keys was decoded twice")
		}
		want := *a
		want.Details = "" // kept out of the hot path
		if !reflect.DeepEqual(got[keyJinja][0], &want) {
			t.Fatalf("AdvisoriesFor gave\n%+v\nwant\n%+v", got[keyJinja][0], &want)
		}
		full, err := s.Advisory(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(full, a) {
			t.Fatalf("Advisory gave\n%+v\nwant\n%+v", full, a)
		}
		if _, err := s.Advisory(ctx, "GHSA-none"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing advisory: %v", err)
		}
		empty, err := s.AdvisoriesFor(ctx, nil)
		if err != nil || len(empty) != 0 {
			t.Fatalf("no keys: %v %v", empty, err)
		}
	})
}

func TestImportCountsAndChangedKeys(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		s := open(t, dsn)
		res := importAll(t, s, "osv:Debian", false,
			advisory("DSA-1", keyOpenSSL), advisory("DSA-2", keyCurl), advisory("DSA-3", keyZlib))
		if res.Added != 3 || res.Updated+res.Unchanged+res.Removed != 0 {
			t.Fatalf("first import: %+v", res)
		}
		if want := []PackageKey{keyCurl, keyOpenSSL, keyZlib}; !reflect.DeepEqual(res.ChangedKeys, want) {
			t.Fatalf("changed keys %v, want %v", res.ChangedKeys, want)
		}

		// DSA-1 moves from openssl to zlib: both keys changed. DSA-2 is unchanged.
		moved := advisory("DSA-1", keyZlib)
		moved.Summary = "corrected"
		res = importAll(t, s, "osv:Debian", false, moved, advisory("DSA-2", keyCurl))
		if res.Added != 0 || res.Updated != 1 || res.Unchanged != 1 || res.Removed != 0 {
			t.Fatalf("second import: %+v", res)
		}
		if want := []PackageKey{keyOpenSSL, keyZlib}; !reflect.DeepEqual(res.ChangedKeys, want) {
			t.Fatalf("changed keys %v, want %v (old and new keys of the updated advisory)", res.ChangedKeys, want)
		}
		got := advisoryIDs(t, s, allKeys()...)
		want := map[PackageKey][]string{keyCurl: {"DSA-2"}, keyZlib: {"DSA-1", "DSA-3"}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("advisories %v, want %v", got, want)
		}

		// Re-importing the same content changes nothing.
		res = importAll(t, s, "osv:Debian", false, moved)
		if res.Unchanged != 1 || len(res.ChangedKeys) != 0 {
			t.Fatalf("identical import: %+v", res)
		}
		src, err := s.Source(context.Background(), "osv:Debian")
		if err != nil || src.Advisories != 3 || src.ImportedAt.IsZero() {
			t.Fatalf("source after import: %+v %v", src, err)
		}
	})
}

func TestFullImportDeletesMissing(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		s := open(t, dsn)
		importAll(t, s, "osv:Debian", true, advisory("DSA-1", keyOpenSSL), advisory("DSA-2", keyCurl))
		importAll(t, s, "osv:PyPI", true, advisory("PYSEC-1", keyJinja))

		// A partial import of Debian keeps what it does not mention.
		res := importAll(t, s, "osv:Debian", false, advisory("DSA-3", keyZlib))
		if res.Removed != 0 {
			t.Fatalf("partial import removed %d", res.Removed)
		}
		// A full import of Debian drops DSA-1 and DSA-3, never the PyPI source's record.
		res = importAll(t, s, "osv:Debian", true, advisory("DSA-2", keyCurl))
		if res.Removed != 2 || res.Unchanged != 1 {
			t.Fatalf("full import: %+v", res)
		}
		if want := []PackageKey{keyOpenSSL, keyZlib}; !reflect.DeepEqual(res.ChangedKeys, want) {
			t.Fatalf("changed keys %v, want %v", res.ChangedKeys, want)
		}
		got := advisoryIDs(t, s, allKeys()...)
		want := map[PackageKey][]string{keyCurl: {"DSA-2"}, keyJinja: {"PYSEC-1"}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("advisories %v, want %v", got, want)
		}
		st, err := s.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.Advisories != 2 || st.AdvisoriesByEcosystem["Debian:12"] != 1 || st.AdvisoriesByEcosystem["PyPI"] != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
}

func TestWithdrawn(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		s := open(t, dsn)
		importAll(t, s, "osv:npm", false, advisory("GHSA-1", keyLodash), advisory("GHSA-2", keyLodash))
		ctx := context.Background()
		im, err := s.BeginImport(ctx, "osv:npm", false)
		if err != nil {
			t.Fatal(err)
		}
		if err := im.Withdraw("GHSA-1"); err != nil {
			t.Fatal(err)
		}
		w := advisory("GHSA-2", keyLodash)
		when := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
		w.Withdrawn = &when
		if err := im.Put(w); err != nil {
			t.Fatal(err)
		}
		if err := im.Withdraw("GHSA-never-stored"); err != nil {
			t.Fatal(err)
		}
		// Put then withdrawn within one import: gone too.
		if err := im.Put(advisory("GHSA-3", keyLodash)); err != nil {
			t.Fatal(err)
		}
		if err := im.Withdraw("GHSA-3"); err != nil {
			t.Fatal(err)
		}
		res, err := im.Commit()
		if err != nil {
			t.Fatal(err)
		}
		if res.Removed != 3 || !reflect.DeepEqual(res.ChangedKeys, []PackageKey{keyLodash}) {
			t.Fatalf("withdraw result %+v", res)
		}
		if got := advisoryIDs(t, s, keyLodash); len(got) != 0 {
			t.Fatalf("withdrawn advisories still stored: %v", got)
		}
	})
}

func TestImportRollbackLeavesStoreAsItWas(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		s := open(t, dsn)
		ctx := context.Background()
		importAll(t, s, "osv:Debian", true, advisory("DSA-1", keyOpenSSL), advisory("DSA-2", keyCurl))
		before := advisoryIDs(t, s, allKeys()...)

		// A broken archive: records were streamed (more than one write batch), then the reader
		// failed and the caller rolled back.
		im, err := s.BeginImport(ctx, "osv:Debian", true)
		if err != nil {
			t.Fatal(err)
		}
		for i := range importBatch + 10 {
			if err := im.Put(advisory(fmt.Sprintf("DSA-%d", 100+i), keyZlib)); err != nil {
				t.Fatal(err)
			}
		}
		if err := im.Put(advisory("DSA-1", keyCurl)); err != nil {
			t.Fatal(err)
		}
		if err := im.Withdraw("DSA-2"); err != nil {
			t.Fatal(err)
		}
		if err := im.Rollback(); err != nil {
			t.Fatal(err)
		}
		if err := im.Put(advisory("DSA-9", keyZlib)); err == nil {
			t.Fatal("Put after Rollback succeeded")
		}
		if got := advisoryIDs(t, s, allKeys()...); !reflect.DeepEqual(got, before) {
			t.Fatalf("after rollback %v, want %v", got, before)
		}

		// A cancelled context fails the import and leaves the store as it was.
		cctx, cancel := context.WithCancel(ctx)
		im, err = s.BeginImport(cctx, "osv:Debian", true)
		if err != nil {
			t.Fatal(err)
		}
		if err := im.Put(advisory("DSA-50", keyZlib)); err != nil {
			t.Fatal(err)
		}
		cancel()
		if _, err := im.Commit(); err == nil {
			t.Fatal("Commit with a cancelled context succeeded")
		}
		if got := advisoryIDs(t, s, allKeys()...); !reflect.DeepEqual(got, before) {
			t.Fatalf("after failed commit %v, want %v", got, before)
		}
		// The write lock was released: another import works.
		importAll(t, s, "osv:Debian", false, advisory("DSA-3", keyZlib))
	})
}

func testSBOM(digest string, pkgs ...sbom.Package) *sbom.SBOM {
	created := time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC)
	return &sbom.SBOM{
		SchemaVersion: sbom.SchemaVersion,
		Tool:          sbom.Tool{Name: "crowsnest", Version: "test"},
		Created:       time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC),
		Image: sbom.Image{
			Reference: "registry.example/app:1", Name: "registry.example/app", Tag: "1", Digest: digest,
			Platform: sbom.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"},
			Created:  &created,
			Config:   sbom.Config{User: "app", EnvNames: []string{"PATH"}},
			Layers: []sbom.Layer{
				{Index: 0, Digest: "sha256:l0", DiffID: "sha256:d0", Size: 10},
				{Index: 1, Digest: "sha256:l1", DiffID: "sha256:d1", Size: 20},
			},
		},
		OS:       &sbom.OS{ID: "debian", VersionID: "12"},
		Packages: pkgs,
	}
}

func deb(name, version, source string) sbom.Package {
	return sbom.Package{Type: sbom.TypeDeb, Name: name, Version: version,
		PURL: "pkg:deb/debian/" + name + "@" + version, Source: &sbom.Source{Name: source},
		Locations: []sbom.Location{{Path: "/var/lib/dpkg/status", DiffID: "sha256:d0"}}}
}

func TestImages(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		s := open(t, dsn)
		ctx := context.Background()
		sb := testSBOM("sha256:aaa", deb("libssl3", "3.0.11-1", "openssl"), deb("curl", "7.88.1-10", "curl"),
			sbom.Package{Type: sbom.TypeNPM, Name: "left-pad", Version: "1.0.0", PURL: "pkg:npm/left-pad@1.0.0"})
		if err := s.PutImage(ctx, sb, []PackageKey{keyOpenSSL, keyCurl}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Image(ctx, "sha256:aaa")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, sb) {
			t.Fatalf("Image gave\n%+v\nwant\n%+v", got, sb)
		}
		if _, err := s.Image(ctx, "sha256:none"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing image: %v", err)
		}
		pkgs, err := s.ImagePackages(ctx, "sha256:aaa")
		if err != nil {
			t.Fatal(err)
		}
		if len(pkgs) != 3 || pkgs[0].Package.Name != "libssl3" || pkgs[0].Package.MatchName != "openssl" ||
			pkgs[2].Package.Ecosystem != "" || pkgs[2].Package.PURL != "pkg:npm/left-pad@1.0.0" {
			t.Fatalf("ImagePackages = %+v", pkgs)
		}

		// Replacing the image replaces its packages; a second image shares a key.
		sb.Packages = sb.Packages[:1]
		if err := s.PutImage(ctx, sb, []PackageKey{keyOpenSSL}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutImage(ctx, testSBOM("sha256:bbb", deb("openssl", "3.0.11-1", "openssl")), []PackageKey{keyOpenSSL}); err != nil {
			t.Fatal(err)
		}
		var found []string
		if err := s.PackagesWithKeys(ctx, []PackageKey{keyOpenSSL, keyCurl, keyOpenSSL}, func(p StoredPackage) error {
			found = append(found, p.ImageDigest+" "+p.Package.Name)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		slices.Sort(found)
		if want := []string{"sha256:aaa libssl3", "sha256:bbb openssl"}; !reflect.DeepEqual(found, want) {
			t.Fatalf("PackagesWithKeys = %v, want %v", found, want)
		}
		held, err := s.HeldKeys(ctx, []PackageKey{keyCurl, keyOpenSSL, keyZlib, keyOpenSSL})
		if err != nil || !reflect.DeepEqual(held, []PackageKey{keyOpenSSL}) {
			t.Fatalf("HeldKeys = %v %v, want only openssl", held, err)
		}
		eco, err := s.Ecosystems(ctx)
		if err != nil || !reflect.DeepEqual(eco, []string{"Debian:12"}) {
			t.Fatalf("Ecosystems = %v %v", eco, err)
		}
		st, err := s.Stats(ctx)
		if err != nil || st.Images != 2 || st.Packages != 2 {
			t.Fatalf("Stats = %+v %v", st, err)
		}
		if err := s.PutImage(ctx, testSBOM(""), nil); err == nil {
			t.Fatal("image without digest accepted")
		}
	})
}

func TestTags(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		s := open(t, dsn)
		ctx := context.Background()
		for _, c := range [][3]string{{"app", "1", "sha256:a"}, {"app", "latest", "sha256:a"}, {"web", "2", "sha256:b"}, {"app", "latest", "sha256:c"}} {
			if err := s.SetTag(ctx, c[0], c[1], c[2]); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.DeleteTag(ctx, "app", "1"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteTag(ctx, "app", "missing"); err != nil {
			t.Fatal(err)
		}
		tags, err := s.Tags(ctx, "app")
		if err != nil || len(tags) != 1 || tags[0].Tag != "latest" || tags[0].Digest != "sha256:c" || tags[0].UpdatedAt.IsZero() {
			t.Fatalf("Tags(app) = %+v %v", tags, err)
		}
		all, err := s.Tags(ctx, "")
		if err != nil || len(all) != 2 || all[1].Repository != "web" {
			t.Fatalf("Tags() = %+v %v", all, err)
		}
	})
}

func finding(pkg, version string, key PackageKey, id, severity string) vuln.Finding {
	return vuln.Finding{
		Package:         vuln.PackageRef{Type: "deb", Name: pkg, Version: version, PURL: "pkg:deb/debian/" + pkg + "@" + version, Ecosystem: key.Ecosystem, MatchName: key.Name},
		VulnerabilityID: id, Aliases: []string{"CVE-2024-0001"}, Severity: severity, FixedVersion: "9.9",
	}
}

func findingKeys(fs []vuln.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Package.Name+"/"+f.VulnerabilityID+"/"+f.Severity)
	}
	return out
}

func TestReplaceFindings(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		s := open(t, dsn)
		ctx := context.Background()
		for _, d := range []string{"sha256:aaa", "sha256:bbb"} {
			if err := s.PutImage(ctx, testSBOM(d, deb("libssl3", "3.0", "openssl"), deb("curl", "7.88", "curl")), []PackageKey{keyOpenSSL, keyCurl}); err != nil {
				t.Fatal(err)
			}
		}
		t1 := time.Date(2024, 3, 1, 12, 0, 0, 123, time.UTC)
		added, removed, err := s.ReplaceFindings(ctx, "sha256:aaa", nil, []vuln.Finding{
			finding("libssl3", "3.0", keyOpenSSL, "DSA-1", vuln.SeverityHigh),
			finding("curl", "7.88", keyCurl, "DSA-2", vuln.SeverityLow),
			finding("curl", "7.88", keyCurl, "DSA-2", vuln.SeverityLow), // duplicate: one finding
		}, "push", t1)
		if err != nil || added != 2 || removed != 0 {
			t.Fatalf("first replace: +%d -%d %v", added, removed, err)
		}

		// Scope openssl only: DSA-1 goes, DSA-3 comes, curl's DSA-2 is outside the scope and stays.
		t2 := t1.Add(time.Hour)
		added, removed, err = s.ReplaceFindings(ctx, "sha256:aaa", []PackageKey{keyOpenSSL}, []vuln.Finding{
			finding("libssl3", "3.0", keyOpenSSL, "DSA-3", vuln.SeverityCritical),
		}, "advisory-update", t2)
		if err != nil || added != 1 || removed != 1 {
			t.Fatalf("scoped replace: +%d -%d %v", added, removed, err)
		}
		fs, err := s.Findings(ctx, "sha256:aaa")
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"curl/DSA-2/low", "libssl3/DSA-3/critical"}; !reflect.DeepEqual(findingKeys(fs), want) {
			t.Fatalf("findings %v, want %v", findingKeys(fs), want)
		}

		// A finding outside the scope is refused and nothing changes.
		if _, _, err := s.ReplaceFindings(ctx, "sha256:aaa", []PackageKey{keyOpenSSL}, []vuln.Finding{
			finding("curl", "7.88", keyCurl, "DSA-9", vuln.SeverityLow)}, "x", t2); err == nil || !strings.Contains(err.Error(), "outside") {
			t.Fatalf("out-of-scope finding: %v", err)
		}

		// Same key, new content (severity): updated in place, no change event.
		added, removed, err = s.ReplaceFindings(ctx, "sha256:aaa", []PackageKey{keyCurl}, []vuln.Finding{
			finding("curl", "7.88", keyCurl, "DSA-2", vuln.SeverityMedium)}, "advisory-update", t2)
		if err != nil || added != 0 || removed != 0 {
			t.Fatalf("content update: +%d -%d %v", added, removed, err)
		}
		fs, _ = s.Findings(ctx, "sha256:aaa")
		if want := []string{"curl/DSA-2/medium", "libssl3/DSA-3/critical"}; !reflect.DeepEqual(findingKeys(fs), want) {
			t.Fatalf("findings %v, want %v", findingKeys(fs), want)
		}

		// Batch: aaa loses everything, bbb gains one.
		t3 := t2.Add(time.Hour)
		sum, err := s.ReplaceFindingsBatch(ctx, []FindingsUpdate{
			{Digest: "sha256:aaa"},
			{Digest: "sha256:bbb", Scope: []PackageKey{keyCurl}, Findings: []vuln.Finding{finding("curl", "7.88", keyCurl, "DSA-2", vuln.SeverityMedium)}},
		}, "rescan", t3)
		if err != nil {
			t.Fatal(err)
		}
		if want := (ChangeSummary{ImagesGained: 1, ImagesLost: 1, Added: 1, Removed: 2}); sum != want {
			t.Fatalf("batch summary %+v, want %+v", sum, want)
		}
		if fs, _ := s.Findings(ctx, "sha256:aaa"); len(fs) != 0 {
			t.Fatalf("aaa keeps %v", findingKeys(fs))
		}
		st, _ := s.Stats(ctx)
		if !reflect.DeepEqual(st.FindingsBySeverity, map[string]int{"medium": 1}) {
			t.Fatalf("findings by severity %v", st.FindingsBySeverity)
		}

		changes, err := s.Changes(ctx, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for i, c := range changes {
			got = append(got, fmt.Sprintf("%s %s %s %s %s", c.ImageDigest, c.Kind, c.Reason, c.Finding.VulnerabilityID, c.Time.UTC().Format(time.RFC3339Nano)))
			if i > 0 && c.ID <= changes[i-1].ID {
				t.Fatalf("change ids not increasing: %v", changes)
			}
		}
		// The order of changes within one call is unspecified.
		slices.Sort(got[0:2])
		slices.Sort(got[4:7])
		want := []string{
			"sha256:aaa added push DSA-1 2024-03-01T12:00:00.000000123Z",
			"sha256:aaa added push DSA-2 2024-03-01T12:00:00.000000123Z",
			"sha256:aaa added advisory-update DSA-3 2024-03-01T13:00:00.000000123Z",
			"sha256:aaa removed advisory-update DSA-1 2024-03-01T13:00:00.000000123Z",
			"sha256:aaa removed rescan DSA-2 2024-03-01T14:00:00.000000123Z",
			"sha256:aaa removed rescan DSA-3 2024-03-01T14:00:00.000000123Z",
			"sha256:bbb added rescan DSA-2 2024-03-01T14:00:00.000000123Z",
		}
		slices.Sort(got[2:4])
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("changes\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		page, err := s.Changes(ctx, changes[4].ID, 1)
		if err != nil || len(page) != 1 || page[0].ID != changes[5].ID {
			t.Fatalf("paging: %+v %v", page, err)
		}
		if page[0].Finding.Package.MatchName == "" {
			t.Fatal("change lost the finding's package")
		}
		if _, err := s.ReplaceFindingsBatch(ctx, []FindingsUpdate{{Digest: "sha256:aaa"}, {Digest: "sha256:aaa"}}, "x", t3); err == nil {
			t.Fatal("duplicate digest in a batch accepted")
		}
	})
}

func TestConcurrentOpen(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		var wg sync.WaitGroup
		errs := make([]error, 6)
		for i := range errs {
			wg.Go(func() {
				s, err := Open(context.Background(), dsn, nil)
				if err == nil {
					err = s.Close()
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		s := open(t, dsn)
		var n int
		files, _ := fs.ReadDir(migrationFS, "migrations")
		if err := s.DB().QueryRowContext(context.Background(), `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n != len(files) {
			t.Fatalf("schema_migrations rows %d (want one per migration, %d) %v", n, len(files), err)
		}
	})
}

func TestSources(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		s := open(t, dsn)
		ctx := context.Background()
		if _, err := s.Source(ctx, "osv:Go"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing source: %v", err)
		}
		st := SourceState{Name: "osv:Go", URL: "https://osv-vulnerabilities.storage.googleapis.com/Go/all.zip", ETag: `"abc"`, LastModified: "Mon, 01 Jan 2024 00:00:00 GMT"}
		if err := s.SetSource(ctx, st); err != nil {
			t.Fatal(err)
		}
		importAll(t, s, "osv:Go", true, advisory("GO-2024-0001", PackageKey{"Go", "stdlib"}))
		st.Error = "fetch: 503"
		if err := s.SetSource(ctx, st); err != nil {
			t.Fatal(err)
		}
		got, err := s.Source(ctx, "osv:Go")
		if err != nil {
			t.Fatal(err)
		}
		if got.URL != st.URL || got.ETag != st.ETag || got.LastModified != st.LastModified || got.Error != st.Error ||
			got.Advisories != 1 || got.ImportedAt.IsZero() {
			t.Fatalf("source %+v", got)
		}
		all, err := s.Sources(ctx)
		if err != nil || len(all) != 1 {
			t.Fatalf("sources %+v %v", all, err)
		}
	})
}

func TestBadDSN(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct{ dsn, want string }{
		{"", "empty database DSN"},
		{"mysql://root:s3cret@db/x", `unsupported database scheme "mysql"`},
		{"mongodb:s3cret@x", `unsupported database scheme "mongodb"`},
		{"sqlite://", "no path"},
		{"sqlite:///tmp/x.db?_pragma=foo", "query parameters"},
		{"host=db user=u password=s3cret", "postgres://"},
		{"postgres://u:s3cret@%zz/db", "not a valid URL"},
		{"postgres:///db?password=s3cret", "no host"},
		{"postgres://u:s3cret@127.0.0.1:1/db?connect_timeout=2", "connect to postgres database postgres://u:xxxxx@127.0.0.1:1/db"},
	} {
		_, err := Open(ctx, c.dsn, nil)
		if err == nil {
			t.Errorf("Open(%q) succeeded", c.dsn)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%q) = %v, want it to mention %q", c.dsn, err, c.want)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open(%q) error shows the password: %v", c.dsn, err)
		}
		if strings.Contains(c.want, "scheme") && !strings.Contains(err.Error(), "accepted: sqlite://PATH") {
			t.Errorf("Open(%q) = %v, want the accepted forms", c.dsn, err)
		}
	}
	// A plain path is SQLite.
	s, err := Open(ctx, filepath.Join(t.TempDir(), "plain.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Dialect() != "sqlite" {
		t.Fatalf("plain path opened as %s", s.Dialect())
	}
	s.Close()
}

// TestManyKeysAndRepeatedRecords crosses the lookup and write batch sizes and repeats a record
// within one import batch.
func TestManyKeysAndRepeatedRecords(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		s := open(t, dsn)
		ctx := context.Background()
		const n = 2*keyBatch + 37
		var advs []*vuln.Advisory
		var keys []PackageKey
		for i := range n {
			k := PackageKey{"npm", fmt.Sprintf("pkg-%d", i)}
			keys = append(keys, k)
			advs = append(advs, advisory(fmt.Sprintf("GHSA-%d", i), k))
		}
		// GHSA-0 again in the same batch, now affecting another package too.
		again := advisory("GHSA-0", keys[0], keyLodash)
		res := importAll(t, s, "osv:npm", true, append(advs, again)...)
		if res.Added != n || res.Updated != 1 || len(res.ChangedKeys) != n+1 {
			t.Fatalf("import %+v (%d changed keys)", ImportResult{Added: res.Added, Updated: res.Updated}, len(res.ChangedKeys))
		}
		got, err := s.AdvisoriesFor(ctx, append(keys, keyLodash))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != n+1 || got[keyLodash][0].ID != "GHSA-0" || got[keys[n-1]][0].ID != fmt.Sprintf("GHSA-%d", n-1) {
			t.Fatalf("AdvisoriesFor found %d keys", len(got))
		}

		pkgs := make([]sbom.Package, n)
		for i := range pkgs {
			pkgs[i] = sbom.Package{Type: sbom.TypeNPM, Name: keys[i].Name, Version: "1.0.0"}
		}
		if err := s.PutImage(ctx, testSBOM("sha256:many", pkgs...), keys); err != nil {
			t.Fatal(err)
		}
		count := 0
		if err := s.PackagesWithKeys(ctx, keys, func(StoredPackage) error { count++; return nil }); err != nil {
			t.Fatal(err)
		}
		if count != n {
			t.Fatalf("PackagesWithKeys found %d, want %d", count, n)
		}
		stop := errors.New("stop")
		if err := s.PackagesWithKeys(ctx, keys, func(StoredPackage) error { return stop }); !errors.Is(err, stop) {
			t.Fatalf("callback error not returned: %v", err)
		}
		ps, err := s.ImagePackages(ctx, "sha256:many")
		if err != nil || len(ps) != n || ps[n-1].Package.Name != keys[n-1].Name {
			t.Fatalf("ImagePackages: %d %v", len(ps), err)
		}
	})
}

// TestConcurrentWriters runs imports and findings replacements at once, through two Stores on
// one database (two processes, as watch and serve would be): none fails, none is lost.
func TestConcurrentWriters(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		s1, s2 := open(t, dsn), open(t, dsn)
		ctx := context.Background()
		const images = 6
		for i := range images {
			if err := s1.PutImage(ctx, testSBOM(fmt.Sprintf("sha256:%d", i), deb("curl", "7.88", "curl")), []PackageKey{keyCurl}); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		errs := make(chan error, 2*images+2)
		for i := range images {
			s := []*Store{s1, s2}[i%2]
			wg.Go(func() {
				_, _, err := s.ReplaceFindings(ctx, fmt.Sprintf("sha256:%d", i), nil,
					[]vuln.Finding{finding("curl", "7.88", keyCurl, fmt.Sprintf("DSA-%d", i), vuln.SeverityLow)}, "push", time.Now())
				errs <- err
			})
		}
		for j, s := range []*Store{s1, s2} {
			wg.Go(func() {
				im, err := s.BeginImport(ctx, "osv:Debian", false)
				if err != nil {
					errs <- err
					return
				}
				for i := range 50 {
					if err := im.Put(advisory(fmt.Sprintf("DSA-%d-%d", j, i), keyCurl)); err != nil {
						errs <- err
						return
					}
				}
				_, err = im.Commit()
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if got := advisoryIDs(t, s1, keyCurl); len(got[keyCurl]) != 100 {
			t.Fatalf("%d advisories after two concurrent imports, want 100", len(got[keyCurl]))
		}
		changes, err := s2.Changes(ctx, 0, 0)
		if err != nil || len(changes) != images {
			t.Fatalf("%d changes, want %d (%v)", len(changes), images, err)
		}
	})
}

func TestLockKeyIsSharedAcrossConnections(t *testing.T) {
	dsn := pgtest.DSN(t)
	a, b := open(t, dsn), open(t, dsn)
	ctx := context.Background()
	release, err := a.LockKey(ctx, "index:sha256:x")
	if err != nil {
		t.Fatal(err)
	}
	// Another process (here another Store) waits while the lock is held.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := b.LockKey(short, "index:sha256:x"); err == nil {
		t.Fatal("a second holder got the lock")
	}
	other, err := b.LockKey(ctx, "index:sha256:y")
	if err != nil {
		t.Fatalf("an unrelated key is blocked: %v", err)
	}
	other()
	release()
	again, err := b.LockKey(ctx, "index:sha256:x")
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	again()
}

// Each source's advisory count follows its records through imports that add, move (a record
// another source now provides), withdraw and, for full imports, drop them.
func TestSourceCountsFollowRecords(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		s := open(t, dsn)
		ctx := context.Background()
		check := func(step string) {
			t.Helper()
			for _, name := range []string{"osv:a", "osv:b"} {
				var want int
				if err := s.DB().QueryRowContext(ctx, `SELECT count(*) FROM advisories WHERE source = $1`, name).Scan(&want); err != nil {
					t.Fatal(err)
				}
				src, err := s.Source(ctx, name)
				if err != nil && !errors.Is(err, ErrNotFound) {
					t.Fatal(err)
				}
				if src.Advisories != want {
					t.Fatalf("%s: %s counts %d advisories, holds %d", step, name, src.Advisories, want)
				}
			}
		}
		importAll(t, s, "osv:a", false, advisory("DSA-1", keyOpenSSL), advisory("DSA-2", keyCurl), advisory("DSA-3", keyZlib))
		check("first import")
		moved := advisory("DSA-2", keyCurl)
		moved.Summary = "now from b"
		importAll(t, s, "osv:b", false, moved, advisory("DSA-4", keyZlib))
		check("a record moved to another source")
		im, err := s.BeginImport(ctx, "osv:b", false)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"DSA-1", "DSA-9"} {
			if err := im.Withdraw(id); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := im.Commit(); err != nil {
			t.Fatal(err)
		}
		check("withdrawn through another source")
		importAll(t, s, "osv:b", true, advisory("DSA-4", keyZlib))
		check("full import")
		importAll(t, s, "osv:a", true)
		check("empty full import")
	})
}

// Committed pages reach the SQLite database file through the store's own checkpoints: a
// committing connection only checkpoints past 1 GiB of write-ahead log.
func TestSQLiteCheckpointsInTheBackground(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crowsnest.db")
	s := open(t, "sqlite://"+path)
	size := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	before := size()
	const blob = 8 << 20
	if _, err := s.WriterDB().Exec(`INSERT INTO state (key, value, updated_at) VALUES ('filler', $1, 0)`, strings.Repeat("x", blob)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * checkpointEvery)
	for size() < before+blob {
		if time.Now().After(deadline) {
			t.Fatalf("the database file is %d bytes %v after the write (%d before): nothing checkpointed it", size(), 10*checkpointEvery, before)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
