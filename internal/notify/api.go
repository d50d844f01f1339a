package notify

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/server"
	"github.com/crowsnest-dev/crowsnest/internal/store"
)

// maxInputBytes bounds an integration in a request body.
const maxInputBytes = 64 << 10

// IntegrationView is an integration as the API shows it: never its secret, and its URL with
// what may be secret redacted.
type IntegrationView struct {
	Name         string    `json:"name"`
	Kind         string    `json:"kind"`
	URL          string    `json:"url"`
	HasSecret    bool      `json:"hasSecret"`
	MinSeverity  string    `json:"minSeverity,omitempty"`
	FixableOnly  bool      `json:"fixableOnly"`
	Repositories []string  `json:"repositories"`
	Events       []string  `json:"events"`
	DashboardURL string    `json:"dashboardUrl,omitempty"`
	CloudEvents  bool      `json:"cloudEvents"`
	Enabled      bool      `json:"enabled"`
	Created      time.Time `json:"created"`
	Updated      time.Time `json:"updated"`
}

// View returns in as the API and the CLI show it.
func View(in store.Integration) IntegrationView {
	return IntegrationView{Name: in.Name, Kind: in.Kind, URL: RedactURL(in.Kind, in.URL), HasSecret: in.Secret != "",
		MinSeverity: in.MinSeverity, FixableOnly: in.FixableOnly, Repositories: nonNil(in.Repositories), Events: nonNil(in.Events),
		DashboardURL: in.DashboardURL, CloudEvents: in.CloudEvents, Enabled: in.Enabled, Created: in.Created.UTC(), Updated: in.Updated.UTC()}
}

// IntegrationInput is the body of POST /api/v1/integrations and PUT /api/v1/integrations/{name}.
type IntegrationInput struct {
	Name         string   `json:"name"`
	Kind         string   `json:"kind"`
	URL          string   `json:"url"`
	Secret       string   `json:"secret,omitempty"`
	MinSeverity  string   `json:"minSeverity,omitempty"`
	FixableOnly  bool     `json:"fixableOnly,omitempty"`
	Repositories []string `json:"repositories,omitempty"`
	Events       []string `json:"events,omitempty"`
	DashboardURL string   `json:"dashboardUrl,omitempty"`
	CloudEvents  bool     `json:"cloudEvents,omitempty"`
	// Enabled defaults to true.
	Enabled *bool `json:"enabled,omitempty"`
}

// DeliveryView is a delivery in the delivery log.
type DeliveryView struct {
	ID          string          `json:"id"`
	Integration string          `json:"integration"`
	Event       string          `json:"event"`
	ImageDigest string          `json:"imageDigest"`
	Repository  string          `json:"repository"`
	State       string          `json:"state"`
	Attempts    int             `json:"attempts"`
	LastStatus  int             `json:"lastStatus,omitempty"`
	LastError   string          `json:"lastError,omitempty"`
	Created     time.Time       `json:"created"`
	Updated     time.Time       `json:"updated"`
	Sent        *time.Time      `json:"sent,omitempty"`
	Payload     json.RawMessage `json:"payload,omitempty"`
}

// DeliveryOf returns d as the API shows it; the payload only when withPayload.
func DeliveryOf(d store.Delivery, withPayload bool) DeliveryView {
	v := DeliveryView{ID: d.ID, Integration: d.Integration, Event: d.Event, ImageDigest: d.ImageDigest, Repository: d.Repository,
		State: d.State, Attempts: d.Attempts, LastStatus: d.LastStatus, LastError: d.LastError, Created: d.Created.UTC(), Updated: d.Updated.UTC()}
	if !d.Sent.IsZero() {
		t := d.Sent.UTC()
		v.Sent = &t
	}
	if withPayload && json.Valid(d.Payload) {
		v.Payload = d.Payload
	}
	return v
}

// API serves the integration and delivery routes.
type API struct {
	Store  *store.Store
	Sender *Sender
	Log    *slog.Logger
}

// Register adds the routes to srv: reading needs the read scope, changing the admin scope.
func (a *API) Register(srv *server.Server) {
	srv.Handle("GET /api/v1/integrations", server.ScopeRead, a.list)
	srv.Handle("POST /api/v1/integrations", server.ScopeAdmin, a.create)
	srv.Handle("GET /api/v1/integrations/{name}", server.ScopeRead, a.get)
	srv.Handle("PUT /api/v1/integrations/{name}", server.ScopeAdmin, a.replace)
	srv.Handle("DELETE /api/v1/integrations/{name}", server.ScopeAdmin, a.remove)
	srv.Handle("POST /api/v1/integrations/{name}/test", server.ScopeAdmin, a.test)
	srv.Handle("GET /api/v1/deliveries", server.ScopeRead, a.deliveries)
	srv.Handle("GET /api/v1/deliveries/{id}", server.ScopeRead, a.delivery)
}

func (a *API) log() *slog.Logger {
	if a.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Log
}

func (a *API) list(w http.ResponseWriter, r *http.Request) {
	all, err := a.Store.Integrations(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]IntegrationView, 0, len(all))
	for _, in := range all {
		out = append(out, View(in))
	}
	writeJSON(w, http.StatusOK, map[string]any{"integrations": out})
}

func (a *API) get(w http.ResponseWriter, r *http.Request) {
	in, err := a.Store.Integration(r.Context(), r.PathValue("name"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, View(in))
}

func (a *API) create(w http.ResponseWriter, r *http.Request) { a.put(w, r, "", false) }

func (a *API) replace(w http.ResponseWriter, r *http.Request) { a.put(w, r, r.PathValue("name"), true) }

func (a *API) put(w http.ResponseWriter, r *http.Request, name string, replace bool) {
	var inp IntegrationInput
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxInputBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&inp); err != nil {
		writeError(w, http.StatusBadRequest, "bad integration JSON: "+err.Error())
		return
	}
	if name != "" {
		if inp.Name != "" && inp.Name != name {
			writeError(w, http.StatusBadRequest, "the body's name differs from the URL's")
			return
		}
		inp.Name = name
	}
	in := store.Integration{Name: inp.Name, Kind: inp.Kind, URL: inp.URL, Secret: inp.Secret, MinSeverity: inp.MinSeverity,
		FixableOnly: inp.FixableOnly, Repositories: inp.Repositories, Events: inp.Events, DashboardURL: inp.DashboardURL,
		CloudEvents: inp.CloudEvents, Enabled: inp.Enabled == nil || *inp.Enabled}
	if replace && in.Secret == "" && in.Kind == KindWebhook {
		// A PUT without a secret keeps the stored one: clients never see it to send it back.
		if old, err := a.Store.Integration(r.Context(), name); err == nil {
			in.Secret = old.Secret
		}
	}
	if err := Validate(in); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := a.Store.PutIntegration(r.Context(), in, replace); err != nil {
		if errors.Is(err, store.ErrDuplicate) {
			writeError(w, http.StatusConflict, "integration "+in.Name+" exists (PUT /api/v1/integrations/"+in.Name+" replaces it)")
			return
		}
		a.fail(w, r, err)
		return
	}
	stored, err := a.Store.Integration(r.Context(), in.Name)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	code := http.StatusCreated
	if replace {
		code = http.StatusOK
	}
	writeJSON(w, code, View(stored))
}

func (a *API) remove(w http.ResponseWriter, r *http.Request) {
	if err := a.Store.DeleteIntegration(r.Context(), r.PathValue("name")); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) test(w http.ResponseWriter, r *http.Request) {
	if err := a.Sender.Test(r.Context(), r.PathValue("name")); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			a.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusBadGateway, map[string]string{"status": "failed", "error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "sent"})
}

func (a *API) deliveries(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	dq := store.DeliveryQuery{Integration: q.Get("integration"), State: q.Get("state"), Limit: 100}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, "limit must be an integer from 1 to 1000")
			return
		}
		dq.Limit = n
	}
	switch dq.State {
	case "", store.DeliveryPending, store.DeliveryQueued, store.DeliverySent, store.DeliveryFailed:
	default:
		writeError(w, http.StatusBadRequest, "state must be pending, queued, sent or failed")
		return
	}
	list, err := a.Store.Deliveries(r.Context(), dq)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]DeliveryView, 0, len(list))
	for _, d := range list {
		out = append(out, DeliveryOf(d, false))
	}
	writeJSON(w, http.StatusOK, map[string]any{"deliveries": out})
}

func (a *API) delivery(w http.ResponseWriter, r *http.Request) {
	d, err := a.Store.Delivery(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, DeliveryOf(d, true))
}

func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	a.log().Error("api", "method", r.Method, "path", r.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, "internal error (see the server log)")
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
