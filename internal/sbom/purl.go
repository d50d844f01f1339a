package sbom

import (
	"strings"

	"github.com/package-url/packageurl-go"
)

// PURL returns the package URL of p in the form Syft and Trivy give it, so that advisories and
// SBOMs from those tools line up with ours: OS packages carry arch, distro and (as Syft does)
// the upstream source package; language packages carry no qualifiers. os may be nil (no
// os-release was found). It returns "" when p has no name or a type that is not a valid PURL
// type. The string is canonical as packageurl-go writes it: characters outside the PURL safe
// set, such as '+' in Debian versions, are percent-encoded.
func PURL(p *Package, os *OS) string {
	if p == nil || p.Name == "" {
		return ""
	}
	var (
		namespace, name, version = "", p.Name, p.Version
		quals                    packageurl.Qualifiers
	)
	switch p.Type {
	case TypeDeb:
		namespace = osNamespace(os, "debian")
		quals = osQualifiers(p, os, upstream(p))
	case TypeAPK:
		namespace = osNamespace(os, "alpine")
		quals = osQualifiers(p, os, upstream(p))
	case TypeRPM:
		namespace = rpmNamespace(os)
		var epoch string
		epoch, version = splitEpoch(p.Version)
		if epoch == "" && p.Metadata != nil {
			epoch = p.Metadata["epoch"]
		}
		if epoch != "" {
			quals = append(quals, packageurl.Qualifier{Key: "epoch", Value: epoch})
		}
		quals = append(quals, osQualifiers(p, os, rpmUpstream(p))...)
	case TypeGolang:
		if p.Name == "stdlib" {
			// Syft and Docker Scout write the toolchain version without "go" ("1.21.5"), the
			// form OSV uses for the standard library.
			version = strings.TrimPrefix(strings.TrimPrefix(version, "go"), "v")
		}
		// The module path's last element is the name; "stdlib" has no namespace.
		if i := strings.LastIndexByte(p.Name, '/'); i > 0 && i < len(p.Name)-1 {
			namespace, name = p.Name[:i], p.Name[i+1:]
		}
	case TypeNPM:
		if strings.HasPrefix(p.Name, "@") {
			if scope, n, ok := strings.Cut(p.Name, "/"); ok && n != "" {
				namespace, name = scope, n
			}
		}
	case TypePyPI:
		name = NormalizePyPIName(p.Name)
	case TypeMaven:
		if group, artifact, ok := strings.Cut(p.Name, ":"); ok && artifact != "" {
			namespace, name = group, artifact
		}
	case TypeComposer:
		if vendor, n, ok := strings.Cut(p.Name, "/"); ok && n != "" {
			namespace, name = vendor, n
		}
	}
	u := packageurl.NewPackageURL(p.Type, namespace, name, version, quals, "")
	// Normalize checks the type and qualifier keys and sorts qualifiers; it also applies the
	// spec's per-type case rules, which Syft and Trivy do not apply to Go module paths (they
	// are case-sensitive), so the name parts are put back afterwards.
	norm := *u
	norm.Qualifiers = append(packageurl.Qualifiers(nil), u.Qualifiers...)
	if err := norm.Normalize(); err != nil {
		return ""
	}
	if p.Type == TypeGolang {
		norm.Namespace, norm.Name = strings.Trim(namespace, "/"), name
	}
	return norm.ToString()
}

// NormalizePyPIName is the PEP 503 normalized form of a Python distribution name: lower case,
// each run of '-', '_' and '.' replaced by one '-'.
func NormalizePyPIName(name string) string {
	var b strings.Builder
	b.Grow(len(name))
	sep := false
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '-' || c == '_' || c == '.' {
			if !sep {
				b.WriteByte('-')
			}
			sep = true
			continue
		}
		sep = false
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	return b.String()
}

func osNamespace(os *OS, fallback string) string {
	if os != nil && os.ID != "" {
		return strings.ToLower(os.ID)
	}
	return fallback
}

// rpmNamespace follows Syft: RHEL packages are published by "redhat", openSUSE flavours by
// "opensuse".
func rpmNamespace(os *OS) string {
	if os == nil || os.ID == "" {
		return ""
	}
	id := strings.ToLower(os.ID)
	switch {
	case id == "rhel":
		return "redhat"
	case strings.HasPrefix(id, "opensuse"):
		return "opensuse"
	}
	return id
}

func osQualifiers(p *Package, os *OS, upstream string) packageurl.Qualifiers {
	var q packageurl.Qualifiers
	if p.Arch != "" {
		q = append(q, packageurl.Qualifier{Key: "arch", Value: p.Arch})
	}
	if d := distro(os); d != "" {
		q = append(q, packageurl.Qualifier{Key: "distro", Value: d})
	}
	if upstream != "" {
		q = append(q, packageurl.Qualifier{Key: "upstream", Value: upstream})
	}
	return q
}

// distro is the "distro" qualifier: "debian-12", "ubuntu-22.04", "alpine-3.19.1".
func distro(os *OS) string {
	if os == nil || os.ID == "" {
		return ""
	}
	if os.VersionID == "" {
		return os.ID
	}
	return os.ID + "-" + os.VersionID
}

// upstream names the source package when it is not the binary package itself, as Syft does for
// deb and apk: "src", or "src@version" when the source version differs too.
func upstream(p *Package) string {
	s := p.Source
	if s == nil || s.Name == "" {
		return ""
	}
	versionDiffers := s.Version != "" && s.Version != p.Version
	if s.Name == p.Name && !versionDiffers {
		return ""
	}
	if versionDiffers {
		return s.Name + "@" + s.Version
	}
	return s.Name
}

// rpmUpstream is the source RPM file name, as Syft writes it ("bash-5.1.8-6.el9.src.rpm").
func rpmUpstream(p *Package) string {
	s := p.Source
	if s == nil || s.Name == "" {
		return ""
	}
	if strings.HasSuffix(s.Name, ".rpm") || s.Version == "" {
		return s.Name
	}
	_, v := splitEpoch(s.Version)
	return s.Name + "-" + v + ".src.rpm"
}

// splitEpoch splits "epoch:rest" when epoch is all digits.
func splitEpoch(v string) (epoch, rest string) {
	e, r, ok := strings.Cut(v, ":")
	if !ok || e == "" {
		return "", v
	}
	for i := 0; i < len(e); i++ {
		if e[i] < '0' || e[i] > '9' {
			return "", v
		}
	}
	return e, r
}
