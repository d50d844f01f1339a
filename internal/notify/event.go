// Package notify tells people about finding changes: Slack incoming webhooks and signed generic
// webhooks (docs/NOTIFICATIONS.md).
//
// The store's finding_changes history is the source. A Dispatcher reads it after a stored
// cursor, rolls the changes up per image and event (an advisory update touching 500 images
// makes at most 500 messages, not one per vulnerability), applies each integration's filters
// and, in one transaction, records one delivery per integration and roll-up and advances the
// cursor (a transactional outbox). It then queues a River job per delivery, unique by delivery
// id; the job sends it with retries and backoff and marks it sent once.
//
// Delivery is at least once with an idempotency key: a crash after the receiver accepted a
// message but before it was marked sent re-sends it with the same delivery id
// (X-Crowsnest-Delivery), which receivers dedupe by.
package notify

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/crowsnest-dev/crowsnest/internal/store"
	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

// Event kinds an integration can subscribe to.
const (
	EventFindingAdded   = "finding-added"
	EventFindingRemoved = "finding-removed"
	EventIndexFailed    = "index-failed"
)

// Message types (Event.Type).
const (
	TypeFindingsChanged = "findings.changed"
	TypeIndexFailed     = "index.failed"
	TypeTest            = "test"
)

// Integration kinds.
const (
	KindSlack   = "slack"
	KindWebhook = "webhook"
)

// maxListed bounds the vulnerabilities listed in one message; counts always cover all of them.
const maxListed = 50

// Event is the JSON payload of a generic webhook (the "data" of its CloudEvent) and what a Slack
// message is rendered from. docs/NOTIFICATIONS.md documents it.
type Event struct {
	// ID is the delivery id, also sent as X-Crowsnest-Delivery.
	ID          string    `json:"id"`
	Type        string    `json:"type"`
	Time        time.Time `json:"time"`
	Integration string    `json:"integration"`
	// Reason says why findings changed: "push", "index", "advisory-update", ...
	Reason string `json:"reason,omitempty"`
	Image  Image  `json:"image"`
	// Counts count every added / removed finding the integration's filters kept, by severity.
	Counts Counts `json:"counts"`
	// Added and Removed list the most severe of them (at most 50 each; Truncated says more exist).
	Added     []Vuln   `json:"added"`
	Removed   []Vuln   `json:"removed"`
	Truncated bool     `json:"truncated,omitempty"`
	Failure   *Failure `json:"failure,omitempty"`
}

// Image identifies the image a message is about.
type Image struct {
	Digest     string   `json:"digest"`
	Repository string   `json:"repository"`
	Tags       []string `json:"tags"`
	// URL is the image's dashboard page (when the integration has a dashboard URL).
	URL string `json:"url,omitempty"`
}

// Counts are finding counts by severity rating.
type Counts struct {
	Added   map[string]int `json:"added"`
	Removed map[string]int `json:"removed"`
}

// Vuln is one finding in a message.
type Vuln struct {
	ID           string   `json:"id"`
	Aliases      []string `json:"aliases,omitempty"`
	Severity     string   `json:"severity"`
	CVSSScore    float64  `json:"cvssScore,omitempty"`
	Summary      string   `json:"summary,omitempty"`
	Package      Package  `json:"package"`
	FixedVersion string   `json:"fixedVersion,omitempty"`
	URL          string   `json:"url,omitempty"`
}

// Package is the affected package of a Vuln.
type Package struct {
	Type    string `json:"type"`
	Name    string `json:"name"`
	Version string `json:"version"`
	PURL    string `json:"purl,omitempty"`
}

// Failure describes an image that failed to index.
type Failure struct {
	Tag      string `json:"tag"`
	Error    string `json:"error"`
	Attempts int    `json:"attempts"`
}

// rollup is the finding changes of one image from one write (same reason and time): the unit
// a message is about.
type rollup struct {
	digest  string
	reason  string
	time    time.Time
	firstID int64
	added   []vuln.Finding
	removed []vuln.Finding
}

// rollUp groups changes by image, reason and time, in order of first change.
func rollUp(changes []vuln.Change) []*rollup {
	type key struct {
		digest, reason string
		ns             int64
	}
	byKey := map[key]*rollup{}
	var out []*rollup
	for _, c := range changes {
		k := key{c.ImageDigest, c.Reason, c.Time.UnixNano()}
		r := byKey[k]
		if r == nil {
			r = &rollup{digest: c.ImageDigest, reason: c.Reason, time: c.Time, firstID: c.ID}
			byKey[k] = r
			out = append(out, r)
		}
		if c.Kind == vuln.ChangeRemoved {
			r.removed = append(r.removed, c.Finding)
		} else {
			r.added = append(r.added, c.Finding)
		}
	}
	return out
}

// filter is an integration's compiled filters.
type filter struct {
	minRank int
	fixable bool
	repos   []*regexp.Regexp
	events  map[string]bool
}

func newFilter(in store.Integration) (filter, error) {
	f := filter{minRank: vuln.SeverityRank(in.MinSeverity), fixable: in.FixableOnly}
	for _, g := range in.Repositories {
		re, err := globRegexp(g)
		if err != nil {
			return f, err
		}
		f.repos = append(f.repos, re)
	}
	if len(in.Events) > 0 {
		f.events = map[string]bool{}
		for _, e := range in.Events {
			f.events[e] = true
		}
	}
	return f, nil
}

func (f filter) wants(event string) bool { return f.events == nil || f.events[event] }

func (f filter) keep(v *vuln.Finding) bool {
	return vuln.SeverityRank(v.Severity) >= f.minRank && (!f.fixable || v.FixedVersion != "")
}

// repository returns the first of repos the filter accepts (the first one when it has no
// globs), and false when it accepts none.
func (f filter) repository(repos []string) (string, bool) {
	if len(f.repos) == 0 {
		if len(repos) == 0 {
			return "", true
		}
		return repos[0], true
	}
	for _, r := range repos {
		if !utf8.ValidString(r) {
			// regexp would read invalid bytes as U+FFFD and match what the glob does not say
			continue
		}
		for _, re := range f.repos {
			if re.MatchString(r) {
				return r, true
			}
		}
	}
	return "", false
}

// globRegexp compiles a repository glob: '*' matches any run of characters including '/', '?'
// one character (as --registry include/exclude do).
func globRegexp(g string) (*regexp.Regexp, error) {
	if g == "" || len(g) > 512 || !utf8.ValidString(g) {
		return nil, fmt.Errorf("repository glob %q: empty, longer than 512 bytes or not UTF-8", g)
	}
	var b strings.Builder
	b.WriteString("^")
	for _, r := range g {
		switch r {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

// target is a roll-up's image as the store knows it.
type target struct {
	repos []string // repositories with a tag on the image, sorted, unique
	tags  []string // repository:tag
}

// buildEvent renders roll-up r for an integration, or returns false when its filters leave
// nothing to say.
func buildEvent(in store.Integration, f filter, r *rollup, t target) (Event, bool) {
	repo, ok := f.repository(t.repos)
	if !ok {
		return Event{}, false
	}
	ev := Event{Type: TypeFindingsChanged, Time: r.time.UTC(), Integration: in.Name, Reason: r.reason,
		Image:  Image{Digest: r.digest, Repository: repo, Tags: nonNil(t.tags), URL: imageURL(in.DashboardURL, r.digest)},
		Counts: Counts{Added: map[string]int{}, Removed: map[string]int{}}, Added: []Vuln{}, Removed: []Vuln{}}
	var added, removed []*vuln.Finding
	if f.wants(EventFindingAdded) {
		for i := range r.added {
			if v := &r.added[i]; f.keep(v) {
				added = append(added, v)
				ev.Counts.Added[severityWord(v.Severity)]++
			}
		}
	}
	if f.wants(EventFindingRemoved) {
		for i := range r.removed {
			if v := &r.removed[i]; f.keep(v) {
				removed = append(removed, v)
				ev.Counts.Removed[severityWord(v.Severity)]++
			}
		}
	}
	if len(added) == 0 && len(removed) == 0 {
		return Event{}, false
	}
	ev.Added, ev.Truncated = listVulns(in.DashboardURL, added)
	var more bool
	ev.Removed, more = listVulns(in.DashboardURL, removed)
	ev.Truncated = ev.Truncated || more
	ev.ID = deliveryID(in.Name, TypeFindingsChanged, fmt.Sprintf("%d", r.firstID), r.digest, r.reason)
	return ev, true
}

// failureEvent renders an index failure for an integration.
func failureEvent(in store.Integration, f filter, fl store.Failure) (Event, bool) {
	if !f.wants(EventIndexFailed) {
		return Event{}, false
	}
	repo, ok := f.repository([]string{fl.Repository})
	if !ok {
		return Event{}, false
	}
	errText := fl.Error
	if len(errText) > 2000 {
		errText = errText[:2000] + "..."
	}
	ev := Event{Type: TypeIndexFailed, Time: fl.FailedAt.UTC(), Integration: in.Name, Reason: "index",
		Image:  Image{Digest: fl.Digest, Repository: repo, Tags: []string{fl.Repository + ":" + fl.Tag}, URL: imageURL(in.DashboardURL, fl.Digest)},
		Counts: Counts{Added: map[string]int{}, Removed: map[string]int{}}, Added: []Vuln{}, Removed: []Vuln{},
		Failure: &Failure{Tag: fl.Tag, Error: errText, Attempts: fl.Attempts}}
	ev.ID = deliveryID(in.Name, TypeIndexFailed, fl.Digest, fmt.Sprintf("%d", fl.FailedAt.UnixNano()))
	return ev, true
}

func severityWord(s string) string {
	if vuln.SeverityRank(s) == 0 {
		return vuln.SeverityUnspecified
	}
	return s
}

// listVulns returns the most severe of fs as Vulns (at most maxListed) and whether some were
// left out.
func listVulns(dashboard string, fs []*vuln.Finding) ([]Vuln, bool) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if ra, rb := vuln.SeverityRank(a.Severity), vuln.SeverityRank(b.Severity); ra != rb {
			return ra > rb
		}
		if a.CVSSScore != b.CVSSScore {
			return a.CVSSScore > b.CVSSScore
		}
		if a.VulnerabilityID != b.VulnerabilityID {
			return a.VulnerabilityID < b.VulnerabilityID
		}
		return a.Package.Name < b.Package.Name
	})
	out := make([]Vuln, 0, min(len(fs), maxListed))
	for _, v := range fs[:min(len(fs), maxListed)] {
		out = append(out, Vuln{ID: v.VulnerabilityID, Aliases: v.Aliases, Severity: severityWord(v.Severity), CVSSScore: v.CVSSScore,
			Summary: v.Summary, FixedVersion: v.FixedVersion, URL: vulnURL(dashboard, v.VulnerabilityID),
			Package: Package{Type: v.Package.Type, Name: v.Package.Name, Version: v.Package.Version, PURL: v.Package.PURL}})
	}
	return out, len(fs) > maxListed
}

// deliveryID derives a delivery's id from what it is about, so recording the same roll-up twice
// (two dispatchers, a retried transaction) yields the same id.
func deliveryID(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return "dlv_" + hex.EncodeToString(h[:12])
}

func imageURL(base, digest string) string {
	if base == "" {
		return ""
	}
	return strings.TrimRight(base, "/") + "/images/" + url.PathEscape(digest)
}

func vulnURL(base, id string) string {
	if base == "" {
		return ""
	}
	return strings.TrimRight(base, "/") + "/vulnerabilities/" + url.PathEscape(id)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// shortDigest shortens sha256:abcdef... for people.
func shortDigest(d string) string {
	_, hexPart, ok := strings.Cut(d, ":")
	if !ok || len(hexPart) < 12 {
		return d
	}
	return d[:len(d)-len(hexPart)] + hexPart[:12]
}
