package watch

import (
	"io"
	"net/http"

	"github.com/crowsnest-dev/crowsnest/internal/registry"
)

// retryAfterTransport turns a registry's 429 (or 503 with Retry-After) on a pull into a
// *registry.RetryAfterError that keeps the Retry-After, which go-containerregistry's
// transport.Error drops: the index job then waits as long as the registry asked, instead of a
// fixed guess.
type retryAfterTransport struct{ inner http.RoundTripper }

func (t retryAfterTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.inner.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if terr := registry.ThrottleError(resp, req.URL.Host+req.URL.Path); terr != nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 8<<10))
		resp.Body.Close()
		return nil, terr
	}
	return resp, nil
}
