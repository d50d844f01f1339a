// Package gobinary reports the modules compiled into Go executables, read from the build
// information the Go linker embeds (debug/buildinfo).
//
// Every binary yields its main module (Metadata "mainModule":"true", also for "(devel)"
// versions, which matching ignores but a reviewer wants to see), each dependency and the Go
// standard library as Name "stdlib" with the toolchain version ("go1.22.3 X:boringcrypto" ->
// "1.22.3"). Every package carries Metadata "goVersion" (the raw toolchain string), and
// dependencies and stdlib carry "mainModulePath", the main module they were built into.
//
// Replacements: a dependency replaced by another module version ("a v1 => b v2") is reported as
// the replacement b@v2, since that is the code in the binary, with Metadata "replaces" = "a@v1".
// A dependency replaced by a local directory keeps its original path, gets Version "(devel)"
// (the original version's advisories do not apply to unknown local code) and Metadata
// "replacedBy" = the directory.
package gobinary

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"fmt"
	"io/fs"
	"runtime/debug"
	"strings"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract"
)

// maxSize bounds the binaries read; larger ones are skipped by the pipeline.
const maxSize = 512 << 20

// maxModules bounds the dependencies reported from one binary. Real programs have hundreds; the
// bound only stops a forged build-info blob from producing millions of packages.
const maxModules = 20000

// Extractor reads Go build information from executables.
type Extractor struct{}

var (
	_ extract.Extractor = (*Extractor)(nil)
	_ extract.MaxSizer  = (*Extractor)(nil)
)

// New returns a Go binary extractor.
func New() *Extractor { return &Extractor{} }

// Name implements extract.Extractor.
func (*Extractor) Name() string { return "gobinary" }

// Version implements extract.Extractor.
func (*Extractor) Version() int { return 1 }

// MaxFileSize implements extract.MaxSizer.
func (*Extractor) MaxFileSize() int64 { return maxSize }

// Required wants executable regular files, except those whose name says they are scripts,
// sources or documents: reading every executable of an image is the cost of this extractor.
func (*Extractor) Required(path string, mode fs.FileMode, size int64) bool {
	return extract.ExecutableCandidate(path, mode, size, maxSize)
}

// isExecutableFormat reports whether content starts like an ELF, PE or Mach-O file (thin or fat).
func isExecutableFormat(content []byte) bool {
	if len(content) < 4 {
		return false
	}
	switch {
	case bytes.HasPrefix(content, []byte("\x7fELF")),
		bytes.HasPrefix(content, []byte("MZ")),
		bytes.HasPrefix(content, []byte("\xfe\xed\xfa")),
		bytes.HasPrefix(content[1:], []byte("\xfa\xed\xfe")),
		bytes.HasPrefix(content, []byte("\xca\xfe\xba\xbe")),
		bytes.HasPrefix(content, []byte("\xca\xfe\xba\xbf")):
		return true
	}
	return false
}

// Extract implements extract.Extractor. A file that is not a Go program yields an empty Result.
func (e *Extractor) Extract(ctx context.Context, in extract.Input) (extract.Result, error) {
	if err := ctx.Err(); err != nil {
		return extract.Result{}, err
	}
	if !isExecutableFormat(in.Content) {
		return extract.Result{}, nil
	}
	bi, err := buildinfo.Read(bytes.NewReader(in.Content))
	if err != nil {
		// debug/buildinfo does not export its sentinel errors; these two messages mean "not a Go
		// program" (or a format it does not know), which is the common case, not a problem.
		if msg := err.Error(); msg == "not a Go executable" || msg == "unrecognized file format" {
			return extract.Result{}, nil
		}
		return extract.Result{}, fmt.Errorf("read Go build info of %s: %w", in.Path, err)
	}
	return fromBuildInfo(bi), nil
}

func fromBuildInfo(bi *debug.BuildInfo) extract.Result {
	var res extract.Result
	mainPath := bi.Main.Path
	if mainPath != "" {
		p := module(&bi.Main, bi.GoVersion)
		p.Metadata["mainModule"] = "true"
		res.Packages = append(res.Packages, p)
	}
	deps := bi.Deps
	if len(deps) > maxModules {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%d modules in build info, only the first %d reported", len(deps), maxModules))
		deps = deps[:maxModules]
	}
	for _, d := range deps {
		if d == nil || d.Path == "" {
			continue
		}
		p := module(d, bi.GoVersion)
		if mainPath != "" {
			p.Metadata["mainModulePath"] = mainPath
		}
		res.Packages = append(res.Packages, p)
	}
	if v := StdlibVersion(bi.GoVersion); v != "" {
		p := sbom.Package{
			Type:     sbom.TypeGolang,
			Name:     "stdlib",
			Version:  v,
			Metadata: map[string]string{"goVersion": bi.GoVersion},
		}
		if mainPath != "" {
			p.Metadata["mainModulePath"] = mainPath
		}
		res.Packages = append(res.Packages, p)
	}
	return res
}

func module(m *debug.Module, goVersion string) sbom.Package {
	p := sbom.Package{
		Type:     sbom.TypeGolang,
		Name:     m.Path,
		Version:  m.Version,
		Metadata: map[string]string{},
	}
	if goVersion != "" {
		p.Metadata["goVersion"] = goVersion
	}
	if r := m.Replace; r != nil && r.Path != "" {
		if !isLocalReplace(r) {
			p.Name, p.Version = r.Path, r.Version
			p.Metadata["replaces"] = joinVersion(m.Path, m.Version)
		} else {
			p.Version = "(devel)"
			p.Metadata["replacedBy"] = r.Path
		}
	}
	return p
}

// isLocalReplace reports whether a replacement points to a directory rather than a module
// version. The go command records those with version "(devel)" (older toolchains: empty).
func isLocalReplace(r *debug.Module) bool {
	if r.Version == "" || r.Version == "(devel)" {
		return true
	}
	p := r.Path
	return strings.HasPrefix(p, "./") || strings.HasPrefix(p, "../") || strings.HasPrefix(p, "/") ||
		p == "." || p == ".." || (len(p) > 1 && p[1] == ':') || strings.HasPrefix(p, `.\`) || strings.HasPrefix(p, `..\`)
}

func joinVersion(path, version string) string {
	if version == "" {
		return path
	}
	return path + "@" + version
}

// StdlibVersion turns a toolchain version as recorded in build info ("go1.22.3",
// "go1.22.3 X:boringcrypto", "go1.21rc2") into the standard library's version ("1.22.3").
// Development toolchains ("devel go1.23-abc ...") and unknown strings yield "".
func StdlibVersion(goVersion string) string {
	v, ok := strings.CutPrefix(goVersion, "go")
	if !ok {
		return ""
	}
	if i := strings.IndexAny(v, " \t"); i >= 0 {
		v = v[:i]
	}
	if v == "" || v[0] < '0' || v[0] > '9' {
		return ""
	}
	return v
}
