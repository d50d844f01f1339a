// Package store keeps crowsnest's state -- images, tags, layers, packages, advisories, findings
// and the history of finding changes -- in one schema on SQLite (embedded default) or
// PostgreSQL (scale-out). Both go through database/sql with the same SQL text: queries use
// $1..$n placeholders, which PostgreSQL and modernc.org/sqlite both bind by number; generated
// multi-row statements use "?" on SQLite (see dialect.param).
//
// Tables (migrations/*.sql; times are Unix nanoseconds in BIGINT columns):
//
//   - images: one row per manifest digest with reference, repository name, platform, OS,
//     created and indexed times, package count and the whole SBOM as zstd-compressed JSON.
//   - tags: repository + tag -> digest. A tag may point at a digest not indexed yet.
//   - layers: the layers of each image (index, blob digest, diffID).
//   - package_sets, set_packages, image_sets: packages with their match key (ecosystem,
//     match_name), stored once per "package set" -- the packages one layer introduced, named by
//     the hash of their rows -- and each image's list of sets. Images on one base share its set,
//     so a pushed application image writes only its own layers' rows. set_packages is indexed by
//     the match key (on SQLite clustered by it): the index from package key to images that makes
//     re-matching incremental. The view packages joins them back to one row per image package.
//   - advisories: OSV records by id, with the import source, modified time, a SHA-256 content
//     hash (unchanged records are skipped on import) and compact JSON without the long details
//     text, which is kept in its own column so the matcher's hot path decodes little.
//   - affected: (ecosystem, name) -> advisory id, the matcher's lookup.
//   - findings: one row per (image, package type/name/version, vulnerability) with the
//     SHA-256 of its vuln.Finding JSON; ecosystem/match_name say which package key produced it,
//     so a re-match limited to some keys replaces only their findings.
//   - finding_changes: append-only history of findings added to or removed from images, each
//     referencing its finding's JSON by hash.
//   - finding_data: finding JSON by SHA-256, stored once however many images and changes share it.
//   - sources: advisory sources with their conditional-request state and import outcome.
//   - schema_migrations: applied migration versions.
//
// SQLite allows one writer at a time: the Store writes through one connection of its own (its
// pool holds exactly one), serialized by a context-aware lock, with BEGIN IMMEDIATE so a busy
// database is waited for (busy_timeout) instead of failing half-way; reads run concurrently under
// WAL on a separate pool. The writer connection is also handed to the job queue (WriterDB): one
// connection that writes keeps its page cache across its own commits, whereas a connection that
// sees another's commit throws its whole cache away, page by page, at its next transaction (with
// a shared pool that was a third of a webhook burst's CPU), and writers on one connection queue
// for it instead of sleeping in SQLite's busy handler.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib" // also registers the "pgx" database/sql driver
	"github.com/klauspost/compress/zstd"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/crowsnest-dev/crowsnest/internal/dsn"
)

// ErrNotFound is returned when a looked-up record does not exist.
var ErrNotFound = errors.New("not found")

type dialect int

const (
	dialectSQLite dialect = iota
	dialectPostgres
)

func (d dialect) String() string {
	if d == dialectPostgres {
		return "postgres"
	}
	return "sqlite"
}

// maxSBOMBytes bounds a decompressed stored SBOM; the index pipeline's own bounds keep real ones
// far smaller.
const maxSBOMBytes = 512 << 20

// Store is a handle on the database. It is safe for concurrent use.
type Store struct {
	db *sql.DB
	// wdb runs write transactions: on SQLite a pool of one connection of its own, on PostgreSQL
	// the same pool as db.
	wdb     *sql.DB
	dialect dialect
	log     *slog.Logger
	// writer serializes write transactions on SQLite (nil on PostgreSQL). A channel rather than
	// a mutex so that waiting honours the context.
	writer chan struct{}
	enc    *zstd.Encoder
	dec    *zstd.Decoder
	// advCache keeps decoded advisories for AdvisoriesFor (see advisoryCache).
	advCache *advisoryCache
	// keys remembers each package key's advisories for AdvisoriesFor (see keyCache).
	keys keyCache
	// stopCheckpoints ends the SQLite checkpointer (see checkpoints) and waits for it.
	stopCheckpoints func()
}

// Open opens (creating if needed) the database named by dsn and applies pending migrations.
// dsn is "sqlite://PATH", a plain file path (SQLite), or "postgres://..." / "postgresql://..."
// (PostgreSQL, any libpq URL). A nil log discards messages.
func Open(ctx context.Context, dsn string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d, driver, conn, where, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open(driver, conn)
	if err != nil {
		return nil, fmt.Errorf("open %s database %s: %w", d, redact(dsn), err)
	}
	s := &Store{db: db, wdb: db, dialect: d, log: log, advCache: newAdvisoryCache(advisoryCacheSize)}
	if d == dialectSQLite {
		s.writer = make(chan struct{}, 1)
		db.SetMaxOpenConns(8)
		db.SetMaxIdleConns(8)
		if s.wdb, err = sql.Open(driver, sqliteConn(where, writerCacheKiB, writerSpillPages)); err != nil {
			db.Close()
			return nil, fmt.Errorf("open %s database %s: %w", d, redact(dsn), err)
		}
		s.wdb.SetMaxOpenConns(1)
		s.wdb.SetMaxIdleConns(1)
		s.wdb.SetConnMaxIdleTime(0)
		s.wdb.SetConnMaxLifetime(0)
	} else {
		db.SetMaxOpenConns(16)
		db.SetMaxIdleConns(16)
	}
	s.enc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("zstd encoder: %w", err)
	}
	s.dec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxSBOMBytes))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("zstd decoder: %w", err)
	}
	if err := s.wdb.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("connect to %s database %s: %w", d, redact(dsn), err)
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("migrate %s database %s: %w", d, redact(dsn), err)
	}
	if d == dialectSQLite {
		cctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.checkpoints(cctx, checkpointEvery)
		}()
		s.stopCheckpoints = func() { cancel(); <-done }
	}
	return s, nil
}

// checkpointEvery is how often the SQLite store copies committed WAL pages into the database file.
const checkpointEvery = time.Second

// checkpoints copies the pages committed to SQLite's write-ahead log into the database file
// every interval, on a reader connection, until ctx ends. Left to the connection that commits
// (wal_autocheckpoint), that copy and its sync ran inside the commit of whichever write crossed
// the threshold: half a second of a 1 % re-match's commit. A passive checkpoint waits for
// nobody, and writers keep appending meanwhile; the writer's own threshold (1 GiB) remains a
// backstop.
func (s *Store) checkpoints(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := s.db.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`); err != nil && ctx.Err() == nil {
			s.log.Warn("SQLite checkpoint failed; the next one retries", "err", err)
		}
	}
}

// Close releases the database.
func (s *Store) Close() error {
	if s.stopCheckpoints != nil {
		s.stopCheckpoints()
	}
	s.dec.Close()
	var werr error
	if s.wdb != s.db {
		werr = s.wdb.Close()
	}
	return errors.Join(s.db.Close(), werr)
}

// DB exposes the database handle for reading (tests and diagnostics).
func (s *Store) DB() *sql.DB { return s.db }

// WriterDB is the handle the Store writes through. On SQLite it is one connection, and a job
// queue on the same database file should run on it too (see the package comment); on PostgreSQL
// it is the shared pool.
func (s *Store) WriterDB() *sql.DB { return s.wdb }

// Dialect names the database kind: "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.dialect.String() }

// Page cache per SQLite connection. The writer's stays valid across its own commits and holds
// the hot index pages; a reader's is dropped whenever another connection has committed, so a
// big one only costs freeing it.
//
// A large write transaction (a re-match rewrites findings across the whole table) dirties more
// pages than the writer's cache holds: SQLite then writes them to the WAL early and reads them
// back from it when touched again, and the commit writes them a second time. Letting dirty pages
// grow to writerSpillPages (256 MiB of 4 KiB pages) first took a 1 % re-match of 10k images from
// 4.8-5.2 s to 4.3-4.4 s; SQLite frees the pages above the cache size as they are released.
const (
	writerCacheKiB   = 65536
	writerSpillPages = 65536
	readerCacheKiB   = 16384
)

// parseDSN returns the dialect, database/sql driver name and driver connection string (for
// SQLite: of a reading connection), and for SQLite the database file's path.
func parseDSN(s string) (d dialect, driver, conn, sqlitePath string, err error) {
	where, err := dsn.Parse(s)
	switch {
	case err != nil:
		return 0, "", "", "", err
	case where.Postgres != "":
		return dialectPostgres, "pgx", where.Postgres, "", nil
	default:
		return dialectSQLite, "sqlite", sqliteConn(where.SQLite, readerCacheKiB, 0), where.SQLite, nil
	}
}

// sqliteConn is the driver connection string of a connection to path with a page cache of
// cacheKiB; with spillPages, its cache may hold that many pages while a transaction dirties more
// than the cache holds before writing them out early.
func sqliteConn(path string, cacheKiB, spillPages int) string {
	q := url.Values{}
	// The busy timeout first: switching a new database to WAL takes a lock, and without a
	// timeout yet a second process opening it at that moment failed at once (SQLITE_BUSY).
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	// Statement journals in memory: a multi-row INSERT into several indexes spills its journal
	// to a temporary file otherwise (a seventh of a pushed image's write).
	q.Add("_pragma", "temp_store(MEMORY)")
	q.Add("_pragma", "cache_size(-"+strconv.Itoa(cacheKiB)+")")
	// Pages read through a memory map instead of a read call each: a re-match touches pages of
	// the findings trees all over a store larger than the cache, and the system calls were a
	// sixth of its CPU (address space only; the pages are the kernel's file cache).
	q.Add("_pragma", "mmap_size(4294967296)")
	if spillPages > 0 {
		q.Add("_pragma", "cache_spill("+strconv.Itoa(spillPages)+")")
	}
	// Checkpoints run in the background (Store.checkpoints); a connection that commits only
	// checkpoints itself past 1 GiB of WAL, should that fall behind. journal_size_limit
	// truncates the WAL back to 64 MB afterwards.
	q.Add("_pragma", "wal_autocheckpoint(262144)")
	q.Add("_pragma", "journal_size_limit(67108864)")
	q.Set("_txlock", "immediate")
	// "file:" URIs treat '?' and '#' specially; escape them so any path works.
	p := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	return "file:" + p + "?" + q.Encode()
}

// redact returns dsn with any password replaced, for messages.
func redact(s string) string { return dsn.Redact(s) }

// scanStrings reads rows of one text column and closes them.
func scanStrings(rows *sql.Rows) ([]string, error) {
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// lockWriter takes the SQLite write lock; the returned func releases it.
func (s *Store) lockWriter(ctx context.Context) (func(), error) {
	if s.writer == nil {
		return func() {}, nil
	}
	select {
	case s.writer <- struct{}{}:
		return func() { <-s.writer }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// txw is a write transaction that reuses the prepared statements of the large generated
// multi-row statements (SQLite does not cache them and parsing thousands of parameters costs
// more than running them) and knows how its dialect spells generated placeholders.
type txw struct {
	tx    *sql.Tx
	d     dialect
	stmts map[string]*sql.Stmt
	// conn is the transaction's connection when bulk rows may go through COPY (PostgreSQL).
	conn *sql.Conn
}

// cacheArgs is the argument count from which a statement is kept prepared.
const cacheArgs = 16

func newTxw(tx *sql.Tx, d dialect) *txw { return &txw{tx: tx, d: d, stmts: map[string]*sql.Stmt{}} }

func (w *txw) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if st, ok := w.stmts[q]; ok {
		return st, nil
	}
	st, err := w.tx.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	w.stmts[q] = st
	return st, nil
}

func (w *txw) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if len(args) < cacheArgs {
		return w.tx.ExecContext(ctx, q, args...)
	}
	st, err := w.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (w *txw) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if len(args) < cacheArgs {
		return w.tx.QueryContext(ctx, q, args...)
	}
	st, err := w.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

func (w *txw) PrepareContext(ctx context.Context, q string) (*sql.Stmt, error) {
	return w.tx.PrepareContext(ctx, q)
}

// write runs fn in a write transaction, committing when fn returns nil.
func (s *Store) write(ctx context.Context, fn func(tx *txw) error) error {
	unlock, err := s.lockWriter(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	var conn *sql.Conn
	if s.dialect == dialectPostgres {
		// A connection of its own, so that copyRows can reach pgx's COPY on it.
		if conn, err = s.db.Conn(ctx); err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		defer conn.Close()
	}
	var tx *sql.Tx
	if conn != nil {
		tx, err = conn.BeginTx(ctx, nil)
	} else {
		tx, err = s.wdb.BeginTx(ctx, nil)
	}
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	w := newTxw(tx, s.dialect)
	w.conn = conn
	if err := fn(w); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// copyThreshold is the row count from which copyRows uses COPY: below it a multi-row INSERT
// costs less than COPY's extra round trips.
const copyThreshold = 64

// copyRows inserts n rows into table (columns cols): on PostgreSQL with COPY FROM, which skips
// parsing and planning a statement of thousands of parameters; elsewhere with multi-row INSERTs.
func copyRows(ctx context.Context, tx *txw, table string, cols []string, n int, row func(i int, args []any) []any) error {
	if tx.conn == nil || tx.d != dialectPostgres || n < copyThreshold {
		return insertRows(ctx, tx, `INSERT INTO `+table+` (`+strings.Join(cols, ", ")+`) VALUES `, len(cols), n, row)
	}
	return tx.conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("copy into %s: unexpected driver connection %T", table, dc)
		}
		src := &rowSource{n: n, row: row, args: make([]any, 0, len(cols))}
		got, err := sc.Conn().CopyFrom(ctx, pgx.Identifier{table}, cols, src)
		if err != nil {
			return err
		}
		if got != int64(n) {
			return fmt.Errorf("copy into %s: %d of %d rows written", table, got, n)
		}
		return nil
	})
}

// rowSource adapts a row function to pgx.CopyFromSource.
type rowSource struct {
	n, i int
	row  func(i int, args []any) []any
	args []any
}

func (r *rowSource) Next() bool {
	if r.i >= r.n {
		return false
	}
	r.args = r.row(r.i, r.args[:0])
	r.i++
	return true
}

func (r *rowSource) Values() ([]any, error) { return r.args, nil }
func (r *rowSource) Err() error             { return nil }

// param returns placeholder n: "$n" on PostgreSQL, "?" on SQLite, where generated statements
// number their parameters in order and named/numbered ones cost a linear lookup each in
// SQLite's parser (quadratic for a statement of thousands).
func (d dialect) param(n int) string {
	if d == dialectSQLite {
		return "?"
	}
	return "$" + strconv.Itoa(n)
}

// placeholders writes "(p_start,p_start+1,...),(...)" for rows of cols columns.
func placeholders(d dialect, b *strings.Builder, start, rows, cols int) {
	k := start
	for r := range rows {
		if r > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for c := range cols {
			if c > 0 {
				b.WriteByte(',')
			}
			b.WriteString(d.param(k))
			k++
		}
		b.WriteByte(')')
	}
}
