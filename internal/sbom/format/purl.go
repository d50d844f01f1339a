package format

import (
	"strings"

	"github.com/package-url/packageurl-go"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
)

// packageFromPURL builds a package from a PURL found in a foreign or our own SBOM. fullName and
// version are what the document itself says the name and version are: they are preferred when
// they agree with the PURL, because PURL normalization loses case (Go module paths) and
// spelling (PyPI names).
func packageFromPURL(purl, fullName, version string) (sbom.Package, bool) {
	if purl == "" {
		return sbom.Package{}, false
	}
	u, err := packageurl.FromString(purl)
	if err != nil {
		return sbom.Package{}, false
	}
	switch u.Type {
	case "oci", "docker":
		// The image itself, not a package in it.
		return sbom.Package{}, false
	}
	q := u.Qualifiers.Map()
	p := sbom.Package{Type: u.Type, PURL: purl, Arch: q["arch"]}

	name := u.Name
	switch u.Type {
	case sbom.TypeDeb, sbom.TypeAPK, sbom.TypeRPM, sbom.TypePyPI, sbom.TypeGem, sbom.TypeCargo, sbom.TypeNuGet:
		// The namespace, if any, is the distribution or registry, not part of the name.
	case sbom.TypeMaven:
		if u.Namespace != "" {
			name = u.Namespace + ":" + u.Name
		}
	default:
		if u.Namespace != "" {
			name = u.Namespace + "/" + u.Name
		}
	}
	p.Name = name
	if fullName != "" && sameName(u.Type, name, fullName) {
		p.Name = fullName
	}

	p.Version = version
	if p.Version == "" {
		p.Version = u.Version
	}
	if u.Type == sbom.TypeRPM {
		if e := q["epoch"]; e != "" && e != "0" && !strings.Contains(p.Version, ":") && p.Version != "" {
			p.Version = e + ":" + p.Version
		}
	}

	if up := q["upstream"]; up != "" && sbom.IsOS(u.Type) {
		p.Source = sourceFromUpstream(u.Type, up)
	}
	return p, true
}

func sameName(typ, fromPURL, given string) bool {
	if typ == sbom.TypePyPI {
		return sbom.NormalizePyPIName(fromPURL) == sbom.NormalizePyPIName(given)
	}
	return strings.EqualFold(fromPURL, given)
}

// sourceFromUpstream reads Syft's upstream qualifier: "src" or "src@version" for deb and apk, the
// source RPM file name ("bash-5.1.8-6.el9.src.rpm") for rpm.
func sourceFromUpstream(typ, up string) *sbom.Source {
	if typ == sbom.TypeRPM {
		base, ok := strings.CutSuffix(up, ".src.rpm")
		if !ok {
			return &sbom.Source{Name: up}
		}
		// name-version-release: the last two dash-separated fields are version and release.
		rel := strings.LastIndexByte(base, '-')
		if rel <= 0 {
			return &sbom.Source{Name: base}
		}
		ver := strings.LastIndexByte(base[:rel], '-')
		if ver <= 0 {
			return &sbom.Source{Name: base}
		}
		return &sbom.Source{Name: base[:ver], Version: base[ver+1:]}
	}
	name, ver, _ := strings.Cut(up, "@")
	return &sbom.Source{Name: name, Version: ver}
}

// imagePURL is the image's OCI PURL ("pkg:oci/debian@sha256%3A...?arch=amd64&
// repository_url=docker.io/library/debian&tag=12"), or "" without a digest.
func imagePURL(img *sbom.Image) string {
	if img.Digest == "" {
		return ""
	}
	repo := img.Name
	if repo == "" {
		repo = img.Reference
		// A reference's tag or digest is not part of the repository.
		if i := strings.IndexByte(repo, '@'); i >= 0 {
			repo = repo[:i]
		}
		if i := strings.LastIndexByte(repo, ':'); i > strings.LastIndexByte(repo, '/') {
			repo = repo[:i]
		}
	}
	name := strings.ToLower(repo[strings.LastIndexByte(repo, '/')+1:])
	if name == "" {
		return ""
	}
	var q packageurl.Qualifiers
	if a := img.Platform.Architecture; a != "" {
		q = append(q, packageurl.Qualifier{Key: "arch", Value: a})
	}
	if strings.Contains(repo, "/") {
		q = append(q, packageurl.Qualifier{Key: "repository_url", Value: repo})
	}
	if img.Tag != "" {
		q = append(q, packageurl.Qualifier{Key: "tag", Value: img.Tag})
	}
	return packageurl.NewPackageURL("oci", "", name, img.Digest, q, "").ToString()
}

// ociDigest is the digest an image's pkg:oci PURL names, or "".
func ociDigest(purl string) string {
	if purl == "" {
		return ""
	}
	u, err := packageurl.FromString(purl)
	if err != nil || u.Type != "oci" || !strings.Contains(u.Version, ":") {
		return ""
	}
	return u.Version
}
