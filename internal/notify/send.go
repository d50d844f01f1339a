package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/crowsnest-dev/crowsnest/internal/store"
)

// Headers of a generic webhook request.
const (
	HeaderSignature = "X-Crowsnest-Signature"
	HeaderTimestamp = "X-Crowsnest-Timestamp"
	HeaderDelivery  = "X-Crowsnest-Delivery"
	HeaderEvent     = "X-Crowsnest-Event"
)

// CloudEventType is the CloudEvents type of a findings message; failures and tests use
// dev.crowsnest.image.index-failed and dev.crowsnest.test.
const CloudEventType = "dev.crowsnest.findings.changed"

// Defaults of a Sender.
const (
	DefaultTimeout       = 10 * time.Second
	DefaultMaxAttempts   = 10
	DefaultBackoff       = 5 * time.Second
	DefaultMaxBackoff    = time.Hour
	DefaultMaxRetryAfter = time.Hour
	// maxResponse bounds what is read of a receiver's answer.
	maxResponse = 4 << 10
)

// Sender sends deliveries and records their attempts.
type Sender struct {
	Store *store.Store
	// Client sends requests; nil uses one with Timeout.
	Client *http.Client
	// Timeout bounds one attempt (a slow receiver is retried later). Default 10s.
	Timeout time.Duration
	// MaxAttempts is how many attempts a delivery gets before it is marked failed (default 10).
	MaxAttempts int
	// Backoff is the wait after the first failed attempt; it doubles per attempt up to
	// MaxBackoff (defaults 5s and 1h).
	Backoff, MaxBackoff time.Duration
	// MaxRetryAfter caps how long a 429's Retry-After is honoured (default 1h).
	MaxRetryAfter time.Duration
	Log           *slog.Logger
	Now           func() time.Time
}

func (s *Sender) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Sender) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

func (s *Sender) maxAttempts() int {
	if s.MaxAttempts <= 0 {
		return DefaultMaxAttempts
	}
	return s.MaxAttempts
}

// backoff is the wait after failed attempt n (1-based).
func (s *Sender) backoff(n int) time.Duration {
	b, maxB := s.Backoff, s.MaxBackoff
	if b <= 0 {
		b = DefaultBackoff
	}
	if maxB <= 0 {
		maxB = DefaultMaxBackoff
	}
	for i := 1; i < n && b < maxB; i++ {
		b *= 2
	}
	return min(b, maxB)
}

// outcome is what one attempt decided.
type outcome struct {
	done bool
	// retryAfter > 0 asks for another attempt after it (429's Retry-After); retry asks for
	// another attempt after the backoff.
	retryAfter time.Duration
	retry      bool
	err        error
}

// Deliver makes one attempt at delivery id and records it. A delivery already sent or failed is
// left alone (a re-run job sends nothing).
func (s *Sender) Deliver(ctx context.Context, id string) outcome {
	d, err := s.Store.Delivery(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return outcome{done: true, err: err}
	}
	if err != nil {
		return outcome{retry: true, err: err}
	}
	if d.State == store.DeliverySent || d.State == store.DeliveryFailed {
		return outcome{done: true}
	}
	in, err := s.Store.Integration(ctx, d.Integration)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !in.Enabled) {
		reason := "integration removed"
		if err == nil {
			reason = "integration disabled"
		}
		if _, err := s.Store.RecordAttempt(ctx, id, 0, reason, store.DeliveryFailed, s.now()); err != nil {
			return outcome{retry: true, err: err}
		}
		return outcome{done: true, err: errors.New(reason)}
	}
	if err != nil {
		return outcome{retry: true, err: err}
	}
	status, attemptErr := s.post(ctx, in, d)
	o := s.classify(status, attemptErr)
	state := ""
	switch {
	case o.done && o.err == nil:
		state = store.DeliverySent
	case o.done:
		state = store.DeliveryFailed
	case d.Attempts+1 >= s.maxAttempts():
		state = store.DeliveryFailed
		o = outcome{done: true, err: fmt.Errorf("giving up after %d attempts: %w", d.Attempts+1, o.err)}
	}
	errText := ""
	if o.err != nil {
		errText = o.err.Error()
	}
	// A fresh context: the receiver has the message, so its outcome must be recorded even when
	// this job is being canceled (a lost "sent" mark means one more re-send, see package doc).
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := s.Store.RecordAttempt(rctx, id, status, errText, state, s.now()); err != nil {
		return outcome{retry: true, err: err}
	}
	lg := s.log().With("delivery", id, "integration", in.Name, "status", status)
	switch state {
	case store.DeliverySent:
		lg.Info("notification delivered")
	case store.DeliveryFailed:
		lg.Warn("notification failed", "err", o.err)
	default:
		lg.Info("notification attempt failed; will retry", "err", o.err)
	}
	return o
}

// classify maps a receiver's answer to an outcome.
func (s *Sender) classify(status int, err error) outcome {
	var ra retryAfterError
	switch {
	case errors.As(err, &ra):
		return outcome{retryAfter: ra.d, err: err}
	case status == 0:
		return outcome{retry: true, err: err}
	case status >= 200 && status < 300:
		return outcome{done: true}
	case status == http.StatusRequestTimeout || status >= 500:
		return outcome{retry: true, err: err}
	default:
		// Other 4xx answers (Slack's invalid_token, channel_not_found, ...) do not improve by
		// asking again.
		return outcome{done: true, err: err}
	}
}

type retryAfterError struct {
	d    time.Duration
	body string
}

func (e retryAfterError) Error() string {
	return fmt.Sprintf("receiver answered 429 (retry after %s)%s", e.d, e.body)
}

// post sends d to in's URL and returns the HTTP status; a 429 comes back as a retryAfterError.
// Errors never contain the URL: a Slack webhook URL is itself a secret.
func (s *Sender) post(ctx context.Context, in store.Integration, d store.Delivery) (int, error) {
	body, contentType, err := render(in, d)
	if err != nil {
		return 0, err
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.URL, bytes.NewReader(body))
	if err != nil {
		return 0, errors.New("bad integration URL")
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", "crowsnest-notify/1")
	if in.Kind == KindWebhook {
		req.Header.Set(HeaderDelivery, d.ID)
		req.Header.Set(HeaderEvent, d.Event)
		req.Header.Set(HeaderTimestamp, strconv.FormatInt(s.now().Unix(), 10))
		if in.Secret != "" {
			req.Header.Set(HeaderSignature, Sign(in.Secret, body))
		}
	}
	client := s.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, fmt.Errorf("send: %w", err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if resp.StatusCode == http.StatusTooManyRequests {
		wait := parseRetryAfter(resp.Header.Get("Retry-After"), s.now())
		if wait <= 0 {
			wait = s.backoff(d.Attempts + 1)
		}
		maxWait := s.MaxRetryAfter
		if maxWait <= 0 {
			maxWait = DefaultMaxRetryAfter
		}
		return resp.StatusCode, retryAfterError{d: min(wait, maxWait), body: bodyNote(snippet)}
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("receiver answered %d%s", resp.StatusCode, bodyNote(snippet))
	}
	return resp.StatusCode, nil
}

func bodyNote(b []byte) string {
	t := strings.TrimSpace(string(b))
	if t == "" {
		return ""
	}
	if len(t) > 200 {
		t = t[:200]
	}
	return ": " + strings.ToValidUTF8(t, "?")
}

// parseRetryAfter reads seconds or an HTTP date; 0 when absent or unparsable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 || n > 7*24*3600 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// Sign returns the X-Crowsnest-Signature value of body: "sha256=" and the hex HMAC-SHA256 of
// body keyed by secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a signature header against body in constant time (for receivers written in Go
// and for tests).
func Verify(secret string, body []byte, header string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(header))
}

// render returns the request body and content type of d for in's kind.
func render(in store.Integration, d store.Delivery) ([]byte, string, error) {
	switch in.Kind {
	case KindSlack:
		var ev Event
		if err := json.Unmarshal(d.Payload, &ev); err != nil {
			return nil, "", fmt.Errorf("delivery %s: decode payload: %w", d.ID, err)
		}
		b, err := json.Marshal(slackMessage(ev))
		return b, "application/json", err
	case KindWebhook:
		if !in.CloudEvents {
			return d.Payload, "application/json", nil
		}
		var ev Event
		if err := json.Unmarshal(d.Payload, &ev); err != nil {
			return nil, "", fmt.Errorf("delivery %s: decode payload: %w", d.ID, err)
		}
		ce := cloudEvent{SpecVersion: "1.0", ID: d.ID, Source: "crowsnest", Type: cloudEventType(ev.Type),
			Subject: ev.Image.Digest, Time: ev.Time, DataContentType: "application/json", Data: json.RawMessage(d.Payload)}
		if in.DashboardURL != "" {
			ce.Source = in.DashboardURL
		}
		b, err := json.Marshal(ce)
		return b, "application/cloudevents+json", err
	}
	return nil, "", fmt.Errorf("unknown integration kind %q", in.Kind)
}

// cloudEvent is a CloudEvents 1.0 event in structured mode.
type cloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
}

func cloudEventType(t string) string {
	switch t {
	case TypeIndexFailed:
		return "dev.crowsnest.image.index-failed"
	case TypeTest:
		return "dev.crowsnest.test"
	}
	return CloudEventType
}

// SendArgs asks for one attempt at a delivery. Jobs are unique by delivery id.
type SendArgs struct {
	Delivery string `json:"delivery" river:"unique"`
}

// Kind implements river.JobArgs.
func (SendArgs) Kind() string { return "crowsnest_notify_send" }

// InsertOpts are the options of a send job: unique by delivery id; River's attempts exceed the
// Sender's own count, which decides when a delivery has failed.
func (s *Sender) InsertOpts() *river.InsertOpts {
	return &river.InsertOpts{MaxAttempts: s.maxAttempts() + 5, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// Worker runs send jobs.
type Worker struct {
	river.WorkerDefaults[SendArgs]
	Sender *Sender
}

// Work makes one attempt; a retry is River's next attempt (after NextRetry) or a snooze for a
// 429's Retry-After.
func (w *Worker) Work(ctx context.Context, job *river.Job[SendArgs]) error {
	o := w.Sender.Deliver(ctx, job.Args.Delivery)
	switch {
	case o.done:
		return nil
	case o.retryAfter > 0:
		return river.JobSnooze(o.retryAfter)
	default:
		return o.err
	}
}

// NextRetry backs off exponentially from the Sender's Backoff.
func (w *Worker) NextRetry(job *river.Job[SendArgs]) time.Time {
	return time.Now().Add(w.Sender.backoff(job.Attempt))
}

// Timeout leaves room for the attempt's own timeout and its bookkeeping.
func (w *Worker) Timeout(*river.Job[SendArgs]) time.Duration {
	t := w.Sender.Timeout
	if t <= 0 {
		t = DefaultTimeout
	}
	return t + 30*time.Second
}

// Register adds the send worker to workers.
func Register(workers *river.Workers, s *Sender) {
	river.AddWorker(workers, &Worker{Sender: s})
}
