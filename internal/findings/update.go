package findings

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/crowsnest-dev/crowsnest/internal/advisory"
	"github.com/crowsnest-dev/crowsnest/internal/store"
)

// UpdateResult is what refreshing one advisory source did.
type UpdateResult struct {
	Source      advisory.Source
	Name        string
	NotModified bool
	Report      ImportReport
	Err         error
}

// Download fetches url into dir, conditionally when conditional is set (with the validators of
// the last download of source), and records the new validators. notModified means the source is
// unchanged: there is no file and nothing to import.
func (s *Service) Download(ctx context.Context, client *http.Client, source, url, dir string, conditional bool) (path string, notModified bool, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, err
	}
	var prev advisory.Validators
	if conditional {
		state, err := s.Store.Source(ctx, source)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return "", false, err
		}
		prev = advisory.Validators{ETag: state.ETag, LastModified: state.LastModified}
	}
	path, v, notModified, err := advisory.Fetch(ctx, client, url, dir, prev)
	if err != nil {
		s.recordError(ctx, source, url, err)
		return "", false, err
	}
	if err := s.Store.SetSource(ctx, store.SourceState{Name: source, URL: url, ETag: v.ETag, LastModified: v.LastModified}); err != nil {
		os.Remove(path)
		return "", false, err
	}
	return path, notModified, nil
}

func (s *Service) recordError(ctx context.Context, source, url string, failure error) {
	state, err := s.Store.Source(ctx, source)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return
	}
	state.Name, state.URL, state.Error = source, url, failure.Error()
	if err := s.Store.SetSource(ctx, state); err != nil {
		s.log().Warn("could not record an advisory source error", "source", source, "err", err)
	}
}

// Update refreshes advisory sources: by default osv.dev's bulk archive of every ecosystem that
// stored images use (or ecosystems, when given), from mirror when set. Unchanged sources cost one
// conditional request. Each source is imported in its own transaction; a failing source does not
// stop the others, and the returned error lists the failures.
func (s *Service) Update(ctx context.Context, client *http.Client, ecosystems []string, mirror, tmpDir string) ([]UpdateResult, error) {
	if len(ecosystems) == 0 {
		var err error
		if ecosystems, err = s.Store.Ecosystems(ctx); err != nil {
			return nil, err
		}
	}
	var results []UpdateResult
	var failed []string
	for _, src := range advisory.DefaultSources(ecosystems, mirror) {
		r := UpdateResult{Source: src, Name: "osv:" + src.Ecosystem}
		path, notModified, err := s.Download(ctx, client, r.Name, src.URL, tmpDir, true)
		r.NotModified = notModified
		if err == nil && !notModified {
			r.Report, err = s.Import(ctx, path, r.Name, true)
			os.Remove(path)
			if err != nil {
				s.recordError(ctx, r.Name, src.URL, err)
			}
		}
		r.Err = err
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", r.Name, err))
		}
		results = append(results, r)
	}
	if len(failed) > 0 {
		return results, fmt.Errorf("update failed for %d of %d sources:\n  %s", len(failed), len(results), strings.Join(failed, "\n  "))
	}
	return results, nil
}
