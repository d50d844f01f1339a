package store

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

// changeLines renders changes as "digest kind reason finding-json", in id order.
func changeLines(t *testing.T, changes []vuln.Change) []string {
	t.Helper()
	var out []string
	for _, c := range changes {
		b, err := json.Marshal(c.Finding)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c.ImageDigest+" "+c.Kind+" "+c.Reason+" "+string(b))
	}
	return out
}

// Identical findings of several images and their change events share one stored content, and
// every reader still gets the whole finding back.
func TestFindingContentIsSharedAndComplete(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		s := open(t, dsn)
		ctx := context.Background()
		digests := []string{"sha256:aaa", "sha256:bbb", "sha256:ccc"}
		for _, d := range digests {
			if err := s.PutImage(ctx, testSBOM(d, deb("libssl3", "3.0", "openssl"), deb("curl", "7.88", "curl")), []PackageKey{keyOpenSSL, keyCurl}); err != nil {
				t.Fatal(err)
			}
		}
		ssl := finding("libssl3", "3.0", keyOpenSSL, "DSA-1", vuln.SeverityHigh)
		ssl.Summary, ssl.CVSSScore, ssl.CVSSVector = "overflow", 9.8, "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
		ssl.AffectedRange, ssl.URLs = "<9.9", []string{"https://example.org/DSA-1"}
		curl := finding("curl", "7.88", keyCurl, "DSA-2", vuln.SeverityLow)
		now := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
		var updates []FindingsUpdate
		for _, d := range digests {
			updates = append(updates, FindingsUpdate{Digest: d, Findings: []vuln.Finding{ssl, curl}})
		}
		if _, err := s.ReplaceFindingsBatch(ctx, updates, "push", now); err != nil {
			t.Fatal(err)
		}
		if n := countRows(t, s, "finding_data"); n != 2 {
			t.Fatalf("%d stored finding contents for 2 distinct findings of 3 images", n)
		}
		for _, d := range digests {
			got, err := s.Findings(ctx, d)
			if err != nil {
				t.Fatal(err)
			}
			if want := []vuln.Finding{curl, ssl}; !reflect.DeepEqual(got, want) {
				t.Fatalf("findings of %s\n%+v\nwant\n%+v", d, got, want)
			}
		}

		// A new fixed version: updated in place (a new content), no event. Then openssl's
		// finding goes from one image: its removal event carries the content it had.
		fixed := ssl
		fixed.FixedVersion = "3.1"
		if _, err := s.ReplaceFindingsBatch(ctx, []FindingsUpdate{{Digest: "sha256:aaa", Scope: []PackageKey{keyOpenSSL}, Findings: []vuln.Finding{fixed}}}, "advisory-update", now); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ReplaceFindingsBatch(ctx, []FindingsUpdate{{Digest: "sha256:aaa", Scope: []PackageKey{keyOpenSSL}}}, "advisory-update", now); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Findings(ctx, "sha256:aaa"); err != nil || !reflect.DeepEqual(got, []vuln.Finding{curl}) {
			t.Fatalf("findings of aaa: %+v %v", got, err)
		}
		if got, err := s.Findings(ctx, "sha256:bbb"); err != nil || !reflect.DeepEqual(got, []vuln.Finding{curl, ssl}) {
			t.Fatalf("findings of bbb: %+v %v", got, err)
		}
		changes, err := s.Changes(ctx, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(changes) != 7 {
			t.Fatalf("%d changes, want 6 added and 1 removed", len(changes))
		}
		last := changes[6]
		if last.Kind != vuln.ChangeRemoved || last.ImageDigest != "sha256:aaa" || !reflect.DeepEqual(last.Finding, fixed) {
			t.Fatalf("removal event %+v, want the removed finding %+v", last, fixed)
		}
		for _, c := range changes[:6] {
			if want := map[string]vuln.Finding{"libssl3": ssl, "curl": curl}[c.Finding.Package.Name]; c.Kind != vuln.ChangeAdded || !reflect.DeepEqual(c.Finding, want) {
				t.Fatalf("event %+v, want the added finding %+v", c, want)
			}
		}

		// Content that is gone is an error, never a change silently skipped.
		h := sha256.Sum256(mustJSON(t, curl))
		if _, err := s.DB().ExecContext(ctx, `DELETE FROM finding_data WHERE hash = $1`, h[:]); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Changes(ctx, 0, 0); err == nil || !strings.Contains(err.Error(), "missing") {
			t.Fatalf("changes without their content: %v", err)
		}
		if _, err := s.Findings(ctx, "sha256:bbb"); err == nil || !strings.Contains(err.Error(), "missing") {
			t.Fatalf("findings without their content: %v", err)
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A database written before migration 0006 (findings and change events each with their own JSON)
// keeps its findings and its history, and the store goes on from there.
func TestMigrationToSharedFindingContent(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		db, d := openRaw(t, dsn)
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
		exec := func(q string, args ...any) {
			t.Helper()
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		applyMigrationsUpTo(t, tx, d, 5)
		// What the store of schema 5 wrote: findings with their JSON and its hash, and change
		// events with a copy of it.
		ssl := finding("libssl3", "3.0", keyOpenSSL, "DSA-1", vuln.SeverityHigh)
		curl := finding("curl", "7.88", keyCurl, "DSA-2", vuln.SeverityLow)
		gone := finding("curl", "7.88", keyCurl, "DSA-3", vuln.SeverityMedium)
		for _, digest := range []string{"sha256:aaa", "sha256:bbb"} {
			exec(`INSERT INTO images (digest, reference, name, platform, os_id, os_version, indexed_at, package_count, sbom)
				VALUES ($1, $2, 'registry.example/app', 'linux/amd64', 'debian', '12', 1, 2, $3)`, digest, "registry.example/app@"+digest, []byte{})
			for _, f := range []vuln.Finding{ssl, curl} {
				data := mustJSON(t, f)
				h := sha256.Sum256(data)
				exec(`INSERT INTO findings (image_digest, pkg_type, pkg_name, pkg_version, vuln_id, ecosystem, match_name, severity, fixed_version, hash, data)
					VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`, digest, f.Package.Type, f.Package.Name, f.Package.Version, f.VulnerabilityID,
					f.Package.Ecosystem, f.Package.MatchName, f.Severity, f.FixedVersion, h[:], data)
			}
		}
		var want []string
		for _, e := range []struct {
			digest, kind string
			f            vuln.Finding
		}{
			{"sha256:aaa", vuln.ChangeAdded, ssl}, {"sha256:aaa", vuln.ChangeAdded, curl}, {"sha256:aaa", vuln.ChangeAdded, gone},
			{"sha256:bbb", vuln.ChangeAdded, ssl}, {"sha256:bbb", vuln.ChangeAdded, curl}, {"sha256:aaa", vuln.ChangeRemoved, gone},
		} {
			exec(`INSERT INTO finding_changes (time, image_digest, kind, reason, data) VALUES ($1, $2, $3, 'push', $4)`,
				int64(1e18), e.digest, e.kind, mustJSON(t, e.f))
			want = append(want, e.digest+" "+e.kind+" push "+string(mustJSON(t, e.f)))
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		db.Close()

		s := open(t, dsn)
		for _, digest := range []string{"sha256:aaa", "sha256:bbb"} {
			got, err := s.Findings(ctx, digest)
			if err != nil || !reflect.DeepEqual(got, []vuln.Finding{curl, ssl}) {
				t.Fatalf("findings of %s after the migration: %+v %v", digest, got, err)
			}
		}
		changes, err := s.Changes(ctx, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := changeLines(t, changes); !reflect.DeepEqual(got, want) {
			t.Fatalf("history after the migration\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if n := countRows(t, s, "finding_data"); n != 2+6 {
			t.Fatalf("%d stored contents, want the 2 distinct findings and the 6 events' copies", n)
		}

		// The store goes on: an unchanged finding stays as it is, a removed legacy finding's
		// event carries its content, a new one is added.
		now := time.Unix(0, 2e18)
		sum, err := s.ReplaceFindingsBatch(ctx, []FindingsUpdate{
			{Digest: "sha256:aaa", Scope: []PackageKey{keyOpenSSL, keyCurl}, Findings: []vuln.Finding{curl, gone}},
		}, "advisory-update", now)
		if err != nil {
			t.Fatal(err)
		}
		if want := (ChangeSummary{ImagesGained: 1, ImagesLost: 1, Added: 1, Removed: 1}); sum != want {
			t.Fatalf("summary %+v, want %+v", sum, want)
		}
		more, err := s.Changes(ctx, changes[len(changes)-1].ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		got := changeLines(t, more)
		wantMore := []string{
			"sha256:aaa added advisory-update " + string(mustJSON(t, gone)),
			"sha256:aaa removed advisory-update " + string(mustJSON(t, ssl)),
		}
		if !reflect.DeepEqual(got, wantMore) {
			t.Fatalf("changes after the migration\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantMore, "\n"))
		}
		if got, err := s.Findings(ctx, "sha256:aaa"); err != nil || !reflect.DeepEqual(got, []vuln.Finding{curl, gone}) {
			t.Fatalf("findings of aaa: %+v %v", got, err)
		}
	})
}

// Findings handed over with their stored form are stored as such; a form per finding is required.
func TestReplaceFindingsWithEncodedForm(t *testing.T) {
	s := open(t, "sqlite://"+t.TempDir()+"/c.db")
	ctx := context.Background()
	if err := s.PutImage(ctx, testSBOM("sha256:aaa", deb("curl", "7.88", "curl")), []PackageKey{keyCurl}); err != nil {
		t.Fatal(err)
	}
	curl := finding("curl", "7.88", keyCurl, "DSA-2", vuln.SeverityLow)
	e, err := EncodeFinding(&curl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReplaceFindingsBatch(ctx, []FindingsUpdate{{Digest: "sha256:aaa", Findings: []vuln.Finding{curl, curl}, Encoded: []EncodedFinding{e}}}, "push", time.Now()); err == nil {
		t.Fatal("one encoded form for two findings accepted")
	}
	if _, err := s.ReplaceFindingsBatch(ctx, []FindingsUpdate{{Digest: "sha256:aaa", Findings: []vuln.Finding{curl}, Encoded: []EncodedFinding{e}}}, "push", time.Now()); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Findings(ctx, "sha256:aaa"); err != nil || !reflect.DeepEqual(got, []vuln.Finding{curl}) {
		t.Fatalf("findings %+v %v", got, err)
	}
}

// Images of one batch with different scopes: each keeps the findings outside its own scope.
func TestReplaceFindingsBatchWithDifferentScopes(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		s := open(t, dsn)
		ctx := context.Background()
		ssl := finding("libssl3", "3.0", keyOpenSSL, "DSA-1", vuln.SeverityHigh)
		curl := finding("curl", "7.88", keyCurl, "DSA-2", vuln.SeverityLow)
		curlFixed := curl
		curlFixed.FixedVersion = "8.0"
		var updates []FindingsUpdate
		for _, d := range []string{"sha256:aaa", "sha256:bbb"} {
			if err := s.PutImage(ctx, testSBOM(d, deb("libssl3", "3.0", "openssl"), deb("curl", "7.88", "curl")), []PackageKey{keyOpenSSL, keyCurl}); err != nil {
				t.Fatal(err)
			}
			updates = append(updates, FindingsUpdate{Digest: d, Findings: []vuln.Finding{ssl, curl}})
		}
		now := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
		if _, err := s.ReplaceFindingsBatch(ctx, updates, "push", now); err != nil {
			t.Fatal(err)
		}
		sum, err := s.ReplaceFindingsBatch(ctx, []FindingsUpdate{
			{Digest: "sha256:aaa", Scope: []PackageKey{keyOpenSSL}},
			{Digest: "sha256:bbb", Scope: []PackageKey{keyCurl}, Findings: []vuln.Finding{curlFixed}},
		}, "advisory-update", now)
		if err != nil {
			t.Fatal(err)
		}
		if want := (ChangeSummary{ImagesLost: 1, Removed: 1}); sum != want {
			t.Fatalf("summary %+v, want %+v", sum, want)
		}
		for d, want := range map[string][]vuln.Finding{"sha256:aaa": {curl}, "sha256:bbb": {curlFixed, ssl}} {
			if got, err := s.Findings(ctx, d); err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("findings of %s: %+v %v, want %+v", d, got, err, want)
			}
		}
	})
}
