package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"time"

	"github.com/riverqueue/river"

	"github.com/crowsnest-dev/crowsnest/internal/store"
	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

// Cursor keys in the store's state table.
const (
	CursorChanges  = "notify.cursor.changes"
	CursorFailures = "notify.cursor.failures"
)

// Dispatcher bounds.
const (
	// changesPage is how many finding changes one outbox transaction consumes.
	changesPage  = 5000
	failuresPage = 500
	// maxWriteChanges bounds the changes of one write read at once (memory: about 1 KB each).
	maxWriteChanges = 50000
	// maxPagesPerTick keeps one tick from running forever behind a flood of changes.
	maxPagesPerTick = 20
	enqueueBatch    = 500
	// failureSettle is how old an index failure must be before it is announced.
	failureSettle = 2 * time.Second
)

// Inserter is the part of the job queue the dispatcher uses.
type Inserter interface {
	Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (bool, error)
}

// Dispatcher turns finding changes and index failures into deliveries and queues their sends.
// Several dispatchers on one database are safe: the cursor moves by compare-and-set and
// delivery ids are derived from their content.
type Dispatcher struct {
	Store  *store.Store
	Queue  Inserter
	Sender *Sender
	Log    *slog.Logger
	// Now is the clock that decides when an index failure has settled (tests move it).
	Now func() time.Time
	// PageSize is how many finding changes are read at once (default 5000).
	PageSize int
}

func (d *Dispatcher) pageSize() int {
	if d.PageSize > 0 {
		return d.PageSize
	}
	return changesPage
}

func (d *Dispatcher) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// TickStats says what one tick did.
type TickStats struct {
	Changes, Failures, Deliveries, Queued int
}

func (d *Dispatcher) log() *slog.Logger {
	if d.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Log
}

// Run ticks every interval until ctx ends. Errors are logged and retried at the next tick.
func (d *Dispatcher) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = 5 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := d.Tick(ctx); err != nil && ctx.Err() == nil {
			d.log().Error("notification dispatch", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Tick records deliveries for everything after the cursors and queues every pending delivery.
// The first tick on a database starts the cursors at the present: history is not announced.
func (d *Dispatcher) Tick(ctx context.Context) (TickStats, error) {
	var st TickStats
	for range maxPagesPerTick {
		more, err := d.page(ctx, &st)
		if errors.Is(err, store.ErrConflict) {
			// Another dispatcher consumed this page; its deliveries are ours to queue too.
			d.log().Debug("notification cursor moved by another dispatcher")
			break
		}
		if err != nil {
			return st, err
		}
		if !more {
			break
		}
	}
	n, err := d.enqueue(ctx)
	st.Queued = n
	return st, err
}

// page consumes one page of changes and failures in one outbox transaction; more says a full
// page was read.
func (d *Dispatcher) page(ctx context.Context, st *TickStats) (more bool, err error) {
	cc, err := d.Store.State(ctx, CursorChanges)
	if err != nil {
		return false, err
	}
	fc, err := d.Store.State(ctx, CursorFailures)
	if err != nil {
		return false, err
	}
	if cc == "" || fc == "" {
		return false, d.initCursors(ctx, cc, fc)
	}
	afterID, err := strconv.ParseInt(cc, 10, 64)
	if err != nil {
		return false, fmt.Errorf("cursor %s %q: %w", CursorChanges, cc, err)
	}
	afterNS, err := strconv.ParseInt(fc, 10, 64)
	if err != nil {
		return false, fmt.Errorf("cursor %s %q: %w", CursorFailures, fc, err)
	}
	changes, err := d.Store.Changes(ctx, afterID, d.pageSize())
	if err != nil {
		return false, err
	}
	fullChanges := len(changes) == d.pageSize()
	if fullChanges {
		if changes, err = d.completeLastWrite(ctx, changes); err != nil {
			return false, err
		}
	}
	failures, err := d.Store.FailuresAfter(ctx, afterNS, failuresPage)
	if err != nil {
		return false, err
	}
	fullFailures := len(failures) == failuresPage
	if fullFailures {
		failures = trimLastFailureTime(failures)
	}
	// A failure is stamped before its transaction commits: leave the newest ones for a later
	// tick, so the cursor cannot pass one that is still being written.
	settled := d.now().Add(-failureSettle)
	for i, fl := range failures {
		if fl.FailedAt.After(settled) {
			failures, fullFailures = failures[:i], false
			break
		}
	}
	if len(changes) == 0 && len(failures) == 0 {
		return false, nil
	}
	integrations, err := d.enabledIntegrations(ctx)
	if err != nil {
		return false, err
	}
	deliveries, err := d.deliveries(ctx, integrations, changes, failures)
	if err != nil {
		return false, err
	}
	var moves []store.CursorMove
	if len(changes) > 0 {
		moves = append(moves, store.CursorMove{Key: CursorChanges, From: cc, To: strconv.FormatInt(changes[len(changes)-1].ID, 10)})
	}
	if len(failures) > 0 {
		moves = append(moves, store.CursorMove{Key: CursorFailures, From: fc, To: strconv.FormatInt(failures[len(failures)-1].FailedAt.UnixNano(), 10)})
	}
	n, err := d.Store.RecordDeliveries(ctx, moves, deliveries)
	if err != nil {
		return false, err
	}
	st.Changes += len(changes)
	st.Failures += len(failures)
	st.Deliveries += n
	return fullChanges || fullFailures, nil
}

func (d *Dispatcher) initCursors(ctx context.Context, cc, fc string) error {
	var moves []store.CursorMove
	if cc == "" {
		id, err := d.Store.LatestChangeID(ctx)
		if err != nil {
			return err
		}
		moves = append(moves, store.CursorMove{Key: CursorChanges, To: strconv.FormatInt(id, 10)})
	}
	if fc == "" {
		moves = append(moves, store.CursorMove{Key: CursorFailures, To: strconv.FormatInt(time.Now().UnixNano(), 10)})
	}
	_, err := d.Store.RecordDeliveries(ctx, moves, nil)
	if errors.Is(err, store.ErrConflict) {
		return nil
	}
	return err
}

// completeLastWrite extends a full page with the rest of its last write (the changes of one
// indexing or one advisory re-match share a time and reason), so that the write's images each
// get one message however many changes it made. A write larger than maxWriteChanges is cut
// there (and may make two messages for an image at the cut).
func (d *Dispatcher) completeLastWrite(ctx context.Context, changes []vuln.Change) ([]vuln.Change, error) {
	last := changes[len(changes)-1]
	for len(changes) < maxWriteChanges {
		next, err := d.Store.Changes(ctx, changes[len(changes)-1].ID, d.pageSize())
		if err != nil {
			return nil, err
		}
		i := 0
		for i < len(next) && next[i].Time.Equal(last.Time) && next[i].Reason == last.Reason {
			i++
		}
		changes = append(changes, next[:i]...)
		if i < len(next) || len(next) < d.pageSize() {
			break
		}
	}
	return changes, nil
}

func trimLastFailureTime(fs []store.Failure) []store.Failure {
	last := fs[len(fs)-1].FailedAt
	i := len(fs)
	for i > 0 && fs[i-1].FailedAt.Equal(last) {
		i--
	}
	if i == 0 {
		return fs
	}
	return fs[:i]
}

type compiled struct {
	in store.Integration
	f  filter
}

func (d *Dispatcher) enabledIntegrations(ctx context.Context) ([]compiled, error) {
	all, err := d.Store.Integrations(ctx)
	if err != nil {
		return nil, err
	}
	var out []compiled
	for _, in := range all {
		if !in.Enabled {
			continue
		}
		f, err := newFilter(in)
		if err != nil {
			d.log().Warn("integration has a bad filter; skipped", "integration", in.Name, "err", err)
			continue
		}
		out = append(out, compiled{in, f})
	}
	return out, nil
}

// deliveries builds the deliveries of one page for every integration.
func (d *Dispatcher) deliveries(ctx context.Context, ins []compiled, changes []vuln.Change, failures []store.Failure) ([]store.Delivery, error) {
	if len(ins) == 0 {
		return nil, nil
	}
	var out []store.Delivery
	add := func(ev Event) error {
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		out = append(out, store.Delivery{ID: ev.ID, Integration: ev.Integration, Event: ev.Type,
			ImageDigest: ev.Image.Digest, Repository: ev.Image.Repository, Payload: b})
		return nil
	}
	targets := map[string]target{}
	for _, r := range rollUp(changes) {
		t, ok := targets[r.digest]
		if !ok {
			var err error
			if t, err = d.target(ctx, r.digest); err != nil {
				return nil, err
			}
			targets[r.digest] = t
		}
		if len(t.tags) == 0 {
			// Not on a tracked tag (an old digest the tag moved away from): nobody runs it.
			continue
		}
		for _, c := range ins {
			if ev, ok := buildEvent(c.in, c.f, r, t); ok {
				if err := add(ev); err != nil {
					return nil, err
				}
			}
		}
	}
	for _, fl := range failures {
		for _, c := range ins {
			if ev, ok := failureEvent(c.in, c.f, fl); ok {
				if err := add(ev); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, nil
}

func (d *Dispatcher) target(ctx context.Context, digest string) (target, error) {
	tags, _, err := d.Store.ImageTags(ctx, digest)
	if err != nil {
		return target{}, err
	}
	var t target
	seen := map[string]bool{}
	for _, tg := range tags {
		t.tags = append(t.tags, tg.Repository+":"+tg.Tag)
		if !seen[tg.Repository] {
			seen[tg.Repository] = true
			t.repos = append(t.repos, tg.Repository)
		}
	}
	sort.Strings(t.repos)
	return t, nil
}

// enqueue queues a send job for every pending delivery. Inserting is idempotent (unique by
// delivery id), so a crash between inserting and marking queued only repeats an insert.
func (d *Dispatcher) enqueue(ctx context.Context) (int, error) {
	total := 0
	for {
		ids, err := d.Store.PendingDeliveries(ctx, enqueueBatch)
		if err != nil || len(ids) == 0 {
			return total, err
		}
		for _, id := range ids {
			if _, err := d.Queue.Insert(ctx, SendArgs{Delivery: id}, d.Sender.InsertOpts()); err != nil {
				return total, err
			}
		}
		if err := d.Store.MarkDeliveriesQueued(ctx, ids); err != nil {
			return total, err
		}
		total += len(ids)
		if len(ids) < enqueueBatch {
			return total, nil
		}
	}
}
