// Package catalog assembles the default extractor set: every ecosystem crowsnest reads.
package catalog

import (
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract/apk"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract/dotnet"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract/dpkg"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract/gobinary"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract/java"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract/npm"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract/osrelease"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract/php"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract/python"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract/rpm"
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
		apk.New(),
		rpm.New(rpm.Options{TempDir: opts.TempDir}),
		gobinary.New(),
		rustaudit.New(),
		npm.New(),
		python.New(),
		java.New(),
		ruby.New(),
		php.New(),
		dotnet.New(),
	)
}
