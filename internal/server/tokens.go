package server

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/store"
)

// TokenInfo describes a stored token; the secret itself is never stored nor shown again.
type TokenInfo struct {
	ID       string     `json:"id"`
	Name     string     `json:"name"`
	Scope    string     `json:"scope"`
	Created  time.Time  `json:"created"`
	LastUsed *time.Time `json:"lastUsed,omitempty"`
}

// Info returns what may be shown of t.
func Info(t store.Token) TokenInfo {
	out := TokenInfo{ID: t.ID, Name: t.Name, Scope: t.Scope, Created: t.Created.UTC()}
	if !t.LastUsed.IsZero() {
		lu := t.LastUsed.UTC()
		out.LastUsed = &lu
	}
	return out
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	ts, err := s.store.Tokens(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := struct {
		Tokens []TokenInfo `json:"tokens"`
	}{Tokens: make([]TokenInfo, len(ts))}
	for i, t := range ts {
		out.Tokens[i] = Info(t)
	}
	writeJSON(w, http.StatusOK, out)
}

// CreatedToken is the answer of POST /api/v1/tokens: the only time the secret is shown.
type CreatedToken struct {
	TokenInfo
	Token string `json:"token"`
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name  string `json:"name"`
		Scope string `json:"scope"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body: want {\"name\": ..., \"scope\": \"read|push|admin\"}: "+err.Error())
		return
	}
	if len(req.Name) > 200 {
		writeError(w, http.StatusBadRequest, "name is longer than 200 bytes")
		return
	}
	secret, t, err := NewToken(req.Name, req.Scope, s.now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := s.store.CreateToken(r.Context(), t); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, CreatedToken{TokenInfo: Info(t), Token: secret})
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	err := s.store.RevokeToken(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no token "+r.PathValue("id"))
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
