// Package dsn reads the --db setting once for every part that opens the database (the store, the
// job queue, the watcher's lock), so they agree on what is SQLite and what is PostgreSQL.
package dsn

import (
	"fmt"
	"net/url"
	"strings"
)

// Accepted lists the forms Parse takes, for error messages.
const Accepted = `accepted: sqlite://PATH, a file path, postgres://... or postgresql://...`

// DSN is a parsed database setting: exactly one field is set.
type DSN struct {
	// SQLite is the file of an embedded database.
	SQLite string
	// Postgres is a PostgreSQL URL.
	Postgres string
}

// Parse reads sqlite://PATH (also sqlite3:// and file://), a plain file path, or
// postgres://... / postgresql://... . Errors never show a password.
func Parse(s string) (DSN, error) {
	if s == "" {
		return DSN{}, fmt.Errorf("empty database DSN (%s)", Accepted)
	}
	scheme, rest, hasScheme := strings.Cut(s, "://")
	if !hasScheme {
		if strings.Contains(s, ":") && !strings.HasPrefix(s, "/") && !strings.HasPrefix(s, ".") {
			// "host=... user=..." or "mysql:..." look like a DSN, not a path: say so rather
			// than creating a file with that name.
			if i := strings.IndexByte(s, ':'); i > 0 && !strings.ContainsAny(s[:i], `/\ =`) {
				return DSN{}, fmt.Errorf("unsupported database scheme %q (%s)", s[:i], Accepted)
			}
		}
		if strings.Contains(s, "=") && strings.Contains(s, " ") {
			return DSN{}, fmt.Errorf("database DSN looks like a PostgreSQL keyword/value string; use a postgres:// URL (%s)", Accepted)
		}
		return DSN{SQLite: s}, nil
	}
	switch strings.ToLower(scheme) {
	case "sqlite", "sqlite3", "file":
		if strings.IndexByte(rest, '?') >= 0 {
			return DSN{}, fmt.Errorf("sqlite DSN %q: query parameters are not accepted (crowsnest sets its own pragmas)", s)
		}
		if rest == "" {
			return DSN{}, fmt.Errorf("sqlite DSN %q has no path (sqlite://PATH)", s)
		}
		return DSN{SQLite: rest}, nil
	case "postgres", "postgresql":
		u, err := url.Parse(s)
		if err != nil {
			// url.Parse errors quote the input, which may hold a password.
			return DSN{}, fmt.Errorf("postgres DSN %s is not a valid URL", Redact(s))
		}
		if u.Host == "" && u.Query().Get("host") == "" {
			return DSN{}, fmt.Errorf("postgres DSN %s has no host", Redact(s))
		}
		return DSN{Postgres: s}, nil
	default:
		return DSN{}, fmt.Errorf("unsupported database scheme %q (%s)", scheme, Accepted)
	}
}

// Redact hides a password (in the userinfo or a password= parameter) for logs and messages.
func Redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		if strings.Contains(s, "@") || strings.Contains(strings.ToLower(s), "password") {
			return "(unparsable DSN, not shown)"
		}
		return s
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}
