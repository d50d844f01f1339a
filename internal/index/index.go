// Package index turns an image into its SBOM: it streams each layer not seen before through the
// extractors, keeps what each layer contributed in the layer cache, merges the layers with
// whiteout semantics and attributes every package to the layer that introduced it.
package index

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract"
	"github.com/crowsnest-dev/crowsnest/internal/version"
)

// Image is what the indexer needs of an image: its description and its layers as uncompressed,
// digest-verified tar streams. A directory input has Dir set and no layers.
type Image interface {
	Describe() sbom.Image
	Dir() string
	OpenLayer(ctx context.Context, idx int) (io.ReadCloser, error)
}

// LayerCache stores encoded layer results by layer digest and extractor-set version.
type LayerCache interface {
	Get(digest, version string) ([]byte, bool, error)
	Put(digest, version string, data []byte) error
}

// Indexer indexes images. Its zero value is not usable; set Extractors.
type Indexer struct {
	Extractors *extract.Set
	// Cache may be nil: every layer is then read.
	Cache  LayerCache
	Logger *slog.Logger
	// Parallel bounds how many layers of one image are read at once (default: GOMAXPROCS).
	Parallel int
	Limits   Limits
	// Now stamps SBOMs; tests fix it.
	Now func() time.Time

	recentOnce sync.Once
	// recent keeps the decoded results of recently used layers: images pushed one after another
	// share their base layers, and decoding a base's cached result (hundreds of packages) cost
	// more than the rest of indexing an application image on it. Results are never modified
	// after they are made, so one value serves concurrent Index calls.
	recent *lru.Cache[string, *LayerResult]
}

// recentLayers bounds the decoded layer results kept in memory (a large base layer's is a few MB).
const recentLayers = 32

// maxRecentLayerBytes keeps a layer's result out of memory when its encoding is larger: such
// layers are rare and the disk cache still serves them.
const maxRecentLayerBytes = 8 << 20

func (ix *Indexer) recentCache() *lru.Cache[string, *LayerResult] {
	ix.recentOnce.Do(func() {
		ix.recent, _ = lru.New[string, *LayerResult](recentLayers) // errors only for a size <= 0
	})
	return ix.recent
}

// Stats says what one Index call did.
type Stats struct {
	LayersRead   int
	LayersCached int
}

// Index builds the SBOM of one image.
func (ix *Indexer) Index(ctx context.Context, img Image) (*sbom.SBOM, Stats, error) {
	desc := img.Describe()
	var results []*LayerResult
	var stats Stats
	if dir := img.Dir(); dir != "" {
		w := newWalker(ix.Extractors, ix.limits(), "directory "+dir)
		lr, err := w.walkDir(ctx, dir)
		if err != nil {
			return nil, stats, err
		}
		results = []*LayerResult{lr}
	} else {
		var err error
		results, stats, err = ix.layers(ctx, img, desc.Layers)
		if err != nil {
			return nil, stats, err
		}
	}
	osInfo, pkgs, warnings := mergeLayers(results).packages(desc.Layers)
	if pkgs == nil {
		pkgs = []sbom.Package{}
	}
	now := time.Now
	if ix.Now != nil {
		now = ix.Now
	}
	return &sbom.SBOM{
		SchemaVersion: sbom.SchemaVersion,
		Tool:          sbom.Tool{Name: "crowsnest", Version: version.Version},
		Created:       now().UTC(),
		Image:         desc,
		OS:            osInfo,
		Packages:      pkgs,
		Warnings:      warnings,
	}, stats, nil
}

func (ix *Indexer) limits() Limits {
	if ix.Limits == (Limits{}) {
		return DefaultLimits
	}
	return ix.Limits
}

func (ix *Indexer) logger() *slog.Logger {
	if ix.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return ix.Logger
}

// layers returns every layer's result, from the cache or by reading the layer, several at a time.
func (ix *Indexer) layers(ctx context.Context, img Image, layers []sbom.Layer) ([]*LayerResult, Stats, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	parallel := ix.Parallel
	if parallel <= 0 {
		parallel = runtime.GOMAXPROCS(0)
	}
	results := make([]*LayerResult, len(layers))
	fromCache := make([]bool, len(layers))
	errs := make([]error, len(layers))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := range layers {
		if lr, ok := ix.cached(layers[i]); ok {
			results[i], fromCache[i] = lr, true
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			results[i], errs[i] = ix.readLayer(ctx, img, i, layers[i])
			if errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	// Report the failure that caused the others to be canceled, not a cancellation.
	var first error
	for _, err := range errs {
		if err != nil && (first == nil || errors.Is(first, context.Canceled)) {
			first = err
		}
	}
	var stats Stats
	for i := range layers {
		if fromCache[i] {
			stats.LayersCached++
		} else {
			stats.LayersRead++
		}
	}
	if first != nil {
		return nil, stats, first
	}
	return results, stats, nil
}

func layerName(i int, l sbom.Layer) string {
	if l.Digest != "" {
		return fmt.Sprintf("layer %d (%s)", i, l.Digest)
	}
	return fmt.Sprintf("layer %d", i)
}

func (ix *Indexer) cached(l sbom.Layer) (*LayerResult, bool) {
	if ix.Cache == nil || l.Digest == "" {
		return nil, false
	}
	key := l.Digest + "\x00" + ix.Extractors.Version()
	if lr, ok := ix.recentCache().Get(key); ok {
		return lr, true
	}
	data, ok, err := ix.Cache.Get(l.Digest, ix.Extractors.Version())
	if err != nil {
		ix.logger().Warn("layer cache entry unusable; reading the layer again", "layer", l.Digest, "err", err)
		return nil, false
	}
	if !ok {
		return nil, false
	}
	var lr LayerResult
	if err := json.Unmarshal(data, &lr); err != nil {
		ix.logger().Warn("layer cache entry unusable; reading the layer again", "layer", l.Digest, "err", err)
		return nil, false
	}
	if len(data) <= maxRecentLayerBytes {
		ix.recentCache().Add(key, &lr)
	}
	return &lr, true
}

func (ix *Indexer) readLayer(ctx context.Context, img Image, i int, l sbom.Layer) (*LayerResult, error) {
	name := layerName(i, l)
	start := time.Now()
	rc, err := img.OpenLayer(ctx, i)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	defer rc.Close()
	lr, err := newWalker(ix.Extractors, ix.limits(), name).walkTar(ctx, rc)
	if err != nil {
		return nil, err
	}
	// The tar end marker can come before the end of the blob; the digest is only checked once
	// the whole blob has been read.
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	ix.logger().Debug("layer indexed", "layer", l.Digest, "files", len(lr.Files), "took", time.Since(start))
	if ix.Cache != nil && l.Digest != "" {
		data, err := json.Marshal(lr)
		if err == nil {
			err = ix.Cache.Put(l.Digest, ix.Extractors.Version(), data)
		}
		if err == nil && len(data) <= maxRecentLayerBytes {
			ix.recentCache().Add(l.Digest+"\x00"+ix.Extractors.Version(), lr)
		}
		if err != nil {
			ix.logger().Warn("could not cache layer result", "layer", l.Digest, "err", err)
		}
	}
	return lr, nil
}
