package store

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

// PutImageFindings stores the image and replaces its findings in one go, recording changes; it
// also takes the COPY path on PostgreSQL (>= copyThreshold package rows and findings).
func TestPutImageFindings(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		s := open(t, dsn)
		ctx := context.Background()
		now := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
		var pkgs []sbom.Package
		var keys []PackageKey
		var fs []vuln.Finding
		for i := range 2 * copyThreshold {
			name := fmt.Sprintf("lib%03d", i)
			pkgs = append(pkgs, deb(name, "1.0-1", name))
			k := PackageKey{"Debian:12", name}
			keys = append(keys, k)
			fs = append(fs, finding(name, "1.0-1", k, "CVE-2024-"+fmt.Sprint(1000+i), vuln.SeverityHigh))
		}
		sb := testSBOM("sha256:put", pkgs...)
		sum, err := s.PutImageFindings(ctx, sb, keys, fs, "push", now)
		if err != nil {
			t.Fatal(err)
		}
		if sum.Added != len(fs) || sum.Removed != 0 || sum.ImagesGained != 1 {
			t.Fatalf("first put: %+v", sum)
		}
		got, err := s.ImagePackages(ctx, "sha256:put")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(pkgs) || got[5].Package.Name != "lib005" || got[5].Package.MatchName != "lib005" {
			t.Fatalf("packages: %d, [5] = %+v", len(got), got[5])
		}
		// Again with half the findings and one severity changed: half removed, one updated.
		half := slices.Clone(fs[:copyThreshold])
		half[0].Severity = vuln.SeverityCritical
		sum, err = s.PutImageFindings(ctx, sb, keys, half, "rescan", now)
		if err != nil {
			t.Fatal(err)
		}
		if sum.Added != 0 || sum.Removed != copyThreshold {
			t.Fatalf("second put: %+v", sum)
		}
		stored, err := s.Findings(ctx, "sha256:put")
		if err != nil {
			t.Fatal(err)
		}
		if len(stored) != copyThreshold || stored[0].Severity != vuln.SeverityCritical {
			t.Fatalf("findings: %d, first %+v", len(stored), stored[0])
		}
		changes, err := s.Changes(ctx, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(changes) != len(fs)+copyThreshold {
			t.Fatalf("%d changes, want %d", len(changes), len(fs)+copyThreshold)
		}
		last := changes[len(changes)-1]
		if last.Kind != vuln.ChangeRemoved || last.Reason != "rescan" || last.Finding.Package.Name == "" {
			t.Errorf("last change %+v", last)
		}
		for i := 1; i < len(changes); i++ {
			if changes[i].ID <= changes[i-1].ID {
				t.Fatalf("change ids not increasing: %d after %d", changes[i].ID, changes[i-1].ID)
			}
		}
		// An image without packages or findings: nothing to copy, nothing changed.
		sum, err = s.PutImageFindings(ctx, testSBOM("sha256:empty"), nil, nil, "push", now)
		if err != nil || sum != (ChangeSummary{}) {
			t.Fatalf("empty image: %+v, %v", sum, err)
		}
	})
}
