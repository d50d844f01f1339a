package watch

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/crowsnest-dev/crowsnest/internal/apiclient"
	"github.com/crowsnest-dev/crowsnest/internal/sbom"
)

// Pusher sends an indexed image and its tags to a crowsnest server (agent mode).
type Pusher interface {
	Push(ctx context.Context, sb *sbom.SBOM, tags []string) error
}

// PushArgs sends one stored image to the server. The local store is the outbox: the job only
// names the image, and keeps being retried while the server is away, so nothing is lost.
type PushArgs struct {
	Digest     string `json:"digest" river:"unique"`
	Repository string `json:"repository" river:"unique"`
	Tag        string `json:"tag" river:"unique"`
}

// Kind implements river.JobArgs.
func (PushArgs) Kind() string { return "crowsnest_push" }

// pushAttempts keeps a push retried for about a week of server downtime (backoff caps at 5 minutes).
const pushAttempts = 2000

type pushWorker struct {
	river.WorkerDefaults[PushArgs]
	w *Watcher
}

func (pw *pushWorker) Work(ctx context.Context, job *river.Job[PushArgs]) error {
	sb, err := pw.w.svc.Store.Image(ctx, job.Args.Digest)
	if err != nil {
		return fmt.Errorf("read %s from the local store: %w", job.Args.Digest, err)
	}
	err = pw.w.opts.Pusher.Push(ctx, sb, []string{job.Args.Repository + ":" + job.Args.Tag})
	if err == nil {
		pw.w.log.Info("pushed to the server", "repository", job.Args.Repository, "tag", job.Args.Tag, "digest", job.Args.Digest)
		return nil
	}
	if apiclient.Permanent(err) {
		// The server refuses this image for good (invalid, or the token lacks push scope).
		pw.w.svc.Store.MarkFailed(ctx, job.Args.Digest, job.Args.Repository, job.Args.Tag, "push: "+err.Error(), job.Attempt)
		pw.w.log.Error("the server refused the image", "digest", job.Args.Digest, "err", err)
		return river.JobCancel(err)
	}
	pw.w.log.Warn("push failed; will retry", "digest", job.Args.Digest, "attempt", job.Attempt, "err", err)
	return err
}

func (pw *pushWorker) NextRetry(job *river.Job[PushArgs]) time.Time {
	return time.Now().Add(backoff(job.Attempt))
}

// queuePushes queues a push of every platform image stored under digest.
func (w *Watcher) queuePushes(ctx context.Context, args IndexArgs) error {
	digests, err := w.svc.Store.PlatformDigests(ctx, args.Digest)
	if err != nil {
		return err
	}
	for _, d := range digests {
		opts := insertOpts(priorityFor(args.Reason))
		opts.MaxAttempts = pushAttempts
		if _, err := w.queue.Insert(ctx, PushArgs{Digest: d, Repository: args.Repository, Tag: args.Tag}, opts); err != nil {
			return err
		}
	}
	return nil
}
