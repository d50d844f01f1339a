// Package refresh keeps advisories current on a schedule: a periodic job that refreshes the
// advisory sources and re-matches what changed. River runs periodic jobs on its elected leader
// only, so with several processes on one PostgreSQL the refresh runs once at a time.
package refresh

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/riverqueue/river"

	"github.com/crowsnest-dev/crowsnest/internal/findings"
)

// AdvisoryUpdateArgs asks for one refresh of every advisory source.
type AdvisoryUpdateArgs struct{}

// Kind implements river.JobArgs.
func (AdvisoryUpdateArgs) Kind() string { return "crowsnest_advisory_update" }

// Config says where advisories come from.
type Config struct {
	// Interval between refreshes; 0 disables them.
	Interval time.Duration
	// Mirror replaces osv.dev's base URL (air-gapped installations).
	Mirror string
	// TempDir receives downloads while they are imported.
	TempDir string
	Client  *http.Client
	Log     *slog.Logger
}

// Worker runs AdvisoryUpdateArgs jobs.
type Worker struct {
	river.WorkerDefaults[AdvisoryUpdateArgs]
	Service *findings.Service
	Config  Config
}

// Work refreshes the sources. A failed source is logged and retried at the next interval; the
// job itself does not retry, so a long outage does not pile up attempts.
func (w *Worker) Work(ctx context.Context, _ *river.Job[AdvisoryUpdateArgs]) error {
	client := w.Config.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Minute}
	}
	results, err := w.Service.Update(ctx, client, nil, w.Config.Mirror, w.Config.TempDir)
	log := w.Config.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for _, r := range results {
		if r.Err == nil && !r.NotModified {
			log.Info("advisories refreshed", "source", r.Name, "added", r.Report.Import.Added, "updated", r.Report.Import.Updated,
				"removed", r.Report.Import.Removed, "imagesGained", r.Report.Changes.ImagesGained, "imagesLost", r.Report.Changes.ImagesLost)
		}
	}
	if err != nil {
		log.Error("advisory refresh failed", "err", err)
	}
	return nil
}

// Timeout allows large archives to download and import.
func (w *Worker) Timeout(*river.Job[AdvisoryUpdateArgs]) time.Duration { return time.Hour }

// Register adds the worker and, when cfg.Interval is set, its periodic job.
func Register(workers *river.Workers, svc *findings.Service, cfg Config) []*river.PeriodicJob {
	river.AddWorker(workers, &Worker{Service: svc, Config: cfg})
	if cfg.Interval <= 0 {
		return nil
	}
	return []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(cfg.Interval),
		func() (river.JobArgs, *river.InsertOpts) {
			// One refresh per interval, however many processes insert it.
			return AdvisoryUpdateArgs{}, &river.InsertOpts{MaxAttempts: 1, UniqueOpts: river.UniqueOpts{ByPeriod: cfg.Interval}}
		}, &river.PeriodicJobOpts{RunOnStart: true})}
}
