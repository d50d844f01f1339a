package queue

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/crowsnest-dev/crowsnest/internal/testutil/pgtest"
)

type indexArgs struct {
	Digest string `json:"digest" river:"unique"`
	Note   string `json:"note"`
}

func (indexArgs) Kind() string { return "test_index" }

type recorder struct {
	river.WorkerDefaults[indexArgs]
	mu   sync.Mutex
	seen []string
	done chan struct{}
	want int
}

func (r *recorder) Work(_ context.Context, job *river.Job[indexArgs]) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, job.Args.Digest)
	if len(r.seen) == r.want {
		close(r.done)
	}
	return nil
}

func backends(t *testing.T) map[string]string {
	return map[string]string{
		"sqlite":   "sqlite://" + filepath.Join(t.TempDir(), "q.db"),
		"postgres": pgtest.DSN(t),
	}
}

func TestUniqueJobsRunInPriorityOrderAndSurviveReopen(t *testing.T) {
	for name, dsn := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			// A process that only inserts, then goes away: the jobs must still be there.
			q, err := Open(ctx, dsn, Config{})
			if err != nil {
				t.Fatal(err)
			}
			unique := &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
			for _, j := range []struct {
				digest string
				prio   int
			}{{"sha256:backfill", PriorityBackfill}, {"sha256:push", PriorityPush}, {"sha256:push", PriorityPush}} {
				opts := *unique
				opts.Priority = j.prio
				if _, err := q.Insert(ctx, indexArgs{Digest: j.digest}, &opts); err != nil {
					t.Fatal(err)
				}
			}
			inserted, err := q.Insert(ctx, indexArgs{Digest: "sha256:push"}, unique)
			if err != nil || inserted {
				t.Fatalf("duplicate insert: inserted=%v err=%v", inserted, err)
			}
			q.Close()

			rec := &recorder{done: make(chan struct{}), want: 2}
			workers := river.NewWorkers()
			river.AddWorker(workers, rec)
			q, err = Open(ctx, dsn, Config{Workers: workers, MaxWorkers: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			if err := q.Start(ctx); err != nil {
				t.Fatal(err)
			}
			select {
			case <-rec.done:
			case <-time.After(30 * time.Second):
				t.Fatalf("jobs not worked: %v", rec.seen)
			}
			if err := q.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			if rec.seen[0] != "sha256:push" || rec.seen[1] != "sha256:backfill" {
				t.Fatalf("order = %v, want the push before the backfill", rec.seen)
			}
			jobs, err := q.Jobs(ctx, rivertype.JobStateCompleted)
			if err != nil || len(jobs) != 2 {
				t.Fatalf("completed jobs = %d, %v", len(jobs), err)
			}
		})
	}
}

func TestBadDSN(t *testing.T) {
	_, err := Open(context.Background(), "mysql://root:hunter2@localhost/x", Config{})
	if err == nil || !strings.Contains(err.Error(), `unsupported database scheme "mysql" (accepted: sqlite://PATH`) || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v", err)
	}
}
