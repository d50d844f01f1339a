package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/riverqueue/river"
	"github.com/spf13/cobra"

	"github.com/crowsnest-dev/crowsnest/internal/dashboard"
	"github.com/crowsnest-dev/crowsnest/internal/dsn"
	"github.com/crowsnest-dev/crowsnest/internal/findings"
	"github.com/crowsnest-dev/crowsnest/internal/notify"
	"github.com/crowsnest-dev/crowsnest/internal/queue"
	"github.com/crowsnest-dev/crowsnest/internal/refresh"
	"github.com/crowsnest-dev/crowsnest/internal/server"
)

func newServeCmd(g *globals) *cobra.Command {
	var (
		listen          string
		maxBody         int64
		advisoryRefresh time.Duration
		osvMirror       string
		notifyInterval  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the JSON API and the web dashboard over the store (docs/API.md)",
		Long: `Serve crowsnest's JSON API: stored images, vulnerabilities, packages, comparisons, SBOM
downloads, finding-change events, SBOM pushes from agents; /healthz, /readyz and Prometheus
/metrics; the web dashboard at /ui/ (sign in with a token). Every /api route needs a bearer
token (crowsnest token create). SIGTERM or SIGINT stops
the server gracefully.

Several replicas may share one PostgreSQL (--db postgres://...) with watchers: the advisory
refresh (--advisory-refresh, give every process the same value) runs once at a time, on the
queue's elected leader.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			svc, closeStore, err := g.openImportingService(ctx)
			if err != nil {
				return err
			}
			defer closeStore()
			log, _ := g.logger()
			workers := river.NewWorkers()
			periodic := refresh.Register(workers, svc, refresh.Config{Interval: advisoryRefresh, Mirror: osvMirror,
				TempDir: filepath.Join(g.dataDir, "tmp"), Log: log})
			// Notification sends share the queue; more than one worker keeps them from waiting behind
			// an hour-long advisory refresh (which is unique per interval, so it never runs twice).
			registerNotify(workers, svc.Store, log)
			q, err := queue.Open(ctx, g.dbDSN(), queue.Config{Workers: workers, MaxWorkers: 4, PeriodicJobs: periodic, Logger: log,
				SQLiteDB: svc.Store.WriterDB()})
			if err != nil {
				return err
			}
			defer q.Close()
			if err := q.Start(ctx); err != nil {
				return fmt.Errorf("start the job queue: %w", err)
			}
			defer func() {
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
				defer cancel()
				q.Stop(sctx)
			}()
			stopNotify, err := startNotifications(ctx, log, svc.Store, g.dbDSN(), q, notifyInterval)
			if err != nil {
				return err
			}
			defer stopNotify()
			metrics := server.NewMetrics()
			return serveAPI(ctx, log, svc, q, metrics, listen, maxBody, g.dbDSN())
		},
	}
	cmd.Flags().StringVar(&listen, "listen", envOr("CROWSNEST_LISTEN", "127.0.0.1:8080"), "address to listen on (env CROWSNEST_LISTEN)")
	cmd.Flags().Int64Var(&maxBody, "max-body", server.DefaultMaxBodyBytes, "largest accepted request body in bytes (pushed SBOMs)")
	cmd.Flags().DurationVar(&advisoryRefresh, "advisory-refresh", 0, "refresh advisories this often and re-match stored images, e.g. 6h (0: never)")
	cmd.Flags().StringVar(&osvMirror, "osv-mirror", os.Getenv("CROWSNEST_OSV_MIRROR"), "base URL of an OSV mirror for --advisory-refresh")
	cmd.Flags().DurationVar(&notifyInterval, "notify-interval", defaultNotifyInterval, "how often new finding changes are turned into notifications (crowsnest notify)")
	return cmd
}

// serveAPI serves the JSON API, the web dashboard (/ui/), metrics and health on listen until ctx ends, then shuts down
// gracefully.
func serveAPI(ctx context.Context, log *slog.Logger, svc *findings.Service, q queue.Queue, metrics *server.Metrics, listen string, maxBody int64, database string) error {
	if err := metrics.WatchStore(svc.Store); err != nil {
		return err
	}
	if err := metrics.WatchQueue(q); err != nil {
		return err
	}
	ui, err := dashboard.New(dashboard.Config{Store: svc.Store, Log: log, Metrics: metrics})
	if err != nil {
		return err
	}
	srv, err := server.New(server.Config{Service: svc, Metrics: metrics, Log: log, MaxBodyBytes: maxBody, Dashboard: ui})
	if err != nil {
		return err
	}
	(&notify.API{Store: svc.Store, Sender: &notify.Sender{Store: svc.Store, Log: log}, Log: log}).Register(srv)
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", listen, err)
	}
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       5 * time.Minute,
		WriteTimeout:      5 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	log.Info("serving the API", "addr", ln.Addr().String(), "db", dsn.Redact(database))
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down the API")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// watchMetrics feeds the watcher's counters into the API's Prometheus registry.
type watchMetrics struct{ m *server.Metrics }

func (w watchMetrics) IndexFinished(outcome string, took time.Duration) {
	w.m.IndexJobs.WithLabelValues(outcome).Inc()
	if outcome == "ok" {
		w.m.IndexDuration.Observe(took.Seconds())
	}
}

func (w watchMetrics) WebhookDelivery(result string) {
	w.m.WebhookDeliveries.WithLabelValues(result).Inc()
}
