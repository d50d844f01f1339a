// Package apiclient talks to a crowsnest server's JSON API: agents push SBOMs, the CLI reads
// stored results. Tokens travel only in the Authorization header and are never logged.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
)

// maxResponse bounds what is read from the server.
const maxResponse = 256 << 20

// Client is a server's API endpoint with a token.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
}

// New checks the server URL; token may be empty for health endpoints only.
func New(server, token string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(server, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--server %q: want http(s)://host[:port]", server)
	}
	if hc == nil {
		hc = &http.Client{Timeout: 2 * time.Minute}
	}
	return &Client{base: u, token: token, http: hc}, nil
}

// Error is an answer other than 2xx.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("server answered %d: %s", e.Status, e.Message) }

// Permanent reports whether sending the same request again cannot succeed (a rejected SBOM, a
// bad token or scope); other failures (5xx, 429, network) are worth retrying.
func Permanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status >= 400 && e.Status < 500 && e.Status != http.StatusTooManyRequests && e.Status != http.StatusRequestTimeout
}

func (c *Client) do(ctx context.Context, method, path string, query url.Values, body io.Reader, contentType string, out any) error {
	u := *c.base
	u.Path += path
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if len(msg) > 500 {
			msg = msg[:500]
		}
		return &Error{Status: resp.StatusCode, Message: msg}
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = data
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// Push sends an indexed image and the tags pointing at it ("repository:tag"); the server stores
// and matches it.
func (c *Client) Push(ctx context.Context, sb *sbom.SBOM, tags []string) error {
	body, err := json.Marshal(sb)
	if err != nil {
		return err
	}
	q := url.Values{}
	for _, t := range tags {
		q.Add("tag", t)
	}
	return c.do(ctx, http.MethodPost, "/api/v1/images", q, bytes.NewReader(body), "application/json", nil)
}

// Get reads an API route into out (a *[]byte receives the raw body).
func (c *Client) Get(ctx context.Context, path string, query url.Values, out any) error {
	return c.do(ctx, http.MethodGet, path, query, nil, "", out)
}
