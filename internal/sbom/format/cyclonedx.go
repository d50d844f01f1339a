package format

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/github/go-spdx/v2/spdxexp/spdxlicenses"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
)

// Property names crowsnest writes in CycloneDX (Syft's "syft:..." convention under our prefix).
const (
	propPrefix       = "crowsnest:"
	propLocation     = "crowsnest:location:" // crowsnest:location:<n>:path / :layerDiffID
	propSourceName   = "crowsnest:source:name"
	propSourceVer    = "crowsnest:source:version"
	propOwnedBy      = "crowsnest:ownedBy"
	propArch         = "crowsnest:arch"
	propType         = "crowsnest:type"
	propMetadata     = "crowsnest:metadata:"
	propImage        = "crowsnest:image:"
	propImageLayer   = "crowsnest:image:layer:" // crowsnest:image:layer:<n>:diffID / :digest / :size
	propOSCodename   = "crowsnest:os:versionCodename"
	propWarning      = "crowsnest:warning"
	maxNestingDepth  = 16
	maxPropertyIndex = 1 << 16
)

func encodeCycloneDX(w io.Writer, s *sbom.SBOM) error {
	bom := cdx.NewBOM()
	bom.SerialNumber = "urn:uuid:" + uuidFrom(s.Image.Digest, s.Image.Reference, s.Created.UTC().Format(time.RFC3339Nano), "cyclonedx")
	image := imageComponent(s)
	bom.Metadata = &cdx.Metadata{
		Tools: &cdx.ToolsChoice{Components: &[]cdx.Component{{
			Type: cdx.ComponentTypeApplication, Name: toolName(s), Version: s.Tool.Version,
		}}},
		Component: &image,
	}
	if !s.Created.IsZero() {
		bom.Metadata.Timestamp = s.Created.UTC().Format(time.RFC3339)
	}

	var components []cdx.Component
	if s.OS != nil && s.OS.ID != "" {
		os := cdx.Component{
			BOMRef:      "os:" + s.OS.ID + "@" + s.OS.VersionID,
			Type:        cdx.ComponentTypeOS,
			Name:        s.OS.ID,
			Version:     s.OS.VersionID,
			Description: s.OS.PrettyName,
		}
		if s.OS.VersionCodename != "" {
			os.Properties = &[]cdx.Property{{Name: propOSCodename, Value: s.OS.VersionCodename}}
		}
		components = append(components, os)
	}

	lic := newLicenses()
	refs := make([]string, len(s.Packages))
	used := map[string]bool{image.BOMRef: true}
	if len(components) > 0 {
		used[components[0].BOMRef] = true
	}
	purls := map[string]string{} // PURL -> bom-ref of its first package, for ownedBy
	for _, i := range sortedPackages(s.Packages) {
		p := &s.Packages[i]
		purl := purlOf(p, s.OS)
		refs[i] = uniqueRef(purl, p, used)
		if _, ok := purls[purl]; !ok && purl != "" {
			purls[purl] = refs[i]
		}
		components = append(components, packageComponent(p, purl, refs[i], lic))
	}
	if len(components) > 0 {
		bom.Components = &components
	}

	// An OS package that installed language packages "depends on" them in Syft's reading of
	// ownership; readers that do not know crowsnest's properties still see the relationship.
	owned := map[string][]string{}
	var owners []string
	for _, i := range sortedPackages(s.Packages) {
		p := &s.Packages[i]
		if owner, ok := purls[p.OwnedBy]; ok && p.OwnedBy != "" && owner != refs[i] {
			if _, seen := owned[owner]; !seen {
				owners = append(owners, owner)
			}
			owned[owner] = append(owned[owner], refs[i])
		}
	}
	if len(owners) > 0 {
		deps := make([]cdx.Dependency, 0, len(owners))
		for _, o := range owners {
			on := owned[o]
			deps = append(deps, cdx.Dependency{Ref: o, Dependencies: &on})
		}
		bom.Dependencies = &deps
	}
	if len(s.Warnings) > 0 {
		props := make([]cdx.Property, len(s.Warnings))
		for i, wn := range s.Warnings {
			props[i] = cdx.Property{Name: propWarning, Value: wn}
		}
		bom.Properties = &props
	}

	enc := cdx.NewBOMEncoder(w, cdx.BOMFileFormatJSON)
	enc.SetPretty(true)
	enc.SetEscapeHTML(false)
	return enc.EncodeVersion(bom, cdx.SpecVersion1_6)
}

func toolName(s *sbom.SBOM) string {
	if s.Tool.Name != "" {
		return s.Tool.Name
	}
	return "crowsnest"
}

// uniqueRef is the package's PURL, or, when that is empty or already taken (the same package
// found twice with different locations), the PURL with a package-id qualifier as Syft does.
func uniqueRef(purl string, p *sbom.Package, used map[string]bool) string {
	ref := purl
	if ref == "" {
		ref = "crowsnest:" + p.Type + "/" + p.Name + "@" + p.Version
	}
	base := ref
	for n := 0; used[ref]; n++ {
		h := sha256.New()
		fmt.Fprintf(h, "%s\x00%d\x00", p.Key(), n)
		for _, l := range p.Locations {
			fmt.Fprintf(h, "%s\x00%s\x00", l.Path, l.DiffID)
		}
		sep := "?"
		if strings.Contains(base, "?") {
			sep = "&"
		}
		ref = base + sep + "package-id=" + hex.EncodeToString(h.Sum(nil)[:8])
	}
	used[ref] = true
	return ref
}

func imageComponent(s *sbom.SBOM) cdx.Component {
	img := &s.Image
	name := img.Name
	if name == "" {
		name = img.Reference
	}
	c := cdx.Component{
		BOMRef:  "image",
		Type:    cdx.ComponentTypeContainer,
		Name:    name,
		Version: img.Digest,
	}
	if purl := imagePURL(img); purl != "" {
		c.PackageURL = purl
		c.BOMRef = purl
	}
	if props := imageProps(img); len(props) > 0 {
		c.Properties = &props
	}
	return c
}

func packageComponent(p *sbom.Package, purl, ref string, lic *licenses) cdx.Component {
	c := cdx.Component{
		BOMRef:     ref,
		Type:       cdx.ComponentTypeLibrary,
		Name:       p.Name,
		Version:    p.Version,
		PackageURL: purl,
	}
	if p.Type == sbom.TypeMaven {
		if g, a, ok := strings.Cut(p.Name, ":"); ok && a != "" {
			c.Group, c.Name = g, a
		}
	}
	if l := cdxLicenses(p.Licenses, lic); l != nil {
		c.Licenses = l
	}
	if props := packageProps(p, purl == ""); len(props) > 0 {
		c.Properties = &props
	}
	return c
}

// imageProps are the image facts CycloneDX and SPDX have no field for.
func imageProps(img *sbom.Image) []cdx.Property {
	var props []cdx.Property
	add := func(k, v string) {
		if v != "" {
			props = append(props, cdx.Property{Name: propImage + k, Value: v})
		}
	}
	add("reference", img.Reference)
	add("name", img.Name)
	add("tag", img.Tag)
	add("digest", img.Digest)
	add("indexDigest", img.IndexDigest)
	add("mediaType", img.MediaType)
	add("configDigest", img.ConfigDigest)
	add("os", img.Platform.OS)
	add("architecture", img.Platform.Architecture)
	add("variant", img.Platform.Variant)
	for _, l := range img.Layers {
		k := "layer:" + strconv.Itoa(l.Index) + ":"
		add(k+"digest", l.Digest)
		add(k+"diffID", l.DiffID)
		if l.Size > 0 {
			add(k+"size", strconv.FormatInt(l.Size, 10))
		}
	}
	return props
}

// packageProps are the package facts CycloneDX and SPDX have no field for. withType adds the
// package type, which otherwise comes from the PURL.
func packageProps(p *sbom.Package, withType bool) []cdx.Property {
	var props []cdx.Property
	add := func(k, v string) {
		if v != "" {
			props = append(props, cdx.Property{Name: k, Value: v})
		}
	}
	if withType {
		add(propType, p.Type)
	}
	add(propArch, p.Arch)
	if p.Source != nil {
		add(propSourceName, p.Source.Name)
		add(propSourceVer, p.Source.Version)
	}
	add(propOwnedBy, p.OwnedBy)
	for n, l := range p.Locations {
		k := propLocation + strconv.Itoa(n) + ":"
		add(k+"path", l.Path)
		add(k+"layerDiffID", l.DiffID)
	}
	keys := make([]string, 0, len(p.Metadata))
	for k := range p.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		add(propMetadata+k, p.Metadata[k])
	}
	return props
}

// cdxLicenses follows the CycloneDX 1.6 schema's rule that licenses are either a list of
// license objects or a single expression: SPDX identifiers become {id}, other strings {name};
// if any string is a compound expression, all of them become one expression.
func cdxLicenses(ls []string, lic *licenses) *cdx.Licenses {
	var out cdx.Licenses
	compound := false
	for _, s := range ls {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		t := lic.term(s)
		switch {
		case t.valid && isLicenseID(t.expr):
			out = append(out, cdx.LicenseChoice{License: &cdx.License{ID: t.expr}})
		case t.valid && !strings.HasPrefix(t.expr, "LicenseRef-"):
			// A compound, or an identifier WITH an exception: only an expression can say it.
			compound = true
		default:
			out = append(out, cdx.LicenseChoice{License: &cdx.License{Name: s}})
		}
	}
	if compound {
		return &cdx.Licenses{{Expression: lic.expression(ls)}}
	}
	if len(out) == 0 {
		return nil
	}
	return &out
}

// isLicenseID reports whether id is on the SPDX license list (the values CycloneDX accepts as a
// license id), deprecated identifiers included.
func isLicenseID(id string) bool {
	if ok, _ := spdxlicenses.IsActiveLicense(id); ok {
		return true
	}
	ok, _ := spdxlicenses.IsDeprecatedLicense(id)
	return ok
}

// DecodeCycloneDX reads a CycloneDX JSON BOM (any spec version cyclonedx-go reads) into an SBOM:
// the image from metadata.component, the OS from an operating-system component, and a package
// for each component with a PURL. It understands crowsnest's own properties and the location
// and source properties Syft and Trivy write.
func DecodeCycloneDX(r io.Reader) (*sbom.SBOM, error) {
	data, err := readBounded(r, MaxDecodeSize)
	if err != nil {
		return nil, err
	}
	return decodeCycloneDX(data)
}

func decodeCycloneDX(data []byte) (*sbom.SBOM, error) {
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(data), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		return nil, fmt.Errorf("decode CycloneDX: %w", err)
	}
	if bom.BOMFormat != cdx.BOMFormat {
		return nil, fmt.Errorf("decode CycloneDX: bomFormat is %q, not %q", bom.BOMFormat, cdx.BOMFormat)
	}
	s := &sbom.SBOM{SchemaVersion: sbom.SchemaVersion, Packages: []sbom.Package{}}
	if md := bom.Metadata; md != nil {
		if t, err := time.Parse(time.RFC3339, md.Timestamp); err == nil {
			s.Created = t
		}
		s.Tool = cdxTool(md.Tools)
		if md.Component != nil {
			c := md.Component
			s.Image = imageFrom(c.Name, c.Version, props(c.Properties))
			if d := ociDigest(c.PackageURL); d != "" && !strings.HasPrefix(s.Image.Digest, "sha256:") {
				s.Image.Digest = d
			}
		}
	}
	if bom.Properties != nil {
		for _, p := range *bom.Properties {
			if p.Name == propWarning {
				s.Warnings = append(s.Warnings, p.Value)
			}
		}
	}
	if bom.Components != nil {
		if err := cdxWalk(s, *bom.Components, 0); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func cdxTool(tc *cdx.ToolsChoice) sbom.Tool {
	if tc == nil {
		return sbom.Tool{}
	}
	if tc.Components != nil && len(*tc.Components) > 0 {
		c := (*tc.Components)[0]
		return sbom.Tool{Name: c.Name, Version: c.Version}
	}
	if tc.Tools != nil && len(*tc.Tools) > 0 {
		t := (*tc.Tools)[0]
		return sbom.Tool{Name: t.Name, Version: t.Version}
	}
	return sbom.Tool{}
}

// imageFrom reads an image component (name, version = digest) and its properties.
func imageFrom(name, version string, pr []cdx.Property) sbom.Image {
	img := sbom.Image{Reference: name, Name: name, Digest: version}
	layers := map[int]*sbom.Layer{}
	for _, p := range pr {
		k, ok := strings.CutPrefix(p.Name, propImage)
		if !ok {
			continue
		}
		switch k {
		case "reference":
			img.Reference = p.Value
		case "name":
			img.Name = p.Value
		case "tag":
			img.Tag = p.Value
		case "digest":
			img.Digest = p.Value
		case "indexDigest":
			img.IndexDigest = p.Value
		case "mediaType":
			img.MediaType = p.Value
		case "configDigest":
			img.ConfigDigest = p.Value
		case "os":
			img.Platform.OS = p.Value
		case "architecture":
			img.Platform.Architecture = p.Value
		case "variant":
			img.Platform.Variant = p.Value
		default:
			n, field, ok := indexedProp(k, "layer:")
			if !ok {
				continue
			}
			l := layers[n]
			if l == nil {
				l = &sbom.Layer{Index: n}
				layers[n] = l
			}
			switch field {
			case "digest":
				l.Digest = p.Value
			case "diffID":
				l.DiffID = p.Value
			case "size":
				l.Size, _ = strconv.ParseInt(p.Value, 10, 64)
			}
		}
	}
	for _, n := range sortedKeys(layers) {
		img.Layers = append(img.Layers, *layers[n])
	}
	return img
}

func cdxWalk(s *sbom.SBOM, cs []cdx.Component, depth int) error {
	if depth > maxNestingDepth {
		return fmt.Errorf("decode CycloneDX: components nested deeper than %d", maxNestingDepth)
	}
	for i := range cs {
		c := &cs[i]
		switch {
		case c.Type == cdx.ComponentTypeOS && s.OS == nil:
			s.OS = &sbom.OS{ID: strings.ToLower(c.Name), VersionID: c.Version, PrettyName: c.Description}
			for _, p := range props(c.Properties) {
				if p.Name == propOSCodename {
					s.OS.VersionCodename = p.Value
				}
			}
		default:
			if p, ok := cdxPackage(c); ok {
				if len(s.Packages) >= maxPackages {
					return fmt.Errorf("decode CycloneDX: more than %d packages", maxPackages)
				}
				s.Packages = append(s.Packages, p)
			}
		}
		if c.Components != nil {
			if err := cdxWalk(s, *c.Components, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

func cdxPackage(c *cdx.Component) (sbom.Package, bool) {
	fullName := c.Name
	if c.Group != "" {
		sep := "/"
		if strings.HasPrefix(c.PackageURL, "pkg:maven/") {
			sep = ":"
		}
		fullName = c.Group + sep + c.Name
	}
	pr := props(c.Properties)
	p, ok := packageFromPURL(c.PackageURL, fullName, c.Version)
	if !ok {
		// Without a PURL only crowsnest's own type property identifies a package.
		t := propValue(pr, propType)
		if t == "" || c.Name == "" {
			return sbom.Package{}, false
		}
		p = sbom.Package{Type: t, Name: fullName, Version: c.Version}
	}
	if c.Licenses != nil {
		for _, l := range *c.Licenses {
			switch {
			case l.Expression != "":
				p.Licenses = append(p.Licenses, l.Expression)
			case l.License != nil && l.License.ID != "":
				p.Licenses = append(p.Licenses, l.License.ID)
			case l.License != nil && l.License.Name != "":
				p.Licenses = append(p.Licenses, l.License.Name)
			}
		}
	}
	applyProps(&p, pr)
	return p, true
}

// applyProps reads package facts from crowsnest's, Syft's and Trivy's property names.
func applyProps(p *sbom.Package, pr []cdx.Property) {
	locs := map[int]*sbom.Location{}
	loc := func(n int) *sbom.Location {
		if locs[n] == nil {
			locs[n] = &sbom.Location{}
		}
		return locs[n]
	}
	var src sbom.Source
	var trivySrc struct{ name, version, release, epoch string }
	trivyLoc := -1
	for _, q := range pr {
		switch {
		case q.Name == propArch:
			p.Arch = q.Value
		case q.Name == propSourceName:
			src.Name = q.Value
		case q.Name == propSourceVer:
			src.Version = q.Value
		case q.Name == propOwnedBy:
			p.OwnedBy = q.Value
		case strings.HasPrefix(q.Name, propMetadata):
			if p.Metadata == nil {
				p.Metadata = map[string]string{}
			}
			p.Metadata[strings.TrimPrefix(q.Name, propMetadata)] = q.Value
		case strings.HasPrefix(q.Name, propLocation), strings.HasPrefix(q.Name, "syft:location:"):
			rest := strings.TrimPrefix(strings.TrimPrefix(q.Name, propLocation), "syft:location:")
			n, field, ok := indexedProp(rest, "")
			if !ok {
				continue
			}
			switch field {
			case "path":
				loc(n).Path = q.Value
			case "layerDiffID", "layerID":
				loc(n).DiffID = q.Value
			}
		case q.Name == "aquasecurity:trivy:FilePath":
			if trivyLoc < 0 {
				trivyLoc = len(locs) + maxPropertyIndex
			}
			loc(trivyLoc).Path = "/" + strings.TrimPrefix(q.Value, "/")
		case q.Name == "aquasecurity:trivy:LayerDiffID":
			if trivyLoc < 0 {
				trivyLoc = len(locs) + maxPropertyIndex
			}
			loc(trivyLoc).DiffID = q.Value
		case q.Name == "aquasecurity:trivy:SrcName":
			trivySrc.name = q.Value
		case q.Name == "aquasecurity:trivy:SrcVersion":
			trivySrc.version = q.Value
		case q.Name == "aquasecurity:trivy:SrcRelease":
			trivySrc.release = q.Value
		case q.Name == "aquasecurity:trivy:SrcEpoch":
			trivySrc.epoch = q.Value
		case q.Name == "syft:metadata:source", q.Name == "syft:metadata:originPackage":
			if src.Name == "" {
				src.Name = q.Value
			}
		case q.Name == "syft:metadata:sourceVersion":
			if src.Version == "" {
				src.Version = q.Value
			}
		}
	}
	if src.Name == "" && trivySrc.name != "" {
		src.Name = trivySrc.name
		v := trivySrc.version
		if trivySrc.release != "" {
			v += "-" + trivySrc.release
		}
		if trivySrc.epoch != "" && trivySrc.epoch != "0" && v != "" {
			v = trivySrc.epoch + ":" + v
		}
		src.Version = v
	}
	if src.Name != "" {
		p.Source = &src
	}
	for _, n := range sortedKeys(locs) {
		if l := locs[n]; l.Path != "" || l.DiffID != "" {
			p.Locations = append(p.Locations, *l)
		}
	}
}

func props(p *[]cdx.Property) []cdx.Property {
	if p == nil {
		return nil
	}
	return *p
}

func propValue(pr []cdx.Property, name string) string {
	for _, p := range pr {
		if p.Name == name {
			return p.Value
		}
	}
	return ""
}

// indexedProp splits "<prefix><n>:<field>" into n and field; n is bounded so a hostile BOM cannot
// make sparse indexes expensive.
func indexedProp(s, prefix string) (int, string, bool) {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return 0, "", false
	}
	num, field, ok := strings.Cut(rest, ":")
	if !ok {
		return 0, "", false
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 || n >= maxPropertyIndex {
		return 0, "", false
	}
	return n, field, true
}

func sortedKeys[V any](m map[int]V) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// uuidFrom derives a version-4-shaped UUID from its inputs, so the same SBOM always gets the same
// serial number or document namespace.
func uuidFrom(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	b := h.Sum(nil)[:16]
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	x := hex.EncodeToString(b)
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}
