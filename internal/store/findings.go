package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
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

// ReplaceFindings replaces the findings of digest within scope (nil = all of them) by findings,
// recording each added and removed finding as a change with reason and now. Findings whose key
// is unchanged but whose content changed (a new severity, a fix) are updated without a change
// event.
func (s *Store) ReplaceFindings(ctx context.Context, digest string, scope []PackageKey, findings []vuln.Finding, reason string, now time.Time) (added, removed int, err error) {
	sum, err := s.ReplaceFindingsBatch(ctx, []FindingsUpdate{{Digest: digest, Scope: scope, Findings: findings}}, reason, now)
	return sum.Added, sum.Removed, err
}

type storedFinding struct {
	ecosystem, matchName string
	data                 []byte
}

type findingRow struct {
	digest string
	f      *vuln.Finding
	data   []byte
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
	err := s.write(ctx, func(tx *txw) error {
		existing, err := loadFindings(ctx, tx, digests)
		if err != nil {
			return err
		}
		var inserts, deletes, updatesRows, changes []findingRow
		var changeKinds []string
		for _, u := range updates {
			var scope map[PackageKey]struct{}
			if u.Scope != nil {
				scope = make(map[PackageKey]struct{}, len(u.Scope))
				for _, k := range u.Scope {
					scope[k] = struct{}{}
				}
			}
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
				data, err := json.Marshal(f)
				if err != nil {
					return fmt.Errorf("image %s: encode finding %s: %w", u.Digest, f.VulnerabilityID, err)
				}
				r := findingRow{digest: u.Digest, f: f, data: data}
				prev, ok := old[key]
				switch {
				case !ok:
					inserts = append(inserts, r)
					changes = append(changes, r)
					changeKinds = append(changeKinds, vuln.ChangeAdded)
					gained = true
					sum.Added++
				case !bytes.Equal(prev.data, data):
					updatesRows = append(updatesRows, r)
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
				var f vuln.Finding
				if err := json.Unmarshal(prev.data, &f); err != nil {
					return fmt.Errorf("image %s: decode stored finding: %w", u.Digest, err)
				}
				r := findingRow{digest: u.Digest, f: &f, data: prev.data}
				deletes = append(deletes, r)
				changes = append(changes, r)
				changeKinds = append(changeKinds, vuln.ChangeRemoved)
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
		if err := deleteFindings(ctx, tx, deletes); err != nil {
			return err
		}
		if err := insertRows(ctx, tx, `INSERT INTO findings (image_digest, pkg_type, pkg_name, pkg_version, vuln_id,
			ecosystem, match_name, severity, fixed_version, data) VALUES `, 10, len(inserts), func(i int, args []any) []any {
			r := inserts[i]
			p := &r.f.Package
			return append(args, r.digest, p.Type, p.Name, p.Version, r.f.VulnerabilityID,
				p.Ecosystem, p.MatchName, r.f.Severity, r.f.FixedVersion, r.data)
		}); err != nil {
			return fmt.Errorf("insert findings: %w", err)
		}
		if len(updatesRows) > 0 {
			stmt, err := tx.PrepareContext(ctx, `UPDATE findings SET ecosystem = $6, match_name = $7, severity = $8,
				fixed_version = $9, data = $10
				WHERE image_digest = $1 AND pkg_type = $2 AND pkg_name = $3 AND pkg_version = $4 AND vuln_id = $5`)
			if err != nil {
				return fmt.Errorf("update findings: %w", err)
			}
			defer stmt.Close()
			for _, r := range updatesRows {
				p := &r.f.Package
				if _, err := stmt.ExecContext(ctx, r.digest, p.Type, p.Name, p.Version, r.f.VulnerabilityID,
					p.Ecosystem, p.MatchName, r.f.Severity, r.f.FixedVersion, r.data); err != nil {
					return fmt.Errorf("update findings: %w", err)
				}
			}
		}
		ts := now.UnixNano()
		if err := insertRows(ctx, tx, `INSERT INTO finding_changes (time, image_digest, kind, reason, data) VALUES `, 5, len(changes),
			func(i int, args []any) []any {
				return append(args, ts, changes[i].digest, changeKinds[i], reason, changes[i].data)
			}); err != nil {
			return fmt.Errorf("record finding changes: %w", err)
		}
		return nil
	})
	if err != nil {
		return ChangeSummary{}, fmt.Errorf("replace findings: %w", err)
	}
	return sum, nil
}

// loadFindings reads the stored findings of digests, by digest and finding key.
func loadFindings(ctx context.Context, tx *txw, digests []string) (map[string]map[string]storedFinding, error) {
	out := make(map[string]map[string]storedFinding, len(digests))
	for start := 0; start < len(digests); start += digestBatch {
		chunk := digests[start:min(len(digests), start+digestBatch)]
		q, args := idInQuery(tx.d, `SELECT image_digest, pkg_type, pkg_name, pkg_version, vuln_id, ecosystem, match_name, data
			FROM findings WHERE image_digest IN (`, chunk)
		rows, err := tx.QueryContext(ctx, q+")", args...)
		if err != nil {
			return nil, fmt.Errorf("read findings: %w", err)
		}
		for rows.Next() {
			var d, typ, name, version, id string
			var f storedFinding
			if err := rows.Scan(&d, &typ, &name, &version, &id, &f.ecosystem, &f.matchName, &f.data); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read findings: %w", err)
			}
			m := out[d]
			if m == nil {
				m = map[string]storedFinding{}
				out[d] = m
			}
			// The same key as vuln.Finding.Key.
			m[typ+"\x00"+name+"\x00"+version+"\x00"+id] = f
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read findings: %w", err)
		}
	}
	return out, nil
}

func deleteFindings(ctx context.Context, tx *txw, rows []findingRow) error {
	const cols = 5
	per := maxParams / cols
	for start := 0; start < len(rows); start += per {
		chunk := rows[start:min(len(rows), start+per)]
		var b strings.Builder
		b.WriteString(`DELETE FROM findings WHERE (image_digest, pkg_type, pkg_name, pkg_version, vuln_id) IN (VALUES `)
		placeholders(tx.d, &b, 1, len(chunk), cols)
		b.WriteString(")")
		args := make([]any, 0, len(chunk)*cols)
		for _, r := range chunk {
			p := &r.f.Package
			args = append(args, r.digest, p.Type, p.Name, p.Version, r.f.VulnerabilityID)
		}
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("delete findings: %w", err)
		}
	}
	return nil
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
