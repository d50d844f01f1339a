// Package dotnet extracts NuGet packages from the *.deps.json file the .NET SDK writes next to
// every application it publishes.
//
// Libraries of type "package" are NuGet packages. Self-contained apps also list the runtime they
// carry as "runtimepack.Microsoft.NETCore.App.Runtime.linux-x64/8.0.0"; that is reported as the
// NuGet package Microsoft.NETCore.App.Runtime.linux-x64, the name .NET runtime advisories use.
// Projects and reference assemblies are not packages and are skipped. deps.json records no
// licenses.
package dotnet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract"
)

// Metadata keys.
const (
	// MetaSHA512 is the package's hash as deps.json records it ("sha512-<base64>").
	MetaSHA512 = "sha512"
	// MetaLibraryType is the deps.json library type when it is not "package" ("runtimepack").
	MetaLibraryType = "libraryType"
)

const (
	// maxFile bounds a deps.json; large real ones (ASP.NET apps with hundreds of packages) are
	// well under 1 MB.
	maxFile     = 32 << 20
	maxPackages = 100_000
	runtimePack = "runtimepack."
)

// Extractor reads .deps.json files.
type Extractor struct{}

// New returns a deps.json extractor.
func New() *Extractor { return &Extractor{} }

// Name implements extract.Extractor.
func (*Extractor) Name() string { return "dotnet-deps" }

// Version implements extract.Extractor.
func (*Extractor) Version() int { return 1 }

// MaxFileSize implements extract.MaxSizer.
func (*Extractor) MaxFileSize() int64 { return maxFile }

// Required implements extract.Extractor.
func (*Extractor) Required(path string, mode fs.FileMode, size int64) bool {
	return mode.IsRegular() && size > 0 && size <= maxFile && strings.HasSuffix(path, ".deps.json")
}

type library struct {
	Type   string `json:"type"`
	SHA512 string `json:"sha512"`
}

type depsFile struct {
	Libraries map[string]library `json:"libraries"`
}

// Extract implements extract.Extractor.
func (*Extractor) Extract(_ context.Context, in extract.Input) (extract.Result, error) {
	res, err := parse(in.Content)
	if err != nil {
		return extract.Result{}, fmt.Errorf("parse %s: %w", in.Path, err)
	}
	return res, nil
}

func parse(b []byte) (extract.Result, error) {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // the SDK may write a UTF-8 BOM
	var deps depsFile
	if err := json.Unmarshal(b, &deps); err != nil {
		return extract.Result{}, err
	}
	if deps.Libraries == nil {
		return extract.Result{}, errors.New("no libraries object")
	}
	var res extract.Result
	keys := make([]string, 0, len(deps.Libraries))
	for k := range deps.Libraries {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		lib := deps.Libraries[key]
		typ := strings.ToLower(lib.Type)
		if typ != "package" && typ != "runtimepack" {
			continue // project, reference, referenceassembly, msbuildproject
		}
		if len(res.Packages) >= maxPackages {
			res.Warnings = append(res.Warnings, fmt.Sprintf("more than %d packages, the rest ignored", maxPackages))
			break
		}
		name, version, ok := strings.Cut(key, "/")
		if typ == "runtimepack" {
			name = strings.TrimPrefix(name, runtimePack)
		}
		if !ok || !validID(name) || version == "" || strings.ContainsAny(version, "/ \t\r\n") {
			res.Warnings = append(res.Warnings, fmt.Sprintf("library %q: not \"Name/Version\", ignored", truncate(key)))
			continue
		}
		p := sbom.Package{Type: sbom.TypeNuGet, Name: name, Version: version}
		md := map[string]string{}
		if lib.SHA512 != "" {
			md[MetaSHA512] = lib.SHA512
		}
		if typ != "package" {
			md[MetaLibraryType] = typ
		}
		if len(md) > 0 {
			p.Metadata = md
		}
		res.Packages = append(res.Packages, p)
	}
	return res, nil
}

// validID accepts NuGet package ids: letters, digits, ".", "-" and "_".
func validID(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '.' || c == '-' || c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
