// Package java extracts Maven packages from Java archives (jar, war, ear and their kin), including
// archives nested inside them (WEB-INF/lib, BOOT-INF/lib, jars inside an ear).
//
// Each archive is identified, in falling order of trust, by its META-INF/maven/**/pom.properties,
// by its META-INF/MANIFEST.MF, or by its file name; Metadata "source" records which, because
// matching trusts a coordinate read from pom.properties more than one guessed from a file name.
package java

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract"
)

// Metadata keys set on every package.
const (
	// MetaSource is how the coordinate was found: SourcePom, SourceManifest or SourceFilename.
	MetaSource = "source"
	// MetaArchivePath is the archive holding the package; nested archives are joined with "!/"
	// as in "/app/app.war!/WEB-INF/lib/x.jar".
	MetaArchivePath = "archivePath"
	MetaGroupID     = "groupId"
	MetaArtifactID  = "artifactId"
)

// Values of MetaSource.
const (
	SourcePom      = "pom.properties"
	SourceManifest = "manifest"
	SourceFilename = "filename"
)

// ErrLimit is returned (wrapped) when an archive exceeds a bound: too much decompressed data
// (a zip bomb), too many entries, or a metadata file too large.
var ErrLimit = errors.New("java archive limit exceeded")

// Limits bound the work done on one top-level archive, nested archives included.
type Limits struct {
	// MaxDepth is how deep archives may nest below the top-level one.
	MaxDepth int
	// MaxEntries is the total number of zip entries over all archives.
	MaxEntries int
	// MaxInflated is the total number of bytes decompressed into memory (nested archives and
	// metadata files). Nested archives stored without compression are read in place and are
	// not counted.
	MaxInflated int64
	// MaxMetaFile bounds one MANIFEST.MF or pom.properties.
	MaxMetaFile int64
}

// DefaultLimits fit the largest real fat jars (a few hundred nested jars, a few hundred MB)
// while keeping a hostile archive from exhausting memory.
var DefaultLimits = Limits{
	MaxDepth:    4,
	MaxEntries:  500_000,
	MaxInflated: 512 << 20,
	MaxMetaFile: 4 << 20,
}

// Extractor reads Java archives.
type Extractor struct {
	limits Limits
}

// New returns a Java archive extractor with DefaultLimits.
func New() *Extractor { return &Extractor{limits: DefaultLimits} }

// NewWithLimits returns a Java archive extractor with the given limits.
func NewWithLimits(l Limits) *Extractor { return &Extractor{limits: l} }

// Name implements extract.Extractor.
func (*Extractor) Name() string { return "java-archive" }

// Version implements extract.Extractor.
func (*Extractor) Version() int { return 1 }

// minZipSize is the size of an empty zip (one end-of-central-directory record).
const minZipSize = 22

// Required implements extract.Extractor: regular files with a Java archive extension.
func (*Extractor) Required(p string, mode fs.FileMode, size int64) bool {
	if !mode.IsRegular() || size < minZipSize {
		return false
	}
	return isArchiveName(p)
}

// isArchiveName reports whether name ends in .jar, .war, .ear, .par, .sar, .jpi or .hpi, in any
// case, without allocating.
func isArchiveName(name string) bool {
	n := len(name)
	if n < 5 || name[n-4] != '.' || name[n-5] == '/' {
		return false
	}
	a, b, c := lower(name[n-3]), lower(name[n-2]), lower(name[n-1])
	switch {
	case b == 'a' && c == 'r':
		return a == 'j' || a == 'w' || a == 'e' || a == 'p' || a == 's'
	case b == 'p' && c == 'i':
		return a == 'j' || a == 'h'
	}
	return false
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// Extract implements extract.Extractor.
func (e *Extractor) Extract(ctx context.Context, in extract.Input) (extract.Result, error) {
	w := &walker{
		ctx:      ctx,
		limits:   e.limits,
		entries:  e.limits.MaxEntries,
		inflated: e.limits.MaxInflated,
	}
	if err := w.walk(in.Content, in.Path, 0); err != nil {
		return extract.Result{}, err
	}
	return extract.Result{Packages: w.pkgs, Warnings: w.warnings}, nil
}

// walker carries the budgets shared by one top-level archive and everything nested in it.
type walker struct {
	ctx      context.Context
	limits   Limits
	entries  int   // zip entries still allowed
	inflated int64 // decompressed bytes still allowed
	pkgs     []sbom.Package
	warnings []string
}

// walk reads one archive. data must not be retained past the Extract call: everything kept is
// copied into strings.
func (w *walker) walk(data []byte, archivePath string, depth int) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return fmt.Errorf("open archive %s: %w", archivePath, err)
	}
	if len(zr.File) > w.entries {
		return fmt.Errorf("archive %s: %w: more than %d zip entries in total", archivePath, ErrLimit, w.limits.MaxEntries)
	}
	w.entries -= len(zr.File)

	var manifest *zip.File
	var poms, nested []*zip.File
	for _, f := range zr.File {
		if f.Mode().IsDir() {
			continue
		}
		switch {
		case strings.EqualFold(f.Name, "META-INF/MANIFEST.MF"):
			if manifest == nil {
				manifest = f
			}
		case isPomProperties(f.Name):
			poms = append(poms, f)
		case isArchiveName(f.Name):
			nested = append(nested, f)
		}
	}

	var mf map[string]string
	if manifest != nil {
		b, err := w.readMeta(manifest, archivePath)
		if err != nil {
			return err
		}
		if b != nil {
			mf = parseManifest(b)
		}
	}
	if err := w.identify(archivePath, poms, mf); err != nil {
		return err
	}

	for _, f := range nested {
		child := archivePath + "!/" + f.Name
		if depth+1 > w.limits.MaxDepth {
			w.warnings = append(w.warnings, fmt.Sprintf("%s: nested deeper than %d archives, not read", child, w.limits.MaxDepth))
			continue
		}
		b, err := w.readNested(data, f, child)
		if err != nil {
			if errors.Is(err, ErrLimit) || w.ctx.Err() != nil {
				return err
			}
			w.warnings = append(w.warnings, err.Error())
			continue
		}
		if err := w.walk(b, child, depth+1); err != nil {
			if errors.Is(err, ErrLimit) || w.ctx.Err() != nil {
				return err
			}
			// A damaged library inside an otherwise good application should not hide the rest.
			w.warnings = append(w.warnings, err.Error())
		}
	}
	return nil
}

// identify adds the packages that describe the archive at archivePath itself.
func (w *walker) identify(archivePath string, poms []*zip.File, mf map[string]string) error {
	base := path.Base(archivePath)
	licenses := bundleLicenses(mf["Bundle-License"])
	fileArtifact, fileVersion := splitFilename(base)

	var found []sbom.Package
	for _, f := range poms {
		b, err := w.readMeta(f, archivePath)
		if err != nil {
			return err
		}
		if b == nil {
			continue
		}
		props := parseProperties(b)
		// The directory names are Maven's own layout; the file's values win when present.
		dir := strings.Split(f.Name, "/")
		group, artifact, version := props["groupId"], props["artifactId"], props["version"]
		if group == "" {
			group = dir[2]
		}
		if artifact == "" {
			artifact = dir[3]
		}
		if version == "" || artifact == "" {
			w.warnings = append(w.warnings, fmt.Sprintf("%s!/%s: no version or artifactId, ignored", archivePath, f.Name))
			continue
		}
		found = append(found, newPackage(group, artifact, version, SourcePom, archivePath))
	}
	if len(found) > 0 {
		sort.Slice(found, func(i, j int) bool { return found[i].Name < found[j].Name })
		// Bundle-License describes the archive's own artifact, not the ones shaded into it.
		for i := range found {
			if len(licenses) > 0 && (len(found) == 1 || found[i].Metadata[MetaArtifactID] == fileArtifact) {
				found[i].Licenses = licenses
			}
		}
		w.pkgs = append(w.pkgs, found...)
		return nil
	}

	// A file name without a version ("app.jar") names a deployment, not an artifact.
	versioned := fileArtifact
	if fileVersion == "" {
		versioned = ""
	}
	if p, ok := fromManifest(mf, versioned, fileArtifact, archivePath); ok {
		p.Licenses = licenses
		w.pkgs = append(w.pkgs, p)
		return nil
	}
	if fileArtifact != "" && fileVersion != "" {
		p := newPackage("", fileArtifact, fileVersion, SourceFilename, archivePath)
		p.Licenses = licenses
		w.pkgs = append(w.pkgs, p)
	}
	return nil
}

// fromManifest guesses a coordinate from manifest attributes. The version must come from the
// manifest; the artifact is taken from the file name first because Implementation-Title is
// often a display name ("Apache Commons Lang") and Bundle-SymbolicName a package name.
func fromManifest(mf map[string]string, fileArtifact, fileStem, archivePath string) (sbom.Package, bool) {
	if mf == nil {
		return sbom.Package{}, false
	}
	version := firstToken(mf["Implementation-Version"], mf["Bundle-Version"], mf["Specification-Version"])
	if version == "" {
		return sbom.Package{}, false
	}
	bsn := mf["Bundle-SymbolicName"]
	if i := strings.IndexByte(bsn, ';'); i >= 0 {
		bsn = bsn[:i] // directives such as ";singleton:=true"
	}
	bsn = strings.TrimSpace(bsn)
	artifact := firstToken(fileArtifact, mf["Implementation-Title"], bsn, mf["Specification-Title"], fileStem)
	if artifact == "" {
		return sbom.Package{}, false
	}
	group := firstToken(mf["Implementation-Vendor-Id"], bsn)
	return newPackage(group, artifact, version, SourceManifest, archivePath), true
}

// firstToken returns the first value that is non-empty and a single word (a coordinate part
// cannot hold spaces).
func firstToken(vals ...string) string {
	for _, v := range vals {
		v = strings.TrimSpace(v)
		if v != "" && !strings.ContainsAny(v, " \t\"'") {
			return v
		}
	}
	return ""
}

func newPackage(group, artifact, version, source, archivePath string) sbom.Package {
	name := artifact
	if group != "" {
		name = group + ":" + artifact
	}
	md := map[string]string{
		MetaSource:      source,
		MetaArchivePath: archivePath,
		MetaArtifactID:  artifact,
	}
	if group != "" {
		md[MetaGroupID] = group
	}
	return sbom.Package{Type: sbom.TypeMaven, Name: name, Version: version, Metadata: md}
}

// isPomProperties matches exactly META-INF/maven/<group>/<artifact>/pom.properties.
func isPomProperties(name string) bool {
	const prefix, suffix = "META-INF/maven/", "/pom.properties"
	if !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, suffix) || len(name) <= len(prefix)+len(suffix) {
		return false
	}
	mid := name[len(prefix) : len(name)-len(suffix)]
	i := strings.IndexByte(mid, '/')
	return i > 0 && i < len(mid)-1 && strings.IndexByte(mid[i+1:], '/') < 0
}

// readMeta reads a small metadata file; nil (with a warning) when it is unreadable.
func (w *walker) readMeta(f *zip.File, archivePath string) ([]byte, error) {
	if f.UncompressedSize64 > uint64(w.limits.MaxMetaFile) {
		return nil, fmt.Errorf("%s!/%s: %w: %d bytes, at most %d", archivePath, f.Name, ErrLimit, f.UncompressedSize64, w.limits.MaxMetaFile)
	}
	b, err := w.inflate(f, archivePath+"!/"+f.Name)
	if err != nil {
		if errors.Is(err, ErrLimit) {
			return nil, err
		}
		w.warnings = append(w.warnings, err.Error())
		return nil, nil
	}
	return b, nil
}

// readNested returns a nested archive's bytes. A stored (uncompressed) entry, the usual case for
// Spring Boot fat jars, is sliced from the parent without copying.
func (w *walker) readNested(parent []byte, f *zip.File, child string) ([]byte, error) {
	if f.Method == zip.Store && f.CompressedSize64 == f.UncompressedSize64 {
		if off, err := f.DataOffset(); err == nil {
			if off >= 0 && uint64(off) <= uint64(len(parent)) &&
				f.UncompressedSize64 <= uint64(len(parent))-uint64(off) {
				return parent[off : off+int64(f.UncompressedSize64)], nil
			}
		}
	}
	return w.inflate(f, child)
}

// inflate decompresses one entry, charging it to the inflated-bytes budget before reading so
// that a zip bomb stops at its declared size, and again on what was actually read.
func (w *walker) inflate(f *zip.File, name string) ([]byte, error) {
	if f.UncompressedSize64 > uint64(w.inflated) {
		return nil, fmt.Errorf("%s: %w: decompressing %d bytes would pass the %d-byte budget (zip bomb?)",
			name, ErrLimit, f.UncompressedSize64, w.limits.MaxInflated)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	defer rc.Close()
	// archive/zip fails a read past the declared size, so the budget check above holds even
	// when the compressed stream lies.
	b, err := io.ReadAll(io.LimitReader(rc, int64(f.UncompressedSize64)+1))
	w.inflated -= int64(len(b))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if w.inflated < 0 {
		return nil, fmt.Errorf("%s: %w: more than %d decompressed bytes (zip bomb?)", name, ErrLimit, w.limits.MaxInflated)
	}
	return b, nil
}
