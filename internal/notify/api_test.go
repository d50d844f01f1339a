package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/server"
)

func TestAPI(t *testing.T) {
	e := newEnv(t, "sqlite://"+filepath.Join(t.TempDir(), "crowsnest.db"))
	ctx := context.Background()
	srv, err := server.New(server.Config{Service: e.svc})
	if err != nil {
		t.Fatal(err)
	}
	sender := &Sender{Store: e.st}
	(&API{Store: e.st, Sender: sender}).Register(srv)
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	token := func(scope string) string {
		secret, tok, err := server.NewToken(scope, scope, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := e.st.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		return secret
	}
	read, admin := token(server.ScopeRead), token(server.ScopeAdmin)
	do := func(method, path, tok, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, hs.URL+path, bytes.NewBufferString(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	rc := &receiver{secret: "topsecret-value"}
	hook := rc.server(t, false)
	slackRC := &receiver{}
	slackURL := slackRC.server(t, true).URL + "/services/T0/B0/SLACKSECRET"

	body := `{"name":"siem","kind":"webhook","url":"` + hook.URL + `/hook?token=QUERYSECRET","secret":"topsecret-value","minSeverity":"high","events":["finding-added"]}`
	if code, out := do("POST", "/api/v1/integrations", read, body); code != http.StatusForbidden {
		t.Fatalf("read token created an integration: %d %s", code, out)
	}
	if code, out := do("POST", "/api/v1/integrations", admin, body); code != http.StatusCreated || strings.Contains(out, "topsecret") ||
		strings.Contains(out, "QUERYSECRET") || !strings.Contains(out, `"hasSecret":true`) {
		t.Fatalf("create: %d %s", code, out)
	}
	if code, _ := do("POST", "/api/v1/integrations", admin, body); code != http.StatusConflict {
		t.Fatalf("duplicate create: %d", code)
	}
	if code, out := do("POST", "/api/v1/integrations", admin, `{"name":"x","kind":"email","url":"https://a"}`); code != http.StatusBadRequest {
		t.Fatalf("bad kind: %d %s", code, out)
	}
	if code, out := do("POST", "/api/v1/integrations", admin, `{"name":"chat","kind":"slack","url":"`+slackURL+`"}`); code != http.StatusCreated || strings.Contains(out, "SLACKSECRET") {
		t.Fatalf("create slack: %d %s", code, out)
	}
	code, out := do("GET", "/api/v1/integrations", read, "")
	var list struct{ Integrations []IntegrationView }
	if err := json.Unmarshal([]byte(out), &list); code != 200 || err != nil || len(list.Integrations) != 2 ||
		strings.Contains(out, "topsecret") || strings.Contains(out, "SLACKSECRET") || strings.Contains(out, "QUERYSECRET") {
		t.Fatalf("list: %d %s", code, out)
	}
	// A PUT without a secret keeps the stored one.
	if code, out := do("PUT", "/api/v1/integrations/siem", admin, `{"kind":"webhook","url":"`+hook.URL+`","cloudEvents":true}`); code != 200 || !strings.Contains(out, `"cloudEvents":true`) {
		t.Fatalf("replace: %d %s", code, out)
	}
	if in := mustIntegration(t, e, "siem"); in.Secret != "topsecret-value" || !in.CloudEvents {
		t.Fatalf("after PUT: %+v", in.CloudEvents)
	}
	if code, out := do("POST", "/api/v1/integrations/siem/test", admin, ""); code != 200 {
		t.Fatalf("test: %d %s", code, out)
	}
	if code, out := do("POST", "/api/v1/integrations/chat/test", admin, ""); code != 200 || len(slackRC.bodies) != 1 {
		t.Fatalf("slack test: %d %s", code, out)
	}
	if len(rc.accepted) != 1 || len(rc.bad) != 0 {
		t.Fatalf("receiver: %d accepted, %d bad signatures", len(rc.accepted), len(rc.bad))
	}
	var ce struct{ Type string }
	if json.Unmarshal(rc.bodies[0], &ce); ce.Type != "dev.crowsnest.test" {
		t.Fatalf("test message %s", rc.bodies[0])
	}

	// Deliveries: an advisory update makes one, visible to read tokens.
	e.image(t, 0, "team/app", "1")
	d := &Dispatcher{Store: e.st, Queue: &jobs{}, Sender: sender}
	d.Tick(ctx)
	e.importAdvisories(t, osvRecord("DLA-6000-1", "openssl", "", "critical"))
	if _, err := d.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	code, out = do("GET", "/api/v1/deliveries?integration=siem", read, "")
	var dl struct{ Deliveries []DeliveryView }
	if err := json.Unmarshal([]byte(out), &dl); code != 200 || err != nil || len(dl.Deliveries) != 1 || dl.Deliveries[0].State != "queued" {
		t.Fatalf("deliveries: %d %s", code, out)
	}
	code, out = do("GET", "/api/v1/deliveries/"+dl.Deliveries[0].ID, read, "")
	if code != 200 || !strings.Contains(out, "DLA-6000-1") {
		t.Fatalf("delivery: %d %s", code, out)
	}
	if code, _ := do("GET", "/api/v1/deliveries?state=bogus", read, ""); code != 400 {
		t.Fatalf("bad state: %d", code)
	}
	if code, _ := do("DELETE", "/api/v1/integrations/siem", read, ""); code != 403 {
		t.Fatalf("read token deleted: %d", code)
	}
	if code, _ := do("DELETE", "/api/v1/integrations/siem", admin, ""); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	if code, _ := do("GET", "/api/v1/integrations/siem", read, ""); code != 404 {
		t.Fatalf("deleted integration: %d", code)
	}
	// Its queued delivery is dropped by its send job, not sent.
	if o := sender.Deliver(ctx, dl.Deliveries[0].ID); !o.done || mustDelivery(t, e, dl.Deliveries[0].ID).State != "failed" {
		t.Fatalf("delivery to a removed integration: %+v", o)
	}
}

func TestRedactURL(t *testing.T) {
	for _, c := range []struct{ kind, in, want string }{
		{KindSlack, "https://hooks.slack.com/services/T0/B0/XXXX", "https://hooks.slack.com/services/redacted"},
		{KindWebhook, "https://user:pw@siem.example/hook?token=abc#x", "https://siem.example/hook?redacted"},
		{KindWebhook, "https://siem.example/hook", "https://siem.example/hook"},
	} {
		if got := RedactURL(c.kind, c.in); got != c.want {
			t.Errorf("RedactURL(%s, %s) = %s, want %s", c.kind, c.in, got, c.want)
		}
	}
}
