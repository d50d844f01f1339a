package findings

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/store"
	"github.com/crowsnest-dev/crowsnest/internal/testutil/pgtest"
)

const genuine = "../advisory/testdata/osv"

func backends(t *testing.T) map[string]string {
	return map[string]string{
		"sqlite":   "sqlite://" + filepath.Join(t.TempDir(), "c.db"),
		"postgres": pgtest.DSN(t),
	}
}

// record loads a genuine OSV record as a generic JSON object, to edit it the way an upstream
// update would.
// openStore opens the store at dsn for the test's duration.
func openStore(t *testing.T, dsn string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func record(t *testing.T, rel string) map[string]any {
	data, err := os.ReadFile(filepath.Join(genuine, rel))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func writeRecords(t *testing.T, dir string, recs ...map[string]any) {
	os.RemoveAll(dir)
	os.MkdirAll(dir, 0o755)
	for _, r := range recs {
		data, _ := json.Marshal(r)
		if err := os.WriteFile(filepath.Join(dir, r["id"].(string)+".json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func alpineImage(digest, muslVersion string, npm bool) *sbom.SBOM {
	s := &sbom.SBOM{
		Image: sbom.Image{Reference: "reg.example/app@" + digest, Digest: digest, Platform: sbom.Platform{OS: "linux", Architecture: "amd64"}},
		OS:    &sbom.OS{ID: "alpine", VersionID: "3.19.1"},
		Packages: []sbom.Package{
			{Type: sbom.TypeAPK, Name: "musl", Version: muslVersion, Source: &sbom.Source{Name: "musl", Version: muslVersion}, PURL: "pkg:apk/alpine/musl@" + muslVersion},
		},
	}
	if npm {
		s.Packages = append(s.Packages, sbom.Package{Type: sbom.TypeNPM, Name: "ansi-html", Version: "0.0.7", PURL: "pkg:npm/ansi-html@0.0.7"})
	}
	return s
}

func findingIDs(t *testing.T, st *store.Store, digest string) string {
	fs, err := st.Findings(context.Background(), digest)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, f := range fs {
		ids = append(ids, f.Package.Name+":"+f.VulnerabilityID)
	}
	sort.Strings(ids)
	return strings.Join(ids, ",")
}

func setFixed(rec map[string]any, ecosystem, fixed string) {
	for _, a := range rec["affected"].([]any) {
		aff := a.(map[string]any)
		if aff["package"].(map[string]any)["ecosystem"] != ecosystem {
			continue
		}
		for _, r := range aff["ranges"].([]any) {
			for _, e := range r.(map[string]any)["events"].([]any) {
				if ev := e.(map[string]any); ev["fixed"] != nil {
					ev["fixed"] = fixed
				}
			}
		}
	}
}

// TestAdvisoryChangesRematchOnlyAffectedImages stores three images, then changes advisories the
// way upstream does (a fix version corrected, a record removed, a record withdrawn) and checks
// each import's findings and change events, on both databases.
func TestAdvisoryChangesRematchOnlyAffectedImages(t *testing.T) {
	for name, dsn := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			st := openStore(t, dsn)
			clock := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
			svc := &Service{Store: st, Now: func() time.Time { clock = clock.Add(time.Minute); return clock }}
			dir := filepath.Join(t.TempDir(), "osv")
			musl, npm := record(t, "Alpine/ALPINE-CVE-2025-26519.json"), record(t, "npm/GHSA-whgm-jr23-g3j9.json")
			writeRecords(t, dir, musl, npm)
			if _, err := svc.Import(ctx, dir, "osv-test", true); err != nil {
				t.Fatal(err)
			}

			vulnerable := "sha256:" + strings.Repeat("1", 64)
			fixed := "sha256:" + strings.Repeat("2", 64)
			debian := "sha256:" + strings.Repeat("3", 64)
			for _, s := range []*sbom.SBOM{
				alpineImage(vulnerable, "1.2.4_git20230717-r4", true),
				alpineImage(fixed, "1.2.4_git20230717-r5", false),
				{Image: sbom.Image{Digest: debian}, OS: &sbom.OS{ID: "debian", VersionID: "12"},
					Packages: []sbom.Package{{Type: sbom.TypeDeb, Name: "zlib1g", Version: "1:1.2.13.dfsg-1", Source: &sbom.Source{Name: "zlib"}}}},
			} {
				if _, err := svc.Ingest(ctx, s, ReasonIndex); err != nil {
					t.Fatal(err)
				}
			}
			if got := findingIDs(t, st, vulnerable); got != "ansi-html:GHSA-whgm-jr23-g3j9,musl:ALPINE-CVE-2025-26519" {
				t.Fatalf("vulnerable image findings = %q", got)
			}
			if got := findingIDs(t, st, fixed) + findingIDs(t, st, debian); got != "" {
				t.Fatalf("fixed/debian images have findings: %q", got)
			}

			// Upstream says the fix for v3.19 came one revision later: the "fixed" image gains it.
			setFixed(musl, "Alpine:v3.19", "1.2.4_git20230717-r6")
			writeRecords(t, dir, musl, npm)
			rep, err := svc.Import(ctx, dir, "osv-test", true)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Import.Updated != 1 || rep.Changes != (store.ChangeSummary{ImagesGained: 1, Added: 1}) {
				t.Fatalf("fix-version update: %+v / %+v", rep.Import, rep.Changes)
			}
			if got := findingIDs(t, st, fixed); got != "musl:ALPINE-CVE-2025-26519" {
				t.Fatalf("fixed image after update = %q", got)
			}

			// The npm record disappears from the full source: the finding goes away.
			writeRecords(t, dir, musl)
			rep, err = svc.Import(ctx, dir, "osv-test", true)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Import.Removed != 1 || rep.Changes != (store.ChangeSummary{ImagesLost: 1, Removed: 1}) {
				t.Fatalf("removal: %+v / %+v", rep.Import, rep.Changes)
			}

			// Withdrawn: every finding of the record disappears.
			musl["withdrawn"] = "2026-11-20T00:00:00Z"
			writeRecords(t, dir, musl)
			rep, err = svc.Import(ctx, dir, "osv-test", true)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Changes != (store.ChangeSummary{ImagesLost: 2, Removed: 2}) {
				t.Fatalf("withdrawal: %+v / %+v", rep.Import, rep.Changes)
			}
			if got := findingIDs(t, st, vulnerable) + findingIDs(t, st, fixed); got != "" {
				t.Fatalf("findings left after withdrawal: %q", got)
			}

			changes, err := st.Changes(ctx, 0, 100)
			if err != nil {
				t.Fatal(err)
			}
			var log []string
			for _, c := range changes {
				if c.Time.IsZero() {
					t.Errorf("change without a time: %+v", c)
				}
				log = append(log, c.Kind+"/"+c.Reason+"/"+c.Finding.Package.Name)
			}
			sort.Strings(log)
			want := "added/advisory-update/musl added/index/ansi-html added/index/musl removed/advisory-update/ansi-html removed/advisory-update/musl removed/advisory-update/musl"
			if got := strings.Join(log, " "); got != want {
				t.Fatalf("changes:\n got %s\nwant %s", got, want)
			}
		})
	}
}
