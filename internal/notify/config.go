package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/store"
	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Validate checks an integration before it is stored.
func Validate(in store.Integration) error {
	if !nameRE.MatchString(in.Name) {
		return fmt.Errorf("integration name %q: use 1-63 letters, digits, '.', '_' or '-'", in.Name)
	}
	switch in.Kind {
	case KindSlack:
		if in.CloudEvents {
			return fmt.Errorf("integration %s: CloudEvents applies to webhooks, not Slack", in.Name)
		}
		if in.Secret != "" {
			return fmt.Errorf("integration %s: Slack webhooks are not signed; the URL is the secret", in.Name)
		}
	case KindWebhook:
	default:
		return fmt.Errorf("integration %s: kind %q: want slack or webhook", in.Name, in.Kind)
	}
	if err := checkURL(in.URL); err != nil {
		return fmt.Errorf("integration %s: url: %w", in.Name, err)
	}
	if in.DashboardURL != "" {
		if err := checkURL(in.DashboardURL); err != nil {
			return fmt.Errorf("integration %s: dashboard URL: %w", in.Name, err)
		}
	}
	if len(in.Secret) > 1024 {
		return fmt.Errorf("integration %s: secret longer than 1024 bytes", in.Name)
	}
	if in.MinSeverity != "" && in.MinSeverity != vuln.SeverityUnspecified && vuln.SeverityRank(in.MinSeverity) == 0 {
		return fmt.Errorf("integration %s: minimum severity %q: want low, medium, high or critical", in.Name, in.MinSeverity)
	}
	if len(in.Repositories) > 50 {
		return fmt.Errorf("integration %s: more than 50 repository globs", in.Name)
	}
	for _, g := range in.Repositories {
		if _, err := globRegexp(g); err != nil {
			return fmt.Errorf("integration %s: %w", in.Name, err)
		}
	}
	for _, e := range in.Events {
		switch e {
		case EventFindingAdded, EventFindingRemoved, EventIndexFailed:
		default:
			return fmt.Errorf("integration %s: event %q: want %s, %s or %s", in.Name, e, EventFindingAdded, EventFindingRemoved, EventIndexFailed)
		}
	}
	return nil
}

func checkURL(s string) error {
	if len(s) > 2048 {
		return errors.New("longer than 2048 bytes")
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return errors.New("want an absolute http(s) URL")
	}
	return nil
}

// RedactURL hides what an integration URL may carry as a secret: a Slack webhook's path, any
// user info and query values.
func RedactURL(kind, s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(invalid URL)"
	}
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = "redacted"
	}
	if kind == KindSlack {
		parts := strings.SplitN(strings.TrimPrefix(u.Path, "/"), "/", 2)
		u.Path = "/" + parts[0] + "/redacted"
	}
	u.Fragment = ""
	return u.String()
}

// NewSecret makes a random webhook signing secret.
func NewSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return "whsec_" + hex.EncodeToString(b[:]), nil
}

// Test sends a test message to integration name right away (no retries, not in the delivery
// log) and returns the receiver's error, if any.
func (s *Sender) Test(ctx context.Context, name string) error {
	in, err := s.Store.Integration(ctx, name)
	if err != nil {
		return err
	}
	var rb [8]byte
	if _, err := rand.Read(rb[:]); err != nil {
		return err
	}
	ev := Event{ID: "dlv_test_" + hex.EncodeToString(rb[:]), Type: TypeTest, Time: s.now().UTC(), Integration: in.Name,
		Reason: "test", Image: Image{Digest: "sha256:" + strings.Repeat("0", 64), Repository: "example/app", Tags: []string{"example/app:latest"},
			URL: imageURL(in.DashboardURL, "sha256:"+strings.Repeat("0", 64))},
		Counts: Counts{Added: map[string]int{vuln.SeverityCritical: 1}, Removed: map[string]int{}},
		Added: []Vuln{{ID: "CVE-0000-0000", Severity: vuln.SeverityCritical, Summary: "crowsnest test message: nothing is vulnerable",
			Package: Package{Type: "deb", Name: "example", Version: "1.0"}, FixedVersion: "1.1", URL: vulnURL(in.DashboardURL, "CVE-0000-0000")}},
		Removed: []Vuln{}}
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	status, err := s.post(ctx, in, store.Delivery{ID: ev.ID, Integration: in.Name, Event: ev.Type, Payload: b, Created: time.Now()})
	if err != nil {
		return fmt.Errorf("test message to %s: %w", name, err)
	}
	if status < 200 || status >= 300 {
		return fmt.Errorf("test message to %s: receiver answered %d", name, status)
	}
	return nil
}
