// Package webhook verifies and parses the push notifications registries send to `crowsnest
// watch`: JFrog Artifactory's predefined webhooks and the CNCF distribution registry's
// notifications. It has no HTTP server: the caller answers 401 for ErrUnauthorized, 413 for
// ErrTooLarge, 400 for ErrMalformed, and 2xx only once the events are durably stored.
package webhook

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Errors the HTTP layer maps to status codes (test with errors.Is).
var (
	ErrUnauthorized = errors.New("webhook: unauthorized")
	ErrMalformed    = errors.New("webhook: malformed payload")
	ErrTooLarge     = errors.New("webhook: payload too large")
)

// Kind is what an event asks the watcher to do.
type Kind string

// Event kinds.
const (
	Push    Kind = "push"    // index Repository:Tag (Digest when known)
	Delete  Kind = "delete"  // retire Repository:Tag (or the Digest)
	Ignored Kind = "ignored" // acknowledged, nothing to do (Reason says why)
)

// Sources of events.
const (
	SourceArtifactory  = "artifactory"
	SourceDistribution = "distribution"
)

// Platform is one platform of a multi-platform push.
type Platform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant,omitempty"`
}

// Event is one parsed notification, stored as a job payload.
type Event struct {
	Kind   Kind   `json:"kind"`
	Source string `json:"source"`
	// ID is stable across redeliveries of the same notification, for idempotent intake.
	ID string `json:"id"`
	// Registry is the host the notification names, when it names one (Artifactory's
	// jpd_origin host, the distribution request host); "" otherwise.
	Registry string `json:"registry,omitempty"`
	// RepoKey is the Artifactory repository key; the lister's repository name is
	// RepoKey + "/" + Repository.
	RepoKey string `json:"repo_key,omitempty"`
	// Repository is the image path inside the registry namespace (Artifactory: without the
	// repository key).
	Repository string `json:"repository,omitempty"`
	Tag        string `json:"tag,omitempty"`
	Digest     string `json:"digest,omitempty"` // sha256:<hex> of the manifest or index
	MediaType  string `json:"media_type,omitempty"`
	// Platforms lists the platforms of a multi-platform push; the event carries the index
	// digest, and the indexer indexes every platform of it.
	Platforms []Platform `json:"platforms,omitempty"`
	Reason    string     `json:"reason,omitempty"` // why an event is Ignored
}

// readBody reads at most maxBody bytes of r's body.
func readBody(r *http.Request, maxBody int64) ([]byte, error) {
	if r.Body == nil {
		return nil, fmt.Errorf("%w: empty body", ErrMalformed)
	}
	if maxBody <= 0 {
		maxBody = 1 << 20
	}
	if r.ContentLength > maxBody {
		return nil, fmt.Errorf("%w: Content-Length %d exceeds %d bytes", ErrTooLarge, r.ContentLength, maxBody)
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("webhook: read body: %w", err)
	}
	if int64(len(b)) > maxBody {
		return nil, fmt.Errorf("%w: body exceeds %d bytes", ErrTooLarge, maxBody)
	}
	return b, nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

func eventID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// validRepo accepts distribution repository paths (lenient on case, which Artifactory allows),
// so an event cannot smuggle a URL or path traversal into a later request.
func validRepo(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for comp := range strings.SplitSeq(s, "/") {
		if comp == "" || comp == "." || comp == ".." {
			return false
		}
		for i := 0; i < len(comp); i++ {
			c := comp[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
				return false
			}
		}
	}
	return true
}

// validTag follows the distribution grammar [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
func validTag(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || (i > 0 && (c == '.' || c == '-'))
		if !ok {
			return false
		}
	}
	return true
}
