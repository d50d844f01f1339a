package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrationLockKey is the pg_advisory_xact_lock key serializing concurrent Opens on PostgreSQL
// ("crowsnst" in ASCII).
const migrationLockKey = 0x63726f77736e7374

type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations(d dialect) ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration file %s: name must start with a positive number and '_'", e.Name())
		}
		b, err := fs.ReadFile(migrationFS, "migrations/"+e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: e.Name(), sql: dialectSQL(d, string(b))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share version %d", out[i-1].name, out[i].name, out[i].version)
		}
	}
	return out, nil
}

// dialectSQL replaces the few type words the dialects spell differently and keeps the lines
// marked for d ("--sqlite ", "--postgres ") without their marker.
func dialectSQL(d dialect, s string) string {
	mine, other := "--sqlite ", "--postgres "
	if d == dialectPostgres {
		mine, other = other, mine
	}
	lines := strings.Split(s, "\n")
	kept := lines[:0]
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, mine):
			kept = append(kept, strings.TrimPrefix(l, mine))
		case !strings.HasPrefix(l, other):
			kept = append(kept, l)
		}
	}
	s = strings.Join(kept, "\n")
	if d == dialectPostgres {
		return strings.NewReplacer(
			"{{BLOB}}", "BYTEA",
			"{{ID}}", "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
		).Replace(s)
	}
	return strings.NewReplacer(
		"{{BLOB}}", "BLOB",
		// AUTOINCREMENT: change ids must never be reused, readers page by them.
		"{{ID}}", "INTEGER PRIMARY KEY AUTOINCREMENT",
	).Replace(s)
}

// migrate applies pending migrations in one transaction, recording them in schema_migrations.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := loadMigrations(s.dialect)
	if err != nil {
		return err
	}
	unlock, err := s.lockWriter(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	if s.dialect == dialectPostgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLockKey)); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	applied := map[int]bool{}
	rows, err := tx.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("read schema_migrations: %w", err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return err
		}
		applied[v] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	latest := 0
	for _, m := range ms {
		latest = max(latest, m.version)
	}
	for v := range applied {
		if v > latest {
			return fmt.Errorf("database schema version %d is newer than this crowsnest knows (%d): upgrade crowsnest", v, latest)
		}
	}
	n := 0
	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("apply %s: %w", m.name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
			m.version, m.name, time.Now().UnixNano()); err != nil {
			return fmt.Errorf("record %s: %w", m.name, err)
		}
		s.log.Info("applied migration", "dialect", s.dialect.String(), "migration", m.name)
		n++
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
