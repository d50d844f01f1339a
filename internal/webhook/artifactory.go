package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// ArtifactoryAuthHeader carries the secret or the body's HMAC.
const ArtifactoryAuthHeader = "X-JFrog-Event-Auth"

const maxPlatforms = 64

type artifactoryEnvelope struct {
	Domain          string          `json:"domain"`
	EventType       string          `json:"event_type"`
	Data            json.RawMessage `json:"data"`
	SubscriptionKey string          `json:"subscription_key"`
	JPDOrigin       string          `json:"jpd_origin"`
	Source          string          `json:"source"`
}

type artifactoryDocker struct {
	RepoKey   string     `json:"repo_key"`
	Path      string     `json:"path"`
	Name      string     `json:"name"`
	SHA256    string     `json:"sha256"`
	ImageName string     `json:"image_name"`
	Tag       string     `json:"tag"`
	Platforms []Platform `json:"platforms"`
	ImageType string     `json:"image_type"`
}

// VerifyArtifactory checks the X-JFrog-Event-Auth value against secret in both of
// Artifactory's modes: the plain secret (use_secret_for_signing=false) or the lower-case hex
// HMAC-SHA256 of the exact body (true). Both comparisons always run, in constant time. It
// reports which mode matched ("plain" or "hmac").
func VerifyArtifactory(header string, body []byte, secret string) (mode string, ok bool) {
	if secret == "" || header == "" {
		return "", false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	want := hex.EncodeToString(mac.Sum(nil))
	// Defensive: accept upper-case hex and a sha256= prefix, which some proxies and
	// re-signers add.
	got := strings.ToLower(strings.TrimPrefix(strings.TrimSpace(header), "sha256="))
	signed := hmac.Equal([]byte(got), []byte(want))
	plain := subtle.ConstantTimeCompare([]byte(header), []byte(secret)) == 1
	switch {
	case signed:
		return "hmac", true
	case plain:
		return "plain", true
	}
	return "", false
}

// ParseArtifactory verifies and parses one Artifactory predefined-webhook delivery. Docker
// domain `pushed` gives a Push of the tag with the manifest (or index) digest, `deleted` a
// Delete; other domains and event types are Ignored. The image path comes from data.path
// minus "<tag>/<manifest file>", because data.image_name holds only the last path segment on
// current Artifactory versions. A multi-platform push is one event with the index digest and
// its Platforms, since the payload names no per-platform digests.
func ParseArtifactory(r *http.Request, secret string, maxBody int64) ([]Event, error) {
	if secret == "" {
		return nil, fmt.Errorf("%w: no webhook secret configured", ErrUnauthorized)
	}
	header := r.Header.Get(ArtifactoryAuthHeader)
	if header == "" {
		return nil, fmt.Errorf("%w: missing %s header", ErrUnauthorized, ArtifactoryAuthHeader)
	}
	body, err := readBody(r, maxBody)
	if err != nil {
		return nil, err
	}
	if _, ok := VerifyArtifactory(header, body, secret); !ok {
		return nil, fmt.Errorf("%w: %s matches neither the secret nor the body's HMAC-SHA256", ErrUnauthorized, ArtifactoryAuthHeader)
	}
	if err := checkJSONContentType(r); err != nil {
		return nil, err
	}
	ev, err := parseArtifactoryBody(body)
	if err != nil {
		return nil, err
	}
	return []Event{ev}, nil
}

func checkJSONContentType(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || !(mt == "application/json" || strings.HasSuffix(mt, "+json")) {
		return malformed("content type %q is not JSON", ct)
	}
	return nil
}

func parseArtifactoryBody(body []byte) (Event, error) {
	var env artifactoryEnvelope
	if err := json.Unmarshal(body, &env); err != nil {
		return Event{}, malformed("decode JSON: %v", err)
	}
	if env.Domain == "" || env.EventType == "" {
		return Event{}, malformed("missing domain or event_type")
	}
	ev := Event{Source: SourceArtifactory, Kind: Ignored}
	if u, err := url.Parse(env.JPDOrigin); err == nil && env.JPDOrigin != "" {
		ev.Registry = u.Host
	}
	if env.Domain != "docker" {
		ev.Reason = fmt.Sprintf("domain %q is not docker", trunc(env.Domain))
		ev.ID = eventID(SourceArtifactory, env.Domain, env.EventType, string(env.Data))
		return ev, nil
	}
	var d artifactoryDocker
	if len(env.Data) == 0 || string(env.Data) == "null" {
		return Event{}, malformed("docker event without data")
	}
	if err := json.Unmarshal(env.Data, &d); err != nil {
		return Event{}, malformed("decode data: %v", err)
	}
	ev.ID = eventID(SourceArtifactory, d.RepoKey, d.Path, d.SHA256, env.EventType)
	switch env.EventType {
	case "pushed":
		ev.Kind = Push
	case "deleted":
		ev.Kind = Delete
	default:
		ev.Reason = fmt.Sprintf("docker event %q is not pushed or deleted", trunc(env.EventType))
		return ev, nil
	}
	if d.RepoKey == "" || strings.ContainsAny(d.RepoKey, "/ ") || !validRepo(d.RepoKey) {
		return Event{}, malformed("bad data.repo_key %q", trunc(d.RepoKey))
	}
	ev.RepoKey = d.RepoKey
	segs := strings.Split(strings.Trim(d.Path, "/"), "/")
	if len(segs) < 3 {
		return Event{}, malformed("data.path %q is not <image>/<tag>/<manifest file>", trunc(d.Path))
	}
	file, tag := segs[len(segs)-1], segs[len(segs)-2]
	if file != "manifest.json" && file != "list.manifest.json" {
		return Event{}, malformed("data.path %q does not end in manifest.json or list.manifest.json", trunc(d.Path))
	}
	ev.Repository = strings.Join(segs[:len(segs)-2], "/")
	if !validRepo(ev.Repository) {
		return Event{}, malformed("bad image path in data.path %q", trunc(d.Path))
	}
	if strings.HasPrefix(tag, "sha256__") || strings.HasPrefix(tag, "sha256:") {
		// A per-platform manifest of a multi-platform image; the tagged index covers it.
		ev.Kind, ev.Reason = Ignored, "per-platform manifest folder "+trunc(tag)
		return ev, nil
	}
	if d.Tag != "" && d.Tag != tag {
		return Event{}, malformed("data.tag %q differs from the tag folder in data.path %q", trunc(d.Tag), trunc(d.Path))
	}
	if !validTag(tag) {
		return Event{}, malformed("bad tag %q", trunc(tag))
	}
	ev.Tag = tag
	switch {
	case d.SHA256 == "":
	case isHex64(d.SHA256):
		ev.Digest = "sha256:" + strings.ToLower(d.SHA256)
	default:
		return Event{}, malformed("bad data.sha256 %q", trunc(d.SHA256))
	}
	if len(d.Platforms) > maxPlatforms {
		return Event{}, malformed("%d platforms (more than %d)", len(d.Platforms), maxPlatforms)
	}
	for _, p := range d.Platforms {
		if p.OS == "" && p.Architecture == "" {
			continue
		}
		ev.Platforms = append(ev.Platforms, Platform{OS: trunc(p.OS), Architecture: trunc(p.Architecture), Variant: trunc(p.Variant)})
	}
	return ev, nil
}

// trunc bounds strings copied from a payload into messages and events.
func trunc(s string) string {
	if len(s) > 128 {
		s = s[:128] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}
