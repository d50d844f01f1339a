// Package match decides which advisories affect which installed packages: the lookup keys that
// make advisory-side and package-side names meet, OSV range semantics over each ecosystem's
// version ordering (osv-scalibr's semantic package), severity ratings, and the matcher that
// turns an SBOM (or stored package references) plus an advisory source into findings.
package match

import (
	"regexp"
	"strings"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
)

// PackageKey is the advisory lookup key of a package: a normalized OSV ecosystem
// (NormalizeEcosystem) and a normalized package name (NormalizeName).
type PackageKey struct {
	Ecosystem string
	Name      string
}

// debianCodenames maps release codenames to the release numbers OSV's Debian ecosystems use.
// Only testing images need it: they carry VERSION_CODENAME but no VERSION_ID.
var debianCodenames = map[string]string{
	"stretch":  "9",
	"buster":   "10",
	"bullseye": "11",
	"bookworm": "12",
	"trixie":   "13",
	"forky":    "14",
	"duke":     "15",
}

// Key returns the OSV lookup key of an installed package on the given OS.
//
// OS packages are keyed by distribution release and source package, the way their advisories
// are written:
//   - deb on Debian: ("Debian:<major>", source name). Debian testing has no VERSION_ID; its
//     codename maps to the release it will become (trixie -> "Debian:13"). sid has no OSV
//     ecosystem: not matched.
//   - deb on Ubuntu: ("Ubuntu:<VERSION_ID>", source name), e.g. "Ubuntu:22.04"; advisory
//     ecosystems "Ubuntu:22.04:LTS" and "Ubuntu:Pro:22.04:LTS" normalize to the same key.
//   - apk on Alpine: ("Alpine:v<major.minor>", origin); on Wolfi / Chainguard: ("Wolfi" /
//     "Chainguard", origin).
//   - rpm: ("Red Hat:<major>", "Rocky Linux:<major>", "AlmaLinux:<major>", "Mageia:<major>",
//     "openSUSE:Leap <VERSION_ID>", "openSUSE:Tumbleweed", "SUSE:<major> SP<minor>") with the
//     binary package name: those distributions' OSV records list binary rpm names.
//
// Language packages are keyed by ecosystem and normalized name: golang -> "Go" (module path;
// the standard library is "stdlib"), npm, pypi -> "PyPI" (PEP 503), maven -> "Maven"
// ("group:artifact"), cargo -> "crates.io", gem -> "RubyGems", composer -> "Packagist",
// nuget -> "NuGet".
//
// A language package installed by the OS package manager (OwnedBy set) is not keyed: the
// distribution patches and versions it, so its advisories are the OS package's; matching it
// also against upstream advisories would report fixes the distribution already backported.
// ok is false for packages that cannot be matched (unknown type or distribution, no release).
func Key(p *sbom.Package, os *sbom.OS) (ecosystem, name string, ok bool) {
	if p == nil || p.OwnedBy != "" || p.Name == "" {
		return "", "", false
	}
	switch p.Type {
	case sbom.TypeDeb, sbom.TypeAPK, sbom.TypeRPM:
		eco := osEcosystem(p.Type, os)
		if eco == "" {
			return "", "", false
		}
		name := p.Name
		if p.Type != sbom.TypeRPM && p.Source != nil && p.Source.Name != "" {
			name = p.Source.Name
		}
		return eco, NormalizeName(eco, name), true
	}
	eco := languageEcosystem(p.Type)
	if eco == "" {
		return "", "", false
	}
	return eco, NormalizeName(eco, p.Name), true
}

func languageEcosystem(typ string) string {
	switch typ {
	case sbom.TypeGolang:
		return "Go"
	case sbom.TypeNPM:
		return "npm"
	case sbom.TypePyPI:
		return "PyPI"
	case sbom.TypeMaven:
		return "Maven"
	case sbom.TypeCargo:
		return "crates.io"
	case sbom.TypeGem:
		return "RubyGems"
	case sbom.TypeComposer:
		return "Packagist"
	case sbom.TypeNuGet:
		return "NuGet"
	}
	return ""
}

// osEcosystem is the normalized OSV ecosystem of an OS package type on a distribution, or ""
// when the pair has no OSV data.
func osEcosystem(typ string, os *sbom.OS) string {
	if os == nil {
		return ""
	}
	id := strings.ToLower(os.ID)
	ver := os.VersionID
	switch typ {
	case sbom.TypeDeb:
		switch id {
		case "debian":
			if major := majorOf(ver); major != "" {
				return "Debian:" + major
			}
			if n, ok := debianCodenames[strings.ToLower(os.VersionCodename)]; ok {
				return "Debian:" + n
			}
		case "ubuntu":
			if ver != "" {
				return "Ubuntu:" + ver
			}
		}
	case sbom.TypeAPK:
		switch id {
		case "alpine":
			if mm := majorMinorOf(ver); mm != "" {
				return "Alpine:v" + mm
			}
		case "wolfi":
			return "Wolfi"
		case "chainguard":
			return "Chainguard"
		}
	case sbom.TypeRPM:
		major := majorOf(ver)
		switch id {
		case "rhel":
			if major != "" {
				return "Red Hat:" + major
			}
		case "rocky":
			if major != "" {
				return "Rocky Linux:" + major
			}
		case "almalinux":
			if major != "" {
				return "AlmaLinux:" + major
			}
		case "mageia":
			if major != "" {
				return "Mageia:" + major
			}
		case "opensuse-leap":
			if ver != "" {
				return "openSUSE:Leap " + ver
			}
		case "opensuse-tumbleweed":
			return "openSUSE:Tumbleweed"
		case "sles", "sled":
			if major != "" {
				if minor := minorOf(ver); minor != "" && minor != "0" {
					return "SUSE:" + major + " SP" + minor
				}
				return "SUSE:" + major
			}
		}
	}
	return ""
}

func majorOf(v string) string {
	major, _, _ := strings.Cut(v, ".")
	if !allDigits(major) {
		return ""
	}
	return major
}

func minorOf(v string) string {
	_, rest, _ := strings.Cut(v, ".")
	minor, _, _ := strings.Cut(rest, ".")
	if !allDigits(minor) {
		return ""
	}
	return minor
}

// majorMinorOf turns Alpine's "3.19.1" (or edge's "3.21.0_alpha20240807") into "3.19".
func majorMinorOf(v string) string {
	major, minor := majorOf(v), minorOf(v)
	if major == "" {
		return ""
	}
	if minor == "" {
		// "3.21_alpha..." and the like: take the leading digits of the minor part.
		_, rest, _ := strings.Cut(v, ".")
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 {
			return ""
		}
		minor = rest[:i]
	}
	return major + "." + minor
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// suseRelease finds "15 SP5" or "15" in a SUSE Linux Enterprise product name.
var suseRelease = regexp.MustCompile(`\b(1[0-9])(?: SP([0-9]+))?\b`)

// NormalizeEcosystem maps an OSV ecosystem as advisories write it to the key ecosystem that Key
// produces for installed packages, so that both sides meet:
//   - "Ubuntu:22.04:LTS", "Ubuntu:Pro:22.04:LTS" -> "Ubuntu:22.04" (Pro records describe the
//     same packages, fixed in ESM); FIPS and other Pro streams keep their own key (their
//     packages are different builds).
//   - "Red Hat:enterprise_linux:9::appstream" -> "Red Hat:9"; other Red Hat products (EUS,
//     OpenShift...) keep their name and match nothing.
//   - "SUSE:Linux Enterprise Server 15 SP5", "SUSE:Linux Enterprise Module for Basesystem 15
//     SP5" -> "SUSE:15 SP5" (SLE products of one service pack share their packages); SLE
//     Micro keeps its own name.
//   - "Debian:12", "Alpine:v3.19", "Rocky Linux:9", "PyPI", "npm"... are already keys.
func NormalizeEcosystem(osvEcosystem string) string {
	e := strings.TrimSpace(osvEcosystem)
	base, rest, hasRest := strings.Cut(e, ":")
	if !hasRest {
		return e
	}
	switch base {
	case "Ubuntu":
		parts := strings.Split(rest, ":")
		if len(parts) > 0 && parts[0] == "Pro" {
			if len(parts) < 2 || !isUbuntuRelease(parts[1]) {
				return e // Pro:FIPS..., Pro:Realtime...: different builds
			}
			parts = parts[1:]
		}
		if isUbuntuRelease(parts[0]) {
			return "Ubuntu:" + parts[0]
		}
		return e
	case "Red Hat":
		parts := strings.Split(rest, ":")
		if len(parts) >= 2 && parts[0] == "enterprise_linux" {
			if major := majorOf(parts[1]); major != "" {
				return "Red Hat:" + major
			}
		}
		return e
	case "SUSE":
		if strings.HasPrefix(rest, "Linux Enterprise ") && !strings.Contains(rest, "Micro") {
			if m := suseRelease.FindStringSubmatch(rest); m != nil {
				if m[2] != "" && m[2] != "0" {
					return "SUSE:" + m[1] + " SP" + m[2]
				}
				return "SUSE:" + m[1]
			}
		}
		return e
	case "Debian", "Rocky Linux", "AlmaLinux", "Mageia":
		// "Debian:12" is the key; a point release ("Debian:12.4") is not used by OSV, but
		// accept it.
		if major := majorOf(rest); major != "" {
			return base + ":" + major
		}
		return e
	}
	return e
}

func isUbuntuRelease(s string) bool {
	major, minor, ok := strings.Cut(s, ".")
	return ok && allDigits(major) && allDigits(minor)
}

// ecosystemBase is the part of an ecosystem before the first colon ("Debian:12" -> "Debian").
func ecosystemBase(ecosystem string) string {
	base, _, _ := strings.Cut(ecosystem, ":")
	return base
}

// NormalizeName normalizes a package name for lookup in an ecosystem (raw OSV or key form):
// PyPI names per PEP 503 (lowercase, runs of "-", "_", "." become "-"); Packagist and NuGet
// lowercase (they compare case-insensitively); every other ecosystem's names are compared as
// written (Go module paths, Maven coordinates, npm names and distribution package names are
// case-sensitive).
func NormalizeName(ecosystem, name string) string {
	name = strings.TrimSpace(name)
	switch ecosystemBase(ecosystem) {
	case "PyPI":
		return pep503(name)
	case "Packagist", "NuGet":
		return strings.ToLower(name)
	}
	return name
}

func pep503(name string) string {
	var b strings.Builder
	b.Grow(len(name))
	sep := false
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '-' || c == '_' || c == '.' {
			sep = true
			continue
		}
		if sep {
			b.WriteByte('-')
		}
		sep = false
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	if sep {
		b.WriteByte('-')
	}
	return b.String()
}

// MatchVersion turns an installed package's version into the form its ecosystem's advisories
// use: Go versions lose their "v" prefix (module "v1.2.3") or "go" prefix (toolchain
// "go1.22.3"), as OSV's Go records write "1.2.3".
func MatchVersion(ecosystem, version string) string {
	if ecosystemBase(ecosystem) == "Go" {
		version = strings.TrimPrefix(version, "go")
		version = strings.TrimPrefix(version, "v")
	}
	return version
}
