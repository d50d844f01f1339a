package artifactory

import (
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"slices"
	"strings"
	"time"
)

// principal is who a request runs as.
type principal struct {
	name      string
	admin     bool
	anonymous bool
	repos     []string // nil = all
}

func (p *principal) canRead(repo string) bool {
	return p.repos == nil || slices.Contains(p.repos, repo)
}

func (p *principal) canWrite(repo string) bool {
	return !p.anonymous && p.canRead(repo)
}

type authResult int

const (
	authOK authResult = iota
	authNone
	authBad
)

// IssueAccessToken returns a JWT-shaped access token for user (spec §1.1: usable as Bearer or as
// a Basic password).
func (e *Emulator) IssueAccessToken(user string) string {
	t := "eyJ2ZXIiOiIyIiwidHlwIjoiSldUIiwiYWxnIjoiUlMyNTYifQ." + randomToken(48) + "." + randomToken(64)
	e.mu.Lock()
	e.tokens[t] = tokenInfo{user: user, kind: "access"}
	e.mu.Unlock()
	return t
}

// IssueReferenceToken returns a 64-character reference token ("cmVmdGtu..." = base64 "reftkn"),
// usable as Bearer, password or X-JFrog-Art-Api.
func (e *Emulator) IssueReferenceToken(user string) string {
	t := ("cmVmdGtu" + randomToken(48))[:64]
	e.mu.Lock()
	e.tokens[t] = tokenInfo{user: user, kind: "reference"}
	e.mu.Unlock()
	return t
}

// IssueAPIKey returns a legacy API key ("AKCp8...", 73 characters); it works only with
// Options.EnableAPIKeys.
func (e *Emulator) IssueAPIKey(user string) string {
	k := ("AKCp8" + randomToken(60) + randomToken(60))[:73]
	e.mu.Lock()
	e.apiKeys[k] = user
	e.mu.Unlock()
	return k
}

// RevokeTokens forgets every issued token and Docker token.
func (e *Emulator) RevokeTokens() {
	e.mu.Lock()
	e.tokens = map[string]tokenInfo{}
	e.apiKeys = map[string]string{}
	e.mu.Unlock()
}

func (e *Emulator) principalFor(name string) *principal {
	u, ok := e.users[name]
	if !ok {
		return nil
	}
	return &principal{name: u.Name, admin: u.Admin, repos: u.Repos}
}

// authenticate resolves the request's credentials. docker allows Docker registry tokens.
func (e *Emulator) authenticate(r *http.Request, docker bool) (*principal, authResult) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.opts.Now()
	lookupToken := func(t string, kinds ...string) *principal {
		ti, ok := e.tokens[t]
		if !ok || !slices.Contains(kinds, ti.kind) || (!ti.expires.IsZero() && now.After(ti.expires)) {
			return nil
		}
		if ti.user == "anonymous" {
			return &principal{name: "anonymous", anonymous: true}
		}
		return e.principalFor(ti.user)
	}
	if k := r.Header.Get("X-JFrog-Art-Api"); k != "" {
		if p := lookupToken(k, "reference"); p != nil {
			return p, authOK
		}
		if u, ok := e.apiKeys[k]; ok && e.opts.EnableAPIKeys {
			if p := e.principalFor(u); p != nil {
				return p, authOK
			}
		}
		return nil, authBad
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, authNone
	}
	scheme, cred, _ := strings.Cut(h, " ")
	cred = strings.TrimSpace(cred)
	switch strings.ToLower(scheme) {
	case "bearer":
		kinds := []string{"access", "reference"}
		if docker {
			kinds = append(kinds, "docker")
		}
		if p := lookupToken(cred, kinds...); p != nil {
			return p, authOK
		}
		return nil, authBad
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(cred)
		if err != nil {
			return nil, authBad
		}
		user, secret, ok := strings.Cut(string(raw), ":")
		if !ok {
			return nil, authBad
		}
		if u, ok := e.users[user]; ok && u.Password != "" &&
			subtle.ConstantTimeCompare([]byte(u.Password), []byte(secret)) == 1 {
			return e.principalFor(user), authOK
		}
		if ti, ok := e.tokens[secret]; ok && (ti.kind == "access" || ti.kind == "reference") && ti.user == user {
			return e.principalFor(user), authOK
		}
		if owner, ok := e.apiKeys[secret]; ok && e.opts.EnableAPIKeys && owner == user {
			return e.principalFor(user), authOK
		}
		return nil, authBad
	}
	return nil, authBad
}

// restAuth authenticates a REST call; on failure it writes the 401 and returns nil.
// anonymousOK says whether the endpoint runs for the anonymous user when that is enabled.
func (e *Emulator) restAuth(w http.ResponseWriter, r *http.Request, anonymousOK bool) *principal {
	p, res := e.authenticate(r, false)
	switch res {
	case authOK:
		if p == nil {
			writeRESTError(w, http.StatusUnauthorized, "Bad credentials")
		}
		return p
	case authBad:
		writeRESTError(w, http.StatusUnauthorized, "Bad credentials")
		return nil
	}
	if e.opts.AllowAnonymous && anonymousOK {
		return &principal{name: "anonymous", anonymous: true}
	}
	writeRESTError(w, http.StatusUnauthorized, "Authentication is required")
	return nil
}

// issueDockerToken answers the token endpoint (spec §1.2): GET with Basic (or a platform
// token), 405 on POST, anonymous only when allowed.
func (e *Emulator) issueDockerToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeRESTError(w, http.StatusMethodNotAllowed, "Method Not Allowed")
		return
	}
	p := e.restAuth(w, r, true)
	if p == nil {
		return
	}
	t := "AKCp5" + randomToken(54)
	const ttl = 3600
	e.mu.Lock()
	e.tokens[t] = tokenInfo{user: p.name, kind: "docker", expires: e.opts.Now().Add(ttl * time.Second)}
	e.mu.Unlock()
	b, _ := marshalCompact(struct {
		Token     string `json:"token"`
		ExpiresIn int    `json:"expires_in"`
	}{t, ttl})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}
