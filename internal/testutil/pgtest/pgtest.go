// Package pgtest gives tests a fresh PostgreSQL database of their own.
//
// The server comes from CROWSNEST_TEST_POSTGRES_DSN, or the CI default
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable. When the server is unreachable the
// test fails if CI=true (CI must not silently skip) and is skipped otherwise.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDSN names the environment variable holding the test server's DSN.
const EnvDSN = "CROWSNEST_TEST_POSTGRES_DSN"

// DefaultDSN is used when EnvDSN is unset.
const DefaultDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// ServerDSN returns the DSN of the test server as configured (not a fresh database).
func ServerDSN() string {
	if v := os.Getenv(EnvDSN); v != "" {
		return v
	}
	return DefaultDSN
}

// DSN creates a fresh database (crowsnest_t_<random>) on the test server, drops it when the test
// ends, and returns its DSN.
func DSN(t testing.TB) string {
	t.Helper()
	return FromTemplate(t, "")
}

// FromTemplate is DSN with the fresh database a copy of database template ("" = the server's
// default template). Benchmarks keep their prepared stores as templates (see SaveTemplate).
func FromTemplate(t testing.TB, template string) string {
	t.Helper()
	server := ServerDSN()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := connectAdmin(ctx, server)
	if err != nil {
		msg := fmt.Sprintf("PostgreSQL test server unreachable (set %s; default %s): %v", EnvDSN, DefaultDSN, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	defer conn.Close(context.Background())
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := "crowsnest_t_" + hex.EncodeToString(b[:])
	create := "CREATE DATABASE " + name
	if template != "" {
		create += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	if _, err := conn.Exec(ctx, create); err != nil {
		t.Fatalf("create test database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := connectAdmin(ctx, server)
		if err != nil {
			t.Errorf("drop test database %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	dsn, err := withDatabase(server, name)
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

// connectAdmin connects to the server's configured database, falling back to "postgres" when
// that database does not exist (a fresh server has no "test" database).
func connectAdmin(ctx context.Context, server string) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, server)
	if err == nil {
		return conn, nil
	}
	if !strings.Contains(err.Error(), "does not exist") {
		return nil, err
	}
	alt, derr := withDatabase(server, "postgres")
	if derr != nil {
		return nil, err
	}
	return pgx.Connect(ctx, alt)
}

// withDatabase returns dsn naming database name instead of its own.
func withDatabase(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("%s is not a valid URL", EnvDSN)
		}
		u.Path = "/" + name
		return u.String(), nil
	}
	return "", fmt.Errorf("%s must be a postgres:// URL", EnvDSN)
}

// TemplateExists says whether database name exists on the test server.
func TemplateExists(t testing.TB, name string) bool {
	t.Helper()
	var n int
	withAdmin(t, 10*time.Second, func(ctx context.Context, conn *pgx.Conn) error {
		return conn.QueryRow(ctx, `SELECT count(*) FROM pg_database WHERE datname = $1`, name).Scan(&n)
	})
	return n > 0
}

// SaveTemplate copies the database of dsn (which nobody may be connected to) as database name,
// replacing an older copy.
func SaveTemplate(t testing.TB, dsn, name string) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	withAdmin(t, 10*time.Minute, func(ctx context.Context, conn *pgx.Conn) error {
		id := pgx.Identifier{name}.Sanitize()
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+id+" WITH (FORCE)"); err != nil {
			return err
		}
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+id+" TEMPLATE "+pgx.Identifier{strings.TrimPrefix(u.Path, "/")}.Sanitize()); err != nil {
			return fmt.Errorf("save %s as template %s: %w", u.Path, name, err)
		}
		return nil
	})
}

// withAdmin runs fn on a connection to the test server's own database within timeout, failing
// the test on any error.
func withAdmin(t testing.TB, timeout time.Duration, fn func(ctx context.Context, conn *pgx.Conn) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := connectAdmin(ctx, ServerDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := fn(ctx, conn); err != nil {
		t.Fatal(err)
	}
}
