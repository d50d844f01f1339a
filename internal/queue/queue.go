// Package queue opens crowsnest's durable job queue: River, on the same database as the store
// (SQLite through riversqlite, PostgreSQL through riverpgxv5). Job kinds and workers live with the
// code that uses them; this package only hides which driver runs underneath.
package queue

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/crowsnest-dev/crowsnest/internal/dsn"
)

// Priorities: River runs lower numbers first. Fresh pushes go before backfill.
const (
	PriorityPush     = 1
	PriorityPoll     = 2
	PriorityBackfill = 3
)

// Queue inserts jobs and runs workers. It is the same API over SQLite and PostgreSQL.
type Queue interface {
	// Insert commits a job before it returns; inserted is false when a unique job already exists.
	Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (inserted bool, err error)
	// Start runs the workers until ctx ends or Stop is called.
	Start(ctx context.Context) error
	// Stop waits for running jobs to finish (or ctx to end).
	Stop(ctx context.Context) error
	// Jobs lists jobs in the given states (for status output and tests).
	Jobs(ctx context.Context, states ...rivertype.JobState) ([]*rivertype.JobRow, error)
	Close() error
}

// Config configures workers; a queue used only to insert needs none.
type Config struct {
	Workers      *river.Workers
	MaxWorkers   int
	MaxAttempts  int
	PeriodicJobs []*river.PeriodicJob
	Logger       *slog.Logger
	// PollInterval is how often workers look for new jobs when the driver cannot be notified
	// (SQLite). Default 200ms.
	PollInterval time.Duration
	// SoleWorker says this process is the only one working the queue (the caller holds a lock on
	// an embedded database): jobs left running by a killed predecessor are made available again at
	// Open instead of waiting for River's stuck-job rescuer.
	SoleWorker bool
	// NoLeader keeps this client out of River's leader election: it works jobs but runs no
	// periodic jobs or maintenance. For a second client in a process whose main client has the
	// periodic jobs (watch's notification sender), which must not win the election and starve them.
	NoLeader bool
	// SQLiteDB, when the database is SQLite, is the connection pool to run on instead of opening
	// one: the store's writer (store.Store.WriterDB), so the queue's writes and the store's
	// queue up for one connection instead of sleeping in SQLite's busy handler. The queue does
	// not close it.
	SQLiteDB *sql.DB
}

// migrationLock is the PostgreSQL advisory lock key serializing River's migrations ("crowsriv").
const migrationLock int64 = 0x63726f7773726976

// fetchCooldown is the shortest time between two fetches of jobs.
const fetchCooldown = 2 * time.Millisecond

// JobTimeout bounds one job; a job running longer is canceled. Jobs left running by a dead
// process are rescued after rescueAfter, which must exceed it.
const (
	JobTimeout  = 10 * time.Minute
	rescueAfter = 15 * time.Minute
)

// Open connects to database (sqlite://PATH, a file path, or postgres://...; see package dsn) and
// migrates River's tables.
func Open(ctx context.Context, database string, cfg Config) (Queue, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	where, err := dsn.Parse(database)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	if where.Postgres != "" {
		pool, err := pgxpool.New(ctx, where.Postgres)
		if err != nil {
			return nil, fmt.Errorf("queue: connect to PostgreSQL: %w", err)
		}
		// River's migrations are not safe to run from several processes at once (replicas
		// starting together): serialize them with a session advisory lock.
		conn, err := pool.Acquire(ctx)
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("queue: connect to PostgreSQL: %w", err)
		}
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
			conn.Release()
			pool.Close()
			return nil, fmt.Errorf("queue: lock for migrations: %w", err)
		}
		q, err := open(ctx, riverpgxv5.New(pool), cfg, pool.Close)
		conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLock)
		// Released before any Close: pgxpool's Close waits for acquired connections.
		conn.Release()
		if err != nil {
			pool.Close()
		}
		return q, err
	}
	path := where.SQLite
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	db, closeDB := cfg.SQLiteDB, func() {}
	if db == nil {
		if db, err = sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)"); err != nil {
			return nil, fmt.Errorf("queue: open %s: %w", path, err)
		}
		// SQLite allows one writer; River runs many internal operations at once (River's advice).
		db.SetMaxOpenConns(1)
		closeDB = func() { db.Close() }
	}
	q, err := open(ctx, riversqlite.New(db), cfg, closeDB)
	if err != nil {
		closeDB()
		return nil, err
	}
	if cfg.SoleWorker {
		// River's own table: a job still "running" belongs to a process that died.
		res, err := db.ExecContext(ctx, `UPDATE river_job SET state = 'available' WHERE state = 'running'`)
		if err != nil {
			q.Close()
			return nil, fmt.Errorf("queue: rescue jobs of a previous run: %w", err)
		}
		if n, _ := res.RowsAffected(); n > 0 {
			cfg.Logger.Warn("jobs interrupted by a previous run are queued again", "jobs", n)
		}
	}
	return q, nil
}

type riverQueue[TTx any] struct {
	client  *river.Client[TTx]
	closeDB func()
}

func open[TTx any](ctx context.Context, driver riverdriver.Driver[TTx], cfg Config, closeDB func()) (*riverQueue[TTx], error) {
	migrator, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return nil, fmt.Errorf("queue: migrate: %w", err)
	}
	rc := &river.Config{Logger: cfg.Logger, MaxAttempts: cfg.MaxAttempts, PeriodicJobs: cfg.PeriodicJobs,
		FetchPollInterval: cfg.PollInterval, JobTimeout: JobTimeout, RescueStuckJobsAfter: rescueAfter,
		// River fetches at most once per cooldown (default 100 ms), and a finished job frees its
		// slot for the next fetch: with 3 workers on short jobs the default capped a webhook burst at
		// ~30 jobs/s with the CPU half idle. A fetch is one indexed query.
		FetchCooldown: fetchCooldown,
		// Processes with different roles share one queue (serve runs refreshes, watch indexes):
		// each takes only the kinds it has workers for.
		FetchOnlyKnownKinds: true, LeaderElectionDisabled: cfg.NoLeader}
	if rc.FetchPollInterval == 0 {
		rc.FetchPollInterval = 200 * time.Millisecond
	}
	if cfg.Workers != nil {
		max := cfg.MaxWorkers
		if max <= 0 {
			max = 1
		}
		rc.Workers = cfg.Workers
		rc.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: max}}
	}
	client, err := river.NewClient(driver, rc)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	return &riverQueue[TTx]{client: client, closeDB: closeDB}, nil
}

func (q *riverQueue[TTx]) Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (bool, error) {
	res, err := q.client.Insert(ctx, args, opts)
	if err != nil {
		return false, fmt.Errorf("queue: insert %s job: %w", args.Kind(), err)
	}
	return !res.UniqueSkippedAsDuplicate, nil
}

func (q *riverQueue[TTx]) Start(ctx context.Context) error { return q.client.Start(ctx) }
func (q *riverQueue[TTx]) Stop(ctx context.Context) error  { return q.client.Stop(ctx) }

func (q *riverQueue[TTx]) Jobs(ctx context.Context, states ...rivertype.JobState) ([]*rivertype.JobRow, error) {
	params := river.NewJobListParams().First(10000)
	if len(states) > 0 {
		params = params.States(states...)
	}
	res, err := q.client.JobList(ctx, params)
	if err != nil {
		return nil, fmt.Errorf("queue: list jobs: %w", err)
	}
	return res.Jobs, nil
}

func (q *riverQueue[TTx]) Close() error {
	q.closeDB()
	return nil
}
