package dashboard

import (
	"fmt"
	"html/template"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/server"
	"github.com/crowsnest-dev/crowsnest/internal/store"
)

var funcs = template.FuncMap{
	"short":    short,
	"ago":      ago,
	"when":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
	"day":      func(t time.Time) string { return t.UTC().Format("2006-01-02") },
	"bytes":    humanBytes,
	"join":     strings.Join,
	"sevLabel": sevLabel,
	"pathEsc":  url.PathEscape,
	"queryEsc": url.QueryEscape,
	"add":      func(a, b int) int { return a + b },
	"score": func(f float64) string {
		if f <= 0 {
			return ""
		}
		return strconv.FormatFloat(f, 'f', 1, 64)
	},
	"truncate": func(n int, s string) string {
		if len(s) <= n {
			return s
		}
		return strings.TrimSpace(s[:n]) + "…"
	},
	"severities": func() []string { return severityOrder },
	"firstLine": func(s string) string {
		s, _, _ = strings.Cut(s, "\n")
		return s
	},
}

// short abbreviates a digest to its algorithm and 12 hex digits.
func short(d string) string {
	if alg, hex, ok := strings.Cut(d, ":"); ok && len(hex) > 12 {
		return alg + ":" + hex[:12]
	}
	return d
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d < 0:
		return t.UTC().Format("2006-01-02 15:04")
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	case d < 60*24*time.Hour:
		return fmt.Sprintf("%d days ago", int(d.Hours()/24))
	}
	return t.UTC().Format("2006-01-02")
}

func humanBytes(n int64) string {
	if n <= 0 {
		return ""
	}
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func sevLabel(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// barChart is the overview's images-by-highest-severity chart, laid out for an inline SVG.
type barChart struct {
	Width, Height int
	Bars          []bar
}

type bar struct {
	Label, Severity string
	Value           int
	Y, W, LabelY    int
}

const (
	barLabelW = 110
	barAreaW  = 360
	barH      = 26
	barGap    = 10
)

func severityBars(ov store.Overview) barChart {
	rows := append([]store.SeverityCount{}, ov.Severities...)
	rows = append(rows, store.SeverityCount{Severity: "none", Images: ov.Clean})
	maxV := 1
	for _, s := range rows {
		maxV = max(maxV, s.Images)
	}
	c := barChart{Width: barLabelW + barAreaW + 60, Height: len(rows)*(barH+barGap) + barGap}
	for i, s := range rows {
		y := barGap + i*(barH+barGap)
		w := 0
		if s.Images > 0 {
			w = max(2, s.Images*barAreaW/maxV)
		}
		c.Bars = append(c.Bars, bar{Label: s.Severity, Severity: s.Severity, Value: s.Images, Y: y, W: w, LabelY: y + barH/2 + 5})
	}
	return c
}

// lineChart is the overview's open-findings-over-time chart, laid out for an inline SVG.
type lineChart struct {
	Width, Height  int
	Line, Area     string
	Ticks          []tick
	XLabels        []xlabel
	Points         []point
	Max            int
	Added, Removed int
}

type tick struct {
	Y     int
	Label string
}

type xlabel struct {
	X     int
	Label string
}

type point struct {
	X, Y  int
	Label string
}

const (
	lcW, lcH                      = 640, 220
	lcLeft, lcRight, lcTop, lcBot = 48, 12, 12, 28
)

// trendChart turns daily changes into open findings at the end of each day, working back from
// the open count now.
func trendChart(days []store.TrendDay, openNow int) lineChart {
	c := lineChart{Width: lcW, Height: lcH}
	if len(days) == 0 {
		return c
	}
	open := make([]int, len(days))
	cur := openNow
	for i := len(days) - 1; i >= 0; i-- {
		open[i] = max(0, cur)
		cur = cur - days[i].Added + days[i].Removed
		c.Added += days[i].Added
		c.Removed += days[i].Removed
	}
	maxV := 1
	for _, n := range open {
		maxV = max(maxV, n)
	}
	maxV = niceCeil(maxV)
	c.Max = maxV
	plotW, plotH := lcW-lcLeft-lcRight, lcH-lcTop-lcBot
	x := func(i int) int {
		if len(days) == 1 {
			return lcLeft + plotW/2
		}
		return lcLeft + i*plotW/(len(days)-1)
	}
	y := func(n int) int { return lcTop + plotH - n*plotH/maxV }
	var line, area strings.Builder
	for i, n := range open {
		cmd := "L"
		if i == 0 {
			cmd = "M"
		}
		fmt.Fprintf(&line, "%s%d,%d ", cmd, x(i), y(n))
		c.Points = append(c.Points, point{X: x(i), Y: y(n), Label: fmt.Sprintf("%s: %d open (+%d −%d)",
			days[i].Day.Format("Jan 2"), n, days[i].Added, days[i].Removed)})
	}
	c.Line = strings.TrimSpace(line.String())
	fmt.Fprintf(&area, "%s L%d,%d L%d,%d Z", c.Line, x(len(open)-1), y(0), x(0), y(0))
	c.Area = area.String()
	for k := 0; k <= 4; k++ {
		v := maxV * k / 4
		c.Ticks = append(c.Ticks, tick{Y: y(v), Label: strconv.Itoa(v)})
	}
	step := max(1, len(days)/6)
	for i := 0; i < len(days); i += step {
		c.XLabels = append(c.XLabels, xlabel{X: x(i), Label: days[i].Day.Format("Jan 2")})
	}
	return c
}

// niceCeil rounds up to 1, 2 or 5 times a power of ten, so axis ticks are round numbers.
func niceCeil(n int) int {
	if n <= 4 {
		return 4
	}
	p := math.Pow(10, math.Floor(math.Log10(float64(n))))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if v := int(m * p); v >= n && v%4 == 0 {
			return v
		}
	}
	return int(10*p) + (4-int(10*p)%4)%4
}

// webhookCounts reads the webhook deliveries counter of this process, by result.
func webhookCounts(m *server.Metrics) []kv {
	fams, err := m.Registry.Gather()
	if err != nil {
		return nil
	}
	var out []kv
	for _, f := range fams {
		if f.GetName() != "crowsnest_webhook_deliveries_total" {
			continue
		}
		for _, mt := range f.GetMetric() {
			result := ""
			for _, l := range mt.GetLabel() {
				if l.GetName() == "result" {
					result = l.GetValue()
				}
			}
			out = append(out, kv{result, strconv.FormatFloat(mt.GetCounter().GetValue(), 'f', 0, 64)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}
