// Package catalog assembles the default extractor set: every ecosystem crowsnest reads.
package catalog

import (
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract/dpkg"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract/gobinary"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract/java"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract/osrelease"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract/ruby"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract/rustaudit"
)

// Options configure extractors that need more than the file they read.
type Options struct {
	// TempDir is where extractors that need a real file (RPM databases) may write one briefly.
	// It must lie inside the data directory.
	TempDir string
}

// Default returns every extractor, OS package databases first.
func Default(opts Options) (*extract.Set, error) {
	return extract.NewSet(
		osrelease.New(),
		dpkg.New(),
		gobinary.New(),
		rustaudit.New(),
		java.New(),
		ruby.New(),
	)
}
