// Package dashboard is crowsnest's web dashboard: server-rendered pages over the store (overview,
// images, image detail, vulnerabilities, packages, compare, settings) behind a token sign-in.
// Templates, CSS and the little JavaScript it has are embedded in the binary; pages work without
// JavaScript. It mounts into the API server (server.Config.Dashboard) at "/" and "/ui/".
package dashboard

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/server"
	"github.com/crowsnest-dev/crowsnest/internal/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Prefix is where the dashboard's pages live.
const Prefix = "/ui/"

// pageSize is the number of rows of a paged list.
const pageSize = 50

// Config configures a Dashboard.
type Config struct {
	Store *store.Store
	Log   *slog.Logger
	// Metrics, when set, gives the settings page the webhook deliveries this process received.
	Metrics *server.Metrics
	// Now is the clock (tests fix it).
	Now func() time.Time
	// RequestTimeout bounds the work of one page (default 30s).
	RequestTimeout time.Duration
}

// Dashboard serves the web dashboard.
type Dashboard struct {
	st      *store.Store
	log     *slog.Logger
	metrics *server.Metrics
	nowFn   func() time.Time
	timeout time.Duration
	pages   map[string]*template.Template
	handler http.Handler
}

// New builds the dashboard over cfg.Store.
func New(cfg Config) (*Dashboard, error) {
	if cfg.Store == nil {
		return nil, errors.New("dashboard: no store")
	}
	d := &Dashboard{st: cfg.Store, log: cfg.Log, metrics: cfg.Metrics, nowFn: cfg.Now, timeout: cfg.RequestTimeout}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.timeout <= 0 {
		d.timeout = 30 * time.Second
	}
	if err := d.parse(); err != nil {
		return nil, err
	}
	d.routes()
	return d, nil
}

func (d *Dashboard) now() time.Time {
	if d.nowFn != nil {
		return d.nowFn().UTC()
	}
	return time.Now().UTC()
}

// ServeHTTP implements http.Handler.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) { d.handler.ServeHTTP(w, r) }

var pageNames = []string{"overview", "images", "image", "vulns", "vuln", "packages", "compare", "settings", "search", "signin", "error"}

func (d *Dashboard) parse() error {
	d.pages = map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return fmt.Errorf("dashboard template %s: %w", name, err)
		}
		d.pages[name] = t
	}
	return nil
}

func (d *Dashboard) routes() {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix(Prefix+"static/", http.FileServerFS(static))
	mux.Handle("GET "+Prefix+"static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	}))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Prefix, http.StatusFound)
	})
	mux.HandleFunc("GET /ui", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Prefix, http.StatusFound)
	})
	mux.HandleFunc("GET "+Prefix+"signin", d.signinForm)
	mux.HandleFunc("POST "+Prefix+"signin", d.signin)
	mux.HandleFunc("POST "+Prefix+"signout", d.signout)
	d.page(mux, "GET "+Prefix+"{$}", d.overview)
	d.page(mux, "GET "+Prefix+"images", d.images)
	d.page(mux, "GET "+Prefix+"images/{digest}", d.image)
	d.page(mux, "GET "+Prefix+"vulnerabilities", d.vulns)
	d.page(mux, "GET "+Prefix+"vulnerabilities/{id}", d.vuln)
	d.page(mux, "GET "+Prefix+"packages", d.packages)
	d.page(mux, "GET "+Prefix+"compare", d.compare)
	d.page(mux, "GET "+Prefix+"settings", d.settings)
	d.page(mux, "GET "+Prefix+"search", d.search)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		d.render(w, r, http.StatusNotFound, "error", &view{Title: "Not found", Data: errorView{Message: "There is no page at " + r.URL.Path + "."}})
	})
	// Sign-in and sign-out are the only state-changing requests; cross-origin ones are refused
	// (Sec-Fetch-Site / Origin), on top of the SameSite=Strict session cookie.
	d.handler = secureHeaders(http.NewCrossOriginProtection().Handler(mux))
}

// page registers a page that needs a signed-in reader.
func (d *Dashboard) page(mux *http.ServeMux, pattern string, h func(w http.ResponseWriter, r *http.Request, v *view) error) {
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		tok, ok := d.session(w, r)
		if !ok {
			next := r.URL.RequestURI()
			http.Redirect(w, r, Prefix+"signin?next="+url.QueryEscape(next), http.StatusSeeOther)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), d.timeout)
		defer cancel()
		r = r.WithContext(ctx)
		v := &view{Token: tok, CSRF: csrfToken(r), Path: r.URL.Path, Query: r.URL.Query().Get("q")}
		if err := h(w, r, v); err != nil {
			d.fail(w, r, err)
		}
	})
}

func secureHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "+
			"form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("X-Frame-Options", "DENY")
		h.ServeHTTP(w, r)
	})
}

// view is what every page template gets.
type view struct {
	Title string
	// Nav names the highlighted menu entry.
	Nav   string
	Token tokenInfo
	CSRF  string
	Path  string
	// Query is the search box's text.
	Query string
	Data  any
}

type errorView struct {
	Message string
}

// render executes a page into a buffer first, so a template error becomes a clean 500.
func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, code int, name string, v *view) {
	var buf bytes.Buffer
	if err := d.pages[name].ExecuteTemplate(&buf, "layout", v); err != nil {
		d.log.Error("dashboard render", "page", name, "path", r.URL.Path, "err", err)
		http.Error(w, "internal error (see the server log)", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// fail shows a store error: 400 for a bad query, 404 for a missing record, 500 otherwise (the
// detail goes to the log).
func (d *Dashboard) fail(w http.ResponseWriter, r *http.Request, err error) {
	code, msg := http.StatusInternalServerError, "Something went wrong; the server log has the details."
	switch {
	case errors.Is(err, store.ErrBadQuery):
		code, msg = http.StatusBadRequest, err.Error()
	case errors.Is(err, store.ErrNotFound):
		code, msg = http.StatusNotFound, "Not found: "+err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		code, msg = http.StatusServiceUnavailable, "The page took too long to build."
	default:
		d.log.Error("dashboard", "path", r.URL.Path, "err", err)
	}
	tok, _ := d.session(nil, r)
	d.render(w, r, code, "error", &view{Title: http.StatusText(code), Token: tok, CSRF: csrfToken(r), Data: errorView{Message: msg}})
}

// pager is the paging of a list page.
type pager struct {
	Total, From, To int
	Prev, Next      string
}

// pageOf reads ?page= (1-based) and returns the store page.
func pageOf(r *http.Request) (store.Page, int) {
	n, err := strconv.Atoi(r.URL.Query().Get("page"))
	if err != nil || n < 1 {
		n = 1
	}
	n = min(n, 1<<20)
	return store.Page{Limit: pageSize, Offset: (n - 1) * pageSize}, n
}

func makePager(r *http.Request, p store.Page, n, shown, total int) pager {
	pg := pager{Total: total}
	if shown > 0 {
		pg.From, pg.To = p.Offset+1, p.Offset+shown
	}
	link := func(page int) string {
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(page))
		return r.URL.Path + "?" + q.Encode()
	}
	if n > 1 {
		pg.Prev = link(n - 1)
	}
	if p.Offset+shown < total {
		pg.Next = link(n + 1)
	}
	return pg
}
