// Package server is crowsnest's JSON API (docs/API.md): stored images, packages, vulnerabilities,
// comparisons, SBOM downloads and finding-change events for readers, an SBOM push endpoint for
// agents, bearer-token authentication with scopes, health checks and Prometheus metrics.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/crowsnest-dev/crowsnest/internal/findings"
	"github.com/crowsnest-dev/crowsnest/internal/store"
)

// DefaultMaxBodyBytes bounds a pushed SBOM. A 300-package SBOM is about 200 KB; images with tens
// of thousands of packages stay well below this.
const DefaultMaxBodyBytes = 64 << 20

// Config configures a Server.
type Config struct {
	Service *findings.Service
	// Metrics receives the API's counters and is served on /metrics; nil creates one.
	Metrics *Metrics
	Log     *slog.Logger
	// MaxBodyBytes bounds a request body (default DefaultMaxBodyBytes).
	MaxBodyBytes int64
	// RequestTimeout bounds the work of one request (default 60s).
	RequestTimeout time.Duration
	// Now is the clock (tests fix it).
	Now func() time.Time
	// Dashboard, when set, serves every path outside the API, health and metrics routes (the
	// web dashboard, internal/dashboard); it does its own authentication.
	Dashboard http.Handler
}

// Server serves the API.
type Server struct {
	svc     *findings.Service
	store   *store.Store
	metrics *Metrics
	log     *slog.Logger
	maxBody int64
	timeout time.Duration
	nowFn   func() time.Time
	mux     *http.ServeMux
	ui      http.Handler
}

// New builds a server over cfg.Service's store.
func New(cfg Config) (*Server, error) {
	if cfg.Service == nil || cfg.Service.Store == nil {
		return nil, errors.New("server: no findings service or store")
	}
	s := &Server{svc: cfg.Service, store: cfg.Service.Store, metrics: cfg.Metrics, log: cfg.Log,
		maxBody: cfg.MaxBodyBytes, timeout: cfg.RequestTimeout, nowFn: cfg.Now, ui: cfg.Dashboard}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.metrics == nil {
		s.metrics = NewMetrics()
	}
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBodyBytes
	}
	if s.timeout <= 0 {
		s.timeout = 60 * time.Second
	}
	s.routes()
	return s, nil
}

func (s *Server) now() time.Time {
	if s.nowFn != nil {
		return s.nowFn()
	}
	return time.Now()
}

// Metrics returns the server's metrics (the watcher registers its counters there).
func (s *Server) Metrics() *Metrics { return s.metrics }

// Handler returns the HTTP handler of the whole API.
func (s *Server) Handler() http.Handler { return s.mux }

func (s *Server) routes() {
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{}))

	s.handle("GET /api/v1/images", ScopeRead, s.listImages)
	s.handle("POST /api/v1/images", ScopePush, s.pushImage)
	s.handle("GET /api/v1/images/{digest}", ScopeRead, s.imageDetail)
	s.handle("GET /api/v1/images/{digest}/sbom", ScopeRead, s.imageSBOM)
	s.handle("GET /api/v1/vulnerabilities", ScopeRead, s.listVulnerabilities)
	s.handle("GET /api/v1/vulnerabilities/{id}", ScopeRead, s.vulnerabilityDetail)
	s.handle("GET /api/v1/packages", ScopeRead, s.packages)
	s.handle("GET /api/v1/compare", ScopeRead, s.compare)
	s.handle("GET /api/v1/events", ScopeRead, s.events)
	s.handle("GET /api/v1/tokens", ScopeAdmin, s.listTokens)
	s.handle("POST /api/v1/tokens", ScopeAdmin, s.createToken)
	s.handle("DELETE /api/v1/tokens/{id}", ScopeAdmin, s.revokeToken)
	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such API route: "+r.Method+" "+r.URL.Path)
	})
	if s.ui != nil {
		s.mux.Handle("/", s.ui)
	}
}

// handle registers an authenticated API route that needs scope.
func (s *Server) handle(pattern, scope string, h func(http.ResponseWriter, *http.Request)) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		defer func() {
			s.metrics.Requests.WithLabelValues(pattern, strconv.Itoa(rec.code)).Inc()
			s.metrics.RequestDuration.WithLabelValues(pattern).Observe(time.Since(start).Seconds())
		}()
		ctx, cancel := context.WithTimeout(r.Context(), s.timeout)
		defer cancel()
		r = r.WithContext(ctx)
		if _, ok := s.authenticate(rec, r, scope); !ok {
			return
		}
		h(rec, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.log.Warn("not ready", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": "database unreachable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

type apiError struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, apiError{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// fail answers a store error: 400 for a bad query, 404 for a missing record, 500 otherwise (the
// detail goes to the log, not to the client).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, store.ErrBadQuery):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusServiceUnavailable, "request timed out")
	default:
		s.log.Error("api", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal error (see the server log)")
	}
}

// page reads limit and offset; ok is false after a 400 was written.
func page(w http.ResponseWriter, r *http.Request, def, maxLimit int) (store.Page, bool) {
	p := store.Page{Limit: def}
	q := r.URL.Query()
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			writeError(w, http.StatusBadRequest, "limit must be an integer from 1 to "+strconv.Itoa(maxLimit))
			return p, false
		}
		p.Limit = n
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 1<<30 {
			writeError(w, http.StatusBadRequest, "offset must be a non-negative integer")
			return p, false
		}
		p.Offset = n
	}
	return p, true
}

// Paging is the paging part of every list answer.
type Paging struct {
	Total  int `json:"total"`
	Limit  int `json:"limit"`
	Offset int `json:"offset"`
	// NextOffset is the offset of the next page; absent on the last page.
	NextOffset *int `json:"nextOffset,omitempty"`
}

func paging(p store.Page, n, total int) Paging {
	out := Paging{Total: total, Limit: p.Limit, Offset: p.Offset}
	if next := p.Offset + n; n > 0 && next < total {
		out.NextOffset = &next
	}
	return out
}
