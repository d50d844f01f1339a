// Package findings keeps the findings of stored images current: it stores newly indexed images and
// matches them, imports advisories, and re-matches only the stored images that hold a package whose
// advisories changed. No registry is touched when advisories change.
package findings

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/advisory"
	"github.com/crowsnest-dev/crowsnest/internal/match"
	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/store"
	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

// Reasons recorded with finding changes.
const (
	ReasonIndex          = "index"
	ReasonAdvisoryUpdate = "advisory-update"
)

// Service ties the store and the matcher together.
type Service struct {
	Store *store.Store
	Log   *slog.Logger
	// Now stamps changes; tests fix it.
	Now func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// Source adapts the store to the matcher's advisory lookup.
type Source struct{ Store *store.Store }

// AdvisoriesFor implements match.AdvisorySource.
func (src Source) AdvisoriesFor(ctx context.Context, keys []match.PackageKey) (map[match.PackageKey][]*vuln.Advisory, error) {
	skeys := make([]store.PackageKey, len(keys))
	for i, k := range keys {
		skeys[i] = store.PackageKey(k)
	}
	found, err := src.Store.AdvisoriesFor(ctx, skeys)
	if err != nil {
		return nil, err
	}
	out := make(map[match.PackageKey][]*vuln.Advisory, len(found))
	for k, v := range found {
		out[match.PackageKey(k)] = v
	}
	return out, nil
}

// Keys returns the match key of each package of s (a zero key when it is not matchable).
func Keys(s *sbom.SBOM) []store.PackageKey {
	keys := make([]store.PackageKey, len(s.Packages))
	for i := range s.Packages {
		if eco, name, ok := match.Key(&s.Packages[i], s.OS); ok {
			keys[i] = store.PackageKey{Ecosystem: eco, Name: name}
		}
	}
	return keys
}

// Match returns the findings of an SBOM against the stored advisories, without storing anything.
func (s *Service) Match(ctx context.Context, sb *sbom.SBOM) ([]vuln.Finding, []string, error) {
	return match.MatchSBOM(ctx, Source{s.Store}, sb)
}

// Ingest stores an indexed image and its findings; the changes are recorded with reason.
func (s *Service) Ingest(ctx context.Context, sb *sbom.SBOM, reason string) ([]vuln.Finding, error) {
	if sb.Image.Digest == "" {
		return nil, fmt.Errorf("store %s: an image without a digest cannot be stored", sb.Image.Reference)
	}
	// Matched before storing, so the image and its findings go in as one transaction.
	found, warnings, err := s.Match(ctx, sb)
	if err != nil {
		return nil, fmt.Errorf("match %s: %w", sb.Image.Digest, err)
	}
	for _, w := range warnings {
		s.log().Warn(w, "image", sb.Image.Digest)
	}
	if _, err := s.Store.PutImageFindings(ctx, sb, Keys(sb), found, reason, s.now()); err != nil {
		return nil, err
	}
	return found, nil
}

// ImportReport says what an advisory import did.
type ImportReport struct {
	Source  string
	Read    advisory.Stats
	Import  store.ImportResult
	Changes store.ChangeSummary
}

// Import reads advisories at path (a JSON file, a directory, or an OSV zip archive) into the
// store as one transaction, then re-matches the stored images the changes concern. With full,
// advisories of source that path no longer holds are removed.
func (s *Service) Import(ctx context.Context, path, source string, full bool) (ImportReport, error) {
	rep := ImportReport{Source: source}
	imp, err := s.Store.BeginImport(ctx, source, full)
	if err != nil {
		return rep, err
	}
	rep.Read, err = advisory.Walk(ctx, path, func(a *vuln.Advisory) error {
		if a.Withdrawn != nil {
			return imp.Withdraw(a.ID)
		}
		a.Source = source
		return imp.Put(a)
	})
	if err != nil {
		if rbErr := imp.Rollback(); rbErr != nil {
			s.log().Warn("rollback of a failed import", "err", rbErr)
		}
		return rep, fmt.Errorf("import %s: %w (nothing was changed)", path, err)
	}
	prep, err := imp.Prepare()
	if err != nil {
		return rep, fmt.Errorf("import %s: %w", path, err)
	}
	// The advisories of the changed keys as they were, read before the commit (readers see the
	// store as it was until then): the re-match matches each package against them and against
	// the new ones, and writes only the difference.
	// Only the keys some stored package has: a large import into a store of few images
	// changes many keys nobody holds.
	before, err := s.advisoriesBefore(ctx, prep.ChangedKeys)
	if err != nil {
		if rbErr := imp.Rollback(); rbErr != nil {
			s.log().Warn("rollback of a failed import", "err", rbErr)
		}
		return rep, fmt.Errorf("import %s: read the advisories it replaces: %w (nothing was changed)", path, err)
	}
	rep.Import, err = imp.Commit()
	if err != nil {
		return rep, fmt.Errorf("import %s: %w", path, err)
	}
	rep.Changes, err = s.rematch(ctx, rep.Import.ChangedKeys, before)
	if err != nil {
		return rep, fmt.Errorf("re-match after importing %s: %w (the advisories are stored; the next start re-matches)", path, err)
	}
	if err := s.Store.FinishRematch(ctx, rep.Import.ID); err != nil {
		return rep, err
	}
	return rep, nil
}

// ResumeRematches re-matches the keys of every import whose re-match did not finish (the process
// stopped in between), comparing with the stored findings since the advisories before those
// imports are gone. Commands that import or serve call it when they start.
func (s *Service) ResumeRematches(ctx context.Context) (store.ChangeSummary, error) {
	var total store.ChangeSummary
	pending, err := s.Store.PendingRematches(ctx)
	if err != nil {
		return total, err
	}
	for id, keys := range pending {
		s.log().Info("re-matching after an interrupted advisory import", "import", id, "keys", len(keys))
		sum, err := s.Rematch(ctx, keys)
		if err != nil {
			return total, fmt.Errorf("resume the re-match of import %s: %w", id, err)
		}
		if err := s.Store.FinishRematch(ctx, id); err != nil {
			return total, err
		}
		total.Add(sum)
	}
	return total, nil
}

// advisoriesBefore returns the stored advisories of those of keys that stored packages have.
func (s *Service) advisoriesBefore(ctx context.Context, keys []store.PackageKey) (match.AdvisorySource, error) {
	if len(keys) == 0 {
		return match.NewMemorySource(), nil
	}
	held, err := s.Store.HeldKeys(ctx, keys)
	if err != nil {
		return nil, err
	}
	if len(held) == 0 {
		return match.NewMemorySource(), nil
	}
	return s.advisoriesOf(ctx, held)
}

// advisoriesOf returns the stored advisories of keys as an in-memory source: every image of a
// re-match asks about the same few keys.
func (s *Service) advisoriesOf(ctx context.Context, keys []store.PackageKey) (match.AdvisorySource, error) {
	mkeys := make([]match.PackageKey, len(keys))
	for i, k := range keys {
		mkeys[i] = match.PackageKey(k)
	}
	advs, err := Source{s.Store}.AdvisoriesFor(ctx, mkeys)
	if err != nil {
		return nil, err
	}
	cached := match.NewMemorySource()
	seen := map[*vuln.Advisory]bool{}
	for _, list := range advs {
		for _, a := range list {
			if !seen[a] {
				seen[a] = true
				cached.Add(a)
			}
		}
	}
	return cached, nil
}

// refMatches holds the findings of each distinct package reference of a re-match, with their
// stored form. A package's findings depend only on the package and the advisories of its key
// (match.MatchPackages matches each package on its own, then sorts), and the images of an
// estate share most of their packages: matching and encoding each distinct reference once
// instead of once per image that holds it was most of a re-match's CPU (10k images x 15
// packages are 20k distinct references in the benchmark; estates built on a few base images
// share far more).
type refMatches map[vuln.PackageRef]*refMatch

type refMatch struct {
	findings []vuln.Finding
	// enc is the stored form of findings; a re-match that writes deltas encodes only what
	// changed, and the rest when it has to compare with the stored findings after all.
	enc []store.EncodedFinding
	// deltas is how the reference's findings differ from its findings under the advisories
	// before the change, when those are known.
	deltas []refDelta
}

// encoded returns the stored form of rm's findings.
func (rm *refMatch) encoded() ([]store.EncodedFinding, error) {
	if rm.enc == nil && len(rm.findings) > 0 {
		enc, err := encodeAll(rm.findings)
		if err != nil {
			return nil, err
		}
		rm.enc = enc
	}
	return rm.enc, nil
}

func encodeAll(fs []vuln.Finding) ([]store.EncodedFinding, error) {
	enc := make([]store.EncodedFinding, len(fs))
	for j := range fs {
		var err error
		if enc[j], err = store.EncodeFinding(&fs[j]); err != nil {
			return nil, err
		}
	}
	return enc, nil
}

// refDelta is a finding that appeared (old nil), disappeared (new nil) or changed content.
type refDelta struct {
	old, new       *vuln.Finding
	oldEnc, newEnc *store.EncodedFinding
}

// diffFindings pairs the findings of one package reference by vulnerability (a reference has at
// most one finding per vulnerability) and returns those that differ, encoded. Most findings of
// a changed key are those of its unchanged advisories: they are compared, not encoded.
func diffFindings(oldF, newF []vuln.Finding) ([]refDelta, error) {
	var out []refDelta
	encode := func(f *vuln.Finding) (*store.EncodedFinding, error) {
		e, err := store.EncodeFinding(f)
		return &e, err
	}
	paired := make([]bool, len(oldF))
	for i := range newF {
		nf := &newF[i]
		j := slices.IndexFunc(oldF, func(f vuln.Finding) bool { return f.VulnerabilityID == nf.VulnerabilityID })
		if j >= 0 {
			paired[j] = true
			if reflect.DeepEqual(oldF[j], *nf) {
				continue
			}
		}
		ne, err := encode(nf)
		if err != nil {
			return nil, err
		}
		d := refDelta{new: nf, newEnc: ne}
		if j >= 0 {
			oe, err := encode(&oldF[j])
			if err != nil {
				return nil, err
			}
			if oe.Equal(*ne) {
				continue
			}
			d.old, d.oldEnc = &oldF[j], oe
		}
		out = append(out, d)
	}
	for j := range oldF {
		if !paired[j] {
			oe, err := encode(&oldF[j])
			if err != nil {
				return nil, err
			}
			out = append(out, refDelta{old: &oldF[j], oldEnc: oe})
		}
	}
	return out, nil
}

// refMatcher matches package references on every core as they are handed to it (add, from one
// goroutine), each distinct one once, so matching overlaps reading the packages. The
// advisories are looked up when the first reference comes: a change no stored package has
// costs no lookup (importing a whole archive before any image is indexed), and the rest of the
// packages are read meanwhile.
type refMatcher struct {
	ctx context.Context
	src func() (match.AdvisorySource, error)
	// before, when set, are the advisories before the change: each reference is matched
	// against them too, for its deltas.
	before  match.AdvisorySource
	refs    chan vuln.PackageRef
	seen    map[vuln.PackageRef]bool
	results []refMatches // per worker
	errs    []error      // per worker
	wg      sync.WaitGroup
}

func newRefMatcher(ctx context.Context, src func() (match.AdvisorySource, error), before match.AdvisorySource) *refMatcher {
	return &refMatcher{ctx: ctx, src: src, before: before, seen: map[vuln.PackageRef]bool{}}
}

func (m *refMatcher) start() {
	workers := runtime.GOMAXPROCS(0)
	// Room for the references read while the workers still look the advisories up.
	m.refs = make(chan vuln.PackageRef, 1<<16)
	m.results = make([]refMatches, workers)
	m.errs = make([]error, workers)
	var once sync.Once
	var src match.AdvisorySource
	var srcErr error
	for w := range workers {
		m.results[w] = refMatches{}
		m.wg.Go(func() {
			once.Do(func() { src, srcErr = m.src() })
			if srcErr != nil && w == 0 {
				m.errs[w] = srcErr
			}
			var matcher match.Matcher
			// After an error the worker only drains, so that add never blocks.
			for r := range m.refs {
				if srcErr != nil || m.errs[w] != nil {
					continue
				}
				fs, err := matcher.MatchPackages(m.ctx, src, []vuln.PackageRef{r})
				if err != nil {
					m.errs[w] = fmt.Errorf("match %s %s: %w", r.Name, r.Version, err)
					continue
				}
				rm := &refMatch{findings: fs}
				if m.before == nil {
					rm.enc, err = encodeAll(fs)
				} else {
					var old []vuln.Finding
					if old, err = matcher.MatchPackages(m.ctx, m.before, []vuln.PackageRef{r}); err == nil {
						rm.deltas, err = diffFindings(old, fs)
					}
				}
				if err != nil {
					m.errs[w] = fmt.Errorf("match %s %s: %w", r.Name, r.Version, err)
					continue
				}
				m.results[w][r] = rm
			}
		})
	}
}

// add hands over a reference to match.
func (m *refMatcher) add(r vuln.PackageRef) {
	if m.seen[r] {
		return
	}
	m.seen[r] = true
	if m.refs == nil {
		m.start()
	}
	m.refs <- r
}

// wait returns the findings of every reference added.
func (m *refMatcher) wait() (refMatches, error) {
	if m.refs == nil {
		return refMatches{}, nil
	}
	close(m.refs)
	m.wg.Wait()
	if err := errors.Join(m.errs...); err != nil {
		return nil, err
	}
	out := make(refMatches, len(m.seen))
	for _, r := range m.results {
		maps.Copy(out, r)
	}
	return out, nil
}

// matchRefs matches every distinct reference of byImage against src, on every core.
func matchRefs(ctx context.Context, src match.AdvisorySource, byImage map[string][]vuln.PackageRef) (refMatches, error) {
	m := newRefMatcher(ctx, func() (match.AdvisorySource, error) { return src, nil }, nil)
	for _, refs := range byImage {
		for _, r := range refs {
			m.add(r)
		}
	}
	return m.wait()
}

// update returns the findings update of an image holding refs: what match.MatchPackages
// returns for refs, from the per-reference results (the same packages: a package found in
// several places is one, the first of each type, name, version and key; in the same stable
// order), with their stored form.
func (m refMatches) update(digest string, scope []store.PackageKey, refs []vuln.PackageRef) (store.FindingsUpdate, error) {
	type item struct {
		f *vuln.Finding
		e *store.EncodedFinding
	}
	var items []item
	for _, r := range match.DistinctRefs(refs) {
		rm := m[r]
		if rm == nil {
			continue
		}
		enc, err := rm.encoded()
		if err != nil {
			return store.FindingsUpdate{}, fmt.Errorf("image %s: %w", digest, err)
		}
		for i := range rm.findings {
			items = append(items, item{&rm.findings[i], &enc[i]})
		}
	}
	sort.SliceStable(items, func(i, j int) bool { return match.FindingLess(items[i].f, items[j].f) })
	u := store.FindingsUpdate{Digest: digest, Scope: scope}
	if len(items) > 0 {
		u.Findings = make([]vuln.Finding, len(items))
		u.Encoded = make([]store.EncodedFinding, len(items))
		for i, it := range items {
			u.Findings[i], u.Encoded[i] = *it.f, *it.e
		}
	}
	return u, nil
}

// deltas appends the finding deltas of an image holding refs to out.
func (m refMatches) deltas(digest string, refs []vuln.PackageRef, out []store.FindingDelta) []store.FindingDelta {
	for _, r := range match.DistinctRefs(refs) {
		rm := m[r]
		if rm == nil {
			continue
		}
		for _, d := range rm.deltas {
			out = append(out, store.FindingDelta{Digest: digest, Old: d.old, New: d.new, OldEnc: d.oldEnc, NewEnc: d.newEnc})
		}
	}
	return out
}

// rematchBatch bounds how many images one findings transaction covers when the re-match compares
// with the stored findings; deltaBatch how many deltas one covers otherwise.
const (
	rematchBatch = 2500
	deltaBatch   = 100_000
)

// Rematch recomputes, for every stored image holding a package with one of keys, the findings of
// those packages, compares them with the stored ones, and records what changed. It reads the
// stored findings, so it also repairs findings a re-match did not finish writing.
func (s *Service) Rematch(ctx context.Context, keys []store.PackageKey) (store.ChangeSummary, error) {
	return s.rematch(ctx, keys, nil)
}

// rematch is Rematch; with before (the advisories of keys before a change) it writes the
// difference between each package's findings under before and under the stored advisories
// without reading the stored findings, falling back to comparing with them for a batch of images
// whose stored findings are not what before gives.
func (s *Service) rematch(ctx context.Context, keys []store.PackageKey, before match.AdvisorySource) (store.ChangeSummary, error) {
	var total store.ChangeSummary
	if len(keys) == 0 {
		return total, nil
	}
	// The packages are matched on the other cores while they are read.
	matcher := newRefMatcher(ctx, func() (match.AdvisorySource, error) { return s.advisoriesOf(ctx, keys) }, before)
	sets := map[string][]vuln.PackageRef{}
	byImage := map[string][]vuln.PackageRef{}
	err := s.Store.PackageSetsWithKeys(ctx, keys, func(set string, p vuln.PackageRef) error {
		sets[set] = append(sets[set], p)
		matcher.add(p)
		return nil
	}, func(set, digest string) error {
		byImage[digest] = append(byImage[digest], sets[set]...)
		return nil
	})
	matched, merr := matcher.wait()
	if err != nil {
		return total, err
	}
	if merr != nil {
		return total, merr
	}
	if len(byImage) == 0 {
		return total, nil
	}
	digests := make([]string, 0, len(byImage))
	for d := range byImage {
		digests = append(digests, d)
	}
	sort.Strings(digests)
	now := s.now()
	// replace compares the images' new findings with the stored ones, rematchBatch images a
	// transaction.
	replace := func(images []string) error {
		for start := 0; start < len(images); start += rematchBatch {
			chunk := images[start:min(start+rematchBatch, len(images))]
			updates := make([]store.FindingsUpdate, len(chunk))
			for i, d := range chunk {
				var err error
				if updates[i], err = matched.update(d, keys, byImage[d]); err != nil {
					return err
				}
			}
			sum, err := s.Store.ReplaceFindingsBatch(ctx, updates, ReasonAdvisoryUpdate, now)
			if err != nil {
				return err
			}
			total.Add(sum)
		}
		return nil
	}
	if before == nil {
		return total, replace(digests)
	}
	// Deltas are few per image: a transaction carries up to deltaBatch of them (each commit
	// rewrites the index pages it touched, so fewer and larger is cheaper).
	for start := 0; start < len(digests); {
		var deltas []store.FindingDelta
		end := start
		for ; end < len(digests) && len(deltas) < deltaBatch; end++ {
			deltas = matched.deltas(digests[end], byImage[digests[end]], deltas)
		}
		images := digests[start:end]
		start = end
		sum, err := s.Store.ApplyFindingDeltas(ctx, deltas, ReasonAdvisoryUpdate, now)
		if err == nil {
			total.Add(sum)
			continue
		}
		if ctx.Err() != nil {
			return total, err
		}
		// Whatever went wrong was rolled back: the findings as they are decide.
		s.log().Warn("re-match: stored findings are not what the advisories before the change give; comparing with them instead",
			"images", len(images), "err", err)
		if err := replace(images); err != nil {
			return total, err
		}
	}
	return total, nil
}
