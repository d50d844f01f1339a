package format

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/github/go-spdx/v2/spdxexp/spdxlicenses"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx"
	"github.com/spdx/tools-golang/spdx/v2/common"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
)

const (
	spdxNamespaceBase = "https://crowsnest.dev/spdx/"
	spdxImageID       = "Image"
	spdxOSID          = "OperatingSystem"
	// Package facts that SPDX 2.3 has no field for are kept as annotations whose comment is
	// "<crowsnest property name>=<value>", the same names as the CycloneDX properties.
	annotationType = "OTHER"
)

func encodeSPDX(w io.Writer, s *sbom.SBOM) error {
	created := s.Created.UTC()
	if s.Created.IsZero() {
		created = time.Unix(0, 0).UTC()
	}
	createdStr := created.Format(time.RFC3339)
	tool := toolName(s)
	if s.Tool.Version != "" {
		tool += "-" + s.Tool.Version
	}
	annotator := common.Annotator{AnnotatorType: "Tool", Annotator: tool}

	doc := &spdx.Document{
		SPDXVersion:       spdx.Version,
		DataLicense:       spdx.DataLicense,
		SPDXIdentifier:    "DOCUMENT",
		DocumentName:      documentName(s),
		DocumentNamespace: documentNamespace(s),
		CreationInfo: &spdx.CreationInfo{
			LicenseListVersion: spdxlicenses.LicenseListVersion(),
			Creators:           []common.Creator{{CreatorType: "Tool", Creator: tool}},
			Created:            createdStr,
		},
	}

	image := &spdx.Package{
		PackageName:             nonEmpty(s.Image.Name, s.Image.Reference, "image"),
		PackageSPDXIdentifier:   spdxImageID,
		PackageVersion:          s.Image.Digest,
		PackageDownloadLocation: noAssertion,
		PrimaryPackagePurpose:   "CONTAINER",
		PackageLicenseConcluded: noAssertion,
		PackageLicenseDeclared:  noAssertion,
		PackageCopyrightText:    noAssertion,
	}
	if purl := imagePURL(&s.Image); purl != "" {
		image.PackageExternalReferences = []*spdx.PackageExternalReference{{
			Category: common.CategoryPackageManager, RefType: common.TypePackageManagerPURL, Locator: purl,
		}}
	}
	for _, kv := range imageProps(&s.Image) {
		image.Annotations = append(image.Annotations, annotation(annotator, createdStr, kv.Name, kv.Value))
	}
	for _, wn := range s.Warnings {
		image.Annotations = append(image.Annotations, annotation(annotator, createdStr, propWarning, wn))
	}
	doc.Packages = append(doc.Packages, image)
	rel := func(a, b common.ElementID, typ, comment string) {
		doc.Relationships = append(doc.Relationships, &spdx.Relationship{
			RefA:                common.MakeDocElementID("", string(a)),
			RefB:                common.MakeDocElementID("", string(b)),
			Relationship:        typ,
			RelationshipComment: comment,
		})
	}
	rel("DOCUMENT", spdxImageID, common.TypeRelationshipDescribe, "")

	if s.OS != nil && s.OS.ID != "" {
		os := &spdx.Package{
			PackageName:             s.OS.ID,
			PackageSPDXIdentifier:   spdxOSID,
			PackageVersion:          s.OS.VersionID,
			PackageDownloadLocation: noAssertion,
			PrimaryPackagePurpose:   "OPERATING-SYSTEM",
			PackageDescription:      s.OS.PrettyName,
			PackageLicenseConcluded: noAssertion,
			PackageLicenseDeclared:  noAssertion,
			PackageCopyrightText:    noAssertion,
		}
		if s.OS.VersionCodename != "" {
			os.Annotations = append(os.Annotations, annotation(annotator, createdStr, propOSCodename, s.OS.VersionCodename))
		}
		doc.Packages = append(doc.Packages, os)
		rel(spdxImageID, spdxOSID, common.TypeRelationshipContains, "")
	}

	lic := newLicenses()
	ids := map[common.ElementID]bool{spdxImageID: true, spdxOSID: true}
	byPURL := map[string]common.ElementID{}
	type owned struct{ owner, id common.ElementID }
	var ownership []owned
	pkgIDs := make([]common.ElementID, len(s.Packages))
	order := sortedPackages(s.Packages)
	for _, i := range order {
		p := &s.Packages[i]
		purl := purlOf(p, s.OS)
		id := spdxPackageID(p, ids)
		pkgIDs[i] = id
		if _, ok := byPURL[purl]; !ok && purl != "" {
			byPURL[purl] = id
		}
		sp := &spdx.Package{
			PackageName:             p.Name,
			PackageSPDXIdentifier:   id,
			PackageVersion:          p.Version,
			PackageDownloadLocation: noAssertion,
			PackageLicenseConcluded: noAssertion,
			PackageLicenseDeclared:  lic.expression(p.Licenses),
			PackageCopyrightText:    noAssertion,
			PackageSourceInfo:       sourceInfo(p),
		}
		if purl != "" {
			sp.PackageExternalReferences = []*spdx.PackageExternalReference{{
				Category: common.CategoryPackageManager, RefType: common.TypePackageManagerPURL, Locator: purl,
			}}
		}
		for _, kv := range packageProps(p, purl == "") {
			sp.Annotations = append(sp.Annotations, annotation(annotator, createdStr, kv.Name, kv.Value))
		}
		doc.Packages = append(doc.Packages, sp)
		rel(spdxImageID, id, common.TypeRelationshipContains, "")
	}
	for _, i := range order {
		p := &s.Packages[i]
		if owner, ok := byPURL[p.OwnedBy]; ok && p.OwnedBy != "" && owner != pkgIDs[i] {
			ownership = append(ownership, owned{owner, pkgIDs[i]})
		}
	}
	// Syft's way of saying an OS package installed a language package.
	for _, o := range ownership {
		rel(o.owner, o.id, common.TypeRelationshipOther, "ownership-by-file-overlap: the OS package installed the files this package was found in")
	}

	refs := make([]string, 0, len(lic.refs))
	for r := range lic.refs {
		refs = append(refs, r)
	}
	slices.Sort(refs)
	for _, r := range refs {
		doc.OtherLicenses = append(doc.OtherLicenses, &spdx.OtherLicense{
			LicenseIdentifier: r,
			LicenseName:       lic.refs[r],
			ExtractedText:     lic.refs[r],
			LicenseComment:    "license string found in the package metadata; not an SPDX license expression",
		})
	}
	return spdxjson.Write(doc, w, spdxjson.Indent("  "), spdxjson.EscapeHTML(false))
}

func nonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func documentName(s *sbom.SBOM) string {
	return nonEmpty(s.Image.Reference, s.Image.Name, s.Image.Digest, "image")
}

// documentNamespace is unique per image digest (and, for digest-less fs:// inputs, per reference
// and time), and the same each time the same SBOM is written.
func documentNamespace(s *sbom.SBOM) string {
	key := s.Image.Digest
	if key == "" {
		key = s.Image.Reference + "@" + s.Created.UTC().Format(time.RFC3339Nano)
	}
	id := uuidFrom("spdx", key)
	label := s.Image.Digest
	if label == "" {
		label = nonEmpty(s.Image.Name, s.Image.Reference, "image")
	}
	return spdxNamespaceBase + url.PathEscape(label) + "-" + id
}

// spdxPackageID is "Package-<type>-<name>-<hash>": readable, limited to the characters SPDX
// allows (letters, digits, '.', '-'), and unique in the document.
func spdxPackageID(p *sbom.Package, used map[common.ElementID]bool) common.ElementID {
	var b strings.Builder
	b.WriteString("Package-")
	for _, part := range []string{p.Type, p.Name} {
		for i := 0; i < len(part) && i < 64; i++ {
			c := part[i]
			if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' {
				b.WriteByte(c)
			} else {
				b.WriteByte('-')
			}
		}
		b.WriteByte('-')
	}
	base := b.String()
	for n := 0; ; n++ {
		h := sha256.New()
		fmt.Fprintf(h, "%s\x00%d", p.Key(), n)
		for _, l := range p.Locations {
			fmt.Fprintf(h, "\x00%s\x00%s", l.Path, l.DiffID)
		}
		id := common.ElementID(base + hex.EncodeToString(h.Sum(nil)[:8]))
		if !used[id] {
			used[id] = true
			return id
		}
	}
}

// sourceInfo says where the package was found, as Syft does ("acquired package info from ...").
func sourceInfo(p *sbom.Package) string {
	var paths []string
	for _, l := range p.Locations {
		if l.Path != "" && !slices.Contains(paths, l.Path) {
			paths = append(paths, l.Path)
		}
	}
	if len(paths) == 0 {
		return ""
	}
	return "acquired package info from " + strings.Join(paths, ", ")
}

func annotation(a common.Annotator, date, key, value string) spdx.Annotation {
	return spdx.Annotation{
		Annotator:         a,
		AnnotationDate:    date,
		AnnotationType:    annotationType,
		AnnotationComment: key + "=" + value,
	}
}

// DecodeSPDX reads an SPDX 2.x JSON document into an SBOM: a package for each SPDX package with
// a purl external reference, the image from the CONTAINER package and the OS from the
// OPERATING-SYSTEM package.
func DecodeSPDX(r io.Reader) (*sbom.SBOM, error) {
	data, err := readBounded(r, MaxDecodeSize)
	if err != nil {
		return nil, err
	}
	return decodeSPDX(data)
}

func decodeSPDX(data []byte) (*sbom.SBOM, error) {
	doc, err := spdxjson.Read(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("decode SPDX: %w", err)
	}
	s := &sbom.SBOM{SchemaVersion: sbom.SchemaVersion, Packages: []sbom.Package{}}
	if ci := doc.CreationInfo; ci != nil {
		if t, err := time.Parse(time.RFC3339, ci.Created); err == nil {
			s.Created = t
		}
		for _, c := range ci.Creators {
			if c.CreatorType == "Tool" {
				s.Tool = parseToolCreator(c.Creator)
				break
			}
		}
	}
	refNames := map[string]string{}
	for _, ol := range doc.OtherLicenses {
		if ol != nil && ol.LicenseName != "" && ol.LicenseName != noAssertion {
			refNames[ol.LicenseIdentifier] = ol.LicenseName
		}
	}
	// Trivy puts language packages under an APPLICATION package named after the file that
	// declares them (a lock file, a jar); that name is the package's location.
	appNames := map[common.ElementID]string{}
	for _, sp := range doc.Packages {
		if sp != nil && sp.PrimaryPackagePurpose == "APPLICATION" {
			appNames[sp.PackageSPDXIdentifier] = sp.PackageName
		}
	}
	foundIn := map[common.ElementID]string{}
	for _, r := range doc.Relationships {
		if r == nil || r.Relationship != common.TypeRelationshipContains {
			continue
		}
		if name, ok := appNames[r.RefA.ElementRefID]; ok && r.RefA.DocumentRefID == "" {
			foundIn[r.RefB.ElementRefID] = name
		}
	}

	imageSeen := false
	for _, sp := range doc.Packages {
		if sp == nil {
			continue
		}
		kv := annotationProps(sp.Annotations, sp.PackageAttributionTexts)
		purl := ""
		for _, ref := range sp.PackageExternalReferences {
			if ref != nil && ref.RefType == common.TypePackageManagerPURL {
				purl = ref.Locator
				break
			}
		}
		switch {
		case sp.PrimaryPackagePurpose == "CONTAINER" && !imageSeen:
			imageSeen = true
			s.Image = imageFrom(sp.PackageName, sp.PackageVersion, kv)
			if s.Image.Digest == "" {
				s.Image.Digest = ociDigest(purl)
			}
			for _, p := range kv {
				if p.Name == propWarning {
					s.Warnings = append(s.Warnings, p.Value)
				}
			}
			continue
		case sp.PrimaryPackagePurpose == "OPERATING-SYSTEM" && s.OS == nil:
			s.OS = &sbom.OS{ID: strings.ToLower(sp.PackageName), VersionID: sp.PackageVersion, PrettyName: sp.PackageDescription}
			s.OS.VersionCodename = propValue(kv, propOSCodename)
			continue
		}
		p, ok := packageFromPURL(purl, sp.PackageName, sp.PackageVersion)
		if !ok {
			t := propValue(kv, propType)
			if t == "" || sp.PackageName == "" {
				continue
			}
			p = sbom.Package{Type: t, Name: sp.PackageName, Version: sp.PackageVersion}
		}
		p.Licenses = spdxLicenseList(sp.PackageLicenseDeclared, refNames)
		applyProps(&p, kv)
		if p.Source == nil {
			// Trivy: "built package from: glibc 2.36-9+deb12u4".
			if rest, ok := strings.CutPrefix(sp.PackageSourceInfo, "built package from: "); ok {
				name, ver, _ := strings.Cut(strings.TrimSpace(rest), " ")
				if name != "" {
					p.Source = &sbom.Source{Name: name, Version: ver}
				}
			}
		}
		if file, ok := foundIn[sp.PackageSPDXIdentifier]; ok && !slices.ContainsFunc(p.Locations, func(l sbom.Location) bool { return l.Path != "" }) {
			path := "/" + strings.TrimPrefix(file, "/")
			if len(p.Locations) == 1 {
				p.Locations[0].Path = path
			} else {
				p.Locations = append(p.Locations, sbom.Location{Path: path})
			}
		}
		if len(s.Packages) >= maxPackages {
			return nil, fmt.Errorf("decode SPDX: more than %d packages", maxPackages)
		}
		s.Packages = append(s.Packages, p)
	}
	return s, nil
}

// parseToolCreator splits "crowsnest-1.2.3" (SPDX's "Tool: name-version" convention).
func parseToolCreator(c string) sbom.Tool {
	c = strings.TrimSpace(c)
	if i := strings.LastIndexByte(c, '-'); i > 0 {
		return sbom.Tool{Name: c[:i], Version: c[i+1:]}
	}
	return sbom.Tool{Name: c}
}

// annotationProps reads crowsnest's "<property>=<value>" annotations and Trivy's "Key: value"
// attribution texts as CycloneDX-style properties, so one reader (applyProps) handles both formats.
func annotationProps(as []spdx.Annotation, attributions []string) []cdx.Property {
	var out []cdx.Property
	for _, a := range as {
		if k, v, ok := strings.Cut(a.AnnotationComment, "="); ok && strings.HasPrefix(k, propPrefix) {
			out = append(out, cdx.Property{Name: k, Value: v})
		}
	}
	for _, c := range attributions {
		if k, v, ok := strings.Cut(c, ": "); ok {
			switch k {
			case "LayerDiffID", "FilePath", "SrcName", "SrcVersion", "SrcRelease", "SrcEpoch":
				out = append(out, cdx.Property{Name: "aquasecurity:trivy:" + k, Value: strings.TrimSpace(v)})
			}
		}
	}
	return out
}

// spdxLicenseList turns licenseDeclared back into the package's license strings: a top-level
// conjunction is split into its parts, and our LicenseRef- identifiers are mapped back to the
// strings they stand for.
func spdxLicenseList(expr string, refNames map[string]string) []string {
	expr = strings.TrimSpace(expr)
	if expr == "" || expr == noAssertion || expr == "NONE" {
		return nil
	}
	parts := splitConjunction(expr)
	out := make([]string, 0, len(parts))
	for _, p := range parts {
		if n, ok := refNames[p]; ok {
			p = n
		}
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}
