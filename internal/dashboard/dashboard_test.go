package dashboard

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/crowsnest-dev/crowsnest/internal/store"
	"github.com/crowsnest-dev/crowsnest/internal/testutil/pgtest"
)

func client(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, u string) (int, string, http.Header) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func signIn(t *testing.T, f *fixture, c *http.Client, tok string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", f.srv.URL+"/ui/signin", strings.NewReader(url.Values{"token": {tok}, "next": {"/ui/images"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestSignInAndPages(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { signInAndPages(t, newFixture(t)) })
	t.Run("postgres", func(t *testing.T) { signInAndPages(t, newFixtureOn(t, pgtest.DSN(t))) })
}

func signInAndPages(t *testing.T, f *fixture) {
	c := client(t)

	// Every page needs a session; the API stays on bearer tokens.
	code, _, h := get(t, c, f.srv.URL+"/ui/images?severity=high")
	if code != http.StatusSeeOther || h.Get("Location") != "/ui/signin?next="+url.QueryEscape("/ui/images?severity=high") {
		t.Fatalf("unauthenticated page: %d %q", code, h.Get("Location"))
	}
	if code, _, _ := get(t, c, f.srv.URL+"/api/v1/images"); code != http.StatusUnauthorized {
		t.Fatalf("API without token: %d", code)
	}
	// A wrong token is refused, a cross-site sign-in too.
	if resp := signIn(t, f, c, "cn_not-a-token"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bad token: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("POST", f.srv.URL+"/ui/signin", strings.NewReader(url.Values{"token": {f.read}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if resp, err := c.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site sign-in: %v %v", resp.StatusCode, err)
	}

	resp := signIn(t, f, c, f.read)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/images" {
		t.Fatalf("sign-in: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	ck := resp.Cookies()
	if len(ck) != 1 || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteStrictMode || ck[0].Value != f.read {
		t.Fatalf("session cookie: %+v", ck)
	}

	for _, c2 := range []struct{ path, want string }{
		{"/ui/", "Images by highest severity"},
		{"/ui/", "registry.example/team/broken"}, // failed images
		{"/ui/images", webRepo},
		{"/ui/images?severity=critical", "No image matches these filters"},
		{"/ui/images?package=ansi-html&version=0.0.7", "registry.example/team/web:1.0"},
		{"/ui/images/" + f.web1, "GHSA-whgm-jr23-g3j9"},
		{"/ui/images/" + f.web1, "APP_SECRET_KEY"},
		{"/ui/images/" + f.web1, "8080/tcp"},
		{"/ui/images/" + f.web1, "payments"},
		{"/ui/images/" + f.web1, "registry.example/base/alpine:3.19"}, // base chain
		{"/ui/vulnerabilities", "ALPINE-CVE-2025-26519"},
		{"/ui/vulnerabilities/GHSA-whgm-jr23-g3j9", "0.0.8"},
		{"/ui/packages?prefix=ansi", "ansi-html"},
		{"/ui/packages?name=musl", "1.2.4_git20230717-r4"},
		{"/ui/compare?from=" + url.QueryEscape(webRepo+":1.0") + "&to=" + url.QueryEscape(webRepo+":1.1"), "GHSA-whgm-jr23-g3j9"},
		{"/ui/settings", "registry.example"},
	} {
		code, body, _ := get(t, c, f.srv.URL+c2.path)
		if code != http.StatusOK || !strings.Contains(body, c2.want) {
			t.Errorf("%s: %d, want %q in the page", c2.path, code, c2.want)
		}
	}
	// The secret never reaches a page, not even the settings' token list.
	if _, body, _ := get(t, c, f.srv.URL+"/ui/settings"); strings.Contains(body, f.read) || strings.Contains(body, "ops") {
		t.Error("settings shows a token secret or, to a reader, the token list")
	}
	// Values are escaped.
	if _, body, _ := get(t, c, f.srv.URL+"/ui/images?repository=%3Cscript%3Ealert(1)%3C/script%3E"); strings.Contains(body, "<script>alert") {
		t.Error("repository filter is not escaped")
	}

	// The search box: a CVE id finds the images through its advisories' aliases.
	code, _, h = get(t, c, f.srv.URL+"/ui/search?q=cve-2021-23424")
	if code != http.StatusSeeOther || h.Get("Location") != "/ui/vulnerabilities/GHSA-whgm-jr23-g3j9?alias=cve-2021-23424" {
		t.Fatalf("CVE search: %d %q", code, h.Get("Location"))
	}
	code, body, _ := get(t, c, f.srv.URL+"/ui/vulnerabilities/GHSA-whgm-jr23-g3j9")
	if code != 200 || !strings.Contains(body, "registry.example/team/web:1.0") || strings.Contains(body, "registry.example/team/web:1.1") {
		t.Fatalf("GHSA-whgm-jr23-g3j9 affects only web:1.0 (%d)", code)
	}
	code, _, h = get(t, c, f.srv.URL+"/ui/search?q="+url.QueryEscape(webRepo+":1.1"))
	if code != http.StatusSeeOther || h.Get("Location") != "/ui/images/"+f.web2 {
		t.Fatalf("tag search: %d %q", code, h.Get("Location"))
	}
	if code, body, _ := get(t, c, f.srv.URL+"/ui/search?q=CVE-1999-0001"); code != 200 || !strings.Contains(body, "No stored image is affected") {
		t.Fatalf("unknown CVE: %d", code)
	}

	// Integrations show what they send, never their URL or secret.
	if err := f.st.PutIntegration(t.Context(), store.Integration{Name: "sec-channel", Kind: "slack", URL: "https://hooks.slack.example/T0/B0/SECRETPATH",
		MinSeverity: "high", Enabled: true}, false); err != nil {
		t.Fatal(err)
	}
	if _, body, _ := get(t, c, f.srv.URL+"/ui/settings"); !strings.Contains(body, "sec-channel") || !strings.Contains(body, "high and above") ||
		strings.Contains(body, "SECRETPATH") {
		t.Error("settings: integration missing or its URL shown")
	}
	// The delivery log: what went where and how it ended, never the payload.
	if _, err := f.st.RecordDeliveries(t.Context(), nil, []store.Delivery{{ID: "dlv-0001", Integration: "sec-channel",
		Event: "finding-added", ImageDigest: f.web2, Repository: webRepo, Payload: []byte(`{"secret-payload":true}`), State: "pending"}}); err != nil {
		t.Fatal(err)
	}
	if _, body, _ := get(t, c, f.srv.URL+"/ui/settings"); !strings.Contains(body, `id="deliveries"`) || !strings.Contains(body, "finding-added") ||
		!strings.Contains(body, "pending") || strings.Contains(body, "secret-payload") {
		t.Error("settings: the delivery log is missing or shows the payload")
	}

	// An admin sees the token list, never the secrets.
	ca := client(t)
	signIn(t, f, ca, f.admin)
	if _, body, _ := get(t, ca, f.srv.URL+"/ui/settings"); !strings.Contains(body, "ci-reader") || strings.Contains(body, f.read) {
		t.Error("admin token list")
	}

	// Sign-out needs the session's form value.
	post := func(csrf string) int {
		req, _ := http.NewRequest("POST", f.srv.URL+"/ui/signout", strings.NewReader(url.Values{"csrf": {csrf}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("forged"); code != http.StatusForbidden {
		t.Fatalf("forged sign-out: %d", code)
	}
	_, body, _ = get(t, c, f.srv.URL+"/ui/")
	i := strings.Index(body, `name="csrf" value="`)
	if i < 0 {
		t.Fatal("no sign-out form")
	}
	csrf := body[i+len(`name="csrf" value="`):]
	csrf = csrf[:strings.IndexByte(csrf, '"')]
	if code := post(csrf); code != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", code)
	}
	if code, _, _ := get(t, c, f.srv.URL+"/ui/"); code != http.StatusSeeOther {
		t.Fatalf("still signed in after sign-out: %d", code)
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/ui/images?x=1": "/ui/images?x=1", "https://evil.example/": "/ui/", "//evil.example/ui/": "/ui/",
		"/ui/\\evil": "/ui/", "/api/v1/images": "/ui/", "": "/ui/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzSafeNext: whatever a sign-in link carries, the redirect stays on the dashboard.
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/ui/images?x=1", "//evil.example", "/ui/\\\\evil", "https://x/", "/ui/\r\nLocation: x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := safeNext(s)
		u, err := url.Parse(got)
		if !strings.HasPrefix(got, Prefix) || err != nil || u.Host != "" || u.Scheme != "" || strings.ContainsAny(got, "\r\n\\") {
			t.Fatalf("safeNext(%q) = %q", s, got)
		}
	})
}
