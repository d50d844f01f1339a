package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

// FindingsUpdate is the new set of findings of one image within a scope of package keys.
type FindingsUpdate struct {
	Digest string
	// Scope limits the replacement to findings of packages with these keys; nil means every
	// finding of the image. Every finding in Findings must be within the scope.
	Scope    []PackageKey
	Findings []vuln.Finding
}

// ChangeSummary counts what a findings replacement changed.
type ChangeSummary struct {
	// ImagesGained and ImagesLost count images with at least one finding added / removed.
	ImagesGained, ImagesLost int
	Added, Removed           int
}

// Change limits.
const (
	defaultChangesLimit = 1000
	maxChangesLimit     = 10000
	// digestBatch is how many images one read of existing findings covers.
	digestBatch = 500
)

// ReplaceFindings replaces the findings of digest (a stored image) within scope (nil = all of them) by findings,
// recording each added and removed finding as a change with reason and now. Findings whose key
// is unchanged but whose content changed (a new severity, a fix) are updated without a change
// event.
func (s *Store) ReplaceFindings(ctx context.Context, digest string, scope []PackageKey, findings []vuln.Finding, reason string, now time.Time) (added, removed int, err error) {
	sum, err := s.ReplaceFindingsBatch(ctx, []FindingsUpdate{{Digest: digest, Scope: scope, Findings: findings}}, reason, now)
	return sum.Added, sum.Removed, err
}

// storedFinding is what a replacement reads of a stored finding: its key and content hash, not
// its JSON (the removed ones' JSON comes back from the DELETE).
type storedFinding struct {
	typ, name, version, vulnID string
	ecosystem, matchName       string
	severity                   string
	hash                       []byte
}

type findingRow struct {
	digest string
	f      *vuln.Finding
	data   []byte
	hash   []byte
}

// findingKey is the same key as vuln.Finding.Key.
func findingKey(typ, name, version, id string) string {
	return typ + "\x00" + name + "\x00" + version + "\x00" + id
}

// ReplaceFindingsBatch applies several images' updates in one transaction.
func (s *Store) ReplaceFindingsBatch(ctx context.Context, updates []FindingsUpdate, reason string, now time.Time) (ChangeSummary, error) {
	var sum ChangeSummary
	if len(updates) == 0 {
		return sum, nil
	}
	digests := make([]string, 0, len(updates))
	byDigest := make(map[string]bool, len(updates))
	for _, u := range updates {
		if u.Digest == "" {
			return sum, fmt.Errorf("replace findings: empty image digest")
		}
		if byDigest[u.Digest] {
			return sum, fmt.Errorf("replace findings: image %s appears twice in one batch", u.Digest)
		}
		byDigest[u.Digest] = true
		digests = append(digests, u.Digest)
	}
	enc, err := encodeFindings(updates)
	if err != nil {
		return sum, fmt.Errorf("replace findings: %w", err)
	}
	err = s.write(ctx, func(tx *txw) error {
		return replaceFindingsTx(ctx, tx, updates, enc, digests, reason, now, &sum)
	})
	if err != nil {
		return ChangeSummary{}, fmt.Errorf("replace findings: %w", err)
	}
	return sum, nil
}

type encodedFinding struct {
	data []byte
	hash [sha256.Size]byte
}

// encodeFindings encodes and hashes every finding of updates (enc[u][i] is updates[u].Findings[i]),
// on every core and before the write lock is taken: it was a sixth of a re-match's write.
func encodeFindings(updates []FindingsUpdate) ([][]encodedFinding, error) {
	enc := make([][]encodedFinding, len(updates))
	workers := max(1, min(runtime.GOMAXPROCS(0), len(updates)/64))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for ui := w; ui < len(updates); ui += workers {
				u := &updates[ui]
				out := make([]encodedFinding, len(u.Findings))
				for i := range u.Findings {
					data, err := json.Marshal(&u.Findings[i])
					if err != nil {
						errs[w] = fmt.Errorf("image %s: encode finding %s: %w", u.Digest, u.Findings[i].VulnerabilityID, err)
						return
					}
					out[i] = encodedFinding{data: data, hash: sha256.Sum256(data)}
				}
				enc[ui] = out
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return enc, nil
}

// replaceFindingsTx is ReplaceFindingsBatch within tx; digests are the updates' digests, checked
// distinct and non-empty.
func replaceFindingsTx(ctx context.Context, tx *txw, updates []FindingsUpdate, enc [][]encodedFinding, digests []string, reason string, now time.Time, sum *ChangeSummary) error {
	if tx.d == dialectPostgres {
		// Change ids must become visible in order, or a reader paging by id (Changes)
		// could pass an id whose transaction commits later. Writers of changes take turns;
		// on SQLite the write lock already does this.
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(changesLockKey)); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
	}
	existing, err := loadFindings(ctx, tx, digests)
	if err != nil {
		return err
	}
	// updatesRows keep their severity, reseverityRows change them (or the key): only the latter rewrite the
	// severity index (an upsert rewrites every index over a column it sets).
	var inserts, updatesRows, reseverityRows []findingRow
	var deletes []storedFindingRef
	// A re-match gives every image the same scope slice (thousands of keys): build its set
	// once, not once per image.
	var lastScope []PackageKey
	var scope map[PackageKey]struct{}
	for ui, u := range updates {
		switch {
		case u.Scope == nil:
			scope = nil
		case len(u.Scope) == 0:
			scope = map[PackageKey]struct{}{}
		case scope == nil || len(u.Scope) != len(lastScope) || &u.Scope[0] != &lastScope[0]:
			scope = make(map[PackageKey]struct{}, len(u.Scope))
			for _, k := range u.Scope {
				scope[k] = struct{}{}
			}
		}
		lastScope = u.Scope
		old := existing[u.Digest]
		seen := make(map[string]struct{}, len(u.Findings))
		gained, lost := false, false
		for i := range u.Findings {
			f := &u.Findings[i]
			if scope != nil {
				if _, ok := scope[PackageKey{f.Package.Ecosystem, f.Package.MatchName}]; !ok {
					return fmt.Errorf("image %s: finding %s of %s (%s %s) is outside the update's scope",
						u.Digest, f.VulnerabilityID, f.Package.Name, f.Package.Ecosystem, f.Package.MatchName)
				}
			}
			key := f.Key()
			if _, dup := seen[key]; dup {
				continue
			}
			seen[key] = struct{}{}
			e := &enc[ui][i]
			r := findingRow{digest: u.Digest, f: f, data: e.data, hash: e.hash[:]}
			prev, ok := old[key]
			switch {
			case !ok:
				inserts = append(inserts, r)
				gained = true
				sum.Added++
			case bytes.Equal(prev.hash, r.hash):
			case prev.severity == f.Severity && prev.ecosystem == f.Package.Ecosystem && prev.matchName == f.Package.MatchName:
				updatesRows = append(updatesRows, r)
			default:
				reseverityRows = append(reseverityRows, r)
			}
		}
		for key, prev := range old {
			if scope != nil {
				if _, ok := scope[PackageKey{prev.ecosystem, prev.matchName}]; !ok {
					continue
				}
			}
			if _, ok := seen[key]; ok {
				continue
			}
			deletes = append(deletes, storedFindingRef{digest: u.Digest, f: prev})
			lost = true
			sum.Removed++
		}
		if gained {
			sum.ImagesGained++
		}
		if lost {
			sum.ImagesLost++
		}
	}
	removed, err := deleteFindings(ctx, tx, deletes)
	if err != nil {
		return err
	}
	if len(removed) != len(deletes) {
		return fmt.Errorf("deleted %d findings, expected %d: concurrent change", len(removed), len(deletes))
	}
	if err := copyRows(ctx, tx, "findings", []string{"image_digest", "pkg_type", "pkg_name", "pkg_version", "vuln_id",
		"ecosystem", "match_name", "severity", "fixed_version", "hash", "data"}, len(inserts), func(i int, args []any) []any {
		r := inserts[i]
		p := &r.f.Package
		return append(args, r.digest, p.Type, p.Name, p.Version, r.f.VulnerabilityID,
			p.Ecosystem, p.MatchName, r.f.Severity, r.f.FixedVersion, r.hash, r.data)
	}); err != nil {
		return fmt.Errorf("insert findings: %w", err)
	}
	// Multi-row upserts instead of an UPDATE per row: a changed fixed version touches tens
	// of thousands of findings, and row-at-a-time statements dominated the re-match.
	const upsertPrefix = `INSERT INTO findings (image_digest, pkg_type, pkg_name, pkg_version, vuln_id,
		ecosystem, match_name, severity, fixed_version, hash, data) VALUES `
	const conflict = ` ON CONFLICT (image_digest, pkg_type, pkg_name, pkg_version, vuln_id) DO UPDATE SET `
	row := func(rs []findingRow) func(i int, args []any) []any {
		return func(i int, args []any) []any {
			r := rs[i]
			p := &r.f.Package
			return append(args, r.digest, p.Type, p.Name, p.Version, r.f.VulnerabilityID,
				p.Ecosystem, p.MatchName, r.f.Severity, r.f.FixedVersion, r.hash, r.data)
		}
	}
	if err := insertRowsSuffix(ctx, tx, upsertPrefix, conflict+`fixed_version = excluded.fixed_version,
		hash = excluded.hash, data = excluded.data`, 11, len(updatesRows), row(updatesRows)); err != nil {
		return fmt.Errorf("update findings: %w", err)
	}
	if err := insertRowsSuffix(ctx, tx, upsertPrefix, conflict+`ecosystem = excluded.ecosystem,
		match_name = excluded.match_name, severity = excluded.severity,
		fixed_version = excluded.fixed_version, hash = excluded.hash, data = excluded.data`,
		11, len(reseverityRows), row(reseverityRows)); err != nil {
		return fmt.Errorf("update findings: %w", err)
	}
	ts := now.UnixNano()
	n := len(inserts)
	if err := copyRows(ctx, tx, "finding_changes", []string{"time", "image_digest", "kind", "reason", "data"}, n+len(removed),
		func(i int, args []any) []any {
			if i < n {
				return append(args, ts, inserts[i].digest, vuln.ChangeAdded, reason, inserts[i].data)
			}
			r := removed[i-n]
			return append(args, ts, r.digest, vuln.ChangeRemoved, reason, r.data)
		}); err != nil {
		return fmt.Errorf("record finding changes: %w", err)
	}
	return nil
}

// changesLockKey serializes finding writers on PostgreSQL (migrationLockKey + 2).
const changesLockKey = migrationLockKey + 2

type storedFindingRef struct {
	digest string
	f      storedFinding
}

// removedFinding is a deleted finding's image and JSON, for its change event.
type removedFinding struct {
	digest string
	data   []byte
}

// loadFindings reads the keys and hashes of the stored findings of digests, by digest and
// finding key.
func loadFindings(ctx context.Context, tx *txw, digests []string) (map[string]map[string]storedFinding, error) {
	out := make(map[string]map[string]storedFinding, len(digests))
	const cols = `image_digest, pkg_type, pkg_name, pkg_version, vuln_id, ecosystem, match_name, severity, hash`
	scan := func(rows *sql.Rows) error {
		defer rows.Close()
		for rows.Next() {
			var d string
			var f storedFinding
			if err := rows.Scan(&d, &f.typ, &f.name, &f.version, &f.vulnID, &f.ecosystem, &f.matchName, &f.severity, &f.hash); err != nil {
				return err
			}
			m := out[d]
			if m == nil {
				m = map[string]storedFinding{}
				out[d] = m
			}
			m[findingKey(f.typ, f.name, f.version, f.vulnID)] = f
		}
		return rows.Err()
	}
	if tx.d == dialectPostgres {
		rows, err := tx.QueryContext(ctx, `SELECT `+cols+` FROM findings WHERE image_digest = ANY($1::text[])`, digests)
		if err != nil {
			return nil, fmt.Errorf("read findings: %w", err)
		}
		if err := scan(rows); err != nil {
			return nil, fmt.Errorf("read findings: %w", err)
		}
		return out, nil
	}
	for start := 0; start < len(digests); start += digestBatch {
		chunk := digests[start:min(len(digests), start+digestBatch)]
		q, args := idInQuery(tx.d, `SELECT `+cols+` FROM findings WHERE image_digest IN (`, chunk)
		rows, err := tx.QueryContext(ctx, q+")", args...)
		if err != nil {
			return nil, fmt.Errorf("read findings: %w", err)
		}
		if err := scan(rows); err != nil {
			return nil, fmt.Errorf("read findings: %w", err)
		}
	}
	return out, nil
}

// deleteFindings deletes refs and returns what they held.
func deleteFindings(ctx context.Context, tx *txw, refs []storedFindingRef) ([]removedFinding, error) {
	var out []removedFinding
	collect := func(rows *sql.Rows) error {
		defer rows.Close()
		for rows.Next() {
			var r removedFinding
			if err := rows.Scan(&r.digest, &r.data); err != nil {
				return err
			}
			out = append(out, r)
		}
		return rows.Err()
	}
	if len(refs) == 0 {
		return nil, nil
	}
	if tx.d == dialectPostgres {
		// Arrays joined by primary key: PostgreSQL plans a long row-value IN list poorly.
		cols := make([][]string, 5)
		for _, r := range refs {
			for i, v := range []string{r.digest, r.f.typ, r.f.name, r.f.version, r.f.vulnID} {
				cols[i] = append(cols[i], v)
			}
		}
		rows, err := tx.QueryContext(ctx, `DELETE FROM findings f
			USING unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS d(img, t, n, v, id)
			WHERE f.image_digest = d.img AND f.pkg_type = d.t AND f.pkg_name = d.n AND f.pkg_version = d.v AND f.vuln_id = d.id
			RETURNING f.image_digest, f.data`,
			cols[0], cols[1], cols[2], cols[3], cols[4])
		if err != nil {
			return nil, fmt.Errorf("delete findings: %w", err)
		}
		if err := collect(rows); err != nil {
			return nil, fmt.Errorf("delete findings: %w", err)
		}
		return out, nil
	}
	const cols = 5
	per := maxParams / cols
	for start := 0; start < len(refs); start += per {
		chunk := refs[start:min(len(refs), start+per)]
		var b strings.Builder
		b.WriteString(`DELETE FROM findings WHERE (image_digest, pkg_type, pkg_name, pkg_version, vuln_id) IN (VALUES `)
		placeholders(tx.d, &b, 1, len(chunk), cols)
		b.WriteString(") RETURNING image_digest, data")
		args := make([]any, 0, len(chunk)*cols)
		for _, r := range chunk {
			args = append(args, r.digest, r.f.typ, r.f.name, r.f.version, r.f.vulnID)
		}
		rows, err := tx.QueryContext(ctx, b.String(), args...)
		if err != nil {
			return nil, fmt.Errorf("delete findings: %w", err)
		}
		if err := collect(rows); err != nil {
			return nil, fmt.Errorf("delete findings: %w", err)
		}
	}
	return out, nil
}

// Findings returns the findings of digest ordered by package and vulnerability.
func (s *Store) Findings(ctx context.Context, digest string) ([]vuln.Finding, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT data FROM findings WHERE image_digest = $1
		ORDER BY pkg_type, pkg_name, pkg_version, vuln_id`, digest)
	if err != nil {
		return nil, fmt.Errorf("findings of %s: %w", digest, err)
	}
	defer rows.Close()
	var out []vuln.Finding
	var data []byte
	for rows.Next() {
		if err := rows.Scan(&data); err != nil {
			return nil, fmt.Errorf("findings of %s: %w", digest, err)
		}
		var f vuln.Finding
		if err := json.Unmarshal(data, &f); err != nil {
			return nil, fmt.Errorf("findings of %s: decode: %w", digest, err)
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("findings of %s: %w", digest, err)
	}
	return out, nil
}

// Changes returns up to limit finding changes with an id above afterID, oldest first (limit <= 0
// means 1000; at most 10000 are returned).
func (s *Store) Changes(ctx context.Context, afterID int64, limit int) ([]vuln.Change, error) {
	if limit <= 0 {
		limit = defaultChangesLimit
	}
	limit = min(limit, maxChangesLimit)
	rows, err := s.db.QueryContext(ctx, `SELECT id, time, image_digest, kind, reason, data FROM finding_changes
		WHERE id > $1 ORDER BY id LIMIT $2`, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("finding changes: %w", err)
	}
	defer rows.Close()
	var out []vuln.Change
	var data []byte
	for rows.Next() {
		var c vuln.Change
		var ns int64
		if err := rows.Scan(&c.ID, &ns, &c.ImageDigest, &c.Kind, &c.Reason, &data); err != nil {
			return nil, fmt.Errorf("finding changes: %w", err)
		}
		c.Time = time.Unix(0, ns)
		if err := json.Unmarshal(data, &c.Finding); err != nil {
			return nil, fmt.Errorf("finding change %d: decode: %w", c.ID, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("finding changes: %w", err)
	}
	return out, nil
}
