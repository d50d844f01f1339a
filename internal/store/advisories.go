package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
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

// ImportResult counts what an advisory import changed.
type ImportResult struct {
	// ID names the import's pending re-match (see FinishRematch).
	ID                                 string
	Added, Updated, Unchanged, Removed int
	// ChangedKeys are the affected package keys of every added, updated or removed advisory,
	// before and after the change, sorted: the packages to re-match.
	ChangedKeys []PackageKey
}

// Import is one advisory import: a single transaction that records are streamed into. It is not
// safe for concurrent use. Commit or Rollback must be called; on SQLite the import holds the
// store's write lock until then.
type Import struct {
	s      *Store
	ctx    context.Context
	tx     *txw
	unlock func()
	source string
	full   bool
	id     string
	// seen holds the ids of every record Put or withdrawn, for a full import's deletions.
	seen map[string]struct{}
	// pending are records waiting for the next batch. Whether a record is stored already, and
	// with which content, is read per batch for its ids: loading every stored advisory's hash
	// up front cost a small update (2000 records against 200k stored) more than its writes.
	pending []pendingAdvisory
	// pendingIDs are the ids in pending: a record repeated within one batch is flushed first,
	// since one multi-row upsert cannot touch a row twice.
	pendingIDs map[string]struct{}
	changed    map[PackageKey]struct{}
	// touched are the ids replaced or removed, dropped from the decoded-advisory cache at Commit.
	touched []string
	// counts is how the import changes each source's advisory count: kept as it goes, since
	// counting a source's records at the end read all of them (300 ms on PostgreSQL for 200k).
	counts map[string]int
	res    ImportResult
	err    error // the first write error; the import can then only be rolled back
	// prepared: everything is written, only the commit remains (Put and Withdraw refuse).
	prepared bool
	done     bool
}

type pendingAdvisory struct {
	id       string
	withdraw bool // a withdrawn record: delete id if it is stored
	modified int64
	hash     [sha256.Size]byte
	data     []byte
	details  string
	keys     []PackageKey
}

// importLockKey serializes advisory imports on PostgreSQL (migrationLockKey + 1).
const importLockKey = migrationLockKey + 1

// importBatch is how many advisories are written per multi-row statement.
const importBatch = 500

// BeginImport starts an import of advisories from source (e.g. "osv:Debian"). With full, the
// import is a complete snapshot of the source: at Commit, the source's advisories not Put are
// deleted.
func (s *Store) BeginImport(ctx context.Context, source string, full bool) (*Import, error) {
	if source == "" {
		return nil, errors.New("begin import: empty source name")
	}
	unlock, err := s.lockWriter(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin import of %s: %w", source, err)
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		unlock()
		return nil, fmt.Errorf("begin import of %s: %w", source, err)
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		_ = tx.Rollback()
		unlock()
		return nil, fmt.Errorf("begin import of %s: %w", source, err)
	}
	im := &Import{s: s, ctx: ctx, tx: newTxw(tx, s.dialect), unlock: unlock, source: source, full: full, id: hex.EncodeToString(id),
		pendingIDs: map[string]struct{}{}, seen: map[string]struct{}{}, changed: map[PackageKey]struct{}{}, counts: map[string]int{}}
	if s.dialect == dialectPostgres {
		// Imports from several replicas run one at a time, each seeing the previous one's
		// result (SQLite's write lock does this there).
		if _, err := im.tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(importLockKey)); err != nil {
			im.abort()
			return nil, fmt.Errorf("begin import of %s: lock: %w", source, err)
		}
	}
	return im, nil
}

func (im *Import) abort() {
	if im.done {
		return
	}
	im.done = true
	_ = im.tx.tx.Rollback()
	im.unlock()
}

func (im *Import) usable() error {
	if im.done {
		return errors.New("import already committed or rolled back")
	}
	return im.err
}

// writable is usable, before Prepare.
func (im *Import) writable() error {
	if im.prepared {
		return errors.New("import already prepared: only Commit or Rollback remain")
	}
	return im.usable()
}

// Put adds or replaces an advisory. Records whose content is unchanged are counted and skipped;
// a record with Withdrawn set is treated as Withdraw(a.ID).
func (im *Import) Put(a *vuln.Advisory) error {
	if err := im.writable(); err != nil {
		return err
	}
	if a.ID == "" {
		return errors.New("put advisory: empty id")
	}
	if a.Withdrawn != nil {
		return im.Withdraw(a.ID)
	}
	full, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("put advisory %s: %w", a.ID, err)
	}
	// The hot path (AdvisoriesFor) decodes every matching record: keep the long details text
	// out of the JSON it reads.
	slim := *a
	slim.Details = ""
	data, err := json.Marshal(&slim)
	if err != nil {
		return fmt.Errorf("put advisory %s: %w", a.ID, err)
	}
	p := pendingAdvisory{id: a.ID, hash: sha256.Sum256(full), data: data, details: a.Details, keys: advisoryKeys(a)}
	if !a.Modified.IsZero() {
		p.modified = a.Modified.UnixNano()
	}
	return im.add(p)
}

// Withdraw removes the advisory id if it is stored (a withdrawn OSV record).
func (im *Import) Withdraw(id string) error {
	if err := im.writable(); err != nil {
		return err
	}
	if id == "" {
		return errors.New("withdraw advisory: empty id")
	}
	return im.add(pendingAdvisory{id: id, withdraw: true})
}

func (im *Import) add(p pendingAdvisory) error {
	im.seen[p.id] = struct{}{}
	if _, dup := im.pendingIDs[p.id]; dup {
		if err := im.flush(); err != nil {
			return err
		}
	}
	im.pending = append(im.pending, p)
	im.pendingIDs[p.id] = struct{}{}
	if len(im.pending) >= importBatch {
		return im.flush()
	}
	return nil
}

func advisoryKeys(a *vuln.Advisory) []PackageKey {
	var keys []PackageKey
	for _, af := range a.Affected {
		k := PackageKey{Ecosystem: af.Ecosystem, Name: af.Name}
		if k.IsZero() || slices.Contains(keys, k) {
			continue
		}
		keys = append(keys, k)
	}
	return keys
}

// flush writes the pending advisories.
func (im *Import) flush() error {
	if len(im.pending) == 0 {
		return nil
	}
	err := im.writePending()
	im.pending = im.pending[:0]
	clear(im.pendingIDs)
	if err != nil {
		im.err = fmt.Errorf("import %s: %w", im.source, err)
		return im.err
	}
	return nil
}

type storedAdvisory struct {
	source string
	hash   []byte
}

// storedOf reads the source and content hash of the stored advisories among ids.
func (im *Import) storedOf(ids []string) (map[string]storedAdvisory, error) {
	out := make(map[string]storedAdvisory, len(ids))
	var rows *sql.Rows
	var err error
	if im.s.dialect == dialectPostgres {
		rows, err = im.tx.QueryContext(im.ctx, `SELECT id, source, hash FROM advisories WHERE id = ANY($1::text[])`, ids)
	} else {
		q, args := idInQuery(im.s.dialect, `SELECT id, source, hash FROM advisories WHERE id IN (`, ids)
		rows, err = im.tx.QueryContext(im.ctx, q+`)`, args...)
	}
	if err != nil {
		return nil, fmt.Errorf("read stored advisories: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var a storedAdvisory
		if err := rows.Scan(&id, &a.source, &a.hash); err != nil {
			return nil, fmt.Errorf("read stored advisories: %w", err)
		}
		out[id] = a
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read stored advisories: %w", err)
	}
	return out, nil
}

func (im *Import) writePending() error {
	ctx, tx := im.ctx, im.tx
	ids := make([]string, len(im.pending))
	for i, p := range im.pending {
		ids[i] = p.id
	}
	stored, err := im.storedOf(ids)
	if err != nil {
		return err
	}
	var replaced, withdrawn []string
	ps := make([]pendingAdvisory, 0, len(im.pending))
	for _, p := range im.pending {
		old, existed := stored[p.id]
		switch {
		case p.withdraw:
			if existed {
				withdrawn = append(withdrawn, p.id)
				im.counts[old.source]--
			}
			continue
		case existed && old.source == im.source && bytes.Equal(old.hash, p.hash[:]):
			im.res.Unchanged++
			continue
		case existed:
			im.res.Updated++
			replaced = append(replaced, p.id)
			if old.source != im.source {
				im.counts[old.source]--
				im.counts[im.source]++
			}
		default:
			im.res.Added++
			im.counts[im.source]++
		}
		for _, k := range p.keys {
			im.changed[k] = struct{}{}
		}
		ps = append(ps, p)
	}
	if err := im.deleteAdvisories(withdrawn); err != nil {
		return err
	}
	im.touched = append(im.touched, replaced...)
	// The old versions' keys changed too: a package may have stopped being affected.
	if err := im.deleteAffected(replaced); err != nil {
		return err
	}
	if err := insertRowsSuffix(ctx, tx, `INSERT INTO advisories (id, source, modified, hash, data, details) VALUES `,
		` ON CONFLICT (id) DO UPDATE SET source = excluded.source, modified = excluded.modified,
			hash = excluded.hash, data = excluded.data, details = excluded.details`, 6, len(ps),
		func(i int, args []any) []any {
			p := &ps[i]
			return append(args, p.id, im.source, p.modified, p.hash[:], p.data, p.details)
		}); err != nil {
		return fmt.Errorf("write advisories: %w", err)
	}
	type row struct {
		k  PackageKey
		id string
	}
	var rows []row
	for _, p := range ps {
		for _, k := range p.keys {
			rows = append(rows, row{k, p.id})
		}
	}
	if err := insertRows(ctx, tx, `INSERT INTO affected (ecosystem, name, advisory_id) VALUES `, 3, len(rows),
		func(i int, args []any) []any {
			return append(args, rows[i].k.Ecosystem, rows[i].k.Name, rows[i].id)
		}); err != nil {
		return fmt.Errorf("write affected packages: %w", err)
	}
	return nil
}

// deleteAffected deletes the affected rows of ids, noting their keys as changed.
func (im *Import) deleteAffected(ids []string) error {
	for start := 0; start < len(ids); start += importBatch {
		chunk := ids[start:min(len(ids), start+importBatch)]
		q, args := idInQuery(im.s.dialect, `DELETE FROM affected WHERE advisory_id IN (`, chunk)
		rows, err := im.tx.QueryContext(im.ctx, q+`) RETURNING ecosystem, name`, args...)
		if err != nil {
			return fmt.Errorf("delete affected packages: %w", err)
		}
		for rows.Next() {
			var k PackageKey
			if err := rows.Scan(&k.Ecosystem, &k.Name); err != nil {
				rows.Close()
				return fmt.Errorf("delete affected packages: %w", err)
			}
			im.changed[k] = struct{}{}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("delete affected packages: %w", err)
		}
	}
	return nil
}

func idInQuery(d dialect, prefix string, ids []string) (string, []any) {
	var b strings.Builder
	b.WriteString(prefix)
	args := make([]any, len(ids))
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(d.param(i + 1))
		args[i] = id
	}
	return b.String(), args
}

// deleteAdvisories removes ids, all stored (affected rows first, for their keys).
func (im *Import) deleteAdvisories(ids []string) error {
	if err := im.deleteAffected(ids); err != nil {
		return err
	}
	for start := 0; start < len(ids); start += importBatch {
		chunk := ids[start:min(len(ids), start+importBatch)]
		q, args := idInQuery(im.s.dialect, `DELETE FROM advisories WHERE id IN (`, chunk)
		if _, err := im.tx.ExecContext(im.ctx, q+")", args...); err != nil {
			return fmt.Errorf("delete advisories: %w", err)
		}
	}
	im.touched = append(im.touched, ids...)
	im.res.Removed += len(ids)
	return nil
}

// sourceIDs returns the ids of the stored advisories of the import's source.
func (im *Import) sourceIDs() ([]string, error) {
	rows, err := im.tx.QueryContext(im.ctx, `SELECT id FROM advisories WHERE source = $1`, im.source)
	if err != nil {
		return nil, fmt.Errorf("read the source's advisories: %w", err)
	}
	ids, err := scanStrings(rows)
	if err != nil {
		return nil, fmt.Errorf("read the source's advisories: %w", err)
	}
	return ids, nil
}

// Prepare does all of Commit but the commit: it writes what is pending, deletes (for a full
// import) the source's advisories that were not Put and records the import in sources. Its result
// is final: until Commit, readers still see the advisories as they were before the import, which
// a re-match compares with. After Prepare only Commit and Rollback may be called.
func (im *Import) Prepare() (ImportResult, error) {
	if err := im.usable(); err != nil {
		im.abort()
		return ImportResult{}, err
	}
	if im.prepared {
		return im.result(), nil
	}
	if err := im.prepare(); err != nil {
		im.abort()
		return ImportResult{}, err
	}
	im.prepared = true
	return im.result(), nil
}

func (im *Import) result() ImportResult {
	res := im.res
	res.ID = im.id
	res.ChangedKeys = nil
	for k := range im.changed {
		res.ChangedKeys = append(res.ChangedKeys, k)
	}
	slices.SortFunc(res.ChangedKeys, compareKeys)
	return res
}

// Commit is Prepare, if not done yet, and the commit.
func (im *Import) Commit() (ImportResult, error) {
	if _, err := im.Prepare(); err != nil {
		return ImportResult{}, err
	}
	defer im.abort()
	if err := im.tx.tx.Commit(); err != nil {
		return ImportResult{}, fmt.Errorf("import %s: commit: %w", im.source, err)
	}
	im.s.advCache.forget(im.touched)
	return im.result(), nil
}

func (im *Import) prepare() error {
	if err := im.flush(); err != nil {
		return err
	}
	if im.full {
		ids, err := im.sourceIDs()
		if err != nil {
			return fmt.Errorf("import %s: %w", im.source, err)
		}
		var gone []string
		for _, id := range ids {
			if _, ok := im.seen[id]; !ok {
				gone = append(gone, id)
			}
		}
		slices.Sort(gone)
		if err := im.deleteAdvisories(gone); err != nil {
			return fmt.Errorf("import %s: %w", im.source, err)
		}
		im.counts[im.source] -= len(gone)
	}
	for src, delta := range im.counts {
		if src == im.source || delta == 0 {
			continue
		}
		if _, err := im.tx.ExecContext(im.ctx, `UPDATE sources SET advisory_count = advisory_count + $2 WHERE name = $1`, src, delta); err != nil {
			return fmt.Errorf("import %s: count the advisories of %s: %w", im.source, src, err)
		}
	}
	if _, err := im.tx.ExecContext(im.ctx, `INSERT INTO sources (name, url, etag, last_modified, imported_at, advisory_count, error)
		VALUES ($1, '', '', '', $2, $3, '')
		ON CONFLICT (name) DO UPDATE SET imported_at = excluded.imported_at,
			advisory_count = sources.advisory_count + excluded.advisory_count, error = ''`,
		im.source, time.Now().UnixNano(), im.counts[im.source]); err != nil {
		return fmt.Errorf("import %s: record source: %w", im.source, err)
	}
	if err := bumpAdvisoryGeneration(im.ctx, im.tx); err != nil {
		return fmt.Errorf("import %s: record the change: %w", im.source, err)
	}
	keys := im.result().ChangedKeys
	if err := insertRows(im.ctx, im.tx, `INSERT INTO rematch_pending (import_id, ecosystem, match_name) VALUES `, 3, len(keys),
		func(i int, args []any) []any { return append(args, im.id, keys[i].Ecosystem, keys[i].Name) }); err != nil {
		return fmt.Errorf("import %s: record the keys to re-match: %w", im.source, err)
	}
	return nil
}

// FinishRematch records that the re-match of import id's changed keys is written.
func (s *Store) FinishRematch(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *txw) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM rematch_pending WHERE import_id = $1`, id); err != nil {
			return fmt.Errorf("finish the re-match of import %s: %w", id, err)
		}
		return nil
	})
}

// PendingRematches returns the changed keys of each import whose re-match was not finished, by
// import id.
func (s *Store) PendingRematches(ctx context.Context) (map[string][]PackageKey, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT import_id, ecosystem, match_name FROM rematch_pending ORDER BY import_id, ecosystem, match_name`)
	if err != nil {
		return nil, fmt.Errorf("pending re-matches: %w", err)
	}
	defer rows.Close()
	out := map[string][]PackageKey{}
	for rows.Next() {
		var id string
		var k PackageKey
		if err := rows.Scan(&id, &k.Ecosystem, &k.Name); err != nil {
			return nil, fmt.Errorf("pending re-matches: %w", err)
		}
		out[id] = append(out[id], k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pending re-matches: %w", err)
	}
	return out, nil
}

func compareKeys(a, b PackageKey) int {
	if c := strings.Compare(a.Ecosystem, b.Ecosystem); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

// Rollback abandons the import; the store is left as it was. Calling it after Commit is a no-op.
func (im *Import) Rollback() error {
	if im.done {
		return nil
	}
	im.abort()
	return nil
}

// AdvisoriesFor returns the advisories affecting each of keys (keys without any are absent from
// the map). The advisories' Details are left empty (see Advisory); an advisory may be shared
// with other keys and other calls (the store caches decoded records): callers must not modify it.
//
// The lookup reads ids and content hashes first and fetches and decodes only the records not
// already cached with that hash: decoding JSON was most of a match's time.
func (s *Store) AdvisoriesFor(ctx context.Context, keys []PackageKey) (map[PackageKey][]*vuln.Advisory, error) {
	keys = uniqueKeys(keys)
	if len(keys) == 0 {
		return map[PackageKey][]*vuln.Advisory{}, nil
	}
	gen, err := s.advisoryGeneration(ctx)
	if err != nil {
		return nil, err
	}
	known, unknown := s.keys.lookup(gen, keys)
	if len(unknown) > 0 {
		fresh, err := s.keyRefs(ctx, unknown)
		if err != nil {
			return nil, err
		}
		s.keys.remember(gen, unknown, fresh)
		for k, refs := range fresh {
			known[k] = refs
		}
	}
	found := make(map[string]*vuln.Advisory)
	var missing []string
	for _, refs := range known {
		for _, r := range refs {
			if _, ok := found[r.id]; !ok {
				a := s.advCache.get(r.id, r.hash)
				found[r.id] = a
				if a == nil {
					missing = append(missing, r.id)
				}
			}
		}
	}
	if len(missing) > 0 {
		raws, err := s.readAdvisories(ctx, missing)
		if err != nil {
			return nil, fmt.Errorf("advisories by key: %w", err)
		}
		if err := decodeAdvisories(raws); err != nil {
			return nil, fmt.Errorf("advisories by key: %w", err)
		}
		for _, r := range raws {
			found[r.id] = r.a
			s.advCache.put(r.id, r.hash, r.a)
		}
	}
	out := make(map[PackageKey][]*vuln.Advisory)
	for k, refs := range known {
		for _, r := range refs {
			// A record deleted between the two reads is left out, as if the first read had
			// come later.
			if a := found[r.id]; a != nil {
				out[k] = append(out[k], a)
			}
		}
	}
	for _, as := range out {
		slices.SortFunc(as, func(a, b *vuln.Advisory) int { return strings.Compare(a.ID, b.ID) })
	}
	return out, nil
}

// keyRefs reads the ids and content hashes of the advisories of keys.
func (s *Store) keyRefs(ctx context.Context, keys []PackageKey) (map[PackageKey][]keyRef, error) {
	out := make(map[PackageKey][]keyRef)
	scan := func(rows *sql.Rows) error {
		defer rows.Close()
		for rows.Next() {
			var k PackageKey
			var r keyRef
			if err := rows.Scan(&k.Ecosystem, &k.Name, &r.id, &r.hash); err != nil {
				return err
			}
			out[k] = append(out[k], r)
		}
		return rows.Err()
	}
	if s.dialect == dialectPostgres {
		es, ns := splitKeys(keys)
		rows, err := s.db.QueryContext(ctx, `SELECT af.ecosystem, af.name, a.id, a.hash
			FROM unnest($1::text[], $2::text[]) AS k(e, n)
			JOIN affected af ON af.ecosystem = k.e AND af.name = k.n
			JOIN advisories a ON a.id = af.advisory_id`, es, ns)
		if err != nil {
			return nil, fmt.Errorf("advisories by key: %w", err)
		}
		if err := scan(rows); err != nil {
			return nil, fmt.Errorf("advisories by key: %w", err)
		}
		return out, nil
	}
	for start := 0; start < len(keys); start += keyBatch {
		chunk := keys[start:min(len(keys), start+keyBatch)]
		q, args := keyInQuery(s.dialect, `SELECT af.ecosystem, af.name, a.id, a.hash
			FROM affected af JOIN advisories a ON a.id = af.advisory_id
			WHERE (af.ecosystem, af.name) IN (VALUES `, chunk)
		rows, err := s.db.QueryContext(ctx, q+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("advisories by key: %w", err)
		}
		if err := scan(rows); err != nil {
			return nil, fmt.Errorf("advisories by key: %w", err)
		}
	}
	return out, nil
}

// readAdvisories reads the stored JSON and hash of ids.
func (s *Store) readAdvisories(ctx context.Context, ids []string) ([]rawAdvisory, error) {
	var out []rawAdvisory
	scan := func(rows *sql.Rows) error {
		defer rows.Close()
		for rows.Next() {
			var r rawAdvisory
			if err := rows.Scan(&r.id, &r.hash, &r.data); err != nil {
				return err
			}
			out = append(out, r)
		}
		return rows.Err()
	}
	if s.dialect == dialectPostgres {
		rows, err := s.db.QueryContext(ctx, `SELECT id, hash, data FROM advisories WHERE id = ANY($1::text[])`, ids)
		if err != nil {
			return nil, err
		}
		return out, scan(rows)
	}
	for start := 0; start < len(ids); start += keyBatch {
		chunk := ids[start:min(len(ids), start+keyBatch)]
		q, args := idInQuery(s.dialect, `SELECT id, hash, data FROM advisories WHERE id IN (`, chunk)
		rows, err := s.db.QueryContext(ctx, q+`)`, args...)
		if err != nil {
			return nil, err
		}
		if err := scan(rows); err != nil {
			return nil, err
		}
	}
	return out, nil
}

type rawAdvisory struct {
	id   string
	hash []byte
	data []byte
	a    *vuln.Advisory
}

// decodeAdvisories decodes raws in parallel: JSON decoding is most of a lookup's time.
func decodeAdvisories(raws []rawAdvisory) error {
	const minPerWorker = 64
	workers := min(runtime.GOMAXPROCS(0), (len(raws)+minPerWorker-1)/minPerWorker)
	if workers <= 1 {
		return decodeRange(raws)
	}
	errs := make([]error, workers)
	var wg sync.WaitGroup
	per := (len(raws) + workers - 1) / workers
	for w := range workers {
		part := raws[min(len(raws), w*per):min(len(raws), (w+1)*per)]
		wg.Go(func() { errs[w] = decodeRange(part) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func decodeRange(raws []rawAdvisory) error {
	for i := range raws {
		a := new(vuln.Advisory)
		if err := json.Unmarshal(raws[i].data, a); err != nil {
			return fmt.Errorf("decode advisory %s: %w", raws[i].id, err)
		}
		raws[i].a = a
		raws[i].data = nil
	}
	return nil
}

// Advisory returns one stored advisory with its details, or ErrNotFound.
func (s *Store) Advisory(ctx context.Context, id string) (*vuln.Advisory, error) {
	var data []byte
	var details string
	err := s.db.QueryRowContext(ctx, `SELECT data, details FROM advisories WHERE id = $1`, id).Scan(&data, &details)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("advisory %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("advisory %s: %w", id, err)
	}
	var a vuln.Advisory
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, fmt.Errorf("decode advisory %s: %w", id, err)
	}
	a.Details = details
	return &a, nil
}
