package registry

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// fetchPage fetches one page of a catalog or tags list, continuing after the opaque cursor
// last ("" for the first page). It returns the names and the response headers.
type fetchPage func(ctx context.Context, last string) ([]string, http.Header, error)

// paginate follows n/last pagination. Only the `last` value of the Link header is used; the
// request URL stays ours, because Artifactory's Link drops the repository key in
// repository-path mode (RTFACT-18971) and has been seen with a numeric cursor and a wrong n.
// When the Link cursor makes no progress (repeated, empty, or a page of names already seen),
// it continues once by the last name returned, as the Docker spec defines `last`, and stops
// when that makes no progress either. Bounded in pages and names.
func paginate(ctx context.Context, endpoint string, fetch fetchPage) ([]string, error) {
	var (
		out  []string
		seen = map[string]bool{}
		sent = map[string]bool{"": true}
		last string
	)
	for page := 0; ; page++ {
		if page >= maxPages {
			return nil, fmt.Errorf("%s: more than %d pages", endpoint, maxPages)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		names, hdr, err := fetch(ctx, last)
		if err != nil {
			return nil, err
		}
		added := 0
		for _, n := range names {
			if n == "" || seen[n] {
				continue
			}
			seen[n] = true
			out = append(out, n)
			added++
		}
		if len(out) > maxListEntries {
			return nil, fmt.Errorf("%s: more than %d entries", endpoint, maxListEntries)
		}
		next, ok := nextCursor(hdr)
		if !ok || added == 0 {
			return out, nil
		}
		if sent[next] {
			next = names[len(names)-1]
			if sent[next] {
				return out, nil
			}
		}
		sent[next] = true
		last = next
	}
}

// nextCursor returns the `last` query value of the rel="next" Link, if any.
func nextCursor(h http.Header) (string, bool) {
	for _, v := range h.Values("Link") {
		for part := range strings.SplitSeq(v, ",") {
			target, params, found := strings.Cut(part, ";")
			if !found || !isRelNext(params) {
				continue
			}
			target = strings.TrimSpace(target)
			target = strings.TrimSuffix(strings.TrimPrefix(target, "<"), ">")
			u, err := url.Parse(target)
			if err != nil {
				return "", true
			}
			return u.Query().Get("last"), true
		}
	}
	return "", false
}

func isRelNext(params string) bool {
	for p := range strings.SplitSeq(params, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(strings.TrimSpace(k), "rel") {
			for r := range strings.FieldsSeq(strings.Trim(strings.TrimSpace(v), `"`)) {
				if strings.EqualFold(r, "next") {
					return true
				}
			}
		}
	}
	return false
}

// pageURL appends n (when positive) and last to base.
func pageURL(base string, n int, last string) string {
	q := url.Values{}
	if n > 0 {
		q.Set("n", fmt.Sprint(n))
	}
	if last != "" {
		q.Set("last", last)
	}
	return base + "?" + q.Encode()
}
