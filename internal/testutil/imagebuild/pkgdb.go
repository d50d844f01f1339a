package imagebuild

import (
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"path"
	"strings"
)

// DebPkg is one stanza of /var/lib/dpkg/status. Empty fields are omitted, except Status which
// defaults to "install ok installed".
type DebPkg struct {
	Package       string
	Status        string
	Priority      string
	Section       string
	InstalledSize int // KiB
	Maintainer    string
	Architecture  string
	MultiArch     string
	// Source is the source package, optionally with its version: "glibc (2.36-9)".
	Source      string
	Version     string
	Replaces    string
	Provides    string
	Depends     string
	PreDepends  string
	Recommends  string
	Suggests    string
	Breaks      string
	Conflicts   string
	Conffiles   []string // "/etc/foo.conf <md5>"
	Description string   // first line is the synopsis; later lines the long description
	Homepage    string
}

// DpkgStatus writes the stanzas in dpkg's own field order and formatting (continuation lines
// start with a space, empty description lines are " .", stanzas end with a blank line).
func DpkgStatus(pkgs ...DebPkg) []byte {
	var b strings.Builder
	for _, p := range pkgs {
		field := func(k, v string) {
			if v != "" {
				fmt.Fprintf(&b, "%s: %s\n", k, v)
			}
		}
		status := p.Status
		if status == "" {
			status = "install ok installed"
		}
		field("Package", p.Package)
		field("Status", status)
		field("Priority", p.Priority)
		field("Section", p.Section)
		if p.InstalledSize > 0 {
			field("Installed-Size", fmt.Sprint(p.InstalledSize))
		}
		field("Maintainer", p.Maintainer)
		field("Architecture", p.Architecture)
		field("Multi-Arch", p.MultiArch)
		field("Source", p.Source)
		field("Version", p.Version)
		field("Replaces", p.Replaces)
		field("Provides", p.Provides)
		field("Depends", p.Depends)
		field("Pre-Depends", p.PreDepends)
		field("Recommends", p.Recommends)
		field("Suggests", p.Suggests)
		field("Breaks", p.Breaks)
		field("Conflicts", p.Conflicts)
		if len(p.Conffiles) > 0 {
			b.WriteString("Conffiles:\n")
			for _, c := range p.Conffiles {
				fmt.Fprintf(&b, " %s\n", c)
			}
		}
		if p.Description != "" {
			lines := strings.Split(strings.TrimRight(p.Description, "\n"), "\n")
			fmt.Fprintf(&b, "Description: %s\n", lines[0])
			for _, l := range lines[1:] {
				if strings.TrimSpace(l) == "" {
					l = "."
				}
				fmt.Fprintf(&b, " %s\n", l)
			}
		}
		field("Homepage", p.Homepage)
		b.WriteString("\n")
	}
	return []byte(b.String())
}

// DpkgList is the content of /var/lib/dpkg/info/<pkg>[:arch].list: the paths a package
// installed, one a line, directories included, as dpkg writes them.
func DpkgList(paths ...string) []byte {
	var b strings.Builder
	for _, p := range paths {
		b.WriteString(p)
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// APKPkg is one package of Alpine's /lib/apk/db/installed.
type APKPkg struct {
	Name, Version, Arch string
	Size, InstalledSize int64
	Description         string
	URL                 string
	License             string
	Origin              string
	Maintainer          string
	BuildTime           int64
	Commit              string
	Depends             []string // D: "so:libc.musl-x86_64.so.1 musl>=1.2"
	Provides            []string // p:
	// Files are installed paths without a leading "/" ("usr/lib/libz.so.1"), grouped by
	// directory as apk writes them (F: then R: lines with a Z: checksum each).
	Files []string
}

// APKInstalled writes packages in apk-tools' installed-database format.
func APKInstalled(pkgs ...APKPkg) []byte {
	var b strings.Builder
	for _, p := range pkgs {
		field := func(k, v string) {
			if v != "" {
				fmt.Fprintf(&b, "%s:%s\n", k, v)
			}
		}
		field("C", apkChecksum("pkg:"+p.Name+"-"+p.Version))
		field("P", p.Name)
		field("V", p.Version)
		field("A", p.Arch)
		if p.Size > 0 {
			field("S", fmt.Sprint(p.Size))
		}
		if p.InstalledSize > 0 {
			field("I", fmt.Sprint(p.InstalledSize))
		}
		field("T", p.Description)
		field("U", p.URL)
		field("L", p.License)
		field("o", p.Origin)
		field("m", p.Maintainer)
		if p.BuildTime > 0 {
			field("t", fmt.Sprint(p.BuildTime))
		}
		field("c", p.Commit)
		field("D", strings.Join(p.Depends, " "))
		field("p", strings.Join(p.Provides, " "))
		lastDir := "\x00"
		for _, f := range p.Files {
			dir, base := path.Split(strings.TrimPrefix(f, "/"))
			dir = strings.TrimSuffix(dir, "/")
			if dir != lastDir {
				fmt.Fprintf(&b, "F:%s\n", dir)
				lastDir = dir
			}
			fmt.Fprintf(&b, "R:%s\n", base)
			fmt.Fprintf(&b, "Z:%s\n", apkChecksum("file:"+f))
		}
		b.WriteString("\n")
	}
	return []byte(b.String())
}

// apkChecksum makes a well-formed "Q1"+base64(sha1) checksum; the content it would hash is not
// part of the fixture, so it hashes a stable label instead.
func apkChecksum(label string) string {
	sum := sha1.Sum([]byte(label))
	return "Q1" + base64.StdEncoding.EncodeToString(sum[:])
}
