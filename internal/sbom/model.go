// Package sbom holds crowsnest's package inventory model: an image, its OS and the packages found
// in it. Every other part (formats, matching, the store) reads this one model.
package sbom

import "time"

// SchemaVersion is the version of crowsnest's own JSON schema (docs/SBOM-JSON.md).
const SchemaVersion = "1"

// SBOM is the package inventory of one image (one platform).
type SBOM struct {
	SchemaVersion string    `json:"schemaVersion"`
	Tool          Tool      `json:"tool"`
	Created       time.Time `json:"created"`
	Image         Image     `json:"image"`
	OS            *OS       `json:"os,omitempty"`
	Packages      []Package `json:"packages"`
	// Warnings are problems that did not stop indexing (a malformed database, a hostile tar entry);
	// each names the layer and file it concerns.
	Warnings []string `json:"warnings,omitempty"`
}

// Tool names the program that produced the SBOM.
type Tool struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Image describes the indexed image. Digest is the manifest digest; for fs:// inputs it is empty.
type Image struct {
	// Reference is the input as the user gave it (e.g. "registry.example/app:1.2").
	Reference string `json:"reference"`
	// Name is the repository part of a registry reference, without tag or digest.
	Name         string     `json:"name,omitempty"`
	Tag          string     `json:"tag,omitempty"`
	Digest       string     `json:"digest,omitempty"`
	IndexDigest  string     `json:"indexDigest,omitempty"`
	MediaType    string     `json:"mediaType,omitempty"`
	ConfigDigest string     `json:"configDigest,omitempty"`
	Platform     Platform   `json:"platform"`
	Created      *time.Time `json:"created,omitempty"`
	Config       Config     `json:"config"`
	Layers       []Layer    `json:"layers"`
}

// Platform is an OCI platform.
type Platform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant,omitempty"`
}

func (p Platform) String() string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// Config holds the facts of the image configuration that matter to a reviewer. Environment
// variables are reported by name only: their values often carry secrets.
type Config struct {
	User         string            `json:"user,omitempty"`
	EnvNames     []string          `json:"envNames,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	ExposedPorts []string          `json:"exposedPorts,omitempty"`
	Entrypoint   []string          `json:"entrypoint,omitempty"`
	Cmd          []string          `json:"cmd,omitempty"`
	WorkingDir   string            `json:"workingDir,omitempty"`
}

// Layer is one filesystem layer, in order from the base (index 0).
type Layer struct {
	Index     int    `json:"index"`
	Digest    string `json:"digest,omitempty"` // compressed blob digest
	DiffID    string `json:"diffID,omitempty"` // uncompressed digest, as in the config's rootfs
	Size      int64  `json:"size,omitempty"`
	MediaType string `json:"mediaType,omitempty"`
	CreatedBy string `json:"createdBy,omitempty"`
}

// OS is what /etc/os-release (or /usr/lib/os-release) says.
type OS struct {
	ID              string `json:"id"`
	VersionID       string `json:"versionID,omitempty"`
	VersionCodename string `json:"versionCodename,omitempty"`
	PrettyName      string `json:"prettyName,omitempty"`
}

// Package types, the same words as PURL types.
const (
	TypeDeb      = "deb"
	TypeAPK      = "apk"
	TypeRPM      = "rpm"
	TypeGolang   = "golang"
	TypeNPM      = "npm"
	TypePyPI     = "pypi"
	TypeMaven    = "maven"
	TypeGem      = "gem"
	TypeCargo    = "cargo"
	TypeComposer = "composer"
	TypeNuGet    = "nuget"
)

// IsOS reports whether t is an operating-system package type.
func IsOS(t string) bool { return t == TypeDeb || t == TypeAPK || t == TypeRPM }

// Package is one installed package.
//
// Name is the ecosystem's full name: "group:artifact" for Maven, "@scope/name" for npm, the
// module path for Go ("stdlib" for the Go standard library). Version is the ecosystem's full
// version string: Debian's "epoch:upstream-revision", RPM's "epoch:version-release", apk's
// "1.2.3-r4".
type Package struct {
	Type      string     `json:"type"`
	Name      string     `json:"name"`
	Version   string     `json:"version"`
	PURL      string     `json:"purl"`
	Licenses  []string   `json:"licenses,omitempty"`
	Locations []Location `json:"locations"`
	// Source is the source package of an OS package (Debian source, Alpine origin, RPM source
	// RPM); advisories of those distributions are keyed by it.
	Source *Source `json:"source,omitempty"`
	Arch   string  `json:"arch,omitempty"`
	// OwnedBy is the PURL of the OS package that installed this language package, when one did.
	OwnedBy string `json:"ownedBy,omitempty"`
	// Metadata holds ecosystem-specific facts (e.g. "goVersion", "mainModule", "replacedBy").
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Source names a source package.
type Source struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

// Location is where a package was found: the file that declares it and the layer that
// introduced it (by diffID; empty for fs:// inputs).
type Location struct {
	Path   string `json:"path"`
	DiffID string `json:"layerDiffID,omitempty"`
}

// Key identifies a package within one image.
func (p *Package) Key() string {
	return p.Type + "\x00" + p.Name + "\x00" + p.Version + "\x00" + p.Arch
}
