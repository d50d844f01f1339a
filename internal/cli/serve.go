package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/crowsnest-dev/crowsnest/internal/queue"
	"github.com/crowsnest-dev/crowsnest/internal/server"
)

func newServeCmd(g *globals) *cobra.Command {
	var listen string
	var maxBody int64
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the JSON API over the store (docs/API.md)",
		Long: `Serve crowsnest's JSON API: stored images, vulnerabilities, packages, comparisons, SBOM
downloads, finding-change events, SBOM pushes from agents; /healthz, /readyz and Prometheus
/metrics. Every /api route needs a bearer token (crowsnest token create). SIGTERM or SIGINT stops
the server gracefully.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			svc, closeStore, err := g.openService(ctx)
			if err != nil {
				return err
			}
			defer closeStore()
			log, _ := g.logger()
			metrics := server.NewMetrics()
			if err := metrics.WatchStore(svc.Store); err != nil {
				return err
			}
			// An insert-only handle on the watcher's queue, for the queue-depth gauge.
			q, err := queue.Open(ctx, g.dbDSN(), queue.Config{Logger: log})
			if err != nil {
				return err
			}
			defer q.Close()
			if err := metrics.WatchQueue(q); err != nil {
				return err
			}
			srv, err := server.New(server.Config{Service: svc, Metrics: metrics, Log: log, MaxBodyBytes: maxBody})
			if err != nil {
				return err
			}
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
			log.Info("serving the API", "addr", ln.Addr().String(), "db", redactDSN(g.dbDSN()))
			errc := make(chan error, 1)
			go func() { errc <- hs.Serve(ln) }()
			select {
			case err := <-errc:
				return fmt.Errorf("serve: %w", err)
			case <-ctx.Done():
			}
			log.Info("shutting down")
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if err := hs.Shutdown(sctx); err != nil {
				return fmt.Errorf("shutdown: %w", err)
			}
			if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&listen, "listen", envOr("CROWSNEST_LISTEN", "127.0.0.1:8080"), "address to listen on (env CROWSNEST_LISTEN)")
	cmd.Flags().Int64Var(&maxBody, "max-body", server.DefaultMaxBodyBytes, "largest accepted request body in bytes (pushed SBOMs)")
	return cmd
}
