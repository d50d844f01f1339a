// Package php extracts Composer packages from vendor/composer/installed.json (what `composer
// install` actually put in vendor/, in Composer 1's array form or Composer 2's object form) and
// from composer.lock (what an install of the project would put there).
//
// Versions are kept exactly as Composer records them ("v5.4.0" stays "v5.4.0", as Packagist and
// OSV's Packagist ecosystem spell it); Metadata "versionNormalized" holds the version without
// its leading "v" when it had one, for matchers that compare bare numbers.
package php

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract"
)

// Metadata keys.
const (
	// MetaVersionNormalized is the version without a leading "v"/"V"; set only when it differs.
	MetaVersionNormalized = "versionNormalized"
	// MetaDev is "true" for development-only packages (require-dev): installed.json's
	// dev-package-names, or composer.lock's packages-dev when those are included.
	MetaDev = "dev"
)

const (
	// maxFile bounds installed.json and composer.lock; large real ones are a few MB.
	maxFile = 64 << 20
	// maxPackages bounds the packages taken from one file.
	maxPackages = 100_000
	maxLicenses = 32
)

// Extractor reads Composer metadata.
type Extractor struct {
	devLock bool
}

// Option configures an Extractor.
type Option func(*Extractor)

// WithLockDev also reports composer.lock's packages-dev (marked MetaDev). By default they are
// left out: a production image is built with `composer install --no-dev`, and a lock file
// records dev packages whether or not they were installed. installed.json always reports every
// package it lists, dev ones marked, because those are in the image.
func WithLockDev() Option { return func(e *Extractor) { e.devLock = true } }

// New returns a Composer extractor.
func New(opts ...Option) *Extractor {
	e := &Extractor{}
	for _, o := range opts {
		o(e)
	}
	return e
}

// Name implements extract.Extractor.
func (*Extractor) Name() string { return "composer" }

// Version implements extract.Extractor. WithLockDev changes the output, so it changes the
// version too (the layer cache is keyed by it).
func (e *Extractor) Version() int {
	if e.devLock {
		return 1<<16 | 1
	}
	return 1
}

// MaxFileSize implements extract.MaxSizer.
func (*Extractor) MaxFileSize() int64 { return maxFile }

const (
	installedSuffix = "/composer/installed.json"
	lockName        = "composer.lock"
)

// Required implements extract.Extractor: .../composer/installed.json (Composer's vendor dir is
// configurable, its composer/ subdirectory is not) and composer.lock anywhere.
func (*Extractor) Required(path string, mode fs.FileMode, size int64) bool {
	if !mode.IsRegular() || size <= 0 || size > maxFile {
		return false
	}
	if strings.HasSuffix(path, installedSuffix) {
		return true
	}
	return strings.HasSuffix(path, "/"+lockName) || path == lockName
}

// composerPackage is one entry of installed.json or composer.lock.
type composerPackage struct {
	Name    string          `json:"name"`
	Version string          `json:"version"`
	License json.RawMessage `json:"license"`
}

type installedV2 struct {
	Packages        []composerPackage `json:"packages"`
	DevPackageNames []string          `json:"dev-package-names"`
}

type lockFile struct {
	Packages    []composerPackage `json:"packages"`
	PackagesDev []composerPackage `json:"packages-dev"`
}

// Extract implements extract.Extractor.
func (e *Extractor) Extract(_ context.Context, in extract.Input) (extract.Result, error) {
	var res extract.Result
	var err error
	if strings.HasSuffix(in.Path, installedSuffix) {
		res, err = parseInstalled(in.Content)
	} else {
		res, err = e.parseLock(in.Content)
	}
	if err != nil {
		return extract.Result{}, fmt.Errorf("parse %s: %w", in.Path, err)
	}
	return res, nil
}

func parseInstalled(b []byte) (extract.Result, error) {
	trimmed := bytes.TrimLeft(b, " \t\r\n\ufeff")
	if len(trimmed) == 0 {
		return extract.Result{}, errors.New("empty file")
	}
	var pkgs []composerPackage
	dev := map[string]bool{}
	switch trimmed[0] {
	case '[': // Composer 1
		if err := json.Unmarshal(trimmed, &pkgs); err != nil {
			return extract.Result{}, err
		}
	case '{': // Composer 2
		var v2 installedV2
		if err := json.Unmarshal(trimmed, &v2); err != nil {
			return extract.Result{}, err
		}
		pkgs = v2.Packages
		for _, n := range v2.DevPackageNames {
			dev[n] = true
		}
	default:
		return extract.Result{}, errors.New("neither a JSON array nor an object")
	}
	var res extract.Result
	add(&res, pkgs, func(name string) bool { return dev[name] })
	return res, nil
}

func (e *Extractor) parseLock(b []byte) (extract.Result, error) {
	var lock lockFile
	if err := json.Unmarshal(bytes.TrimLeft(b, "\ufeff"), &lock); err != nil {
		return extract.Result{}, err
	}
	var res extract.Result
	add(&res, lock.Packages, func(string) bool { return false })
	if e.devLock {
		add(&res, lock.PackagesDev, func(string) bool { return true })
	}
	return res, nil
}

func add(res *extract.Result, pkgs []composerPackage, isDev func(string) bool) {
	for i, cp := range pkgs {
		if len(res.Packages) >= maxPackages {
			res.Warnings = append(res.Warnings, fmt.Sprintf("more than %d packages, the rest ignored", maxPackages))
			return
		}
		if !validName(cp.Name) || cp.Version == "" || strings.ContainsAny(cp.Version, " \t\r\n") {
			res.Warnings = append(res.Warnings, fmt.Sprintf("package %d (%q %q): no valid name or version, ignored", i, truncate(cp.Name), truncate(cp.Version)))
			continue
		}
		p := sbom.Package{Type: sbom.TypeComposer, Name: cp.Name, Version: cp.Version, Licenses: licenses(cp.License)}
		md := map[string]string{}
		if n := normalize(cp.Version); n != cp.Version {
			md[MetaVersionNormalized] = n
		}
		if isDev(cp.Name) {
			md[MetaDev] = "true"
		}
		if len(md) > 0 {
			p.Metadata = md
		}
		res.Packages = append(res.Packages, p)
	}
}

// validName checks Composer's "vendor/name" shape.
func validName(n string) bool {
	i := strings.IndexByte(n, '/')
	return len(n) <= 256 && i > 0 && i < len(n)-1 && strings.IndexByte(n[i+1:], '/') < 0 &&
		!strings.ContainsAny(n, " \t\r\n")
}

// normalize drops the "v" Git tags often carry ("v1.2.3" -> "1.2.3").
func normalize(v string) string {
	if len(v) > 1 && (v[0] == 'v' || v[0] == 'V') && v[1] >= '0' && v[1] <= '9' {
		return v[1:]
	}
	return v
}

// licenses reads "license", an array of SPDX expressions in installed.json and composer.lock,
// but a bare string in hand-edited files.
func licenses(raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		var one string
		if json.Unmarshal(raw, &one) != nil {
			return nil
		}
		list = []string{one}
	}
	var out []string
	for _, l := range list {
		if l = strings.TrimSpace(l); l != "" && len(out) < maxLicenses {
			out = append(out, l)
		}
	}
	return out
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
