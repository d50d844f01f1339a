package notify

import (
	"fmt"
	"strings"

	"github.com/slack-go/slack"

	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

// slackTop is how many vulnerabilities a Slack message lists (Slack caps a section's text at
// 3000 characters).
const slackTop = 8

var severityOrder = []string{vuln.SeverityCritical, vuln.SeverityHigh, vuln.SeverityMedium, vuln.SeverityLow, vuln.SeverityUnspecified}

// slackMessage renders ev as an incoming-webhook message with Block Kit blocks: a header, the
// image (tags, digest), counts by severity, the top vulnerabilities with fixed versions and
// links to the dashboard. Text is the notification fallback.
func slackMessage(ev Event) *slack.WebhookMessage {
	title := slackTitle(ev)
	blocks := []slack.Block{
		slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, clip(title, 150), false, false)),
	}
	tags := strings.Join(ev.Image.Tags, ", ")
	if tags == "" {
		tags = ev.Image.Repository
	}
	fields := []*slack.TextBlockObject{
		mrkdwn("*Image*\n" + escape(clip(tags, 500))),
		mrkdwn("*Digest*\n`" + escape(shortDigest(ev.Image.Digest)) + "`"),
	}
	if ev.Reason != "" {
		fields = append(fields, mrkdwn("*Why*\n"+escape(ev.Reason)))
	}
	blocks = append(blocks, slack.NewSectionBlock(nil, fields, nil))
	if ev.Failure != nil {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(fmt.Sprintf("*Indexing failed after %d attempts*\n```%s```",
			ev.Failure.Attempts, escape(clip(ev.Failure.Error, 2500)))), nil, nil))
	}
	if c := countLine(ev.Counts.Added); c != "" {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn("*New:* "+c), nil, nil))
	}
	if c := countLine(ev.Counts.Removed); c != "" {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn("*Fixed or removed:* "+c), nil, nil))
	}
	if len(ev.Added) > 0 {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(vulnLines("Top new vulnerabilities", ev.Added)), nil, nil))
	}
	if len(ev.Removed) > 0 && len(ev.Added) == 0 {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(vulnLines("Gone", ev.Removed)), nil, nil))
	}
	if ev.Image.URL != "" {
		btn := slack.NewButtonBlockElement("open_image", ev.Image.Digest, slack.NewTextBlockObject(slack.PlainTextType, "Open in crowsnest", false, false))
		btn.URL = ev.Image.URL
		blocks = append(blocks, slack.NewActionBlock("links", btn))
	}
	blocks = append(blocks, slack.NewContextBlock("", mrkdwn("crowsnest · delivery "+ev.ID)))
	return &slack.WebhookMessage{Text: title, Blocks: &slack.Blocks{BlockSet: blocks}}
}

func slackTitle(ev Event) string {
	name := ev.Image.Repository
	if len(ev.Image.Tags) > 0 {
		name = ev.Image.Tags[0]
		if len(ev.Image.Tags) > 1 {
			name += fmt.Sprintf(" (+%d tags)", len(ev.Image.Tags)-1)
		}
	}
	switch ev.Type {
	case TypeTest:
		return "crowsnest test message"
	case TypeIndexFailed:
		return "Indexing failed: " + name
	}
	added, removed := total(ev.Counts.Added), total(ev.Counts.Removed)
	switch {
	case added > 0 && removed > 0:
		return fmt.Sprintf("%d new, %d fixed vulnerabilities in %s", added, removed, name)
	case added > 0:
		return fmt.Sprintf("%d new %s in %s", added, plural(added, "vulnerability", "vulnerabilities"), name)
	default:
		return fmt.Sprintf("%d %s fixed in %s", removed, plural(removed, "vulnerability", "vulnerabilities"), name)
	}
}

func vulnLines(title string, vs []Vuln) string {
	var b strings.Builder
	b.WriteString("*" + title + "*")
	for i, v := range vs {
		if i == slackTop {
			fmt.Fprintf(&b, "\n… and %d more", len(vs)-slackTop)
			break
		}
		id := escape(v.ID)
		if v.URL != "" {
			id = "<" + v.URL + "|" + id + ">"
		}
		fix := "no fix yet"
		if v.FixedVersion != "" {
			fix = "fixed in " + escape(clip(v.FixedVersion, 60))
		}
		fmt.Fprintf(&b, "\n• %s *%s* `%s %s` — %s", id, v.Severity, escape(clip(v.Package.Name, 80)), escape(clip(v.Package.Version, 60)), fix)
	}
	return clip(b.String(), 2900)
}

func countLine(c map[string]int) string {
	var parts []string
	for _, s := range severityOrder {
		if n := c[s]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, s))
		}
	}
	return strings.Join(parts, " · ")
}

func total(c map[string]int) int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func mrkdwn(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, s, false, false)
}

// escape applies Slack's three control-character escapes, so a package name cannot inject links
// or mentions.
func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	return strings.ToValidUTF8(s, "") + "…"
}
