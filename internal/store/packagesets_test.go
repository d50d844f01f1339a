package store

import (
	"context"
	"database/sql"
	"slices"
	"testing"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
)

func countRows(t *testing.T, s *Store, table string) int {
	t.Helper()
	var n int
	if err := s.DB().QueryRowContext(context.Background(), `SELECT count(*) FROM `+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func onLayer(p sbom.Package, diffID string) sbom.Package {
	p.Locations = []sbom.Location{{Path: "/x", DiffID: diffID}}
	return p
}

func imagesWithKey(t *testing.T, s *Store, k PackageKey) []string {
	t.Helper()
	var out []string
	if err := s.PackagesWithKeys(context.Background(), []PackageKey{k}, func(p StoredPackage) error {
		out = append(out, p.ImageDigest+" "+p.Package.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// Images on one base layer share its packages' rows: a second image writes only its own layer's,
// readers see every image's packages, and rows go when the last image using them does.
func TestPackageSetsShareBaseLayer(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		s := open(t, dsn)
		ctx := context.Background()
		base := []sbom.Package{deb("libssl3", "3.0.11-1", "openssl"), deb("curl", "7.88.1-10", "curl")} // on sha256:d0
		baseKeys := []PackageKey{keyOpenSSL, keyCurl}
		app := func(digest, name string) *sbom.SBOM {
			top := onLayer(sbom.Package{Type: sbom.TypeNPM, Name: name, Version: "1.0.0", PURL: "pkg:npm/" + name + "@1.0.0"}, "sha256:d1")
			return testSBOM(digest, append(slices.Clone(base), top)...)
		}
		keysOf := func(name string) []PackageKey { return append(slices.Clone(baseKeys), PackageKey{"npm", name}) }
		if err := s.PutImage(ctx, app("sha256:one", "left-pad"), keysOf("left-pad")); err != nil {
			t.Fatal(err)
		}
		if err := s.PutImage(ctx, app("sha256:two", "right-pad"), keysOf("right-pad")); err != nil {
			t.Fatal(err)
		}
		if n := countRows(t, s, "set_packages"); n != 4 {
			t.Fatalf("%d package rows stored, want 4 (the shared base's 2 once, one per image's top layer)", n)
		}
		if n := countRows(t, s, "packages"); n != 6 {
			t.Fatalf("packages view has %d rows, want 6", n)
		}
		got, err := s.ImagePackages(ctx, "sha256:two")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, p := range got {
			names = append(names, p.Package.Name+"/"+p.Package.MatchName)
		}
		if want := []string{"libssl3/openssl", "curl/curl", "right-pad/right-pad"}; !slices.Equal(names, want) {
			t.Fatalf("packages of two = %v, want %v (base layer first)", names, want)
		}
		if got, want := imagesWithKey(t, s, keyOpenSSL), []string{"sha256:one libssl3", "sha256:two libssl3"}; !slices.Equal(got, want) {
			t.Fatalf("images with openssl = %v, want %v", got, want)
		}
		// Re-indexing an image with a changed top layer drops the set only it used.
		if err := s.PutImage(ctx, app("sha256:one", "left-pad2"), keysOf("left-pad2")); err != nil {
			t.Fatal(err)
		}
		if got := imagesWithKey(t, s, PackageKey{"npm", "left-pad"}); len(got) != 0 {
			t.Fatalf("old top layer still found: %v", got)
		}
		if n := countRows(t, s, "set_packages"); n != 4 {
			t.Fatalf("%d package rows after re-index, want 4", n)
		}
		if err := s.DeleteImage(ctx, "sha256:one"); err != nil {
			t.Fatal(err)
		}
		if got, want := imagesWithKey(t, s, keyOpenSSL), []string{"sha256:two libssl3"}; !slices.Equal(got, want) {
			t.Fatalf("after deleting one: images with openssl = %v, want %v", got, want)
		}
		if n := countRows(t, s, "set_packages"); n != 3 {
			t.Fatalf("%d package rows after deleting one, want 3", n)
		}
		if err := s.DeleteImage(ctx, "sha256:two"); err != nil {
			t.Fatal(err)
		}
		for _, table := range []string{"set_packages", "package_sets", "image_sets"} {
			if n := countRows(t, s, table); n != 0 {
				t.Fatalf("%d rows left in %s after deleting every image", n, table)
			}
		}
	})
}

// Two sets whose fields only differ in where one field ends and the next begins are distinct.
func TestPackageSetIDsAreUnambiguous(t *testing.T) {
	a := testSBOM("sha256:a", sbom.Package{Type: "npm", Name: "a\x00b", Version: "c"})
	b := testSBOM("sha256:b", sbom.Package{Type: "npm", Name: "a", Version: "b\x00c"})
	if x, y := packageSets(a, nil), packageSets(b, nil); x[0].id == y[0].id {
		t.Fatalf("both sets are %s", x[0].id)
	}
}

// A database written before package sets keeps every image's packages after the migration.
func TestPackageSetsMigration(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		db, d := openRaw(t, dsn)
		applyMigrationsUpTo(t, db, d, 5)
		for _, dg := range []string{"sha256:old1", "sha256:old2"} {
			if _, err := db.ExecContext(ctx, `INSERT INTO images (digest, reference, name, platform, os_id, os_version, indexed_at, package_count, sbom)
				VALUES ($1, 'r', 'n', 'linux/amd64', 'debian', '12', 1, 2, $2)`, dg, []byte{}); err != nil {
				t.Fatal(err)
			}
			for i, name := range []string{"openssl", "curl"} {
				if _, err := db.ExecContext(ctx, `INSERT INTO packages (image_digest, idx, type, name, version, purl, ecosystem, match_name)
					VALUES ($1, $2, 'deb', $3, '1', 'pkg:deb/debian/x', 'Debian:12', $3)`, dg, i, name); err != nil {
					t.Fatal(err)
				}
			}
		}
		db.Close()
		s := open(t, dsn)
		if got, want := imagesWithKey(t, s, keyCurl), []string{"sha256:old1 curl", "sha256:old2 curl"}; !slices.Equal(got, want) {
			t.Fatalf("after migration: images with curl = %v, want %v", got, want)
		}
		got, err := s.ImagePackages(ctx, "sha256:old2")
		if err != nil || len(got) != 2 || got[0].Package.Name != "openssl" || got[1].Package.Name != "curl" {
			t.Fatalf("packages of old2 after migration: %+v, %v", got, err)
		}
		if err := s.DeleteImage(ctx, "sha256:old1"); err != nil {
			t.Fatal(err)
		}
		if n := countRows(t, s, "packages"); n != 2 {
			t.Fatalf("%d package rows after deleting a migrated image, want 2", n)
		}
	})
}

// openRaw opens the database of dsn without the Store (no migrations), closed when t ends.
func openRaw(t *testing.T, dsn string) (*sql.DB, dialect) {
	t.Helper()
	d, driver, conn, _, err := parseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open(driver, conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, d
}

// applyMigrationsUpTo creates the schema as it was at migration version upTo, recorded in
// schema_migrations as Open records it, so a test can write what an older crowsnest wrote and
// then Open the database to migrate it. db is a database or a transaction.
func applyMigrationsUpTo(t *testing.T, db interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, d dialect, upTo int) {
	t.Helper()
	ms, err := loadMigrations(d)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.version > upTo {
			break
		}
		if _, err := db.ExecContext(ctx, m.sql); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`, m.version, m.name, int64(1)); err != nil {
			t.Fatal(err)
		}
	}
}
