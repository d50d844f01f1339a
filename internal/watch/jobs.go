package watch

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/crowsnest-dev/crowsnest/internal/queue"
	"github.com/crowsnest-dev/crowsnest/internal/registry"
)

// IndexArgs asks for one pushed or listed tag to be indexed (every platform of it) and the tag
// pointed at it. The same tag and digest is queued once at a time.
type IndexArgs struct {
	Repository string `json:"repository" river:"unique"`
	Tag        string `json:"tag" river:"unique"`
	Digest     string `json:"digest" river:"unique"`
	// Ref is the pull reference by digest (host/repo@sha256:...).
	Ref    string `json:"ref"`
	Reason string `json:"reason"` // push, poll, backfill
}

// Kind implements river.JobArgs.
func (IndexArgs) Kind() string { return "crowsnest_index" }

// DeleteTagArgs retires a tag the registry reported deleted.
type DeleteTagArgs struct {
	Repository string `json:"repository" river:"unique"`
	Tag        string `json:"tag" river:"unique"`
	Digest     string `json:"digest" river:"unique"`
}

// Kind implements river.JobArgs.
func (DeleteTagArgs) Kind() string { return "crowsnest_delete_tag" }

// uniqueWhileQueued dedupes a job while one like it waits or runs; once done, the same job may
// run again (a tag can move back to an old digest).
var uniqueWhileQueued = river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
	rivertype.JobStateRunning, rivertype.JobStateScheduled,
}}

func insertOpts(priority int) *river.InsertOpts {
	return &river.InsertOpts{Priority: priority, UniqueOpts: uniqueWhileQueued}
}

func priorityFor(reason string) int {
	switch reason {
	case "push":
		return queue.PriorityPush
	case "backfill":
		return queue.PriorityBackfill
	}
	return queue.PriorityPoll
}

type indexWorker struct {
	river.WorkerDefaults[IndexArgs]
	w *Watcher
}

func (iw *indexWorker) Work(ctx context.Context, job *river.Job[IndexArgs]) error {
	start := time.Now()
	err := iw.w.indexTag(ctx, job.Args)
	if err == nil {
		iw.w.opts.Metrics.IndexFinished("ok", time.Since(start))
		return nil
	}
	if after, ok := throttled(err); ok {
		iw.w.log.Warn("registry throttled indexing; waiting", "ref", job.Args.Ref, "after", after)
		iw.w.opts.Metrics.IndexFinished("retried", time.Since(start))
		return river.JobSnooze(after)
	}
	if job.Attempt >= job.MaxAttempts {
		if ferr := iw.w.svc.Store.MarkFailed(ctx, job.Args.Digest, job.Args.Repository, job.Args.Tag, err.Error(), job.Attempt); ferr != nil {
			iw.w.log.Error("could not record a failed image", "ref", job.Args.Ref, "err", ferr)
		}
		iw.w.log.Error("indexing failed for good", "ref", job.Args.Ref, "attempts", job.Attempt, "err", err)
		iw.w.opts.Metrics.IndexFinished("failed", time.Since(start))
		return err
	}
	iw.w.log.Warn("indexing failed; will retry", "ref", job.Args.Ref, "attempt", job.Attempt, "err", err)
	iw.w.opts.Metrics.IndexFinished("retried", time.Since(start))
	return err
}

// NextRetry backs off exponentially with jitter: 1s, 2s, 4s ... capped at 5 minutes.
func (iw *indexWorker) NextRetry(job *river.Job[IndexArgs]) time.Time {
	return time.Now().Add(backoff(job.Attempt))
}

func backoff(attempt int) time.Duration {
	d := time.Second << min(max(attempt-1, 0), 9)
	d = min(d, 5*time.Minute)
	return d + time.Duration(rand.Int64N(int64(d/4)+1))
}

// throttled reports a 429 from the registry (or its REST API) and how long to wait.
func throttled(err error) (time.Duration, bool) {
	var ra *registry.RetryAfterError
	if errors.As(err, &ra) {
		return max(ra.After, time.Second), true
	}
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == http.StatusTooManyRequests {
		return 10 * time.Second, true
	}
	return 0, false
}

type deleteTagWorker struct {
	river.WorkerDefaults[DeleteTagArgs]
	w *Watcher
}

func (dw *deleteTagWorker) Work(ctx context.Context, job *river.Job[DeleteTagArgs]) error {
	if err := dw.w.svc.Store.DeleteTag(ctx, job.Args.Repository, job.Args.Tag); err != nil {
		return fmt.Errorf("retire %s:%s: %w", job.Args.Repository, job.Args.Tag, err)
	}
	dw.w.log.Info("tag deleted", "repository", job.Args.Repository, "tag", job.Args.Tag)
	return nil
}
