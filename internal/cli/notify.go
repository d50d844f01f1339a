package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/riverqueue/river"
	"github.com/spf13/cobra"

	"github.com/crowsnest-dev/crowsnest/internal/notify"
	"github.com/crowsnest-dev/crowsnest/internal/queue"
	"github.com/crowsnest-dev/crowsnest/internal/report"
	"github.com/crowsnest-dev/crowsnest/internal/store"
)

// defaultNotifyInterval is how often the notification dispatcher reads new finding changes.
const defaultNotifyInterval = 5 * time.Second

func newNotifyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "notify",
		Short: "Notifications: Slack and signed webhooks when findings change (docs/NOTIFICATIONS.md)",
		Long: `Manage notification integrations in the store. crowsnest serve and crowsnest watch send
them: one message per image per change (an advisory update touching 500 images sends at most
500 messages), retried with backoff, each with a delivery id receivers dedupe by.`,
	}
	cmd.AddCommand(newNotifyAddCmd(g), newNotifyListCmd(g), newNotifyRemoveCmd(g), newNotifyTestCmd(g), newNotifyDeliveriesCmd(g))
	return cmd
}

func newNotifyAddCmd(g *globals) *cobra.Command {
	var (
		in         store.Integration
		secretFile string
		disabled   bool
		replace    bool
	)
	cmd := &cobra.Command{
		Use:   "add NAME --kind slack|webhook --url URL",
		Short: "Add (or with --replace, change) an integration",
		Long: `Add an integration. Slack: --url is an incoming-webhook URL (it is a secret: the API and
the CLI never show it whole). Webhook: requests carry X-Crowsnest-Signature (HMAC-SHA256 of the
body with the integration's secret), X-Crowsnest-Timestamp and X-Crowsnest-Delivery. The secret
comes from --secret-file or CROWSNEST_NOTIFY_SECRET; without either one is generated and printed
once. The URL may come from CROWSNEST_NOTIFY_URL instead of --url (kept out of the process list).`,
		Example: `  crowsnest notify add security --kind slack --url https://hooks.slack.com/services/T0/B0/XXXX --min-severity high --dashboard-url https://crowsnest.example.com
  crowsnest notify add siem --kind webhook --url https://siem.example.com/hook --cloudevents --repository 'prod/*' --event finding-added --event index-failed`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in.Name = args[0]
			in.Enabled = !disabled
			if in.URL == "" {
				in.URL = os.Getenv("CROWSNEST_NOTIFY_URL")
			}
			in.MinSeverity = strings.ToLower(in.MinSeverity)
			generated := false
			if in.Kind == notify.KindWebhook {
				switch {
				case secretFile != "":
					b, err := os.ReadFile(secretFile)
					if err != nil {
						return fmt.Errorf("--secret-file: %w", err)
					}
					in.Secret = strings.TrimSpace(string(b))
				case os.Getenv("CROWSNEST_NOTIFY_SECRET") != "":
					in.Secret = os.Getenv("CROWSNEST_NOTIFY_SECRET")
				default:
					s, err := notify.NewSecret()
					if err != nil {
						return err
					}
					in.Secret, generated = s, true
				}
			}
			if err := notify.Validate(in); err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			svc, closeStore, err := g.openService(cmd.Context())
			if err != nil {
				return err
			}
			defer closeStore()
			if err := svc.Store.PutIntegration(cmd.Context(), in, replace); err != nil {
				return err
			}
			if generated {
				fmt.Fprintln(g.stdout, in.Secret)
				fmt.Fprintf(g.stderr, "added integration %s; its signing secret (above) is shown only this once\n", in.Name)
			} else {
				fmt.Fprintf(g.stderr, "added integration %s\n", in.Name)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&in.Kind, "kind", "", "slack or webhook (required)")
	fl.StringVar(&in.URL, "url", "", "the incoming-webhook or webhook URL (or env CROWSNEST_NOTIFY_URL)")
	fl.StringVar(&secretFile, "secret-file", "", "file holding the webhook signing secret")
	fl.StringVar(&in.MinSeverity, "min-severity", "", "only findings of this severity or higher: low, medium, high, critical")
	fl.BoolVar(&in.FixableOnly, "fixable-only", false, "only findings with a fixed version")
	fl.StringSliceVar(&in.Repositories, "repository", nil, "only these repositories (globs, '*' matches '/'; repeatable)")
	fl.StringSliceVar(&in.Events, "event", nil, "only these events: finding-added, finding-removed, index-failed (repeatable; default all)")
	fl.StringVar(&in.DashboardURL, "dashboard-url", os.Getenv("CROWSNEST_DASHBOARD_URL"), "base URL of the dashboard, for links in messages")
	fl.BoolVar(&in.CloudEvents, "cloudevents", false, "send webhooks as CloudEvents (structured mode)")
	fl.BoolVar(&disabled, "disabled", false, "store the integration disabled")
	fl.BoolVar(&replace, "replace", false, "replace an existing integration of that name")
	_ = cmd.MarkFlagRequired("kind")
	return cmd
}

func newNotifyListCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List integrations (secrets and secret URL parts are never shown)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			svc, closeStore, err := g.openService(cmd.Context())
			if err != nil {
				return err
			}
			defer closeStore()
			all, err := svc.Store.Integrations(cmd.Context())
			if err != nil {
				return err
			}
			views := make([]notify.IntegrationView, 0, len(all))
			for _, in := range all {
				views = append(views, notify.View(in))
			}
			if asJSON {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(views)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tKIND\tURL\tFILTERS\tENABLED")
			for _, v := range views {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%t\n", v.Name, v.Kind, v.URL, filters(v), v.Enabled)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func filters(v notify.IntegrationView) string {
	var parts []string
	if v.MinSeverity != "" {
		parts = append(parts, ">="+v.MinSeverity)
	}
	if v.FixableOnly {
		parts = append(parts, "fixable")
	}
	if len(v.Repositories) > 0 {
		parts = append(parts, "repos="+strings.Join(v.Repositories, ","))
	}
	if len(v.Events) > 0 {
		parts = append(parts, "events="+strings.Join(v.Events, ","))
	}
	if v.CloudEvents {
		parts = append(parts, "cloudevents")
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func newNotifyRemoveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove an integration (its delivery log is kept)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, closeStore, err := g.openService(cmd.Context())
			if err != nil {
				return err
			}
			defer closeStore()
			if err := svc.Store.DeleteIntegration(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(g.stderr, "removed integration %s\n", args[0])
			return nil
		},
	}
}

func newNotifyTestCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "test NAME",
		Short: "Send a test message to an integration now",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, closeStore, err := g.openService(cmd.Context())
			if err != nil {
				return err
			}
			defer closeStore()
			log, _ := g.logger()
			s := &notify.Sender{Store: svc.Store, Log: log}
			if err := s.Test(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "test message sent to %s\n", args[0])
			return nil
		},
	}
}

func newNotifyDeliveriesCmd(g *globals) *cobra.Command {
	var q store.DeliveryQuery
	cmd := &cobra.Command{
		Use:   "deliveries",
		Short: "Show the delivery log, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			svc, closeStore, err := g.openService(cmd.Context())
			if err != nil {
				return err
			}
			defer closeStore()
			list, err := svc.Store.Deliveries(cmd.Context(), q)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tINTEGRATION\tEVENT\tREPOSITORY\tDIGEST\tSTATE\tATTEMPTS\tCREATED\tERROR")
			for _, d := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, d.Integration, d.Event, d.Repository, report.ShortDigest(d.ImageDigest),
					d.State, d.Attempts, d.Created.UTC().Format(time.RFC3339), oneLine(d.LastError))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&q.Integration, "integration", "", "only this integration")
	cmd.Flags().StringVar(&q.State, "state", "", "only this state: pending, queued, sent, failed")
	cmd.Flags().IntVar(&q.Limit, "limit", 50, "at most this many (up to 1000)")
	return cmd
}

// startNotifications runs the notification dispatcher until ctx ends. With workers nil it opens
// its own queue client with the send workers (watch mode, whose queue the watcher owns) and
// returns a function that stops it; otherwise the caller registered notify's workers on q.
func startNotifications(ctx context.Context, log *slog.Logger, st *store.Store, dsn string, q queue.Queue, interval time.Duration) (stop func(), err error) {
	sender := &notify.Sender{Store: st, Log: log}
	ctx, cancel := context.WithCancel(ctx)
	stop = func() {}
	if q == nil {
		workers := river.NewWorkers()
		notify.Register(workers, sender)
		// NoLeader: the watcher's own client must stay the one that runs its periodic jobs
		// (advisory refresh) and River's maintenance (retries, rescues) for both.
		own, err := queue.Open(ctx, dsn, queue.Config{Workers: workers, MaxWorkers: 4, Logger: log, NoLeader: true,
			SQLiteDB: st.WriterDB()})
		if err != nil {
			cancel()
			return nil, fmt.Errorf("notifications: %w", err)
		}
		if err := own.Start(ctx); err != nil {
			own.Close()
			cancel()
			return nil, fmt.Errorf("notifications: start the job queue: %w", err)
		}
		q = own
		stop = func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			own.Stop(sctx)
			own.Close()
		}
	}
	d := &notify.Dispatcher{Store: st, Queue: q, Sender: sender, Log: log}
	// One tick before the caller starts producing changes: on a fresh database it starts the
	// cursors at the present, so what this process indexes next is announced.
	if _, err := d.Tick(ctx); err != nil {
		log.Error("notification dispatch", "err", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx, interval)
	}()
	inner := stop
	return func() { cancel(); <-done; inner() }, nil
}

// registerNotify adds the notification send workers to a queue's workers.
func registerNotify(workers *river.Workers, st *store.Store, log *slog.Logger) {
	notify.Register(workers, &notify.Sender{Store: st, Log: log})
}
