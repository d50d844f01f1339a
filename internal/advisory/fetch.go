package advisory

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
)

// OSVBaseURL is where osv.dev publishes its per-ecosystem bulk archives
// (<base>/<Ecosystem>/all.zip).
const OSVBaseURL = "https://osv-vulnerabilities.storage.googleapis.com"

// MaxDownloadSize bounds one downloaded archive.
const MaxDownloadSize = 8 << 30

// Validators are the HTTP cache validators of a downloaded source, kept to make the next
// request conditional.
type Validators struct {
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"lastModified,omitempty"`
}

// Source is one advisory source: an OSV ecosystem and the URL of its bulk archive.
type Source struct {
	Ecosystem string `json:"ecosystem"` // osv.dev's spelling: "Debian", "PyPI", "Red Hat"...
	URL       string `json:"url"`
}

// Fetch downloads url into a new temporary file inside dir, with a conditional request when
// prev holds validators (If-None-Match / If-Modified-Since). A 304 answer returns
// notModified=true, no file and prev. Otherwise the caller owns the returned file and removes
// it. Responses larger than MaxDownloadSize, and any status other than 200 and 304, are errors.
func Fetch(ctx context.Context, client *http.Client, url, dir string, prev Validators) (path string, v Validators, notModified bool, err error) {
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", prev, false, fmt.Errorf("fetch %s: %w", url, err)
	}
	if prev.ETag != "" {
		req.Header.Set("If-None-Match", prev.ETag)
	}
	if prev.LastModified != "" {
		req.Header.Set("If-Modified-Since", prev.LastModified)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", prev, false, fmt.Errorf("fetch %s: %w", url, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		return "", prev, true, nil
	case http.StatusOK:
	default:
		return "", prev, false, fmt.Errorf("fetch %s: %s", url, resp.Status)
	}
	if resp.ContentLength > MaxDownloadSize {
		return "", prev, false, fmt.Errorf("fetch %s: %d bytes exceed the %d limit", url, resp.ContentLength, int64(MaxDownloadSize))
	}
	f, err := os.CreateTemp(dir, "osv-*.zip")
	if err != nil {
		return "", prev, false, fmt.Errorf("fetch %s: %w", url, err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	n, err := io.Copy(f, io.LimitReader(resp.Body, MaxDownloadSize+1))
	if err != nil {
		return "", prev, false, fmt.Errorf("fetch %s: %w", url, err)
	}
	if n > MaxDownloadSize {
		return "", prev, false, fmt.Errorf("fetch %s: more than %d bytes", url, int64(MaxDownloadSize))
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return "", prev, false, fmt.Errorf("fetch %s: truncated: %d of %d bytes", url, n, resp.ContentLength)
	}
	if err := f.Close(); err != nil {
		return "", prev, false, fmt.Errorf("fetch %s: %w", url, err)
	}
	ok = true
	return f.Name(), Validators{ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified")}, false, nil
}

// osvEcosystems maps the base of a package key ecosystem (match.Key: "Debian:12" -> "Debian")
// to the directory osv.dev publishes its archive under.
var osvEcosystems = map[string]string{
	"Debian": "Debian", "Ubuntu": "Ubuntu", "Alpine": "Alpine", "Wolfi": "Wolfi",
	"Chainguard": "Chainguard", "Red Hat": "Red Hat", "Rocky Linux": "Rocky Linux",
	"AlmaLinux": "AlmaLinux", "SUSE": "SUSE", "openSUSE": "openSUSE", "Mageia": "Mageia",
	"Go": "Go", "npm": "npm", "PyPI": "PyPI", "Maven": "Maven", "crates.io": "crates.io",
	"RubyGems": "RubyGems", "Packagist": "Packagist", "NuGet": "NuGet",
}

// DefaultSources maps the ecosystems of stored packages (key form, "Debian:12", "PyPI"; raw
// OSV names work too) to osv.dev's bulk archives, one per ecosystem, sorted. mirror, when not
// empty, replaces osv.dev's base URL (an air-gapped mirror laid out like the bucket:
// <mirror>/<Ecosystem>/all.zip). Unknown ecosystems are left out.
func DefaultSources(ecosystems []string, mirror string) []Source {
	base := strings.TrimRight(mirror, "/")
	if base == "" {
		base = OSVBaseURL
	}
	seen := map[string]bool{}
	var out []Source
	for _, e := range ecosystems {
		b, _, _ := strings.Cut(strings.TrimSpace(e), ":")
		dir, ok := osvEcosystems[b]
		if !ok || seen[dir] {
			continue
		}
		seen[dir] = true
		out = append(out, Source{Ecosystem: dir, URL: base + "/" + url.PathEscape(dir) + "/all.zip"})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ecosystem < out[j].Ecosystem })
	return out
}
