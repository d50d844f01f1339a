package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

// ErrFindingsDiverged means the stored findings are not what a FindingDelta said they were: the
// deltas were not applied and the caller should replace the findings from what they are.
var ErrFindingsDiverged = errors.New("stored findings differ from the expected ones")

// FindingDelta is one change to one stored finding of one image, worked out without reading the
// stored findings: by matching the image's package against the advisories before and after a
// change. Old is what the store holds (nil: the finding is new), New what it is to hold (nil: the
// finding is gone); with both, the key is the same and the content changed.
type FindingDelta struct {
	Digest         string
	Old, New       *vuln.Finding
	OldEnc, NewEnc *EncodedFinding
}

// ApplyFindingDeltas writes deltas in one transaction and records each added and removed finding
// as a change with reason and now. Every row it deletes or rewrites must hold the content Old
// says and every row it adds must be absent; otherwise nothing is written, and the error is
// ErrFindingsDiverged (or the database's constraint error for a row to add that exists). That
// check is what lets a re-match write only what an advisory change changed, instead of reading
// every finding of the images concerned to compare.
func (s *Store) ApplyFindingDeltas(ctx context.Context, deltas []FindingDelta, reason string, now time.Time) (ChangeSummary, error) {
	var sum ChangeSummary
	if len(deltas) == 0 {
		return sum, nil
	}
	var adds, rewrites []findingRow
	var removes []storedFindingRef
	content := map[[sha256.Size]byte][]byte{}
	gained, lost := map[string]bool{}, map[string]bool{}
	for i := range deltas {
		d := &deltas[i]
		if d.Digest == "" || (d.Old == nil) != (d.OldEnc == nil) || (d.New == nil) != (d.NewEnc == nil) || (d.Old == nil && d.New == nil) {
			return sum, fmt.Errorf("apply finding changes: delta %d of %s is incomplete", i, d.Digest)
		}
		switch {
		case d.Old == nil:
			adds = append(adds, findingRow{digest: d.Digest, f: d.New, hash: d.NewEnc.hash[:]})
			content[d.NewEnc.hash] = d.NewEnc.data
			gained[d.Digest] = true
		case d.New == nil:
			removes = append(removes, storedFindingRef{digest: d.Digest, f: storedFinding{id: idOf(d.Old), hash: d.OldEnc.hash}})
			lost[d.Digest] = true
		default:
			if idOf(d.Old) != idOf(d.New) {
				return sum, fmt.Errorf("apply finding changes: delta %d of %s changes the finding's key", i, d.Digest)
			}
			content[d.NewEnc.hash] = d.NewEnc.data
			rewrites = append(rewrites, findingRow{digest: d.Digest, f: d.New, hash: d.NewEnc.hash[:], oldHash: d.OldEnc.hash[:],
				rekey: d.Old.Severity != d.New.Severity || d.Old.Package.Ecosystem != d.New.Package.Ecosystem || d.Old.Package.MatchName != d.New.Package.MatchName})
		}
	}
	sum.Added, sum.Removed, sum.ImagesGained, sum.ImagesLost = len(adds), len(removes), len(gained), len(lost)
	// In key order: neighbouring statements touch neighbouring pages.
	slices.SortFunc(adds, compareRows)
	slices.SortFunc(removes, func(a, b storedFindingRef) int {
		return cmpStrings(a.digest, b.digest, a.f.id.typ, b.f.id.typ, a.f.id.name, b.f.id.name, a.f.id.version, b.f.id.version, a.f.id.vulnID, b.f.id.vulnID)
	})
	slices.SortFunc(rewrites, compareRows)
	err := s.write(ctx, func(tx *txw) error {
		if err := lockFindings(ctx, tx); err != nil {
			return err
		}
		return writeFindings(ctx, tx, content, removes, adds, rewrites, reason, now)
	})
	if err != nil {
		return ChangeSummary{}, fmt.Errorf("apply finding changes: %w", err)
	}
	return sum, nil
}

func compareRows(a, b findingRow) int {
	return cmpStrings(a.digest, b.digest, a.f.Package.Type, b.f.Package.Type, a.f.Package.Name, b.f.Package.Name,
		a.f.Package.Version, b.f.Package.Version, a.f.VulnerabilityID, b.f.VulnerabilityID)
}

// cmpStrings compares pairs (a0, b0), (a1, b1)... in turn.
func cmpStrings(pairs ...string) int {
	for i := 0; i+1 < len(pairs); i += 2 {
		if c := strings.Compare(pairs[i], pairs[i+1]); c != 0 {
			return c
		}
	}
	return 0
}
