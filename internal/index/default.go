package index

import (
	"log/slog"
	"path/filepath"

	"github.com/crowsnest-dev/crowsnest/internal/layercache"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract/catalog"
)

// New returns an indexer with every extractor and the layer cache of a data directory
// (<dataDir>/layers; extractors that need a real file write it briefly under <dataDir>/tmp).
func New(dataDir string, log *slog.Logger) (*Indexer, error) {
	set, err := catalog.Default(catalog.Options{TempDir: filepath.Join(dataDir, "tmp")})
	if err != nil {
		return nil, err
	}
	cache, err := layercache.Open(filepath.Join(dataDir, "layers"))
	if err != nil {
		return nil, err
	}
	return &Indexer{Extractors: set, Cache: cache, Logger: log}, nil
}
