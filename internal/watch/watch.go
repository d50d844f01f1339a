// Package watch is the long-running watcher: it lists a registry's repositories and tags, receives
// its push webhooks, and queues every new or moved tag for indexing through the durable job queue.
// Workers index each image (every platform) and store its SBOM and findings.
package watch

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/riverqueue/river"

	"github.com/crowsnest-dev/crowsnest/internal/dsn"
	"github.com/crowsnest-dev/crowsnest/internal/findings"
	"github.com/crowsnest-dev/crowsnest/internal/image"
	"github.com/crowsnest-dev/crowsnest/internal/index"
	"github.com/crowsnest-dev/crowsnest/internal/queue"
	"github.com/crowsnest-dev/crowsnest/internal/refresh"
	"github.com/crowsnest-dev/crowsnest/internal/registry"
	"github.com/crowsnest-dev/crowsnest/internal/sbom"
)

// Options are the watch command's settings (Docker Scout's flags).
type Options struct {
	Registry registry.Config
	// Repositories restricts watching to these repository names (path.Match globs allowed).
	Repositories []string
	// Tags restricts watching to tags matching one of these expressions.
	Tags []*regexp.Regexp
	// AllImages indexes every existing image once (a backfill that resumes after a crash);
	// without it only images that appear after the first listing are indexed.
	AllImages bool
	// RefreshRegistry re-lists the repositories every round; otherwise the repositories of the
	// first listing are polled for tags.
	RefreshRegistry bool
	Interval        time.Duration
	Workers         int
	MaxAttempts     int
	// SBOM false stores image metadata (config, layers) without reading layers.
	SBOM bool
	// WebhookAddr overrides the listen address of the webhook receiver (default ":<port>").
	WebhookAddr string
	// ImageOptions are used to pull images (cache directory, insecure hosts, transport).
	ImageOptions image.Options
	// Refresh schedules advisory refreshes (off when its Interval is 0).
	Refresh refresh.Config
	// Pusher, when set, makes the watcher an agent: indexed images are pushed to a server (the
	// local store keeps them until the server took them).
	Pusher Pusher
	// Metrics receives counters (nil: none).
	Metrics Metrics
}

// Metrics is what the watcher reports for Prometheus.
type Metrics interface {
	// IndexFinished counts an index job by outcome ("ok", "retried", "failed") and its duration.
	IndexFinished(outcome string, took time.Duration)
	// WebhookDelivery counts a webhook delivery by result ("accepted", "rejected", "error").
	WebhookDelivery(result string)
}

type noMetrics struct{}

func (noMetrics) IndexFinished(string, time.Duration) {}
func (noMetrics) WebhookDelivery(string)              {}

// Watcher runs the watch workflow.
type Watcher struct {
	opts    Options
	lister  registry.Lister
	svc     *findings.Service
	indexer *index.Indexer
	queue   queue.Queue
	log     *slog.Logger

	mu    sync.Mutex
	repos []string // the repositories being watched, from the last listing
	lock  *os.File
	// digests keeps two workers from indexing one image at once.
	digests keyedLock
}

// New builds a watcher. The queue is opened on database (the store's) with the watcher's
// workers registered.
func New(ctx context.Context, opts Options, lister registry.Lister, svc *findings.Service, indexer *index.Indexer, database string, log *slog.Logger) (*Watcher, error) {
	if opts.Interval <= 0 {
		opts.Interval = 60 * time.Second
	}
	if opts.Workers <= 0 {
		opts.Workers = 3
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 5
	}
	if opts.Metrics == nil {
		opts.Metrics = noMetrics{}
	}
	w := &Watcher{opts: opts, lister: lister, svc: svc, indexer: indexer, log: log}
	if kc := keychain(opts.Registry); kc != nil {
		w.opts.ImageOptions.Keychain = kc
	}
	base := w.opts.ImageOptions.Transport
	if base == nil {
		base = remote.DefaultTransport
	}
	w.opts.ImageOptions.Transport = retryAfterTransport{base}
	workers := river.NewWorkers()
	river.AddWorker(workers, &indexWorker{w: w})
	river.AddWorker(workers, &deleteTagWorker{w: w})
	river.AddWorker(workers, &pushWorker{w: w})
	periodic := refresh.Register(workers, svc, opts.Refresh)
	sole := false
	where, err := dsn.Parse(database)
	if err != nil {
		return nil, err
	}
	if where.SQLite != "" {
		lock, err := lockFile(where.SQLite + ".watch.lock")
		if err != nil {
			return nil, err
		}
		w.lock, sole = lock, true
	}
	q, err := queue.Open(ctx, database, queue.Config{Workers: workers, MaxWorkers: opts.Workers, MaxAttempts: opts.MaxAttempts,
		Logger: log, SoleWorker: sole, PeriodicJobs: periodic, SQLiteDB: svc.Store.WriterDB()})
	if err != nil {
		w.Close()
		return nil, err
	}
	w.queue = q
	return w, nil
}

// keychain gives pulls the registry's configured credentials, then the default ones.
func keychain(cfg registry.Config) authn.Keychain {
	auth := cfg.Authenticator()
	if auth == nil {
		return nil
	}
	return authn.NewMultiKeychain(staticKeychain{auth}, image.DefaultKeychain())
}

type staticKeychain struct{ auth authn.Authenticator }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.auth, nil }

// Queue exposes the job queue (for status output and tests).
func (w *Watcher) Queue() queue.Queue { return w.queue }

// Close releases the queue's database connections and the data directory lock.
func (w *Watcher) Close() error {
	if w.queue != nil {
		w.queue.Close()
	}
	if w.lock != nil {
		w.lock.Close()
	}
	return nil
}

// Run watches until ctx ends: workers, the webhook receiver (when a port is configured) and the
// polling loop. It returns after in-flight jobs finished.
func (w *Watcher) Run(ctx context.Context) error {
	if err := w.queue.Start(ctx); err != nil {
		return fmt.Errorf("start workers: %w", err)
	}
	errc := make(chan error, 1)
	var srv *webhookServer
	if w.opts.Registry.Port > 0 || w.opts.WebhookAddr != "" {
		var err error
		if srv, err = w.startWebhooks(); err != nil {
			w.stopQueue()
			return err
		}
		go func() { errc <- srv.serve() }()
	}
	ticker := time.NewTicker(w.opts.Interval)
	defer ticker.Stop()
	for round := 0; ; round++ {
		if err := w.Poll(ctx, round == 0); err != nil {
			if ctx.Err() != nil {
				break
			}
			w.log.Error("listing the registry failed; retrying next round", "err", err)
		}
		select {
		case <-ctx.Done():
		case err := <-errc:
			w.stopQueue()
			return fmt.Errorf("webhook receiver: %w", err)
		case <-ticker.C:
			continue
		}
		break
	}
	if srv != nil {
		srv.shutdown()
	}
	w.stopQueue()
	return nil
}

func (w *Watcher) stopQueue() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.queue.Stop(ctx); err != nil {
		w.log.Warn("stopping workers", "err", err)
	}
}

// stateKey names per-registry progress markers in the store.
func (w *Watcher) stateKey(what string) string {
	return what + ":" + w.opts.Registry.Type + ":" + w.opts.Registry.Registry + ":" + strings.Join(w.opts.Registry.Repositories, ",")
}

// Poll lists the registry once and queues every new or moved tag. On the first round without
// --all-images it only records what exists (Docker Scout's semantics: index what appears after
// start); with --all-images it queues a backfill of everything not indexed yet, once.
func (w *Watcher) Poll(ctx context.Context, first bool) error {
	manifests, err := w.list(ctx, first)
	if err != nil {
		return err
	}
	baselineKey, backfillKey := w.stateKey("baseline"), w.stateKey("backfill")
	baseline := false
	backfill := false
	if first {
		if w.opts.AllImages {
			done, err := w.svc.Store.State(ctx, backfillKey)
			if err != nil {
				return err
			}
			backfill = done == ""
		} else {
			done, err := w.svc.Store.State(ctx, baselineKey)
			if err != nil {
				return err
			}
			baseline = done == ""
		}
	}
	var queued, recorded int
	for _, m := range manifests {
		if err := ctx.Err(); err != nil {
			return err
		}
		queuedOne, recordedOne, err := w.consider(ctx, m, baseline, backfill)
		if err != nil {
			w.log.Warn("skipping a tag", "repository", m.Repository, "tag", m.Tag, "err", err)
			continue
		}
		if queuedOne {
			queued++
		}
		if recordedOne {
			recorded++
		}
	}
	now := time.Now().UTC().Format(time.RFC3339)
	if baseline {
		if err := w.svc.Store.SetState(ctx, baselineKey, now); err != nil {
			return err
		}
	}
	if backfill {
		if err := w.svc.Store.SetState(ctx, backfillKey, now); err != nil {
			return err
		}
	}
	w.log.Info("registry listed", "tags", len(manifests), "queued", queued, "recorded", recorded, "first", first)
	return nil
}

// consider compares one listed tag with the store and queues it when it is new or moved.
func (w *Watcher) consider(ctx context.Context, m registry.Manifest, baseline, backfill bool) (queued, recorded bool, err error) {
	current, err := w.svc.Store.TagDigest(ctx, m.Repository, m.Tag)
	if err != nil {
		return false, false, err
	}
	if m.Digest == "" {
		if m.Digest, err = w.resolve(ctx, m.Repository, m.Tag); err != nil {
			return false, false, err
		}
	}
	if baseline {
		// Known before the watcher started: remembered, not indexed.
		if current != m.Digest {
			return false, true, w.svc.Store.SetTag(ctx, m.Repository, m.Tag, m.Digest)
		}
		return false, false, nil
	}
	if current == m.Digest {
		if !backfill {
			return false, false, nil
		}
		if indexed, err := w.svc.Store.Indexed(ctx, m.Digest); err != nil || indexed {
			return false, false, err
		}
	}
	reason := "poll"
	if backfill {
		reason = "backfill"
	}
	inserted, err := w.Enqueue(ctx, m.Repository, m.Tag, m.Digest, reason)
	return inserted, false, err
}

// Enqueue queues an index job for repository:tag at digest. The job is committed when it returns.
func (w *Watcher) Enqueue(ctx context.Context, repository, tag, digest, reason string) (bool, error) {
	args := IndexArgs{Repository: repository, Tag: tag, Digest: digest, Reason: reason,
		Ref: refByDigest(w.lister.ImageRef(repository, tag), digest)}
	return w.queue.Insert(ctx, args, insertOpts(priorityFor(reason)))
}

// refByDigest turns host/repo:tag into host/repo@digest, so a tag moving again while the job
// waits cannot change what is indexed.
func refByDigest(ref, digest string) string {
	if i := strings.LastIndex(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref + "@" + digest
}

// maxThrottleWaits bounds how often one listing waits out a 429 before giving up the round.
const maxThrottleWaits = 5

// list returns the tags to consider: every listed tag of the watched repositories that passes the
// --repository and --tag filters. A 429 from the registry is waited out as its Retry-After says.
func (w *Watcher) list(ctx context.Context, first bool) ([]registry.Manifest, error) {
	var all []registry.Manifest
	var err error
	for attempt := 0; ; attempt++ {
		all, err = w.lister.Manifests(ctx)
		after, throttledNow := throttled(err)
		if err == nil || !throttledNow || attempt == maxThrottleWaits {
			break
		}
		w.log.Warn("registry throttled listing; waiting", "after", after)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(after):
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", w.opts.Registry.Registry, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	known := map[string]bool{}
	for _, r := range w.repos {
		known[r] = true
	}
	refresh := first || w.opts.RefreshRegistry
	var repos []string
	seen := map[string]bool{}
	var out []registry.Manifest
	for _, m := range all {
		if !w.repositoryWanted(m.Repository) || (!refresh && !known[m.Repository]) {
			continue
		}
		if !seen[m.Repository] {
			seen[m.Repository] = true
			repos = append(repos, m.Repository)
		}
		if w.tagWanted(m.Tag) {
			out = append(out, m)
		}
	}
	if refresh {
		w.repos = repos
	}
	return out, nil
}

func (w *Watcher) repositoryWanted(repo string) bool {
	if len(w.opts.Repositories) == 0 {
		return true
	}
	for _, pattern := range w.opts.Repositories {
		if ok, _ := path.Match(pattern, repo); ok || pattern == repo {
			return true
		}
	}
	return false
}

func (w *Watcher) tagWanted(tag string) bool {
	if len(w.opts.Tags) == 0 {
		return true
	}
	for _, re := range w.opts.Tags {
		if re.MatchString(tag) {
			return true
		}
	}
	return false
}

// resolve finds the digest a tag points at with a HEAD request.
func (w *Watcher) resolve(ctx context.Context, repository, tag string) (string, error) {
	ref, err := image.ParseReference(w.lister.ImageRef(repository, tag), w.opts.ImageOptions.Insecure)
	if err != nil {
		return "", err
	}
	opts := []remote.Option{remote.WithContext(ctx)}
	if w.opts.ImageOptions.Keychain != nil {
		opts = append(opts, remote.WithAuthFromKeychain(w.opts.ImageOptions.Keychain))
	}
	if w.opts.ImageOptions.Transport != nil {
		opts = append(opts, remote.WithTransport(w.opts.ImageOptions.Transport))
	}
	desc, err := remote.Head(ref, opts...)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", ref, err)
	}
	return desc.Digest.String(), nil
}

// indexTag indexes every platform of the image at args.Digest (unless already indexed) and points
// the tag at it.
func (w *Watcher) indexTag(ctx context.Context, args IndexArgs) error {
	unlock, err := w.digests.lock(ctx, args.Digest)
	if err != nil {
		return err
	}
	defer unlock()
	// Other watchers on the same PostgreSQL may hold another tag of the same image.
	release, err := w.svc.Store.LockKey(ctx, "index:"+args.Digest)
	if err != nil {
		return err
	}
	defer release()
	indexed, err := w.svc.Store.Indexed(ctx, args.Digest)
	if err != nil {
		return err
	}
	if !indexed {
		if err := w.index(ctx, args); err != nil {
			return err
		}
	}
	if w.opts.Pusher != nil {
		if err := w.queuePushes(ctx, args); err != nil {
			return err
		}
	}
	return w.svc.Store.TagIndexed(ctx, args.Repository, args.Tag, args.Digest)
}

func (w *Watcher) index(ctx context.Context, args IndexArgs) error {
	start := time.Now()
	target, err := image.Open(ctx, args.Ref, w.opts.ImageOptions)
	if err != nil {
		return err
	}
	images, err := target.Images(ctx)
	if err != nil {
		return err
	}
	repoName := args.Repository
	if ref, err := name.ParseReference(args.Ref, name.WeakValidation, name.Insecure); err == nil {
		repoName = ref.Context().Name()
	}
	for _, img := range images {
		var sb *sbom.SBOM
		if w.opts.SBOM {
			if sb, _, err = w.indexer.Index(ctx, img); err != nil {
				return err
			}
		} else {
			sb = &sbom.SBOM{SchemaVersion: sbom.SchemaVersion, Image: img.Describe(), Packages: []sbom.Package{}}
		}
		sb.Image.Name, sb.Image.Tag = repoName, args.Tag
		if sb.Image.IndexDigest == "" && sb.Image.Digest != args.Digest {
			sb.Image.IndexDigest = args.Digest
		}
		found, err := w.svc.Ingest(ctx, sb, findings.ReasonIndex)
		if err != nil {
			return err
		}
		w.log.Info("image indexed", "repository", args.Repository, "tag", args.Tag, "digest", sb.Image.Digest,
			"platform", sb.Image.Platform.String(), "packages", len(sb.Packages), "findings", len(found),
			"reason", args.Reason, "took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// DryRun lists the registry and prints what would be indexed, indexing nothing.
func (w *Watcher) DryRun(ctx context.Context, out func(registry.Manifest, string)) error {
	manifests, err := w.list(ctx, true)
	if err != nil {
		return err
	}
	for _, m := range manifests {
		if m.Digest == "" {
			if m.Digest, err = w.resolve(ctx, m.Repository, m.Tag); err != nil {
				out(m, "error: "+err.Error())
				continue
			}
		}
		out(m, w.lister.ImageRef(m.Repository, m.Tag))
	}
	return nil
}
