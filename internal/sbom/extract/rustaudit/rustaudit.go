// Package rustaudit reports the crates compiled into Rust programs built with cargo-auditable,
// which embeds the dependency tree as zlib-compressed JSON in a section named ".dep-v0" (ELF, PE
// and Mach-O; WebAssembly modules are not read: they are not executable files).
//
// Every crate is reported as Type cargo with Metadata "source" (crates.io, git, local, registry)
// and "root":"true" for the program's own crate, except crates whose "kind" is "build": those
// are compiled into build scripts and proc-macros that run at build time only, and Syft and Trivy
// leave them out too. Binaries without the section (most Rust and all non-Rust programs) yield an
// empty Result.
package rustaudit

import (
	"bytes"
	"compress/zlib"
	"context"
	"debug/elf"
	"debug/macho"
	"debug/pe"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract"
)

const (
	// maxSize bounds the binaries read.
	maxSize = 512 << 20
	// maxJSON bounds the decompressed audit data. cargo-auditable's own reader defaults to 8 MiB;
	// real programs carry a few kilobytes, and the bound stops zlib bombs.
	maxJSON = 8 << 20
	// maxPackages bounds the crates reported from one binary.
	maxPackages = 50000
	// sectionName is where cargo-auditable stores its data.
	sectionName = ".dep-v0"
)

// Extractor reads cargo-auditable data from executables.
type Extractor struct{}

var (
	_ extract.Extractor = (*Extractor)(nil)
	_ extract.MaxSizer  = (*Extractor)(nil)
)

// New returns a cargo-auditable extractor.
func New() *Extractor { return &Extractor{} }

// Name implements extract.Extractor.
func (*Extractor) Name() string { return "rustaudit" }

// Version implements extract.Extractor.
func (*Extractor) Version() int { return 1 }

// MaxFileSize implements extract.MaxSizer.
func (*Extractor) MaxFileSize() int64 { return maxSize }

// Required wants executable regular files, except those whose name says they are scripts,
// sources or documents.
func (*Extractor) Required(path string, mode fs.FileMode, size int64) bool {
	return extract.ExecutableCandidate(path, mode, size, maxSize)
}

// Extract implements extract.Extractor.
func (*Extractor) Extract(ctx context.Context, in extract.Input) (extract.Result, error) {
	if err := ctx.Err(); err != nil {
		return extract.Result{}, err
	}
	section, err := findSection(in.Content)
	if err != nil {
		return extract.Result{}, fmt.Errorf("read %s section of %s: %w", sectionName, in.Path, err)
	}
	if section == nil {
		return extract.Result{}, nil
	}
	res, err := Parse(section)
	if err != nil {
		return extract.Result{}, fmt.Errorf("parse cargo-auditable data of %s: %w", in.Path, err)
	}
	return res, nil
}

// findSection returns the raw (compressed) audit section, or nil when the file is not an
// executable or has no such section. The section is sliced out of content, not copied.
func findSection(content []byte) ([]byte, error) {
	if len(content) < 16 {
		return nil, nil
	}
	r := bytes.NewReader(content)
	switch {
	case bytes.HasPrefix(content, []byte("\x7fELF")):
		f, err := elf.NewFile(r)
		if err != nil {
			return nil, nil // not a well-formed ELF: nothing a cargo-auditable build would produce
		}
		s := f.Section(sectionName)
		if s == nil || s.Type == elf.SHT_NOBITS {
			return nil, nil
		}
		if s.Flags&elf.SHF_COMPRESSED != 0 {
			return nil, errors.New("compressed ELF section not supported")
		}
		return slice(content, s.Offset, s.FileSize)
	case bytes.HasPrefix(content, []byte("MZ")):
		f, err := pe.NewFile(r)
		if err != nil {
			return nil, nil
		}
		s := f.Section(sectionName)
		if s == nil {
			return nil, nil
		}
		size := s.Size
		// Raw data is padded to the file alignment; VirtualSize is the real length when smaller.
		if s.VirtualSize != 0 && s.VirtualSize < size {
			size = s.VirtualSize
		}
		return slice(content, uint64(s.Offset), uint64(size))
	case bytes.HasPrefix(content, []byte("\xfe\xed\xfa")) || bytes.HasPrefix(content[1:], []byte("\xfa\xed\xfe")):
		f, err := macho.NewFile(r)
		if err != nil {
			return nil, nil
		}
		return machoSection(content, f, 0)
	case bytes.HasPrefix(content, []byte("\xca\xfe\xba\xbe")):
		f, err := macho.NewFatFile(r)
		if err != nil || len(f.Arches) == 0 {
			return nil, nil
		}
		// Every architecture of a universal binary is built from the same lock file.
		for _, a := range f.Arches {
			if b, err := machoSection(content, a.File, uint64(a.Offset)); b != nil || err != nil {
				return b, err
			}
		}
	}
	return nil, nil
}

// machoSection finds the section in a thin Mach-O file that starts at base in content (section
// offsets are relative to the thin file, which is not the whole file inside a universal binary).
func machoSection(content []byte, f *macho.File, base uint64) ([]byte, error) {
	for _, s := range f.Sections {
		if s.Name == sectionName {
			return slice(content, base+uint64(s.Offset), s.Size)
		}
	}
	return nil, nil
}

func slice(content []byte, off, size uint64) ([]byte, error) {
	if off > uint64(len(content)) || size > uint64(len(content))-off {
		return nil, fmt.Errorf("section at %d+%d lies outside the %d-byte file", off, size, len(content))
	}
	return content[off : off+size], nil
}

// versionInfo is cargo-auditable's format (https://github.com/rust-secure-code/cargo-auditable,
// auditable-serde). Dependencies (indices into packages) are not needed to list crates.
type versionInfo struct {
	Packages []struct {
		Name    string `json:"name"`
		Version string `json:"version"`
		Source  string `json:"source"`
		Kind    string `json:"kind"`
		Root    bool   `json:"root"`
	} `json:"packages"`
}

// Parse decodes a raw .dep-v0 section: zlib-compressed JSON, decompressed to at most 8 MiB.
func Parse(section []byte) (extract.Result, error) {
	zr, err := zlib.NewReader(bytes.NewReader(section))
	if err != nil {
		return extract.Result{}, fmt.Errorf("zlib: %w", err)
	}
	defer zr.Close()
	data, err := io.ReadAll(io.LimitReader(zr, maxJSON+1))
	if err != nil {
		return extract.Result{}, fmt.Errorf("zlib: %w", err)
	}
	if len(data) > maxJSON {
		return extract.Result{}, fmt.Errorf("decompressed data exceeds %d bytes", maxJSON)
	}
	var vi versionInfo
	if err := json.Unmarshal(data, &vi); err != nil {
		return extract.Result{}, fmt.Errorf("json: %w", err)
	}
	var res extract.Result
	pkgs := vi.Packages
	if len(pkgs) > maxPackages {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%d crates in audit data, only the first %d reported", len(pkgs), maxPackages))
		pkgs = pkgs[:maxPackages]
	}
	skipped := 0
	for _, p := range pkgs {
		if p.Kind == "build" {
			continue
		}
		if p.Name == "" || p.Version == "" {
			skipped++
			continue
		}
		pkg := sbom.Package{Type: sbom.TypeCargo, Name: p.Name, Version: p.Version}
		if p.Source != "" || p.Root {
			pkg.Metadata = map[string]string{}
			if p.Source != "" {
				pkg.Metadata["source"] = p.Source
			}
			if p.Root {
				pkg.Metadata["root"] = "true"
			}
		}
		res.Packages = append(res.Packages, pkg)
	}
	if skipped > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%d crates without name or version skipped", skipped))
	}
	return res, nil
}
