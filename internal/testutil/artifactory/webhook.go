package artifactory

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"time"
)

// Subscription is a webhook subscription as the Event API takes it (spec §5.1).
type Subscription struct {
	Key         string      `json:"key"`
	Description string      `json:"description,omitempty"`
	Enabled     *bool       `json:"enabled,omitempty"`
	EventFilter EventFilter `json:"event_filter"`
	Handlers    []Handler   `json:"handlers"`
	ProjectKey  string      `json:"project_key,omitempty"`
}

// EventFilter selects events by domain, type and repository criteria.
type EventFilter struct {
	Domain     string   `json:"domain"`
	EventTypes []string `json:"event_types"`
	Criteria   Criteria `json:"criteria"`
}

// Criteria of the artifact, artifact_property and docker domains.
type Criteria struct {
	AnyLocal        bool     `json:"anyLocal"`
	AnyRemote       bool     `json:"anyRemote"`
	AnyFederated    bool     `json:"anyFederated"`
	RepoKeys        []string `json:"repoKeys"`
	IncludePatterns []string `json:"includePatterns,omitempty"`
	ExcludePatterns []string `json:"excludePatterns,omitempty"`
}

// Handler is where and how an event is delivered.
type Handler struct {
	HandlerType         string     `json:"handler_type"`
	URL                 string     `json:"url"`
	Secret              string     `json:"secret,omitempty"`
	UseSecretForSigning bool       `json:"use_secret_for_signing"`
	Proxy               string     `json:"proxy,omitempty"`
	CustomHTTPHeaders   []KeyValue `json:"custom_http_headers,omitempty"`
}

// KeyValue is a name/value pair (custom headers).
type KeyValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// DockerData is the data of a docker-domain event, fields in Artifactory's order (spec §5.2).
type DockerData struct {
	RepoKey   string     `json:"repo_key"`
	EventType string     `json:"event_type,omitempty"` // only with Quirks.DataEventType
	Path      string     `json:"path"`
	Name      string     `json:"name"`
	SHA256    string     `json:"sha256"`
	Size      int64      `json:"size"`
	ImageName string     `json:"image_name"`
	Tag       string     `json:"tag"`
	Platforms []Platform `json:"platforms"`
	ImageType string     `json:"image_type,omitempty"`
}

// ArtifactData is the data of an artifact-domain event.
type ArtifactData struct {
	RepoKey string `json:"repo_key"`
	Path    string `json:"path"`
	Name    string `json:"name"`
	SHA256  string `json:"sha256"`
	Size    int64  `json:"size"`
}

// Event is something that happened; Data is DockerData, ArtifactData or any JSON value.
type Event struct {
	Domain    string
	EventType string
	Data      any
}

type envelope struct {
	Domain          string `json:"domain"`
	EventType       string `json:"event_type"`
	Data            any    `json:"data"`
	SubscriptionKey string `json:"subscription_key"`
	JPDOrigin       string `json:"jpd_origin,omitempty"`
	Source          string `json:"source"`
}

// Attempt is one delivery attempt in the troubleshooting record format (spec §5.4).
type Attempt struct {
	Timestamp     int64             `json:"timestamp"`
	ElapsedMillis int64             `json:"elapsed_millis"`
	Errors        []string          `json:"errors,omitempty"`
	Request       AttemptRequest    `json:"request"`
	Response      *AttemptResponse  `json:"response,omitempty"`
	Event         AttemptEvent      `json:"event"`
	Dropped       bool              `json:"-"` // swallowed by DropWebhooks
	Headers       map[string]string `json:"-"` // every header sent, X-JFrog-Event-Auth included
}

// AttemptRequest is the request part of an Attempt.
type AttemptRequest struct {
	Method           string            `json:"method"`
	URL              string            `json:"url"`
	Headers          map[string]string `json:"headers"`
	Payload          string            `json:"payload"`
	RetriesAttempted int               `json:"retries_attempted"`
}

// AttemptResponse is the response part of an Attempt.
type AttemptResponse struct {
	Status int    `json:"status"`
	Body   string `json:"body"`
}

// AttemptEvent identifies the event of an Attempt.
type AttemptEvent struct {
	ID              string `json:"id"`
	SubscriptionKey string `json:"subscription_key"`
	Domain          string `json:"domain"`
	EventType       string `json:"event_type"`
	Data            string `json:"data"`
	Source          string `json:"source"`
}

// delivery is one (event, subscription handler) pair to send.
type delivery struct {
	id      string
	sub     string
	handler Handler
	env     envelope
	payload []byte
	test    bool
}

// deliverer sends webhooks asynchronously with retries, like the Event service.
type deliverer struct {
	e        *Emulator
	opts     WebhookOptions
	client   *http.Client
	mu       sync.Mutex
	cond     *sync.Cond
	queue    []delivery
	inflight int
	closed   bool
	drop     int
	log      []Attempt
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// maxAttemptLog bounds the troubleshooting log.
const maxAttemptLog = 100000

func newDeliverer(e *Emulator, o WebhookOptions) *deliverer {
	if o.Attempts <= 0 {
		o.Attempts = 3
	}
	if o.Backoff == nil {
		o.Backoff = []time.Duration{5 * time.Second, 30 * time.Second}
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &deliverer{e: e, opts: o, ctx: ctx, cancel: cancel,
		client: &http.Client{Timeout: o.Timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	d.cond = sync.NewCond(&d.mu)
	for i := 0; i < o.Workers; i++ {
		d.wg.Add(1)
		go d.work()
	}
	return d
}

func (d *deliverer) close() {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.cancel()
	d.cond.Broadcast()
	d.wg.Wait()
}

func (d *deliverer) enqueue(ds ...delivery) {
	d.mu.Lock()
	if !d.closed {
		d.queue = append(d.queue, ds...)
	}
	d.mu.Unlock()
	d.cond.Broadcast()
}

func (d *deliverer) work() {
	defer d.wg.Done()
	for {
		d.mu.Lock()
		for len(d.queue) == 0 && !d.closed {
			d.cond.Wait()
		}
		if d.closed {
			d.mu.Unlock()
			return
		}
		job := d.queue[0]
		d.queue = d.queue[1:]
		d.inflight++
		dropped := false
		if d.drop > 0 && !job.test {
			d.drop--
			dropped = true
		}
		d.mu.Unlock()
		if dropped {
			d.record(Attempt{Timestamp: d.e.opts.Now().UnixMilli(), Dropped: true, Errors: []string{"dropped by fault injection"},
				Request: AttemptRequest{Method: http.MethodPost, URL: job.handler.URL, Payload: string(job.payload)}, Event: job.attemptEvent()})
		} else {
			d.send(job)
		}
		d.mu.Lock()
		d.inflight--
		d.mu.Unlock()
		d.cond.Broadcast()
	}
}

func (j delivery) attemptEvent() AttemptEvent {
	data, _ := marshalCompact(j.env.Data)
	return AttemptEvent{ID: j.id, SubscriptionKey: j.sub, Domain: j.env.Domain, EventType: j.env.EventType, Data: string(data), Source: j.env.Source}
}

// send tries a delivery up to Attempts times: retried on connection errors and 5xx, never on 4xx.
func (d *deliverer) send(j delivery) error {
	var last error
	for try := 0; try < d.opts.Attempts; try++ {
		if try > 0 {
			wait := d.opts.Backoff[min(try-1, len(d.opts.Backoff)-1)]
			select {
			case <-time.After(wait):
			case <-d.ctx.Done():
				return d.ctx.Err()
			}
		}
		retry, err := d.attempt(j, try)
		if err == nil {
			return nil
		}
		last = err
		if !retry {
			break
		}
	}
	return last
}

func (d *deliverer) attempt(j delivery, try int) (retry bool, err error) {
	start := time.Now()
	a := Attempt{Timestamp: d.e.opts.Now().UnixMilli(), Event: j.attemptEvent(),
		Request: AttemptRequest{Method: http.MethodPost, URL: j.handler.URL, Payload: string(j.payload), RetriesAttempted: try,
			Headers: map[string]string{"Content-Type": "application/json"}}}
	a.Headers = map[string]string{}
	defer func() {
		a.ElapsedMillis = time.Since(start).Milliseconds()
		if err != nil {
			a.Errors = append(a.Errors, err.Error())
		}
		if !j.test {
			d.record(a)
		}
	}()
	if err := d.checkURL(j.handler.URL); err != nil {
		return false, err
	}
	req, err := http.NewRequestWithContext(d.ctx, http.MethodPost, j.handler.URL, bytes.NewReader(j.payload))
	if err != nil {
		return false, fmt.Errorf("error executing webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	for _, h := range j.handler.CustomHTTPHeaders {
		req.Header.Set(h.Name, h.Value)
	}
	if s := j.handler.Secret; s != "" {
		if j.handler.UseSecretForSigning {
			req.Header.Set("X-JFrog-Event-Auth", Sign(s, j.payload))
		} else {
			req.Header.Set("X-JFrog-Event-Auth", s)
		}
	}
	for k := range req.Header {
		a.Headers[k] = req.Header.Get(k)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return true, fmt.Errorf("error executing webhook: %w", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	_ = resp.Body.Close()
	a.Response = &AttemptResponse{Status: resp.StatusCode, Body: string(body)}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode >= 500, errors.New("error executing webhook: unexpected HTTP response status")
	}
	return false, nil
}

// checkURL applies the strict URL policy of self-hosted installs when asked to.
func (d *deliverer) checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("error executing webhook: bad url %q", raw)
	}
	if !d.opts.StrictURLPolicy {
		return nil
	}
	ips, err := net.DefaultResolver.LookupIPAddr(d.ctx, u.Hostname())
	if err != nil {
		return fmt.Errorf("error executing webhook: %w", err)
	}
	for _, ip := range ips {
		if ip.IP.IsLoopback() || ip.IP.IsPrivate() || ip.IP.IsLinkLocalUnicast() || ip.IP.IsUnspecified() {
			return fmt.Errorf("error executing webhook: target %s is on a private network (urlStrictPolicy)", u.Host)
		}
	}
	return nil
}

func (d *deliverer) record(a Attempt) {
	d.mu.Lock()
	if len(d.log) < maxAttemptLog {
		d.log = append(d.log, a)
	}
	d.mu.Unlock()
}

// Sign is what Artifactory puts in X-JFrog-Event-Auth with use_secret_for_signing: the lowercase
// hex HMAC-SHA256 of the exact body (spec §5.3).
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Subscribe adds or replaces a subscription (like POST/PUT on the Event API).
func (e *Emulator) Subscribe(s Subscription) error {
	if err := validateSubscription(&s); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.subs[s.Key]; !ok {
		e.subOrder = append(e.subOrder, s.Key)
	}
	e.subs[s.Key] = &s
	return nil
}

var domainEvents = map[string][]string{
	"artifact":          {"deployed", "deleted", "moved", "copied", "cached"},
	"artifact_property": {"added", "deleted"},
	"docker":            {"pushed", "deleted", "promoted"},
	"build":             {"uploaded", "deleted", "promoted"},
}

func validateSubscription(s *Subscription) error {
	if len(s.Key) < 2 || len(s.Key) > 200 || strings.ContainsAny(s.Key, " \t/") {
		return fmt.Errorf("key %q: 2 to 200 characters, no spaces", s.Key)
	}
	if len(s.Description) > 1000 {
		return errors.New("description longer than 1000 characters")
	}
	types, ok := domainEvents[s.EventFilter.Domain]
	if !ok {
		return fmt.Errorf("unknown domain %q", s.EventFilter.Domain)
	}
	if len(s.EventFilter.EventTypes) == 0 {
		return errors.New("event_types is empty")
	}
	for _, t := range s.EventFilter.EventTypes {
		if !slices.Contains(types, t) {
			return fmt.Errorf("event type %q is not valid for domain %q", t, s.EventFilter.Domain)
		}
	}
	if len(s.Handlers) == 0 {
		return errors.New("at least one handler is required")
	}
	for i := range s.Handlers {
		h := &s.Handlers[i]
		if h.HandlerType == "" {
			h.HandlerType = "webhook"
		}
		if h.HandlerType != "webhook" {
			return fmt.Errorf("handler_type %q is not supported by the emulator", h.HandlerType)
		}
		if u, err := url.Parse(h.URL); err != nil || u.Host == "" {
			return fmt.Errorf("handler url %q", h.URL)
		}
	}
	if s.Enabled == nil {
		t := true
		s.Enabled = &t
	}
	return nil
}

// Unsubscribe removes a subscription.
func (e *Emulator) Unsubscribe(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.subs[key]; !ok {
		return false
	}
	delete(e.subs, key)
	e.subOrder = slices.DeleteFunc(e.subOrder, func(k string) bool { return k == key })
	return true
}

// Emit delivers ev to every matching subscription, asynchronously.
func (e *Emulator) Emit(ev Event) {
	e.mu.Lock()
	var jobs []delivery
	for _, k := range e.subOrder {
		s := e.subs[k]
		if !*s.Enabled || s.EventFilter.Domain != ev.Domain || !slices.Contains(s.EventFilter.EventTypes, ev.EventType) ||
			!e.criteriaMatch(s.EventFilter.Criteria, ev.Data) {
			continue
		}
		env := envelope{Domain: ev.Domain, EventType: ev.EventType, Data: ev.Data, SubscriptionKey: s.Key,
			JPDOrigin: e.jpdOrigin(), Source: "jfrog/jfrt@" + e.serviceID}
		payload, err := marshalCompact(env)
		if err != nil {
			e.opts.Logf("artifactory emulator: encode event: %v", err)
			continue
		}
		for _, h := range s.Handlers {
			jobs = append(jobs, delivery{id: strings.ToUpper(newULID()), sub: s.Key, handler: h, env: env, payload: payload})
		}
	}
	e.mu.Unlock()
	e.hooks.enqueue(jobs...)
}

func (e *Emulator) jpdOrigin() string {
	if e.opts.BaseURL != "" {
		return strings.TrimSuffix(e.opts.BaseURL, "/")
	}
	if e.opts.Cloud {
		return e.URL()
	}
	return ""
}

// criteriaMatch applies repository criteria and Ant patterns to an event's repo_key and path.
func (e *Emulator) criteriaMatch(c Criteria, data any) bool {
	var repoKey, p string
	switch d := data.(type) {
	case DockerData:
		repoKey, p = d.RepoKey, d.Path
	case ArtifactData:
		repoKey, p = d.RepoKey, d.Path
	default:
		return true // test and custom events carry no repository
	}
	rp := e.repoOfPhysical(repoKey)
	ok := slices.Contains(c.RepoKeys, repoKey) || (rp != nil && slices.Contains(c.RepoKeys, rp.Key))
	if rp != nil {
		ok = ok || (c.AnyLocal && rp.Type == "local") || (c.AnyRemote && rp.Type == "remote") ||
			(c.AnyFederated && rp.Type == "federated")
	}
	if !ok {
		return false
	}
	if len(c.IncludePatterns) > 0 && !slices.ContainsFunc(c.IncludePatterns, func(g string) bool { return antMatch(g, p) }) {
		return false
	}
	return !slices.ContainsFunc(c.ExcludePatterns, func(g string) bool { return antMatch(g, p) })
}

// antMatch matches an Ant-style pattern (`**` any number of segments, `*` and `?` within one).
func antMatch(pattern, p string) bool {
	if len(pattern) > 1024 || len(p) > 4096 || strings.Count(pattern, "**") > 8 {
		return false // bounded: `**` backtracking is exponential in the worst case
	}
	return antSegs(strings.Split(strings.Trim(pattern, "/"), "/"), strings.Split(strings.Trim(p, "/"), "/"), 0)
}

func antSegs(pat, segs []string, depth int) bool {
	if depth > 64 {
		return false
	}
	for len(pat) > 0 {
		if pat[0] == "**" {
			for len(pat) > 0 && pat[0] == "**" {
				pat = pat[1:]
			}
			if len(pat) == 0 {
				return true
			}
			for i := 0; i <= len(segs); i++ {
				if antSegs(pat, segs[i:], depth+1) {
					return true
				}
			}
			return false
		}
		if len(segs) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], segs[0]); !ok {
			return false
		}
		pat, segs = pat[1:], segs[1:]
	}
	return len(segs) == 0
}

// DropWebhooks makes the next n deliveries vanish (recorded as dropped, never sent).
func (e *Emulator) DropWebhooks(n int) {
	e.hooks.mu.Lock()
	e.hooks.drop += n
	e.hooks.mu.Unlock()
}

// Deliveries returns every recorded delivery attempt so far.
func (e *Emulator) Deliveries() []Attempt {
	e.hooks.mu.Lock()
	defer e.hooks.mu.Unlock()
	return slices.Clone(e.hooks.log)
}

// WaitWebhooks blocks until no delivery is queued or in flight (retries included).
func (e *Emulator) WaitWebhooks(ctx context.Context) error {
	d := e.hooks
	stop := context.AfterFunc(ctx, d.cond.Broadcast)
	defer stop()
	d.mu.Lock()
	defer d.mu.Unlock()
	for len(d.queue) > 0 || d.inflight > 0 {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d.cond.Wait()
	}
	return nil
}

// imageName is the webhook's image_name: the last path segment, or the full path with the quirk.
func (e *Emulator) imageName(image string) string {
	if e.opts.Quirks.FullImageName {
		return image
	}
	return path.Base(image)
}

func (e *Emulator) dockerData(repoKey, eventType string, it *Item, image, tag string, platforms []Platform) DockerData {
	d := DockerData{RepoKey: repoKey, Path: it.fullPath(), Name: it.Name, SHA256: it.SHA256, Size: it.Size,
		ImageName: e.imageName(image), Tag: tag, Platforms: platforms, ImageType: "docker"}
	if d.Platforms == nil {
		d.Platforms = []Platform{}
	}
	if e.opts.Quirks.NoImageType {
		d.ImageType = ""
	}
	if e.opts.Quirks.DataEventType {
		d.EventType = eventType
	}
	return d
}

// emitRemoved sends docker "deleted" for removed tag manifests and artifact "deleted" per file.
func (e *Emulator) emitRemoved(phys string, removed []*Item) {
	for _, it := range removed {
		e.Emit(Event{Domain: "artifact", EventType: "deleted", Data: ArtifactData{RepoKey: phys, Path: it.fullPath(), Name: it.Name, SHA256: it.SHA256, Size: it.Size}})
		if isManifestName(it.Name) {
			img, tag := path.Split(it.Path)
			img = strings.TrimSuffix(img, "/")
			if isDigestFolder(tag) || img == "" {
				continue
			}
			e.Emit(Event{Domain: "docker", EventType: "deleted", Data: e.dockerData(phys, "deleted", it, img, tag, platformsOf(it))})
		}
	}
}

func platformsOf(it *Item) []Platform { return it.platforms }
