package server

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/riverqueue/river/rivertype"

	"github.com/crowsnest-dev/crowsnest/internal/store"
)

// Metrics holds crowsnest's Prometheus registry and the counters other parts (the watcher, the
// API) update. One Metrics per process; nothing is registered globally.
type Metrics struct {
	Registry *prometheus.Registry
	// IndexJobs counts finished index jobs by outcome ("ok", "failed", "retried").
	IndexJobs *prometheus.CounterVec
	// IndexDuration observes how long indexing one image took.
	IndexDuration prometheus.Histogram
	// WebhookDeliveries counts registry notifications by result ("accepted", "rejected").
	WebhookDeliveries *prometheus.CounterVec
	// Pushes counts SBOM pushes to the API by outcome ("stored", "invalid", "too_large", "error").
	Pushes *prometheus.CounterVec
	// Requests counts API requests by route pattern and status code.
	Requests *prometheus.CounterVec
	// RequestDuration observes API request latency by route pattern.
	RequestDuration *prometheus.HistogramVec
}

// NewMetrics creates the registry with the Go runtime and process collectors and crowsnest's
// counters.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		IndexJobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crowsnest_index_jobs_total", Help: "Index jobs finished, by outcome.",
		}, []string{"outcome"}),
		IndexDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "crowsnest_index_duration_seconds", Help: "Time to index one image.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
		}),
		WebhookDeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crowsnest_webhook_deliveries_total", Help: "Registry webhook deliveries received, by result.",
		}, []string{"result"}),
		Pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crowsnest_api_pushes_total", Help: "SBOM pushes to the API, by outcome.",
		}, []string{"outcome"}),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crowsnest_http_requests_total", Help: "API requests, by route and status code.",
		}, []string{"route", "code"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "crowsnest_http_request_duration_seconds", Help: "API request latency, by route.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"route"}),
	}
	m.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.IndexJobs, m.IndexDuration, m.WebhookDeliveries, m.Pushes, m.Requests, m.RequestDuration)
	// Pre-create the usual label values so the series exist (at 0) before the first event.
	for _, o := range []string{"ok", "failed"} {
		m.IndexJobs.WithLabelValues(o)
	}
	for _, r := range []string{"accepted", "rejected"} {
		m.WebhookDeliveries.WithLabelValues(r)
	}
	return m
}

// scrapeTimeout bounds the database reads of one scrape.
const scrapeTimeout = 10 * time.Second

// storeCollector reads the store's counts at scrape time.
type storeCollector struct {
	st                           *store.Store
	findings, images, advisories *prometheus.Desc
	up                           *prometheus.Desc
}

// WatchStore exports the store's image, advisory and finding counts (findings by severity), read
// at each scrape.
func (m *Metrics) WatchStore(st *store.Store) error {
	return m.Registry.Register(&storeCollector{
		st:         st,
		findings:   prometheus.NewDesc("crowsnest_findings", "Findings in stored images, by severity.", []string{"severity"}, nil),
		images:     prometheus.NewDesc("crowsnest_images", "Stored images (one per platform manifest).", nil, nil),
		advisories: prometheus.NewDesc("crowsnest_advisories", "Stored advisories.", nil, nil),
		up:         prometheus.NewDesc("crowsnest_store_up", "1 when the store answered the last scrape.", nil, nil),
	})
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.findings
	ch <- c.images
	ch <- c.advisories
	ch <- c.up
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	st, err := c.st.Stats(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	for _, sev := range []string{"critical", "high", "medium", "low", "unspecified"} {
		ch <- prometheus.MustNewConstMetric(c.findings, prometheus.GaugeValue, float64(st.FindingsBySeverity[sev]), sev)
	}
	ch <- prometheus.MustNewConstMetric(c.images, prometheus.GaugeValue, float64(st.Images))
	ch <- prometheus.MustNewConstMetric(c.advisories, prometheus.GaugeValue, float64(st.Advisories))
}

// JobLister lists queued jobs (queue.Queue implements it).
type JobLister interface {
	Jobs(ctx context.Context, states ...rivertype.JobState) ([]*rivertype.JobRow, error)
}

type queueCollector struct {
	q     JobLister
	depth *prometheus.Desc
}

// queueStates are the states of jobs not finished yet.
var queueStates = []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStateScheduled,
	rivertype.JobStateRetryable, rivertype.JobStateRunning, rivertype.JobStatePending}

// WatchQueue exports the job queue's depth by state, read at each scrape.
func (m *Metrics) WatchQueue(q JobLister) error {
	return m.Registry.Register(&queueCollector{q: q,
		depth: prometheus.NewDesc("crowsnest_queue_jobs", "Jobs in the queue not finished yet, by state.", []string{"state"}, nil)})
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.depth }

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	jobs, err := c.q.Jobs(ctx, queueStates...)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.depth, err)
		return
	}
	counts := map[rivertype.JobState]int{}
	for _, j := range jobs {
		counts[j.State]++
	}
	for _, s := range queueStates {
		ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(counts[s]), string(s))
	}
}
