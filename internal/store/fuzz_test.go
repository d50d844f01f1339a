package store

import (
	"strings"
	"testing"
)

// FuzzParseDSN checks that any DSN is either accepted or refused with an error, and that neither
// the error nor the redacted form ever shows a password.
func FuzzParseDSN(f *testing.F) {
	for _, s := range []string{
		"", "crowsnest.db", "/var/lib/crowsnest/db.sqlite", "./x.db", "sqlite:///tmp/a.db", "sqlite://rel/a.db",
		"sqlite://", "sqlite:///a.db?_pragma=x", "file:///a.db", "postgres://u:pw@h:5432/db?sslmode=disable",
		"postgresql://h/db", "postgres:///db?host=/run/postgresql&password=pw", "postgres://u:pw@%zz/db",
		"mysql://root:pw@db/x", "host=db user=u password=pw", "C:\\data\\c.db", "mongodb:pw@x", "://",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dsn string) {
		d, driver, conn, _, err := parseDSN(dsn)
		// A password that occurs once in dsn must not occur in what is shown to people.
		pw := password(dsn)
		secret := len(pw) >= 4 && strings.Count(dsn, pw) == 1
		if red := redact(dsn); secret && strings.Contains(red, pw) {
			t.Fatalf("redact(%q) = %q shows the password", dsn, red)
		}
		if err != nil {
			if driver != "" || conn != "" {
				t.Fatalf("error with a result: %v %q %q", err, driver, conn)
			}
			if secret && strings.Contains(err.Error(), pw) {
				t.Fatalf("error for %q shows the password: %v", dsn, err)
			}
			return
		}
		switch d {
		case dialectSQLite:
			if driver != "sqlite" || !strings.HasPrefix(conn, "file:") {
				t.Fatalf("sqlite DSN %q gave %q %q", dsn, driver, conn)
			}
		case dialectPostgres:
			if driver != "pgx" {
				t.Fatalf("postgres DSN %q gave driver %q", dsn, driver)
			}
		}
	})
}

// password returns the password of a URL-form DSN's userinfo, if it has one.
func password(dsn string) string {
	_, rest, ok := strings.Cut(dsn, "://")
	if !ok {
		return ""
	}
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return ""
	}
	user := rest[:at]
	if strings.ContainsAny(user, "/?#") {
		return ""
	}
	_, pw, ok := strings.Cut(user, ":")
	if !ok {
		return ""
	}
	return pw
}
