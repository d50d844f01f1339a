package webhook

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// DistributionMediaType is the envelope type of the CNCF distribution registry's notifications.
const DistributionMediaType = "application/vnd.docker.distribution.events.v1+json"

const maxDistributionEvents = 10_000

// Manifest media types; anything else in a push is a blob (layer, config) and not a tag.
var manifestTypes = map[string]bool{
	"application/vnd.docker.distribution.manifest.v2+json":      true,
	"application/vnd.docker.distribution.manifest.list.v2+json": true,
	"application/vnd.docker.distribution.manifest.v1+json":      true,
	"application/vnd.docker.distribution.manifest.v1+prettyjws": true,
	"application/vnd.oci.image.manifest.v1+json":                true,
	"application/vnd.oci.image.index.v1+json":                   true,
	"application/vnd.oci.artifact.manifest.v1+json":             true,
}

type distributionEnvelope struct {
	Events []distributionEvent `json:"events"`
}

type distributionEvent struct {
	ID     string `json:"id"`
	Action string `json:"action"`
	Target struct {
		MediaType  string `json:"mediaType"`
		Digest     string `json:"digest"`
		Repository string `json:"repository"`
		URL        string `json:"url"`
		Tag        string `json:"tag"`
	} `json:"target"`
	Request struct {
		Host string `json:"host"`
	} `json:"request"`
}

// ParseDistribution verifies and parses a distribution registry notification envelope. The
// registry's endpoint configuration sends `Authorization: Bearer <token>` in its headers.
// Tagged manifest pushes become Push events, manifest or tag deletions Delete events; blob
// pushes, pulls, mounts and manifests pushed by digest alone (the children of a multi-platform
// index, which the tagged index covers) are Ignored. An event that is unusable on its own is
// Ignored with a reason rather than failing the batch, because the registry resends a refused
// batch forever and holds back every later one.
func ParseDistribution(r *http.Request, token string, maxBody int64) ([]Event, error) {
	if token == "" {
		return nil, fmt.Errorf("%w: no notification token configured", ErrUnauthorized)
	}
	scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, fmt.Errorf("%w: missing bearer token", ErrUnauthorized)
	}
	if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(token)) != 1 {
		return nil, fmt.Errorf("%w: wrong bearer token", ErrUnauthorized)
	}
	body, err := readBody(r, maxBody)
	if err != nil {
		return nil, err
	}
	if err := checkJSONContentType(r); err != nil {
		return nil, err
	}
	return parseDistributionBody(body)
}

func parseDistributionBody(body []byte) ([]Event, error) {
	var env distributionEnvelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, malformed("decode JSON: %v", err)
	}
	if env.Events == nil {
		return nil, malformed("no events array")
	}
	if len(env.Events) > maxDistributionEvents {
		return nil, malformed("%d events (more than %d)", len(env.Events), maxDistributionEvents)
	}
	out := make([]Event, 0, len(env.Events))
	for _, e := range env.Events {
		out = append(out, distributionToEvent(e))
	}
	return out, nil
}

func distributionToEvent(e distributionEvent) Event {
	t := e.Target
	ev := Event{Source: SourceDistribution, Kind: Ignored, Registry: trunc(e.Request.Host)}
	ev.ID = trunc(e.ID)
	if ev.ID == "" {
		ev.ID = eventID(SourceDistribution, e.Action, t.Repository, t.Digest, t.Tag)
	}
	ignore := func(format string, args ...any) Event {
		ev.Reason = fmt.Sprintf(format, args...)
		return ev
	}
	switch e.Action {
	case "push", "delete":
	default:
		return ignore("action %q", trunc(e.Action))
	}
	if !validRepo(t.Repository) {
		return ignore("bad repository %q", trunc(t.Repository))
	}
	ev.Repository = t.Repository
	if t.Digest != "" {
		hexd, ok := strings.CutPrefix(t.Digest, "sha256:")
		if !ok || !isHex64(hexd) {
			return ignore("bad digest %q", trunc(t.Digest))
		}
		ev.Digest = "sha256:" + strings.ToLower(hexd)
	}
	if t.Tag != "" {
		if !validTag(t.Tag) {
			return ignore("bad tag %q", trunc(t.Tag))
		}
		ev.Tag = t.Tag
	}
	isManifest := manifestTypes[t.MediaType] || strings.Contains(t.URL, "/manifests/")
	isBlob := strings.Contains(t.URL, "/blobs/") || (t.MediaType != "" && !manifestTypes[t.MediaType])
	if isBlob && !isManifest {
		return ignore("blob %s", ev.Digest)
	}
	ev.MediaType = trunc(t.MediaType)
	if e.Action == "delete" {
		if ev.Tag == "" && ev.Digest == "" {
			return ignore("delete names neither tag nor digest")
		}
		ev.Kind = Delete
		return ev
	}
	if ev.Tag == "" {
		return ignore("manifest %s pushed without a tag", ev.Digest)
	}
	ev.Kind = Push
	return ev
}
