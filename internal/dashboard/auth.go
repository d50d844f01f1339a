package dashboard

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/server"
	"github.com/crowsnest-dev/crowsnest/internal/store"
)

// CookieName is the session cookie. It holds the API token itself (HttpOnly, SameSite=Strict),
// so a revoked token ends its sessions at once and the server keeps no session state.
const CookieName = "crowsnest_session"

// sessionTTL is how long a sign-in lasts in the browser.
const sessionTTL = 12 * time.Hour

// maxTokenLen bounds what is hashed from a cookie or the sign-in form.
const maxTokenLen = 256

// touchEvery limits last-used updates (a write) to one per token per interval.
const touchEvery = time.Minute

type tokenInfo struct {
	ID, Name, Scope string
}

// SignedIn reports whether a token is present.
func (t tokenInfo) SignedIn() bool { return t.ID != "" }

// lookup returns the stored token of secret; ok is false for a missing, malformed, unknown or
// scope-less token. The secret itself is never logged.
func (d *Dashboard) lookup(r *http.Request, secret string) (store.Token, bool) {
	if secret == "" || len(secret) > maxTokenLen || !strings.HasPrefix(secret, server.TokenPrefix) {
		return store.Token{}, false
	}
	hash := server.HashToken(secret)
	t, err := d.st.TokenByHash(r.Context(), hash)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			d.log.Error("dashboard token lookup", "err", err)
		}
		return store.Token{}, false
	}
	if subtle.ConstantTimeCompare(t.Hash, hash) != 1 || !server.ValidScope(t.Scope) {
		return store.Token{}, false
	}
	return t, true
}

// session returns the signed-in token of the request. Every scope includes read.
func (d *Dashboard) session(_ http.ResponseWriter, r *http.Request) (tokenInfo, bool) {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return tokenInfo{}, false
	}
	t, ok := d.lookup(r, c.Value)
	if !ok {
		return tokenInfo{}, false
	}
	if now := d.now(); now.Sub(t.LastUsed) >= touchEvery {
		if err := d.st.TouchToken(r.Context(), t.ID, now); err != nil {
			d.log.Warn("record token use", "token", t.ID, "err", err)
		}
	}
	return tokenInfo{ID: t.ID, Name: t.Name, Scope: t.Scope}, true
}

// csrfToken binds the sign-out form to the session: a value only a page of this session has.
func csrfToken(r *http.Request) string {
	c, err := r.Cookie(CookieName)
	if err != nil || c.Value == "" {
		return ""
	}
	h := sha256.Sum256([]byte("crowsnest-csrf\x00" + c.Value))
	return hex.EncodeToString(h[:16])
}

// safeNext keeps a post-sign-in redirect on the dashboard (no open redirect).
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix) || strings.ContainsAny(next, "\\\r\n") {
		return Prefix
	}
	if u, err := url.Parse(next); err != nil || u.Host != "" || u.Scheme != "" {
		return Prefix
	}
	return next
}

type signinView struct {
	Next, Error string
}

func (d *Dashboard) signinForm(w http.ResponseWriter, r *http.Request) {
	if _, ok := d.session(w, r); ok {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	d.render(w, r, http.StatusOK, "signin", &view{Title: "Sign in", Data: signinView{Next: safeNext(r.URL.Query().Get("next"))}})
}

func (d *Dashboard) signin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	secret := strings.TrimSpace(r.PostForm.Get("token"))
	t, ok := d.lookup(r, secret)
	if !ok {
		d.log.Info("dashboard sign-in refused", "remote", r.RemoteAddr)
		d.render(w, r, http.StatusUnauthorized, "signin", &view{Title: "Sign in",
			Data: signinView{Next: next, Error: "That token is not valid. Create one with: crowsnest token create --scope read --name NAME"}})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: secret, Path: "/ui", MaxAge: int(sessionTTL.Seconds()),
		HttpOnly: true, Secure: secureRequest(r), SameSite: http.SameSiteStrictMode})
	d.log.Info("dashboard sign-in", "token", t.ID, "remote", r.RemoteAddr)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (d *Dashboard) signout(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	want := csrfToken(r)
	if want == "" || subtle.ConstantTimeCompare([]byte(want), []byte(r.PostForm.Get("csrf"))) != 1 {
		http.Error(w, "sign-out refused: the form does not belong to this session", http.StatusForbidden)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/ui", MaxAge: -1, HttpOnly: true,
		Secure: secureRequest(r), SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, Prefix+"signin", http.StatusSeeOther)
}

func secureRequest(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}
