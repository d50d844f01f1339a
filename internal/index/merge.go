package index

import (
	"path"
	"sort"
	"strings"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/extract"
)

// maxSymlinkHops bounds symlink resolution, as the kernel's ELOOP does.
const maxSymlinkHops = 40

// visibleFile is a file of the merged filesystem, with the layer each of its packages first
// appeared in (the layer that introduced it, not merely the last one that rewrote the file).
type visibleFile struct {
	layer      int
	file       *FileResult
	introduced map[string]int // package key -> layer index
}

// merged is the union of the layers' results as the container would see its filesystem.
type merged struct {
	files    map[string]*visibleFile
	symlinks map[string]string
	warnings []string
}

// mergeLayers applies layers bottom-up: each layer's whiteouts and opaque directories remove
// lower content before the layer's own files are added.
func mergeLayers(layers []*LayerResult) *merged {
	m := &merged{files: map[string]*visibleFile{}, symlinks: map[string]string{}}
	for i, lr := range layers {
		m.remove(lr)
		for fi := range lr.Files {
			fr := &lr.Files[fi]
			prev := m.files[fr.Path]
			vf := &visibleFile{layer: i, file: fr, introduced: map[string]int{}}
			for _, er := range fr.Results {
				for pi := range er.Packages {
					key := er.Extractor + "\x00" + er.Packages[pi].Key()
					vf.introduced[key] = i
					if prev != nil {
						if l, ok := prev.introduced[key]; ok {
							vf.introduced[key] = l
						}
					}
				}
			}
			m.files[fr.Path] = vf
			delete(m.symlinks, fr.Path)
		}
		for _, l := range lr.Symlinks {
			m.symlinks[l.Path] = l.Target
			delete(m.files, l.Path)
		}
		m.warnings = append(m.warnings, lr.Warnings...)
	}
	return m
}

// remove drops everything a layer's whiteouts and opaque directories hide.
func (m *merged) remove(lr *LayerResult) {
	if len(lr.Whiteouts) == 0 && len(lr.OpaqueDirs) == 0 {
		return
	}
	gone := make(map[string]bool, len(lr.Whiteouts)) // the path and everything below it
	below := make(map[string]bool, len(lr.OpaqueDirs))
	for _, w := range lr.Whiteouts {
		gone[w] = true
	}
	for _, d := range lr.OpaqueDirs {
		below[d] = true
	}
	hidden := func(p string) bool {
		if gone[p] {
			return true
		}
		for dir := path.Dir(p); ; dir = path.Dir(dir) {
			if gone[dir] || below[dir] {
				return true
			}
			if dir == "/" {
				return false
			}
		}
	}
	for p := range m.files {
		if hidden(p) {
			delete(m.files, p)
		}
	}
	for p := range m.symlinks {
		if hidden(p) {
			delete(m.symlinks, p)
		}
	}
}

// resolve follows symlinks inside the image. Targets are interpreted against the image root, so a
// link cannot reach outside it; loops end with ok=false.
func (m *merged) resolve(p string) (string, bool) {
	for hops := 0; hops < maxSymlinkHops; hops++ {
		target, isLink := m.symlinks[p]
		if !isLink {
			return p, true
		}
		if strings.HasPrefix(target, "/") {
			p = path.Clean(target)
		} else {
			p = path.Join(path.Dir(p), target)
		}
	}
	return "", false
}

// packages turns the merged filesystem into the image's inventory.
func (m *merged) packages(layers []sbom.Layer) (*sbom.OS, []sbom.Package, []string) {
	warnings := m.warnings
	// A symlinked file shows the results of its target under its own path.
	for link := range m.symlinks {
		target, ok := m.resolve(link)
		if !ok {
			warnings = append(warnings, link+": symbolic link loop; ignored")
			continue
		}
		if vf, ok := m.files[target]; ok {
			m.files[link] = vf
		}
	}

	paths := make([]string, 0, len(m.files))
	for p := range m.files {
		paths = append(paths, p)
	}
	sort.Strings(paths)

	var osInfo *sbom.OS
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		if vf, ok := m.files[p]; ok {
			for _, er := range vf.file.Results {
				if er.OS != nil && osInfo == nil {
					osInfo = er.OS
				}
			}
		}
	}

	owners := map[string]extract.PackageRef{}
	for _, p := range paths {
		for _, er := range m.files[p].file.Results {
			for _, o := range er.Owned {
				owners[o.Path] = o.Owner
			}
		}
	}

	diffID := func(layer int) string {
		if layer < len(layers) {
			return layers[layer].DiffID
		}
		return ""
	}

	byKey := map[string]int{}
	var pkgs []sbom.Package
	var fromLock []bool
	installed := map[string]bool{}    // type, name, version of packages found installed
	licenses := map[string][]string{} // type+name -> licenses from license-only records
	for _, p := range paths {
		vf := m.files[p]
		for _, er := range vf.file.Results {
			for _, pkg := range er.Packages {
				if pkg.Metadata["licenseOnly"] == "true" {
					licenses[pkg.Type+"\x00"+pkg.Name] = pkg.Licenses
					continue
				}
				loc := sbom.Location{Path: p, DiffID: diffID(vf.introduced[er.Extractor+"\x00"+pkg.Key()])}
				if ap := pkg.Metadata["archivePath"]; ap != "" {
					loc.Path = ap
				}
				lock := pkg.Metadata["fromLockfile"] == "true"
				if !lock {
					installed[pkg.Type+"\x00"+pkg.Name+"\x00"+pkg.Version] = true
				}
				if i, ok := byKey[pkg.Key()]; ok {
					pkgs[i].Locations = append(pkgs[i].Locations, loc)
					fromLock[i] = fromLock[i] && lock
					continue
				}
				pkg.Locations = []sbom.Location{loc}
				pkg.Metadata = copyMap(pkg.Metadata)
				byKey[pkg.Key()] = len(pkgs)
				pkgs = append(pkgs, pkg)
				fromLock = append(fromLock, lock)
			}
		}
	}

	// Lock files describe what an application asked for; installed packages say what is there.
	kept := pkgs[:0]
	for i, pkg := range pkgs {
		if fromLock[i] && installed[pkg.Type+"\x00"+pkg.Name+"\x00"+pkg.Version] {
			continue
		}
		kept = append(kept, pkg)
	}
	pkgs = kept

	osPURL := map[string]string{} // type/name/arch -> PURL of the OS package
	for i := range pkgs {
		p := &pkgs[i]
		if l, ok := licenses[p.Type+"\x00"+p.Name]; ok && len(p.Licenses) == 0 {
			p.Licenses = l
		}
		p.PURL = sbom.PURL(p, osInfo)
		if sbom.IsOS(p.Type) {
			osPURL[p.Type+"\x00"+p.Name+"\x00"+p.Arch] = p.PURL
			if _, ok := osPURL[p.Type+"\x00"+p.Name]; !ok {
				osPURL[p.Type+"\x00"+p.Name] = p.PURL
			}
		}
	}
	for i := range pkgs {
		p := &pkgs[i]
		if sbom.IsOS(p.Type) {
			continue
		}
		for _, loc := range p.Locations {
			if ref, ok := ownerOf(owners, loc.Path); ok {
				if purl, ok := osPURL[ref.Type+"\x00"+ref.Name+"\x00"+ref.Arch]; ok {
					p.OwnedBy = purl
				} else if purl, ok := osPURL[ref.Type+"\x00"+ref.Name]; ok {
					p.OwnedBy = purl
				}
				break
			}
		}
	}

	sort.Slice(pkgs, func(i, j int) bool {
		a, b := &pkgs[i], &pkgs[j]
		if a.Type != b.Type {
			return a.Type < b.Type
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		return a.Arch < b.Arch
	})
	return osInfo, pkgs, warnings
}

// ownerOf finds the OS package that installed path, trying the file, the directories holding it
// (Python's dist-info directories are listed as such) and the merged-/usr aliases that package
// databases still record (/lib/... installed as /usr/lib/...).
func ownerOf(owners map[string]extract.PackageRef, p string) (extract.PackageRef, bool) {
	if i := strings.Index(p, "!"); i >= 0 { // a jar nested in an archive belongs with the archive
		p = p[:i]
	}
	for _, candidate := range []string{p, unmergedUsr(p)} {
		if candidate == "" {
			continue
		}
		if ref, ok := owners[candidate]; ok {
			return ref, true
		}
		if ref, ok := owners[path.Dir(candidate)]; ok {
			return ref, true
		}
	}
	return extract.PackageRef{}, false
}

func unmergedUsr(p string) string {
	for _, dir := range []string{"/usr/lib/", "/usr/bin/", "/usr/sbin/", "/usr/lib64/"} {
		if strings.HasPrefix(p, dir) {
			return p[len("/usr"):]
		}
	}
	return ""
}

func copyMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if k == "archivePath" || k == "fromLockfile" || k == "licenseOnly" {
			continue
		}
		out[k] = v
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
