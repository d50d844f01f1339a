package watch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path"
	"strconv"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/queue"
	"github.com/crowsnest-dev/crowsnest/internal/registry"
	"github.com/crowsnest-dev/crowsnest/internal/webhook"
)

// maxWebhookBody bounds a webhook request; Artifactory's and the registry's payloads are small.
const maxWebhookBody = 1 << 20

type webhookServer struct {
	srv *http.Server
	ln  net.Listener
}

func (s *webhookServer) serve() error {
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (s *webhookServer) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.srv.Shutdown(ctx)
}

// WebhookAddr is the address the receiver listens on.
func (w *Watcher) WebhookAddr() string {
	if w.opts.WebhookAddr != "" {
		return w.opts.WebhookAddr
	}
	return ":" + strconv.Itoa(w.opts.Registry.Port)
}

func (w *Watcher) startWebhooks() (*webhookServer, error) {
	ln, err := net.Listen("tcp", w.WebhookAddr())
	if err != nil {
		return nil, fmt.Errorf("webhook receiver: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /", w.handleWebhook)
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) { rw.Write([]byte("ok\n")) })
	w.log.Info("webhook receiver listening", "addr", ln.Addr().String(), "type", w.opts.Registry.Type)
	return &webhookServer{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}}, nil
}

// handleWebhook verifies and parses a delivery and answers 2xx only once every event it carries is
// committed to the job queue: an acknowledged push is never lost. Redeliveries of the same event
// are deduplicated by the queue.
func (w *Watcher) handleWebhook(rw http.ResponseWriter, r *http.Request) {
	var events []webhook.Event
	var err error
	creds := w.opts.Registry.Creds
	if w.opts.Registry.Type == registry.TypeArtifactory {
		events, err = webhook.ParseArtifactory(r, creds.WebhookSecret.Value(), maxWebhookBody)
	} else {
		events, err = webhook.ParseDistribution(r, creds.WebhookToken.Value(), maxWebhookBody)
	}
	if err != nil {
		status := http.StatusBadRequest
		switch {
		case errors.Is(err, webhook.ErrUnauthorized):
			status = http.StatusUnauthorized
		case errors.Is(err, webhook.ErrTooLarge):
			status = http.StatusRequestEntityTooLarge
		}
		w.log.Warn("webhook rejected", "status", status, "remote", r.RemoteAddr, "err", err)
		w.opts.Metrics.WebhookDelivery("rejected")
		http.Error(rw, err.Error(), status)
		return
	}
	accepted, ignored := 0, 0
	for _, ev := range events {
		ok, err := w.intake(r.Context(), ev)
		if err != nil {
			// Not stored: make the sender try again.
			w.log.Error("webhook event not stored", "event", ev.ID, "err", err)
			w.opts.Metrics.WebhookDelivery("error")
			http.Error(rw, "could not store the event; retry", http.StatusServiceUnavailable)
			return
		}
		if ok {
			accepted++
		} else {
			ignored++
		}
	}
	w.opts.Metrics.WebhookDelivery("accepted")
	rw.Header().Set("Content-Type", "application/json")
	json.NewEncoder(rw).Encode(map[string]int{"accepted": accepted, "ignored": ignored})
}

// intake queues the job an event calls for; ok is false when the event is not for us.
func (w *Watcher) intake(ctx context.Context, ev webhook.Event) (bool, error) {
	repo := ev.Repository
	if ev.RepoKey != "" {
		repo = ev.RepoKey + "/" + ev.Repository
	}
	if ev.Kind == webhook.Ignored || ev.Tag == "" || !w.repositoryWanted(repo) || !w.configuredRepository(ev.RepoKey) ||
		!w.opts.Registry.Allows(repo) {
		w.log.Debug("webhook event ignored", "event", ev.ID, "kind", ev.Kind, "repository", repo, "reason", ev.Reason)
		return false, nil
	}
	switch ev.Kind {
	case webhook.Push:
		if !w.tagWanted(ev.Tag) {
			return false, nil
		}
		digest := ev.Digest
		if digest == "" {
			var err error
			if digest, err = w.resolve(ctx, repo, ev.Tag); err != nil {
				return false, err
			}
		}
		// A tag already at this digest is indexed, or was present when the watcher started (the
		// baseline of a run without --all-images); polling would not queue it either. This keeps
		// out a registry's late delivery of a push made before the start (the distribution
		// registry retries undelivered notifications until they succeed) and redeliveries of
		// events already handled.
		current, err := w.svc.Store.TagDigest(ctx, repo, ev.Tag)
		if err != nil {
			return false, err
		}
		if current == digest {
			w.log.Debug("push of a known tag ignored", "repository", repo, "tag", ev.Tag, "digest", digest)
			return false, nil
		}
		_, err = w.Enqueue(ctx, repo, ev.Tag, digest, "push")
		w.log.Info("push received", "repository", repo, "tag", ev.Tag, "digest", digest)
		return err == nil, err
	case webhook.Delete:
		_, err := w.queue.Insert(ctx, DeleteTagArgs{Repository: repo, Tag: ev.Tag, Digest: ev.Digest}, insertOpts(queue.PriorityPush))
		return err == nil, err
	}
	return false, nil
}

// configuredRepository keeps events of repository keys the watcher was not configured for out.
func (w *Watcher) configuredRepository(key string) bool {
	keys := w.opts.Registry.Repositories
	if key == "" || len(keys) == 0 || w.opts.Registry.Type != registry.TypeArtifactory {
		return true
	}
	for _, k := range keys {
		if k == key {
			return true
		}
		if ok, _ := path.Match(k, key); ok {
			return true
		}
	}
	return false
}
