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
	"slices"
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
	// Encoded, when not nil, is EncodeFinding of each of Findings (Encoded[i] of Findings[i]):
	// a caller that hands one finding to many images (a re-match) encodes it once.
	Encoded []EncodedFinding
}

// ChangeSummary counts what a findings replacement changed.
type ChangeSummary struct {
	// ImagesGained and ImagesLost count images with at least one finding added / removed.
	ImagesGained, ImagesLost int
	Added, Removed           int
}

// Add adds o's counts to c (of separate batches: an image counted in both is counted twice).
func (c *ChangeSummary) Add(o ChangeSummary) {
	c.ImagesGained += o.ImagesGained
	c.ImagesLost += o.ImagesLost
	c.Added += o.Added
	c.Removed += o.Removed
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

// findingID identifies a finding within one image: the fields of vuln.Finding.Key, kept apart
// so that looking a finding up builds no string.
type findingID struct{ typ, name, version, vulnID string }

func idOf(f *vuln.Finding) findingID {
	return findingID{f.Package.Type, f.Package.Name, f.Package.Version, f.VulnerabilityID}
}

// storedFinding is what a replacement reads of a stored finding: its key and content hash (the
// key of its JSON in finding_data).
type storedFinding struct {
	id                             findingID
	ecosystem, matchName, severity string
	hash                           [sha256.Size]byte
}

type findingRow struct {
	digest string
	f      *vuln.Finding
	hash   []byte
	// oldHash is the content the stored row must hold to be rewritten; rekey says the rewrite
	// also changes its severity or package key (the columns an index covers).
	oldHash []byte
	rekey   bool
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

// EncodedFinding is a finding as the store keeps it: its JSON and the JSON's SHA-256, which
// findings and change events reference it by.
type EncodedFinding struct {
	data []byte
	hash [sha256.Size]byte
}

// EncodeFinding returns the stored form of f.
func EncodeFinding(f *vuln.Finding) (EncodedFinding, error) {
	data, err := json.Marshal(f)
	if err != nil {
		return EncodedFinding{}, fmt.Errorf("encode finding %s: %w", f.VulnerabilityID, err)
	}
	return EncodedFinding{data: data, hash: sha256.Sum256(data)}, nil
}

// encodeFindings returns the stored form of every finding of updates (enc[u][i] is
// updates[u].Findings[i]): their Encoded, or encoded on every core before the write lock is
// taken (it was a sixth of a re-match's write).
func encodeFindings(updates []FindingsUpdate) ([][]EncodedFinding, error) {
	enc := make([][]EncodedFinding, len(updates))
	for ui, u := range updates {
		if u.Encoded != nil {
			if len(u.Encoded) != len(u.Findings) {
				return nil, fmt.Errorf("image %s: %d encoded findings for %d findings", u.Digest, len(u.Encoded), len(u.Findings))
			}
			enc[ui] = u.Encoded
		}
	}
	workers := max(1, min(runtime.GOMAXPROCS(0), len(updates)/64))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for ui := w; ui < len(updates); ui += workers {
				u := &updates[ui]
				if enc[ui] != nil || len(u.Findings) == 0 {
					continue
				}
				out := make([]EncodedFinding, len(u.Findings))
				for i := range u.Findings {
					e, err := EncodeFinding(&u.Findings[i])
					if err != nil {
						errs[w] = fmt.Errorf("image %s: %w", u.Digest, err)
						return
					}
					out[i] = e
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
func replaceFindingsTx(ctx context.Context, tx *txw, updates []FindingsUpdate, enc [][]EncodedFinding, digests []string, reason string, now time.Time, sum *ChangeSummary) error {
	if err := lockFindings(ctx, tx); err != nil {
		return err
	}
	// A re-match gives every image the same scope: then only findings within it are read.
	var common []PackageKey
	if len(updates[0].Scope) > 0 {
		common = updates[0].Scope
		for _, u := range updates[1:] {
			if len(u.Scope) != len(common) || &u.Scope[0] != &common[0] {
				common = nil
				break
			}
		}
	}
	existing, err := loadFindings(ctx, tx, digests, common)
	if err != nil {
		return err
	}
	// A new finding whose content its image already holds is unchanged: the content carries the
	// finding's key. The rest pair up by key with the stored contents no new finding has, which
	// are read back once per distinct content: a re-match reads two columns of every finding in
	// scope, and the keys of only the few that changed.
	type imageDiff struct {
		digest string
		scope  map[PackageKey]struct{}
		fresh  []findingRow        // new findings whose content is not stored for the image
		byID   map[findingID]int   // index in fresh
		gone   [][sha256.Size]byte // stored contents no new finding has
	}
	diffs := make([]imageDiff, 0, len(updates))
	gone := map[[sha256.Size]byte]struct{}{}
	// content is the finding JSON the new and updated rows reference, once per hash.
	content := map[[sha256.Size]byte][]byte{}
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
		d := imageDiff{digest: u.Digest, scope: scope, byID: map[findingID]int{}}
		seen := make(map[findingID]struct{}, len(u.Findings))
		for i := range u.Findings {
			f := &u.Findings[i]
			if scope != nil {
				if _, ok := scope[PackageKey{f.Package.Ecosystem, f.Package.MatchName}]; !ok {
					return fmt.Errorf("image %s: finding %s of %s (%s %s) is outside the update's scope",
						u.Digest, f.VulnerabilityID, f.Package.Name, f.Package.Ecosystem, f.Package.MatchName)
				}
			}
			key := idOf(f)
			if _, dup := seen[key]; dup {
				continue
			}
			seen[key] = struct{}{}
			e := &enc[ui][i]
			if _, ok := old[e.hash]; ok {
				old[e.hash] = true
				continue
			}
			d.byID[key] = len(d.fresh)
			d.fresh = append(d.fresh, findingRow{digest: u.Digest, f: f, hash: e.hash[:]})
			content[e.hash] = e.data
		}
		for h, kept := range old {
			if !kept {
				d.gone = append(d.gone, h)
				gone[h] = struct{}{}
			}
		}
		diffs = append(diffs, d)
	}
	prevs, err := storedFindings(ctx, tx, gone)
	if err != nil {
		return err
	}
	var inserts, rewrites []findingRow
	var deletes []storedFindingRef
	for _, d := range diffs {
		paired := make([]bool, len(d.fresh))
		lost := false
		for _, h := range d.gone {
			prev := prevs[h]
			if d.scope != nil {
				if _, ok := d.scope[PackageKey{prev.ecosystem, prev.matchName}]; !ok {
					continue
				}
			}
			i, ok := d.byID[prev.id]
			if !ok {
				deletes = append(deletes, storedFindingRef{digest: d.digest, f: prev})
				lost = true
				sum.Removed++
				continue
			}
			paired[i] = true
			r := d.fresh[i]
			r.oldHash = h[:]
			r.rekey = prev.severity != r.f.Severity || prev.ecosystem != r.f.Package.Ecosystem || prev.matchName != r.f.Package.MatchName
			rewrites = append(rewrites, r)
		}
		gained := false
		for i, r := range d.fresh {
			if !paired[i] {
				inserts = append(inserts, r)
				gained = true
				sum.Added++
			}
		}
		if gained {
			sum.ImagesGained++
		}
		if lost {
			sum.ImagesLost++
		}
	}
	return writeFindings(ctx, tx, content, deletes, inserts, rewrites, reason, now)
}

// lockFindings prepares tx for writing findings. On PostgreSQL, writers of findings take turns:
// change ids must become visible in order, or a reader paging by id (Changes) could pass an id
// whose transaction commits later (on SQLite the write lock already does this). And the deletes
// and updates, which join thousands of keys to the findings primary key, are planned as index
// probes: pricing random reads at 4x sequential ones, PostgreSQL chose a parallel scan and
// on-disk sort of the whole table merged with the keys (0.7 s a batch of 2500 images instead of
// milliseconds). For this transaction only.
func lockFindings(ctx context.Context, tx *txw) error {
	if tx.d != dialectPostgres {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(changesLockKey)); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off`); err != nil {
		return fmt.Errorf("plan settings: %w", err)
	}
	return nil
}

// writeFindings writes one transaction's findings changes: the new contents, then deletes and
// rewrites of rows that must still hold the content the caller read or derived
// (ErrFindingsDiverged otherwise), inserts, and a change event per insert and delete.
func writeFindings(ctx context.Context, tx *txw, content map[[sha256.Size]byte][]byte, deletes []storedFindingRef,
	inserts, rewrites []findingRow, reason string, now time.Time) error {
	if err := putFindingData(ctx, tx, content); err != nil {
		return err
	}
	n, err := deleteFindings(ctx, tx, deletes)
	if err != nil {
		return err
	}
	if n != int64(len(deletes)) {
		return fmt.Errorf("%d of %d findings to delete held the expected content: %w", n, len(deletes), ErrFindingsDiverged)
	}
	if err := insertFindings(ctx, tx, inserts); err != nil {
		return err
	}
	n, err = rewriteFindings(ctx, tx, rewrites)
	if err != nil {
		return err
	}
	if n != int64(len(rewrites)) {
		return fmt.Errorf("%d of %d findings to update held the expected content: %w", n, len(rewrites), ErrFindingsDiverged)
	}
	return recordChanges(ctx, tx, inserts, deletes, reason, now)
}

// findingColumns are the columns of a findings row, in the order appendFinding gives them.
var findingColumns = []string{"image_digest", "pkg_type", "pkg_name", "pkg_version", "vuln_id",
	"ecosystem", "match_name", "severity", "fixed_version", "hash"}

func appendFinding(args []any, r findingRow) []any {
	p := &r.f.Package
	return append(args, r.digest, p.Type, p.Name, p.Version, r.f.VulnerabilityID,
		p.Ecosystem, p.MatchName, r.f.Severity, r.f.FixedVersion, r.hash)
}

func insertFindings(ctx context.Context, tx *txw, rows []findingRow) error {
	if err := copyRows(ctx, tx, "findings", findingColumns, len(rows), func(i int, args []any) []any {
		return appendFinding(args, rows[i])
	}); err != nil {
		return fmt.Errorf("insert findings: %w", err)
	}
	return nil
}

// recordChanges records added and removed findings as change events at now. A change event
// references its finding's content like the finding did: an added one the content just stored, a
// removed one what the deleted row referenced.
func recordChanges(ctx context.Context, tx *txw, added []findingRow, removed []storedFindingRef, reason string, now time.Time) error {
	ts := now.UnixNano()
	n := len(added)
	if err := copyRows(ctx, tx, "finding_changes", []string{"time", "image_digest", "kind", "reason", "hash"}, n+len(removed),
		func(i int, args []any) []any {
			if i < n {
				return append(args, ts, added[i].digest, vuln.ChangeAdded, reason, added[i].hash)
			}
			r := &removed[i-n]
			return append(args, ts, r.digest, vuln.ChangeRemoved, reason, r.f.hash[:])
		}); err != nil {
		return fmt.Errorf("record finding changes: %w", err)
	}
	return nil
}

// putFindingData stores the finding JSON of content (by SHA-256) that is not stored yet. Every
// writer of findings holds the write lock (SQLite) or changesLockKey (PostgreSQL), so what is
// missing when read stays missing until the insert: plain inserts (COPY on PostgreSQL), and only
// the missing content crosses the connection.
func putFindingData(ctx context.Context, tx *txw, content map[[sha256.Size]byte][]byte) error {
	if len(content) == 0 {
		return nil
	}
	hashes := make([][]byte, 0, len(content))
	for h := range content {
		hashes = append(hashes, h[:])
	}
	// In hash order: neighbouring inserts land on neighbouring pages of the hash index.
	slices.SortFunc(hashes, bytes.Compare)
	stored := make(map[[sha256.Size]byte]bool, len(hashes))
	scan := func(rows *sql.Rows) error {
		defer rows.Close()
		var h sql.RawBytes
		for rows.Next() {
			if err := rows.Scan(&h); err != nil {
				return err
			}
			if len(h) == sha256.Size {
				stored[[sha256.Size]byte(h)] = true
			}
		}
		return rows.Err()
	}
	if err := queryHashes(ctx, tx, `SELECT hash FROM finding_data WHERE hash `, hashes, scan); err != nil {
		return fmt.Errorf("read finding data: %w", err)
	}
	missing := hashes[:0]
	for _, h := range hashes {
		if !stored[[sha256.Size]byte(h)] {
			missing = append(missing, h)
		}
	}
	if err := copyRows(ctx, tx, "finding_data", []string{"hash", "data"}, len(missing), func(i int, args []any) []any {
		return append(args, missing[i], content[[sha256.Size]byte(missing[i])])
	}); err != nil {
		return fmt.Errorf("store finding data: %w", err)
	}
	return nil
}

// updateFindingsPG sets the content of the stored findings rs still holding their oldHash in one
// UPDATE joined with arrays (no statement of thousands of parameters to parse, no speculative
// insertion per row as an upsert has), with rekey their severity and key too, and returns how
// many it updated.
func updateFindingsPG(ctx context.Context, tx *txw, rs []findingRow, rekey bool) (int64, error) {
	cols := make([][]string, 8)
	hashes := make([][]byte, len(rs))
	olds := make([][]byte, len(rs))
	for i, r := range rs {
		p := &r.f.Package
		for c, v := range []string{r.digest, p.Type, p.Name, p.Version, r.f.VulnerabilityID, r.f.FixedVersion, r.f.Severity, p.Ecosystem} {
			cols[c] = append(cols[c], v)
		}
		hashes[i], olds[i] = r.hash, r.oldHash
	}
	set, extra, names := `fixed_version = u.fv, hash = u.h`, `, $8::bytea[]`, `img, t, n, v, id, fv, h, old`
	args := []any{cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], hashes, olds}
	if rekey {
		ms := make([]string, len(rs))
		for i, r := range rs {
			ms[i] = r.f.Package.MatchName
		}
		set += `, severity = u.sev, ecosystem = u.eco, match_name = u.mn`
		extra, names = extra+`, $9::text[], $10::text[], $11::text[]`, names+`, sev, eco, mn`
		args = append(args, cols[6], cols[7], ms)
	}
	res, err := tx.ExecContext(ctx, `UPDATE findings f SET `+set+`
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bytea[]`+extra+`) AS u(`+names+`)
		WHERE f.image_digest = u.img AND f.pkg_type = u.t AND f.pkg_name = u.n AND f.pkg_version = u.v AND f.vuln_id = u.id
			AND f.hash = u.old`,
		args...)
	if err != nil {
		return 0, fmt.Errorf("update findings: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("update findings: %w", err)
	}
	return n, nil
}

// changesLockKey serializes finding writers on PostgreSQL (migrationLockKey + 2).
const changesLockKey = migrationLockKey + 2

type storedFindingRef struct {
	digest string
	f      storedFinding
}

// loadFindings reads the content hashes of the stored findings of digests, by digest (each
// false): those of packages with a key in scope, or all of them when scope is nil.
func loadFindings(ctx context.Context, tx *txw, digests []string, scope []PackageKey) (map[string]map[[sha256.Size]byte]bool, error) {
	out := make(map[string]map[[sha256.Size]byte]bool, len(digests))
	scan := func(rows *sql.Rows) error {
		defer rows.Close()
		var d, hash sql.RawBytes
		for rows.Next() {
			if err := rows.Scan(&d, &hash); err != nil {
				return err
			}
			if len(hash) != sha256.Size {
				// Only change events recorded before migration 0006 have other keys.
				return fmt.Errorf("a finding of %s has a content key of %d bytes", d, len(hash))
			}
			m := out[string(d)]
			if m == nil {
				m = map[[sha256.Size]byte]bool{}
				out[string(d)] = m
			}
			m[[sha256.Size]byte(hash)] = false
		}
		return rows.Err()
	}
	const sel = `SELECT image_digest, hash FROM findings WHERE `
	if tx.d == dialectPostgres {
		q, args := sel+`image_digest = ANY($1::text[])`, []any{digests}
		if scope != nil {
			es, ns := splitKeys(scope)
			q += ` AND (ecosystem, match_name) IN (SELECT * FROM unnest($2::text[], $3::text[]))`
			args = append(args, es, ns)
		}
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("read findings: %w", err)
		}
		if err := scan(rows); err != nil {
			return nil, fmt.Errorf("read findings: %w", err)
		}
		return out, nil
	}
	// On SQLite the scope goes in as parameters too, while they fit in one statement.
	if 2*len(scope)+digestBatch > maxParams {
		scope = nil
	}
	for start := 0; start < len(digests); start += digestBatch {
		chunk := digests[start:min(len(digests), start+digestBatch)]
		q, args := idInQuery(tx.d, sel+`image_digest IN (`, chunk)
		q += ")"
		if scope != nil {
			var b strings.Builder
			b.WriteString(q)
			b.WriteString(` AND (ecosystem, match_name) IN (VALUES `)
			placeholders(tx.d, &b, len(args)+1, len(scope), 2)
			b.WriteString(")")
			q = b.String()
			for _, k := range scope {
				args = append(args, k.Ecosystem, k.Name)
			}
		}
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("read findings: %w", err)
		}
		if err := scan(rows); err != nil {
			return nil, fmt.Errorf("read findings: %w", err)
		}
	}
	return out, nil
}

// storedFindings reads and decodes the finding contents hashes, for the keys of the stored
// findings that hold them.
func storedFindings(ctx context.Context, tx *txw, hashes map[[sha256.Size]byte]struct{}) (map[[sha256.Size]byte]storedFinding, error) {
	out := make(map[[sha256.Size]byte]storedFinding, len(hashes))
	if len(hashes) == 0 {
		return out, nil
	}
	list := make([][]byte, 0, len(hashes))
	for h := range hashes {
		list = append(list, h[:])
	}
	scan := func(rows *sql.Rows) error {
		defer rows.Close()
		var h, data sql.RawBytes
		for rows.Next() {
			if err := rows.Scan(&h, &data); err != nil {
				return err
			}
			var f vuln.Finding
			if err := json.Unmarshal(data, &f); err != nil {
				return fmt.Errorf("decode finding content %x: %w", []byte(h), err)
			}
			sf := storedFinding{id: idOf(&f), ecosystem: f.Package.Ecosystem, matchName: f.Package.MatchName, severity: f.Severity}
			copy(sf.hash[:], h)
			out[sf.hash] = sf
		}
		return rows.Err()
	}
	if err := queryHashes(ctx, tx, `SELECT hash, data FROM finding_data WHERE hash `, list, scan); err != nil {
		return nil, fmt.Errorf("read finding contents: %w", err)
	}
	if len(out) != len(hashes) {
		return nil, fmt.Errorf("read finding contents: %d of %d stored findings' contents are missing", len(hashes)-len(out), len(hashes))
	}
	return out, nil
}

// queryHashes runs prefix followed by "= ANY($1)" (PostgreSQL) or "IN (...)" (SQLite, in
// chunks) for hashes, handing each result to scan.
func queryHashes(ctx context.Context, tx *txw, prefix string, hashes [][]byte, scan func(*sql.Rows) error) error {
	if tx.d == dialectPostgres {
		rows, err := tx.QueryContext(ctx, prefix+`= ANY($1::bytea[])`, hashes)
		if err != nil {
			return err
		}
		return scan(rows)
	}
	for start := 0; start < len(hashes); start += maxParams {
		chunk := hashes[start:min(len(hashes), start+maxParams)]
		var b strings.Builder
		b.WriteString(prefix)
		b.WriteString(`IN (`)
		args := make([]any, len(chunk))
		for i, h := range chunk {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(tx.d.param(i + 1))
			args[i] = h
		}
		b.WriteByte(')')
		rows, err := tx.QueryContext(ctx, b.String(), args...)
		if err != nil {
			return err
		}
		if err := scan(rows); err != nil {
			return err
		}
	}
	return nil
}

// deleteFindings deletes the stored findings refs that still hold the content refs name and
// returns how many it deleted. Their change events need nothing back: that content is what they
// reference.
func deleteFindings(ctx context.Context, tx *txw, refs []storedFindingRef) (int64, error) {
	if len(refs) == 0 {
		return 0, nil
	}
	if tx.d == dialectPostgres {
		// Arrays joined by primary key: PostgreSQL plans a long row-value IN list poorly.
		cols := make([][]string, 5)
		hashes := make([][]byte, len(refs))
		for j, r := range refs {
			for i, v := range []string{r.digest, r.f.id.typ, r.f.id.name, r.f.id.version, r.f.id.vulnID} {
				cols[i] = append(cols[i], v)
			}
			hashes[j] = r.f.hash[:]
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM findings f
			USING unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[]) AS d(img, t, n, v, id, h)
			WHERE f.image_digest = d.img AND f.pkg_type = d.t AND f.pkg_name = d.n AND f.pkg_version = d.v AND f.vuln_id = d.id
				AND f.hash = d.h`, cols[0], cols[1], cols[2], cols[3], cols[4], hashes)
		if err != nil {
			return 0, fmt.Errorf("delete findings: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, fmt.Errorf("delete findings: %w", err)
		}
		return n, nil
	}
	// One prepared single-row DELETE per finding, a primary-key seek each: a multi-row one read
	// every finding of the images it named to test each against its list.
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

// rewriteFindings sets the content (fixed version and hash; for rows with rekey also severity
// and package key) of the stored findings rs still holding their oldHash, and returns how many
// it rewrote. Rows without rekey leave the severity index alone.
func rewriteFindings(ctx context.Context, tx *txw, rs []findingRow) (int64, error) {
	var plain, rekeyed []findingRow
	for _, r := range rs {
		if r.rekey {
			rekeyed = append(rekeyed, r)
		} else {
			plain = append(plain, r)
		}
	}
	var total int64
	for _, part := range []struct {
		rs    []findingRow
		rekey bool
	}{{plain, false}, {rekeyed, true}} {
		if len(part.rs) == 0 {
			continue
		}
		var n int64
		var err error
		if tx.d == dialectPostgres {
			n, err = updateFindingsPG(ctx, tx, part.rs, part.rekey)
		} else {
			n, err = updateFindingsSQLite(ctx, tx, part.rs, part.rekey)
		}
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

// updateFindingsSQLite is updateFindingsPG with one prepared single-row UPDATE per finding:
// SQLite runs it as one primary-key seek, where a multi-row upsert first attempts the insert (and
// parses thousands of parameters).
func updateFindingsSQLite(ctx context.Context, tx *txw, rs []findingRow, rekey bool) (int64, error) {
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

// rowsChanged runs st with args and returns how many rows it changed.
func rowsChanged(ctx context.Context, st *sql.Stmt, args ...any) (int64, error) {
	res, err := st.ExecContext(ctx, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// Findings returns the findings of digest ordered by package and vulnerability.
func (s *Store) Findings(ctx context.Context, digest string) ([]vuln.Finding, error) {
	// A LEFT JOIN so that a finding whose content is missing is an error, not a silent gap.
	rows, err := s.db.QueryContext(ctx, `SELECT f.vuln_id, d.data FROM findings f LEFT JOIN finding_data d ON d.hash = f.hash
		WHERE f.image_digest = $1 ORDER BY f.pkg_type, f.pkg_name, f.pkg_version, f.vuln_id`, digest)
	if err != nil {
		return nil, fmt.Errorf("findings of %s: %w", digest, err)
	}
	defer rows.Close()
	var out []vuln.Finding
	var data []byte
	var id string
	for rows.Next() {
		if err := rows.Scan(&id, &data); err != nil {
			return nil, fmt.Errorf("findings of %s: %w", digest, err)
		}
		if data == nil {
			return nil, fmt.Errorf("findings of %s: the content of finding %s is missing", digest, id)
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
	// A LEFT JOIN so that a change whose content is missing is an error: silently skipping it
	// would move the readers' cursors past it.
	rows, err := s.db.QueryContext(ctx, `SELECT c.id, c.time, c.image_digest, c.kind, c.reason, d.data
		FROM finding_changes c LEFT JOIN finding_data d ON d.hash = c.hash
		WHERE c.id > $1 ORDER BY c.id LIMIT $2`, afterID, limit)
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
		if data == nil {
			return nil, fmt.Errorf("finding change %d: its finding's content is missing", c.ID)
		}
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

// Equal says whether e and o are the same content.
func (e EncodedFinding) Equal(o EncodedFinding) bool { return e.hash == o.hash }
