package cli

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/server"
	"github.com/crowsnest-dev/crowsnest/internal/store"
	"github.com/crowsnest-dev/crowsnest/internal/testutil/pgtest"
)

func TestTokenCommands(t *testing.T) {
	for name, dsn := range map[string]func() string{
		"sqlite":   func() string { return "sqlite://" + filepath.Join(t.TempDir(), "c.db") },
		"postgres": func() string { return pgtest.DSN(t) },
	} {
		t.Run(name, func(t *testing.T) {
			db := dsn()
			dataDir := t.TempDir()
			code, out, errOut := run(t, "--data-dir", dataDir, "--db", db, "token", "create", "--scope", "push", "--name", "agent-1")
			secret := strings.TrimSpace(out)
			if code != 0 || !strings.HasPrefix(secret, server.TokenPrefix) || len(secret) != len(server.TokenPrefix)+43 {
				t.Fatalf("create: %d %q %s", code, out, errOut)
			}
			st, err := store.Open(context.Background(), db, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			tok, err := st.TokenByHash(context.Background(), server.HashToken(secret))
			if err != nil || tok.Scope != "push" || tok.Name != "agent-1" {
				t.Fatalf("stored token %+v: %v", tok, err)
			}
			code, out, _ = run(t, "--data-dir", dataDir, "--db", db, "token", "list")
			if code != 0 || !strings.Contains(out, tok.ID) || !strings.Contains(out, "agent-1") || strings.Contains(out, secret) {
				t.Errorf("list: %d %s", code, out)
			}
			if code, _, errOut := run(t, "--data-dir", dataDir, "--db", db, "token", "create", "--scope", "root"); code != 2 || !strings.Contains(errOut, "scope") {
				t.Errorf("bad scope: %d %s", code, errOut)
			}
			if code, _, errOut := run(t, "--data-dir", dataDir, "--db", db, "token", "revoke", tok.ID); code != 0 {
				t.Errorf("revoke: %d %s", code, errOut)
			}
			if _, err := st.TokenByHash(context.Background(), server.HashToken(secret)); err == nil {
				t.Error("revoked token still stored")
			}
			if code, _, _ := run(t, "--data-dir", dataDir, "--db", db, "token", "revoke", tok.ID); code == 0 {
				t.Error("revoking twice succeeded")
			}
		})
	}
}

// TestServeCommand runs `crowsnest serve`, checks it answers with a token made by `token create`,
// and stops it as SIGTERM would (context cancellation) with exit code 0.
func TestServeCommand(t *testing.T) {
	dataDir := t.TempDir()
	db := "sqlite://" + filepath.Join(dataDir, "c.db")
	_, out, _ := run(t, "--data-dir", dataDir, "--db", db, "token", "create", "--scope", "read")
	secret := strings.TrimSpace(out)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var code int
	var errOut bytes.Buffer
	wg.Add(1)
	go func() {
		defer wg.Done()
		var o bytes.Buffer
		code = Main(ctx, []string{"--data-dir", dataDir, "--db", db, "serve", "--listen", addr}, strings.NewReader(""), &o, &errOut)
	}()
	deadline := time.Now().Add(20 * time.Second)
	var status int
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s/api/v1/images", addr), nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			status = resp.StatusCode
			resp.Body.Close()
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	if status != 200 {
		t.Errorf("GET /api/v1/images with a read token: %d", status)
	}
	if code != 0 {
		t.Errorf("serve exit code %d: %s", code, errOut.String())
	}
	if strings.Contains(errOut.String(), secret) {
		t.Error("the server logged a token")
	}
}
