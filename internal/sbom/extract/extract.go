// Package extract defines the extractor plug-in interface: an extractor names the files it needs
// (by path, mode and size, without reading them) and turns each such file into packages and facts.
//
// The index pipeline streams every layer once, offers each tar entry to Required, reads only the
// files some extractor wants, and hands them to Extract one at a time. Extractors never see the
// rest of the filesystem: facts that need several files (which OS package owns a file, which OS
// the image runs) are returned as data and combined later, after layers are merged.
package extract

import (
	"context"
	"io/fs"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
)

// Input is one file offered to an extractor. Content is only valid during the Extract call: the
// caller reuses the buffer, so an extractor must copy what it keeps.
type Input struct {
	// Path is the clean absolute path inside the image, e.g. "/var/lib/dpkg/status".
	Path    string
	Mode    fs.FileMode
	Content []byte
}

// Result is what an extractor found in one file.
type Result struct {
	// Packages found. Extractors leave Locations, PURL and OwnedBy empty: the pipeline fills them
	// (Locations with the file's path and introducing layer, PURL once the OS is known).
	Packages []sbom.Package `json:"packages,omitempty"`
	// OS is set by the os-release extractor.
	OS *sbom.OS `json:"os,omitempty"`
	// Owned lists files installed by OS packages, as the package database records them, so that
	// language packages installed by the OS package manager are attributed to their OS package.
	// The pipeline keeps only paths that some extractor would read.
	Owned []Ownership `json:"owned,omitempty"`
	// Warnings about this file (malformed entries skipped, etc.). The pipeline prefixes them with
	// the layer and path.
	Warnings []string `json:"warnings,omitempty"`
}

// Ownership says that the OS package Owner installed the file at Path.
type Ownership struct {
	Path string `json:"path"`
	// Owner identifies the OS package: its type, name and arch as in sbom.Package
	// (e.g. {Type: "deb", Name: "python3-requests"}).
	Owner PackageRef `json:"owner"`
}

// PackageRef names a package without its version.
type PackageRef struct {
	Type string `json:"type"`
	Name string `json:"name"`
	Arch string `json:"arch,omitempty"`
}

// Extractor reads one kind of package database or artifact.
type Extractor interface {
	// Name is a short stable identifier ("dpkg", "gobinary").
	Name() string
	// Version changes whenever the extractor's output for the same input changes; it is part of
	// the layer cache key.
	Version() int
	// Required reports whether the file at path is needed. It is called for every regular file
	// and symlink of every layer, so it must be cheap and must not allocate in the common case.
	// size is the size declared in the tar header.
	Required(path string, mode fs.FileMode, size int64) bool
	// Extract parses one required file. A malformed file is reported with an error (the pipeline
	// turns it into a warning naming layer and file and goes on).
	Extract(ctx context.Context, in Input) (Result, error)
}

// MaxFileSize bounds how much of one file an extractor is handed. Larger files are skipped with a
// warning. Extractors may set a smaller bound by declaring MaxSizer.
const MaxFileSize = 512 << 20

// MaxSizer is implemented by extractors that need only files up to a smaller size.
type MaxSizer interface {
	MaxFileSize() int64
}
