package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
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
	var adds, updates, reseverity []findingRow
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
			r := findingRow{digest: d.Digest, f: d.New, hash: d.NewEnc.hash[:], oldHash: d.OldEnc.hash[:]}
			content[d.NewEnc.hash] = d.NewEnc.data
			if d.Old.Severity == d.New.Severity && d.Old.Package.Ecosystem == d.New.Package.Ecosystem && d.Old.Package.MatchName == d.New.Package.MatchName {
				updates = append(updates, r)
			} else {
				reseverity = append(reseverity, r)
			}
		}
	}
	sum.Added, sum.Removed, sum.ImagesGained, sum.ImagesLost = len(adds), len(removes), len(gained), len(lost)
	// In key order: neighbouring statements touch neighbouring pages.
	slices.SortFunc(adds, compareRows)
	slices.SortFunc(removes, func(a, b storedFindingRef) int {
		return cmpStrings(a.digest, b.digest, a.f.id.typ, b.f.id.typ, a.f.id.name, b.f.id.name, a.f.id.version, b.f.id.version, a.f.id.vulnID, b.f.id.vulnID)
	})
	slices.SortFunc(updates, compareRows)
	slices.SortFunc(reseverity, compareRows)
	err := s.write(ctx, func(tx *txw) error {
		if tx.d == dialectPostgres {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(changesLockKey)); err != nil {
				return fmt.Errorf("lock: %w", err)
			}
			// See replaceFindingsTx: index probes, not a scan of every finding.
			if _, err := tx.ExecContext(ctx, `SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off`); err != nil {
				return fmt.Errorf("plan settings: %w", err)
			}
		}
		if err := putFindingData(ctx, tx, content); err != nil {
			return err
		}
		n, err := deleteChecked(ctx, tx, removes)
		if err != nil {
			return err
		}
		if n != int64(len(removes)) {
			return fmt.Errorf("%d of %d findings to delete held the expected content: %w", n, len(removes), ErrFindingsDiverged)
		}
		if err := insertFindings(ctx, tx, adds); err != nil {
			return err
		}
		for _, u := range []struct {
			rs    []findingRow
			rekey bool
		}{{updates, false}, {reseverity, true}} {
			n, err := rewriteFindings(ctx, tx, u.rs, u.rekey)
			if err != nil {
				return err
			}
			if n != int64(len(u.rs)) {
				return fmt.Errorf("%d of %d findings to update held the expected content: %w", n, len(u.rs), ErrFindingsDiverged)
			}
		}
		return recordChanges(ctx, tx, adds, removes, reason, now)
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

// rewriteFindings sets the content (fixed version and hash; with rekey also severity and
// package key) of the stored findings rs whose hash is still their oldHash, and returns how
// many it rewrote.
func rewriteFindings(ctx context.Context, tx *txw, rs []findingRow, rekey bool) (int64, error) {
	if len(rs) == 0 {
		return 0, nil
	}
	if tx.d == dialectPostgres {
		return updateFindingsPG(ctx, tx, rs, rekey, true)
	}
	// One prepared single-row UPDATE per finding: SQLite runs it as one primary-key seek, where
	// a multi-row upsert first attempts the insert (and parses thousands of parameters).
	set := `fixed_version = ?, hash = ?`
	if rekey {
		set += `, severity = ?, ecosystem = ?, match_name = ?`
	}
	st, err := tx.stmt(ctx, `UPDATE findings SET `+set+` WHERE image_digest = ? AND pkg_type = ? AND pkg_name = ?
		AND pkg_version = ? AND vuln_id = ? AND hash = ?`)
	if err != nil {
		return 0, fmt.Errorf("update findings: %w", err)
	}
	var total int64
	args := make([]any, 0, 11)
	for _, r := range rs {
		p := &r.f.Package
		args = append(args[:0], r.f.FixedVersion, r.hash)
		if rekey {
			args = append(args, r.f.Severity, p.Ecosystem, p.MatchName)
		}
		args = append(args, r.digest, p.Type, p.Name, p.Version, r.f.VulnerabilityID, r.oldHash)
		n, err := rowsChanged(ctx, st, args...)
		if err != nil {
			return total, fmt.Errorf("update findings: %w", err)
		}
		total += n
	}
	return total, nil
}

// deleteChecked deletes the stored findings refs that still hold the content refs name and
// returns how many it deleted.
func deleteChecked(ctx context.Context, tx *txw, refs []storedFindingRef) (int64, error) {
	if len(refs) == 0 {
		return 0, nil
	}
	if tx.d == dialectPostgres {
		return deleteFindings(ctx, tx, refs, true)
	}
	// One prepared single-row DELETE per finding, a primary-key seek each: a multi-row one
	// read every finding of the images it names to test each against its list.
	st, err := tx.stmt(ctx, `DELETE FROM findings WHERE image_digest = ? AND pkg_type = ? AND pkg_name = ?
		AND pkg_version = ? AND vuln_id = ? AND hash = ?`)
	if err != nil {
		return 0, fmt.Errorf("delete findings: %w", err)
	}
	var total int64
	for _, r := range refs {
		n, err := rowsChanged(ctx, st, r.digest, r.f.id.typ, r.f.id.name, r.f.id.version, r.f.id.vulnID, r.f.hash[:])
		if err != nil {
			return total, fmt.Errorf("delete findings: %w", err)
		}
		total += n
	}
	return total, nil
}

// rowsChanged runs st with args and returns how many rows it changed.
func rowsChanged(ctx context.Context, st *sql.Stmt, args ...any) (int64, error) {
	res, err := st.ExecContext(ctx, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
