// Package rpm reads RPM package databases (Berkeley DB, NDB and SQLite) with go-rpmdb.
package rpm

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract"
	rpmdb "github.com/knqyf263/go-rpmdb/pkg"

	// go-rpmdb opens SQLite databases through database/sql's "sqlite" driver without
	// registering one; modernc.org/sqlite is the project's SQLite driver and registers that name.
	_ "modernc.org/sqlite"
)

const (
	// maxFileSize: large RHEL/Fedora databases reach about 100 MB.
	maxFileSize = 256 << 20
	// maxOwned bounds the file paths taken from one database (a full Fedora workstation
	// installs about 300,000 files).
	maxOwned = 2_000_000
	// checkTimeout bounds the SQLite pre-check; a sound rpmdb.sqlite takes milliseconds.
	checkTimeout = 30 * time.Second
	maxWarnings  = 100
)

// Options configure the extractor.
type Options struct {
	// TempDir is the directory where a database is written while go-rpmdb (which reads only from
	// a path) reads it. Each extraction uses a fresh subdirectory that is removed before Extract
	// returns. Required: the extractor writes nowhere else.
	TempDir string
}

// Extractor reads RPM databases under /var/lib/rpm and /usr/lib/sysimage/rpm.
type Extractor struct {
	opts Options
}

// New returns the rpm extractor.
func New(opts Options) *Extractor { return &Extractor{opts: opts} }

var _ extract.Extractor = (*Extractor)(nil)
var _ extract.MaxSizer = (*Extractor)(nil)

// Name implements extract.Extractor.
func (*Extractor) Name() string { return "rpm" }

// Version implements extract.Extractor.
func (*Extractor) Version() int { return 1 }

// MaxFileSize implements extract.MaxSizer.
func (*Extractor) MaxFileSize() int64 { return maxFileSize }

// Required implements extract.Extractor.
func (*Extractor) Required(p string, mode fs.FileMode, _ int64) bool {
	if !mode.IsRegular() && mode&fs.ModeSymlink == 0 {
		return false
	}
	var name string
	switch {
	case strings.HasPrefix(p, "/var/lib/rpm/"):
		name = p[len("/var/lib/rpm/"):]
	case strings.HasPrefix(p, "/usr/lib/sysimage/rpm/"):
		name = p[len("/usr/lib/sysimage/rpm/"):]
	default:
		return false
	}
	return name == "Packages" || name == "Packages.db" || name == "rpmdb.sqlite"
}

// Extract implements extract.Extractor.
//
// Versions are "version-release", prefixed by "epoch:" only when the epoch is non-zero, as rpm
// -q prints them and as Red Hat and SUSE advisories write fixed versions. Whenever the header has
// an epoch (zero included) it is also in Metadata["epoch"], so a matcher can tell "no epoch"
// from "epoch 0". The source package is named by SOURCERPM; its version carries the binary's
// epoch, because a source RPM file name has none and the two always share it.
func (e *Extractor) Extract(ctx context.Context, in extract.Input) (extract.Result, error) {
	if err := ctx.Err(); err != nil {
		return extract.Result{}, err
	}
	if e.opts.TempDir == "" {
		return extract.Result{}, errors.New("rpm extractor: no temporary directory configured")
	}
	format, err := detect(in.Content)
	if err != nil {
		return extract.Result{}, fmt.Errorf("parse %s: %w", in.Path, err)
	}
	switch format {
	case formatBDB:
		err = checkBDB(in.Content)
	case formatNDB:
		err = checkNDB(in.Content)
	}
	if err != nil {
		return extract.Result{}, fmt.Errorf("parse %s: %w", in.Path, err)
	}

	dir, err := os.MkdirTemp(e.opts.TempDir, "rpmdb-")
	if err != nil {
		return extract.Result{}, fmt.Errorf("parse %s: %w", in.Path, err)
	}
	// RemoveAll also takes SQLite's -wal and -shm files.
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, path.Base(in.Path))
	if err := os.WriteFile(file, in.Content, 0o600); err != nil {
		return extract.Result{}, fmt.Errorf("parse %s: %w", in.Path, err)
	}
	if format == formatSQLite {
		cctx, cancel := context.WithTimeout(ctx, checkTimeout)
		err := checkSQLite(cctx, file)
		cancel()
		if err != nil {
			return extract.Result{}, fmt.Errorf("parse %s: %w", in.Path, err)
		}
	}
	infos, err := listPackages(file)
	if err != nil {
		return extract.Result{}, fmt.Errorf("parse %s: %w", in.Path, err)
	}
	return convert(infos), nil
}

// listPackages runs go-rpmdb, turning a panic on a malformed header into an error.
func listPackages(file string) (infos []*rpmdb.PackageInfo, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed package header: %v", r)
		}
	}()
	db, err := rpmdb.Open(file)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return db.ListPackages()
}

func convert(infos []*rpmdb.PackageInfo) extract.Result {
	var res extract.Result
	w := extract.Warnings{Max: maxWarnings}
	for _, info := range infos {
		// gpg-pubkey entries are the keys rpm trusts, stored as pseudo-packages.
		if info.Name == "gpg-pubkey" {
			continue
		}
		if info.Name == "" || info.Version == "" {
			w.Addf("package %q without name or version; skipped", info.Name)
			continue
		}
		evr := info.Version
		if info.Release != "" {
			evr += "-" + info.Release
		}
		var epochPrefix string
		if info.Epoch != nil && *info.Epoch != 0 {
			epochPrefix = strconv.Itoa(*info.Epoch) + ":"
		}
		p := sbom.Package{
			Type:    sbom.TypeRPM,
			Name:    info.Name,
			Version: epochPrefix + evr,
			Arch:    info.Arch,
		}
		if info.License != "" {
			p.Licenses = []string{info.License}
		}
		if info.Epoch != nil {
			setMeta(&p, "epoch", strconv.Itoa(*info.Epoch))
		}
		if info.Modularitylabel != "" {
			setMeta(&p, "modularitylabel", info.Modularitylabel)
		}
		if info.SourceRpm != "" {
			name, version, ok := ParseSourceRPM(info.SourceRpm)
			if ok {
				p.Source = &sbom.Source{Name: name, Version: epochPrefix + version}
			} else {
				w.Addf("package %s: unparsable source rpm %q", info.Name, info.SourceRpm)
			}
		}
		res.Packages = append(res.Packages, p)

		files, err := info.InstalledFileNames()
		if err != nil {
			w.Addf("package %s: file list: %v", info.Name, err)
			continue
		}
		owner := extract.PackageRef{Type: sbom.TypeRPM, Name: info.Name, Arch: info.Arch}
		for _, f := range files {
			if len(res.Owned) >= maxOwned {
				w.Addf("more than %d owned files; rest ignored", maxOwned)
				break
			}
			if !strings.HasPrefix(f, "/") {
				continue
			}
			res.Owned = append(res.Owned, extract.Ownership{Path: path.Clean(f), Owner: owner})
		}
	}
	res.Warnings = w.List()
	return res
}

func setMeta(p *sbom.Package, k, v string) {
	if p.Metadata == nil {
		p.Metadata = map[string]string{}
	}
	p.Metadata[k] = v
}

// ParseSourceRPM splits a SOURCERPM value, "name-version-release.src.rpm", into the source
// name and "version-release". Names may contain dashes; version and release may not.
func ParseSourceRPM(s string) (name, versionRelease string, ok bool) {
	base, found := strings.CutSuffix(s, ".src.rpm")
	if !found {
		if base, found = strings.CutSuffix(s, ".nosrc.rpm"); !found {
			return "", "", false
		}
	}
	r := strings.LastIndexByte(base, '-')
	if r <= 0 {
		return "", "", false
	}
	v := strings.LastIndexByte(base[:r], '-')
	if v <= 0 || r-v < 2 || r == len(base)-1 {
		return "", "", false
	}
	return base[:v], base[v+1:], true
}
