package store

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// The dashboard's queries (internal/dashboard): aggregate counts for the overview, the findings
// trend, alias search and the lists behind the settings and packages pages. Every list is bounded.

// maxDashboardList bounds the lists below that take a limit.
const maxDashboardList = 1000

// SeverityCount is one severity rating's row of the overview.
type SeverityCount struct {
	Severity string
	// Images counts the images whose highest-rated finding has this rating.
	Images int
	// Findings counts findings of this rating; Fixable those with a fixed version.
	Findings, Fixable int
}

// Overview is the dashboard's headline: images by their highest severity and findings by rating.
type Overview struct {
	Images int
	// Clean counts images without findings.
	Clean int
	// Severities holds critical, high, medium, low and unspecified, in that order.
	Severities []SeverityCount
}

// SeverityOverview counts images by their highest-rated finding and findings (and fixable ones)
// by rating.
func (s *Store) SeverityOverview(ctx context.Context) (Overview, error) {
	order := []string{"critical", "high", "medium", "low", "unspecified"}
	out := Overview{Severities: make([]SeverityCount, len(order))}
	at := map[string]int{}
	for i, sev := range order {
		out.Severities[i].Severity = sev
		at[sev] = i
	}
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM images`).Scan(&out.Images); err != nil {
		return out, fmt.Errorf("overview: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT severity, COUNT(*), SUM(CASE WHEN fixed_version <> '' THEN 1 ELSE 0 END)
		FROM findings GROUP BY severity`)
	if err != nil {
		return out, fmt.Errorf("overview: %w", err)
	}
	for rows.Next() {
		var sev string
		var n, fix int
		if err := rows.Scan(&sev, &n, &fix); err != nil {
			rows.Close()
			return out, fmt.Errorf("overview: %w", err)
		}
		i, ok := at[sev]
		if !ok {
			i = at["unspecified"]
		}
		out.Severities[i].Findings += n
		out.Severities[i].Fixable += fix
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return out, fmt.Errorf("overview: %w", err)
	}
	// An image counts once, under its worst rating: count the images at or above each rating
	// (from the severity index) and take differences.
	var above int
	withAny := 0
	for i, sev := range order {
		sevs, _ := severitiesAtLeast(sev)
		if sev == "unspecified" {
			sevs = nil // every finding
		}
		var w where
		q := `SELECT COUNT(DISTINCT image_digest) FROM findings`
		if sevs != nil {
			w.in("severity", sevs)
			q += w.String()
		}
		var n int
		if err := s.db.QueryRowContext(ctx, q, w.args...).Scan(&n); err != nil {
			return out, fmt.Errorf("overview: %w", err)
		}
		out.Severities[i].Images = n - above
		above = n
		withAny = n
	}
	out.Clean = max(0, out.Images-withAny)
	return out, nil
}

// TrendDay is one day of finding changes.
type TrendDay struct {
	Day            time.Time
	Added, Removed int
}

// FindingTrend counts the finding changes of each UTC day from since (truncated to a day) to now,
// oldest first; days without changes are included with zeros.
func (s *Store) FindingTrend(ctx context.Context, since, now time.Time) ([]TrendDay, error) {
	const day = int64(24 * time.Hour)
	start := since.UTC().Truncate(24 * time.Hour)
	if !now.After(start) {
		return nil, nil
	}
	n := int(now.Sub(start)/(24*time.Hour)) + 1
	if n > 3660 {
		return nil, fmt.Errorf("%w: a trend of %d days is too long", ErrBadQuery, n)
	}
	out := make([]TrendDay, n)
	for i := range out {
		out[i].Day = start.Add(time.Duration(i) * 24 * time.Hour)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT (time - $1) / $2, kind, COUNT(*) FROM finding_changes
		WHERE time >= $1 GROUP BY 1, 2`, start.UnixNano(), day)
	if err != nil {
		return nil, fmt.Errorf("finding trend: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var i int64
		var kind string
		var c int
		if err := rows.Scan(&i, &kind, &c); err != nil {
			return nil, fmt.Errorf("finding trend: %w", err)
		}
		if i < 0 || i >= int64(n) {
			continue // a change stamped in the future
		}
		switch kind {
		case "added":
			out[i].Added += c
		case "removed":
			out[i].Removed += c
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("finding trend: %w", err)
	}
	return out, nil
}

// OpenFindings counts the findings stored now.
func (s *Store) OpenFindings(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM findings`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count findings: %w", err)
	}
	return n, nil
}

// maxAliasLen bounds an alias searched for.
const maxAliasLen = 200

// FoundVulnerabilityIDs returns the ids of vulnerabilities found in stored images that are id or
// have id among their aliases (a CVE id finds the DSA, GHSA or ALPINE records that alias it),
// sorted. Only advisories of found vulnerabilities are searched, so the scan is bounded by what
// the stored images hold, not by the whole advisory database.
func (s *Store) FoundVulnerabilityIDs(ctx context.Context, id string) ([]string, error) {
	id = strings.TrimSpace(id)
	if id == "" || len(id) > maxAliasLen {
		return nil, fmt.Errorf("%w: bad vulnerability id", ErrBadQuery)
	}
	seen := map[string]bool{}
	var out []string
	add := func(q string, args ...any) error {
		rows, err := s.db.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				return err
			}
			if !seen[v] {
				seen[v] = true
				out = append(out, v)
			}
		}
		return rows.Err()
	}
	if err := add(`SELECT vuln_id FROM findings WHERE vuln_id = $1 LIMIT 1`, id); err != nil {
		return nil, fmt.Errorf("vulnerability %s: %w", id, err)
	}
	// Aliases are JSON strings inside the advisory record: match the quoted id.
	pattern := `%"` + likeEscape(id) + `"%`
	// CAST: SQLite's LIKE finds nothing in a BLOB operand.
	like := `CAST(a.data AS TEXT) LIKE $1 ESCAPE '\'`
	if s.dialect == dialectPostgres {
		like = `convert_from(a.data, 'UTF8') ILIKE $1 ESCAPE '\'`
	}
	if err := add(`SELECT a.id FROM advisories a WHERE a.id IN (SELECT DISTINCT vuln_id FROM findings) AND `+like+
		` ORDER BY a.id LIMIT 100`, pattern); err != nil {
		return nil, fmt.Errorf("vulnerabilities aliased %s: %w", id, err)
	}
	sort.Strings(out)
	return out, nil
}

// RepositoryTags is a repository the store holds tags of.
type RepositoryTags struct {
	Repository string
	Tags       int
	Updated    time.Time
}

// Repositories lists up to limit tagged repositories by name, and how many there are in all.
func (s *Store) Repositories(ctx context.Context, limit int) ([]RepositoryTags, int, error) {
	limit = max(1, min(limit, maxDashboardList))
	var total int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(DISTINCT repository) FROM tags`).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("repositories: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT repository, COUNT(*), MAX(updated_at) FROM tags GROUP BY repository
		ORDER BY repository LIMIT $1`, limit)
	if err != nil {
		return nil, 0, fmt.Errorf("repositories: %w", err)
	}
	defer rows.Close()
	var out []RepositoryTags
	for rows.Next() {
		var r RepositoryTags
		var ns int64
		if err := rows.Scan(&r.Repository, &r.Tags, &ns); err != nil {
			return nil, 0, fmt.Errorf("repositories: %w", err)
		}
		r.Updated = time.Unix(0, ns).UTC()
		out = append(out, r)
	}
	return out, total, rows.Err()
}

// StateEntry is a progress marker (the watcher's baseline and backfill per registry).
type StateEntry struct {
	Key, Value string
	Updated    time.Time
}

// StateEntries lists up to limit progress markers by key.
func (s *Store) StateEntries(ctx context.Context, limit int) ([]StateEntry, error) {
	limit = max(1, min(limit, maxDashboardList))
	rows, err := s.db.QueryContext(ctx, `SELECT key, value, updated_at FROM state ORDER BY key LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	defer rows.Close()
	var out []StateEntry
	for rows.Next() {
		var e StateEntry
		var ns int64
		if err := rows.Scan(&e.Key, &e.Value, &ns); err != nil {
			return nil, fmt.Errorf("state: %w", err)
		}
		e.Updated = time.Unix(0, ns).UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}

// TagNames lists up to limit "repository:tag" names, sorted.
func (s *Store) TagNames(ctx context.Context, limit int) ([]string, error) {
	limit = max(1, min(limit, maxDashboardList))
	rows, err := s.db.QueryContext(ctx, `SELECT repository, tag FROM tags ORDER BY repository, tag LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("tags: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var r, t string
		if err := rows.Scan(&r, &t); err != nil {
			return nil, fmt.Errorf("tags: %w", err)
		}
		out = append(out, r+":"+t)
	}
	return out, rows.Err()
}

// PackageName is a package name with how many versions and images hold it.
type PackageName struct {
	Name             string
	Versions, Images int
}

// SearchPackageNames lists up to limit package names starting with prefix, by name.
func (s *Store) SearchPackageNames(ctx context.Context, prefix string, limit int) ([]PackageName, error) {
	if len(prefix) > 256 {
		return nil, fmt.Errorf("%w: package name too long", ErrBadQuery)
	}
	limit = max(1, min(limit, maxDashboardList))
	// A range on the (name, version) index instead of LIKE, which neither dialect plans as a
	// prefix scan under every collation.
	rows, err := s.db.QueryContext(ctx, `SELECT name, COUNT(DISTINCT version), COUNT(DISTINCT image_digest) FROM packages
		WHERE name >= $1 AND name < $2 GROUP BY name ORDER BY name LIMIT $3`, prefix, prefix+"\U0010FFFF", limit)
	if err != nil {
		return nil, fmt.Errorf("search packages %q: %w", prefix, err)
	}
	defer rows.Close()
	var out []PackageName
	for rows.Next() {
		var p PackageName
		if err := rows.Scan(&p.Name, &p.Versions, &p.Images); err != nil {
			return nil, fmt.Errorf("search packages %q: %w", prefix, err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// PackageVersion is one version (and type) of a package name and how many images hold it.
type PackageVersion struct {
	Type, Version string
	Images        int
}

// PackageVersions lists up to limit versions of package name with their image counts.
func (s *Store) PackageVersions(ctx context.Context, name string, limit int) ([]PackageVersion, error) {
	limit = max(1, min(limit, maxDashboardList))
	rows, err := s.db.QueryContext(ctx, `SELECT type, version, COUNT(DISTINCT image_digest) FROM packages WHERE name = $1
		GROUP BY type, version ORDER BY type, version LIMIT $2`, name, limit)
	if err != nil {
		return nil, fmt.Errorf("versions of %s: %w", name, err)
	}
	defer rows.Close()
	var out []PackageVersion
	for rows.Next() {
		var p PackageVersion
		if err := rows.Scan(&p.Type, &p.Version, &p.Images); err != nil {
			return nil, fmt.Errorf("versions of %s: %w", name, err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}
