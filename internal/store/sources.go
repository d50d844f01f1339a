package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// SourceState is an advisory source's conditional-request state and last import.
type SourceState struct {
	Name         string
	URL          string
	ETag         string
	LastModified string
	// ImportedAt and Advisories are set by a committed import of the source; SetSource does not
	// change them.
	ImportedAt time.Time
	Advisories int
	// Error is the last update's failure, empty after a success.
	Error string
}

// Source returns the state of source name, or ErrNotFound.
func (s *Store) Source(ctx context.Context, name string) (SourceState, error) {
	row := s.db.QueryRowContext(ctx, `SELECT name, url, etag, last_modified, imported_at, advisory_count, error
		FROM sources WHERE name = $1`, name)
	st, err := scanSource(row.Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return SourceState{}, fmt.Errorf("source %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return SourceState{}, fmt.Errorf("source %s: %w", name, err)
	}
	return st, nil
}

func scanSource(scan func(...any) error) (SourceState, error) {
	var st SourceState
	var ns int64
	if err := scan(&st.Name, &st.URL, &st.ETag, &st.LastModified, &ns, &st.Advisories, &st.Error); err != nil {
		return st, err
	}
	if ns != 0 {
		st.ImportedAt = time.Unix(0, ns)
	}
	return st, nil
}

// SetSource records a source's URL, ETag, Last-Modified and error.
func (s *Store) SetSource(ctx context.Context, st SourceState) error {
	if st.Name == "" {
		return errors.New("set source: empty name")
	}
	err := s.write(ctx, func(tx *txw) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO sources (name, url, etag, last_modified, imported_at, advisory_count, error)
			VALUES ($1, $2, $3, $4, 0, 0, $5)
			ON CONFLICT (name) DO UPDATE SET url = excluded.url, etag = excluded.etag,
				last_modified = excluded.last_modified, error = excluded.error`,
			st.Name, st.URL, st.ETag, st.LastModified, st.Error)
		return err
	})
	if err != nil {
		return fmt.Errorf("set source %s: %w", st.Name, err)
	}
	return nil
}

// Sources lists every source by name.
func (s *Store) Sources(ctx context.Context) ([]SourceState, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, url, etag, last_modified, imported_at, advisory_count, error
		FROM sources ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("sources: %w", err)
	}
	defer rows.Close()
	var out []SourceState
	for rows.Next() {
		st, err := scanSource(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("sources: %w", err)
		}
		out = append(out, st)
	}
	return out, rows.Err()
}

// Stats are the store's counts.
type Stats struct {
	Images, Packages, Advisories int
	// AdvisoriesByEcosystem counts advisories affecting each ecosystem (an advisory of several
	// ecosystems counts in each).
	AdvisoriesByEcosystem map[string]int
	// FindingsBySeverity counts findings per severity rating.
	FindingsBySeverity map[string]int
}

// Stats counts images, packages, advisories (per ecosystem) and findings (per severity).
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	st := Stats{AdvisoriesByEcosystem: map[string]int{}, FindingsBySeverity: map[string]int{}}
	for _, c := range []struct {
		q string
		n *int
	}{
		{`SELECT count(*) FROM images`, &st.Images},
		{`SELECT count(*) FROM packages`, &st.Packages},
		{`SELECT count(*) FROM advisories`, &st.Advisories},
	} {
		if err := s.db.QueryRowContext(ctx, c.q).Scan(c.n); err != nil {
			return st, fmt.Errorf("stats: %w", err)
		}
	}
	for _, g := range []struct {
		q string
		m map[string]int
	}{
		{`SELECT ecosystem, count(DISTINCT advisory_id) FROM affected GROUP BY ecosystem`, st.AdvisoriesByEcosystem},
		{`SELECT severity, count(*) FROM findings GROUP BY severity`, st.FindingsBySeverity},
	} {
		rows, err := s.db.QueryContext(ctx, g.q)
		if err != nil {
			return st, fmt.Errorf("stats: %w", err)
		}
		for rows.Next() {
			var k string
			var n int
			if err := rows.Scan(&k, &n); err != nil {
				rows.Close()
				return st, fmt.Errorf("stats: %w", err)
			}
			g.m[k] = n
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return st, fmt.Errorf("stats: %w", err)
		}
	}
	return st, nil
}
