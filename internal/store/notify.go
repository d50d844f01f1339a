package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Integration is a notification target (internal/notify): a Slack incoming webhook or a signed
// generic webhook, with the filters that decide what it hears about.
type Integration struct {
	Name string
	// Kind is "slack" or "webhook".
	Kind string
	URL  string
	// Secret is the webhook's HMAC key. It is stored in clear (it must sign), never logged and
	// never returned by the API.
	Secret       string
	MinSeverity  string
	FixableOnly  bool
	Repositories []string
	Events       []string
	DashboardURL string
	CloudEvents  bool
	Enabled      bool
	Created      time.Time
	Updated      time.Time
}

// Delivery states: the dispatcher records a delivery pending and queues a send job for it
// (queued); the job marks it sent once the receiver accepted it, or failed for good.
const (
	DeliveryPending = "pending"
	DeliveryQueued  = "queued"
	DeliverySent    = "sent"
	DeliveryFailed  = "failed"
)

// Delivery is one message to one integration: the outbox row its send job works from.
type Delivery struct {
	// ID is the idempotency key receivers dedupe by; a re-send carries the same one.
	ID          string
	Integration string
	Event       string
	ImageDigest string
	Repository  string
	// Payload is the event as JSON, rendered for the integration's kind at send time.
	Payload    []byte
	State      string
	Attempts   int
	LastStatus int
	LastError  string
	Created    time.Time
	Updated    time.Time
	// Sent is zero until the delivery was accepted.
	Sent time.Time
}

// CursorMove advances a progress marker (the state table) from From to To, but only if it
// still holds From: two dispatchers cannot both consume the same changes.
type CursorMove struct{ Key, From, To string }

// ErrConflict is returned when a compare-and-set lost against another writer.
var ErrConflict = errors.New("conflicting concurrent update")

// Bounds of notification records (their fields come from the CLI and the API).
const (
	maxIntegrationField = 4096
	maxIntegrationList  = 100
	maxDeliveriesLimit  = 1000
)

func checkIntegration(in Integration) error {
	if in.Name == "" {
		return errors.New("integration has no name")
	}
	for _, f := range []string{in.Name, in.Kind, in.URL, in.Secret, in.MinSeverity, in.DashboardURL} {
		if len(f) > maxIntegrationField {
			return fmt.Errorf("integration %s: a field exceeds %d bytes", in.Name, maxIntegrationField)
		}
	}
	if len(in.Repositories) > maxIntegrationList || len(in.Events) > maxIntegrationList {
		return fmt.Errorf("integration %s: more than %d repositories or events", in.Name, maxIntegrationList)
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// PutIntegration stores in; an existing integration of that name yields ErrDuplicate unless
// replace is set (its creation time is kept).
func (s *Store) PutIntegration(ctx context.Context, in Integration, replace bool) error {
	if err := checkIntegration(in); err != nil {
		return err
	}
	repos, err := json.Marshal(nonNil(in.Repositories))
	if err != nil {
		return err
	}
	events, err := json.Marshal(nonNil(in.Events))
	if err != nil {
		return err
	}
	now := time.Now().UnixNano()
	err = s.write(ctx, func(tx *txw) error {
		q := `INSERT INTO integrations (name, kind, url, secret, min_severity, fixable_only, repositories, events,
			dashboard_url, cloudevents, enabled, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`
		if replace {
			q += ` ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, url = excluded.url, secret = excluded.secret,
				min_severity = excluded.min_severity, fixable_only = excluded.fixable_only,
				repositories = excluded.repositories, events = excluded.events, dashboard_url = excluded.dashboard_url,
				cloudevents = excluded.cloudevents, enabled = excluded.enabled, updated_at = excluded.updated_at`
		} else {
			q += ` ON CONFLICT (name) DO NOTHING`
		}
		res, err := tx.ExecContext(ctx, q, in.Name, in.Kind, in.URL, in.Secret, in.MinSeverity, boolInt(in.FixableOnly),
			string(repos), string(events), in.DashboardURL, boolInt(in.CloudEvents), boolInt(in.Enabled), now, now)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err == nil && n == 0 {
			return ErrDuplicate
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store integration %s: %w", in.Name, err)
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

const integrationCols = `name, kind, url, secret, min_severity, fixable_only, repositories, events, dashboard_url,
	cloudevents, enabled, created_at, updated_at`

func scanIntegration(scan func(...any) error) (Integration, error) {
	var in Integration
	var fixable, ce, enabled int
	var repos, events string
	var created, updated int64
	if err := scan(&in.Name, &in.Kind, &in.URL, &in.Secret, &in.MinSeverity, &fixable, &repos, &events, &in.DashboardURL,
		&ce, &enabled, &created, &updated); err != nil {
		return in, err
	}
	in.FixableOnly, in.CloudEvents, in.Enabled = fixable != 0, ce != 0, enabled != 0
	if err := json.Unmarshal([]byte(repos), &in.Repositories); err != nil {
		return in, fmt.Errorf("integration %s: repositories: %w", in.Name, err)
	}
	if err := json.Unmarshal([]byte(events), &in.Events); err != nil {
		return in, fmt.Errorf("integration %s: events: %w", in.Name, err)
	}
	in.Created, in.Updated = time.Unix(0, created), time.Unix(0, updated)
	return in, nil
}

// Integration returns the integration called name, or ErrNotFound.
func (s *Store) Integration(ctx context.Context, name string) (Integration, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+integrationCols+` FROM integrations WHERE name = $1`, name)
	in, err := scanIntegration(row.Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return Integration{}, fmt.Errorf("integration %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return Integration{}, fmt.Errorf("integration %s: %w", name, err)
	}
	return in, nil
}

// Integrations lists every integration by name.
func (s *Store) Integrations(ctx context.Context) ([]Integration, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+integrationCols+` FROM integrations ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("integrations: %w", err)
	}
	defer rows.Close()
	var out []Integration
	for rows.Next() {
		in, err := scanIntegration(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("integrations: %w", err)
		}
		out = append(out, in)
	}
	return out, rows.Err()
}

// DeleteIntegration removes the integration called name (ErrNotFound when there is none). Its
// delivery log is kept; queued deliveries to it are dropped by their send jobs.
func (s *Store) DeleteIntegration(ctx context.Context, name string) error {
	var n int64
	err := s.write(ctx, func(tx *txw) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM integrations WHERE name = $1`, name)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return fmt.Errorf("delete integration %s: %w", name, err)
	}
	if n == 0 {
		return fmt.Errorf("delete integration %s: %w", name, ErrNotFound)
	}
	return nil
}

// RecordDeliveries is the outbox's one transaction: it advances every cursor in moves (each
// only if it still holds its From value, else nothing is written and ErrConflict returned) and
// inserts ds as pending. A delivery whose id exists is left as it is, so recording the same
// roll-up twice yields one delivery. It returns how many deliveries were new.
func (s *Store) RecordDeliveries(ctx context.Context, moves []CursorMove, ds []Delivery) (int, error) {
	inserted := 0
	err := s.write(ctx, func(tx *txw) error {
		now := time.Now().UnixNano()
		for _, m := range moves {
			res, err := tx.ExecContext(ctx, `UPDATE state SET value = $1, updated_at = $2 WHERE key = $3 AND value = $4`,
				m.To, now, m.Key, m.From)
			if err != nil {
				return fmt.Errorf("advance %s: %w", m.Key, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			if n == 0 && m.From == "" {
				res, err = tx.ExecContext(ctx, `INSERT INTO state (key, value, updated_at) VALUES ($1, $2, $3)
					ON CONFLICT (key) DO NOTHING`, m.Key, m.To, now)
				if err != nil {
					return fmt.Errorf("advance %s: %w", m.Key, err)
				}
				if n, err = res.RowsAffected(); err != nil {
					return err
				}
			}
			if n == 0 {
				return fmt.Errorf("advance %s from %q: %w", m.Key, m.From, ErrConflict)
			}
		}
		for _, d := range ds {
			res, err := tx.ExecContext(ctx, `INSERT INTO deliveries (id, integration, event, image_digest, repository, payload,
				state, attempts, last_status, last_error, created_at, updated_at, sent_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 0, '', $8, $9, 0) ON CONFLICT (id) DO NOTHING`,
				d.ID, d.Integration, d.Event, d.ImageDigest, d.Repository, d.Payload, DeliveryPending, now, now)
			if err != nil {
				return fmt.Errorf("record delivery %s: %w", d.ID, err)
			}
			if n, err := res.RowsAffected(); err == nil {
				inserted += int(n)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("record deliveries: %w", err)
	}
	return inserted, nil
}

const deliveryCols = `id, integration, event, image_digest, repository, payload, state, attempts, last_status, last_error,
	created_at, updated_at, sent_at`

func scanDelivery(scan func(...any) error) (Delivery, error) {
	var d Delivery
	var created, updated, sent int64
	if err := scan(&d.ID, &d.Integration, &d.Event, &d.ImageDigest, &d.Repository, &d.Payload, &d.State, &d.Attempts,
		&d.LastStatus, &d.LastError, &created, &updated, &sent); err != nil {
		return d, err
	}
	d.Created, d.Updated = time.Unix(0, created), time.Unix(0, updated)
	if sent != 0 {
		d.Sent = time.Unix(0, sent)
	}
	return d, nil
}

// Delivery returns delivery id, or ErrNotFound.
func (s *Store) Delivery(ctx context.Context, id string) (Delivery, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+deliveryCols+` FROM deliveries WHERE id = $1`, id)
	d, err := scanDelivery(row.Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return Delivery{}, fmt.Errorf("delivery %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Delivery{}, fmt.Errorf("delivery %s: %w", id, err)
	}
	return d, nil
}

// DeliveryQuery selects deliveries for the delivery log.
type DeliveryQuery struct {
	// Integration and State filter when set.
	Integration, State string
	// Limit bounds the answer (default 100, at most 1000); newest first.
	Limit int
}

// Deliveries lists deliveries, newest first.
func (s *Store) Deliveries(ctx context.Context, q DeliveryQuery) ([]Delivery, error) {
	var where []string
	var args []any
	if q.Integration != "" {
		args = append(args, q.Integration)
		where = append(where, fmt.Sprintf("integration = $%d", len(args)))
	}
	if q.State != "" {
		args = append(args, q.State)
		where = append(where, fmt.Sprintf("state = $%d", len(args)))
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, maxDeliveriesLimit)
	query := `SELECT ` + deliveryCols + ` FROM deliveries`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, limit)
	query += fmt.Sprintf(" ORDER BY created_at DESC, id LIMIT $%d", len(args))
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("deliveries: %w", err)
	}
	defer rows.Close()
	var out []Delivery
	for rows.Next() {
		d, err := scanDelivery(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("deliveries: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// PendingDeliveries returns the ids of up to limit deliveries not yet handed to the job queue,
// oldest first.
func (s *Store) PendingDeliveries(ctx context.Context, limit int) ([]string, error) {
	limit = min(max(limit, 1), maxDeliveriesLimit)
	rows, err := s.db.QueryContext(ctx, `SELECT id FROM deliveries WHERE state = $1 ORDER BY created_at, id LIMIT $2`,
		DeliveryPending, limit)
	if err != nil {
		return nil, fmt.Errorf("pending deliveries: %w", err)
	}
	out, err := scanStrings(rows)
	if err != nil {
		return nil, fmt.Errorf("pending deliveries: %w", err)
	}
	return out, nil
}

// MarkDeliveriesQueued records that send jobs exist for ids (those still pending).
func (s *Store) MarkDeliveriesQueued(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	err := s.write(ctx, func(tx *txw) error {
		now := time.Now().UnixNano()
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = $1, updated_at = $2 WHERE id = $3 AND state = $4`,
				DeliveryQueued, now, id, DeliveryPending); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("mark deliveries queued: %w", err)
	}
	return nil
}

// RecordAttempt counts one send attempt of delivery id with the receiver's HTTP status (0 when
// none) and error text. state "" keeps the delivery's state; DeliverySent or DeliveryFailed
// ends it. A sent delivery never changes again: marked reports whether this call ended it.
func (s *Store) RecordAttempt(ctx context.Context, id string, status int, errText, state string, when time.Time) (marked bool, err error) {
	if len(errText) > maxIntegrationField {
		errText = errText[:maxIntegrationField]
	}
	err = s.write(ctx, func(tx *txw) error {
		ns := when.UnixNano()
		var res sql.Result
		var err error
		switch state {
		case "":
			res, err = tx.ExecContext(ctx, `UPDATE deliveries SET attempts = attempts + 1, last_status = $1, last_error = $2,
				updated_at = $3 WHERE id = $4 AND state <> $5 AND state <> $6`, status, errText, ns, id, DeliverySent, DeliveryFailed)
		case DeliverySent:
			res, err = tx.ExecContext(ctx, `UPDATE deliveries SET attempts = attempts + 1, last_status = $1, last_error = '',
				state = $2, updated_at = $3, sent_at = $4 WHERE id = $5 AND state <> $6 AND state <> $7`,
				status, DeliverySent, ns, ns, id, DeliverySent, DeliveryFailed)
		case DeliveryFailed:
			res, err = tx.ExecContext(ctx, `UPDATE deliveries SET attempts = attempts + 1, last_status = $1, last_error = $2,
				state = $3, updated_at = $4 WHERE id = $5 AND state <> $6 AND state <> $7`,
				status, errText, DeliveryFailed, ns, id, DeliverySent, DeliveryFailed)
		default:
			return fmt.Errorf("unknown delivery state %q", state)
		}
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		marked = n > 0 && state != ""
		return err
	})
	if err != nil {
		return false, fmt.Errorf("record attempt of delivery %s: %w", id, err)
	}
	return marked, nil
}

// LatestChangeID returns the id of the newest finding change (0 when there is none).
func (s *Store) LatestChangeID(ctx context.Context) (int64, error) {
	var id sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT MAX(id) FROM finding_changes`).Scan(&id); err != nil {
		return 0, fmt.Errorf("latest finding change: %w", err)
	}
	return id.Int64, nil
}

// ImageTags returns the tags pointing at digest (directly or through the index it was pulled
// through) and the image's repository name ("" when the image is not stored).
func (s *Store) ImageTags(ctx context.Context, digest string) ([]Tag, string, error) {
	var name, index string
	err := s.db.QueryRowContext(ctx, `SELECT name, index_digest FROM images WHERE digest = $1`, digest).Scan(&name, &index)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("tags of %s: %w", digest, err)
	}
	if index == "" {
		index = digest
	}
	rows, err := s.db.QueryContext(ctx, `SELECT repository, tag, digest, updated_at FROM tags
		WHERE digest = $1 OR digest = $2 ORDER BY repository, tag LIMIT 1000`, digest, index)
	if err != nil {
		return nil, "", fmt.Errorf("tags of %s: %w", digest, err)
	}
	defer rows.Close()
	var out []Tag
	for rows.Next() {
		var t Tag
		var ns int64
		if err := rows.Scan(&t.Repository, &t.Tag, &t.Digest, &ns); err != nil {
			return nil, "", fmt.Errorf("tags of %s: %w", digest, err)
		}
		t.UpdatedAt = time.Unix(0, ns)
		out = append(out, t)
	}
	return out, name, rows.Err()
}

// FailuresAfter lists up to limit index failures recorded after the time after (Unix
// nanoseconds), oldest first.
func (s *Store) FailuresAfter(ctx context.Context, after int64, limit int) ([]Failure, error) {
	limit = min(max(limit, 1), maxDeliveriesLimit)
	rows, err := s.db.QueryContext(ctx, `SELECT digest, repository, tag, error, attempts, failed_at FROM failures
		WHERE failed_at > $1 ORDER BY failed_at, digest LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("failures: %w", err)
	}
	return scanFailures(rows)
}
