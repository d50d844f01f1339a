package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Bounds on what a registry may send back.
const (
	maxErrorBody   = 8 << 10
	maxListBody    = 64 << 20 // one catalog/tags/AQL page
	maxRetryAfter  = time.Hour
	defaultPage    = 1000
	maxPages       = 100_000
	maxListEntries = 2_000_000
)

// RetryAfterError reports that the registry asked us to slow down (429, or 503 with
// Retry-After). The queue backs off for After (0 when the registry named no delay).
type RetryAfterError struct {
	After      time.Duration
	StatusCode int
	Endpoint   string
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("%s: HTTP %d, retry after %s", e.Endpoint, e.StatusCode, e.After)
}

// StatusError is any other non-success HTTP answer.
type StatusError struct {
	StatusCode int
	Endpoint   string
	Message    string // the registry's error message, bounded
}

func (e *StatusError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("%s: HTTP %d", e.Endpoint, e.StatusCode)
	}
	return fmt.Sprintf("%s: HTTP %d: %s", e.Endpoint, e.StatusCode, e.Message)
}

// ThrottleError returns a *RetryAfterError for a 429 (or a 503 with Retry-After) response and
// nil for any other. It does not touch the body.
func ThrottleError(resp *http.Response, endpoint string) error {
	ra := resp.Header.Get("Retry-After")
	if resp.StatusCode == http.StatusTooManyRequests || (resp.StatusCode == http.StatusServiceUnavailable && ra != "") {
		return &RetryAfterError{After: parseRetryAfter(ra, time.Now()), StatusCode: resp.StatusCode, Endpoint: endpoint}
	}
	return nil
}

// parseRetryAfter reads delta-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0
		}
		if n > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}

// checkResponse turns a non-2xx answer into a typed error, closing the body.
func checkResponse(resp *http.Response, endpoint string) error {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	defer resp.Body.Close()
	if err := ThrottleError(resp, endpoint); err != nil {
		return err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return &StatusError{StatusCode: resp.StatusCode, Endpoint: endpoint, Message: errorMessage(body)}
}

// errorMessage pulls the message out of Artifactory's {"errors":[{"status","message"}]} or the
// Docker envelope {"errors":[{"code","message"}]}; otherwise the start of the body.
func errorMessage(body []byte) string {
	var env struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &env) == nil && len(env.Errors) > 0 {
		var parts []string
		for _, e := range env.Errors[:min(len(env.Errors), 3)] {
			parts = append(parts, strings.TrimSpace(e.Code+" "+e.Message))
		}
		return strings.Join(parts, "; ")
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}

// getJSON GETs url with client and decodes a bounded JSON body into v, returning the response
// headers for pagination.
func getJSON(ctx context.Context, client *http.Client, req *http.Request, endpoint string, v any) (http.Header, error) {
	resp, err := client.Do(req.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", endpoint, err)
	}
	if err := checkResponse(resp, endpoint); err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	lr := &io.LimitedReader{R: resp.Body, N: maxListBody + 1}
	if err := json.NewDecoder(lr).Decode(v); err != nil {
		if lr.N <= 0 {
			return nil, fmt.Errorf("%s: response larger than %d bytes", endpoint, maxListBody)
		}
		return nil, fmt.Errorf("%s: decode response: %w", endpoint, err)
	}
	return resp.Header, nil
}

// IsRetryable reports whether err is worth retrying later: rate limiting, a server error, or
// a transport failure rather than a refusal.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	var ra *RetryAfterError
	if errors.As(err, &ra) {
		return true
	}
	var se *StatusError
	if errors.As(err, &se) {
		return se.StatusCode >= 500 || se.StatusCode == http.StatusRequestTimeout
	}
	return !errors.Is(err, context.Canceled)
}
