package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/store"
)

// Token scopes. Each includes the ones before it: admin > push > read.
const (
	ScopeRead  = "read"
	ScopePush  = "push"
	ScopeAdmin = "admin"
)

// TokenPrefix starts every crowsnest token, so secret scanners and people recognize one.
const TokenPrefix = "cn_"

func scopeRank(s string) int {
	switch s {
	case ScopeRead:
		return 1
	case ScopePush:
		return 2
	case ScopeAdmin:
		return 3
	}
	return 0
}

// ValidScope reports whether s is a scope name.
func ValidScope(s string) bool { return scopeRank(s) > 0 }

// HashToken returns the SHA-256 of a token: what the store keeps. Tokens carry 256 random bits,
// so a plain hash cannot be brute-forced and needs no salt or slow KDF.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// NewToken makes a token of scope: the secret to show once, and the record to store.
func NewToken(name, scope string, now time.Time) (string, store.Token, error) {
	if !ValidScope(scope) {
		return "", store.Token{}, fmt.Errorf("unknown token scope %q (want read, push or admin)", scope)
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", store.Token{}, fmt.Errorf("token: %w", err)
	}
	secret := TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	hash := HashToken(secret)
	return secret, store.Token{ID: hex.EncodeToString(hash[:6]), Hash: hash, Name: name, Scope: scope, Created: now.UTC()}, nil
}

// touchEvery limits last-used updates (a write) to one per token per interval.
const touchEvery = time.Minute

// maxTokenLen bounds what is hashed from an Authorization header.
const maxTokenLen = 256

// authenticate checks the bearer token and its scope; it writes the 401/403 itself and returns
// false when the request must stop. Tokens are never logged.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, need string) (store.Token, bool) {
	h := r.Header.Get("Authorization")
	scheme, secret, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || secret == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="crowsnest"`)
		writeError(w, http.StatusUnauthorized, "missing bearer token (Authorization: Bearer <token>)")
		return store.Token{}, false
	}
	secret = strings.TrimSpace(secret)
	if len(secret) > maxTokenLen || !strings.HasPrefix(secret, TokenPrefix) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="crowsnest", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, "invalid token")
		return store.Token{}, false
	}
	hash := HashToken(secret)
	t, err := s.store.TokenByHash(r.Context(), hash)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Error("token lookup", "err", err)
		writeError(w, http.StatusServiceUnavailable, "token lookup failed")
		return store.Token{}, false
	}
	// The lookup is by hash; comparing in constant time as well keeps a timing side channel out
	// even if an index lookup's timing leaked a prefix.
	if err != nil || subtle.ConstantTimeCompare(t.Hash, hash) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="crowsnest", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, "invalid token")
		return store.Token{}, false
	}
	if scopeRank(t.Scope) < scopeRank(need) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="crowsnest", error="insufficient_scope", scope="`+need+`"`)
		writeError(w, http.StatusForbidden, fmt.Sprintf("token %s has scope %s; this needs %s", t.ID, t.Scope, need))
		return store.Token{}, false
	}
	now := s.now()
	if now.Sub(t.LastUsed) >= touchEvery {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
		if err := s.store.TouchToken(ctx, t.ID, now); err != nil {
			s.log.Warn("record token use", "token", t.ID, "err", err)
		}
		cancel()
	}
	return t, true
}
