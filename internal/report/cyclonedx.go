package report

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"github.com/crowsnest-dev/crowsnest/internal/sbom/format"
	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

// renderCycloneDX writes the SBOM as the sbom command's CycloneDX encoder does, plus a
// vulnerabilities[] section: one entry per vulnerability, affecting the components (by bom-ref)
// of the packages it was found in. Reusing the encoder keeps components and bom-refs identical
// to `crowsnest sbom --format cyclonedx` of the same image.
func renderCycloneDX(w io.Writer, v *view) error {
	if v.SBOM == nil {
		return errors.New("the cyclonedx format needs the image's SBOM")
	}
	var buf bytes.Buffer
	if err := format.Encode(&buf, format.CycloneDX, v.SBOM, format.Options{}); err != nil {
		return err
	}
	bom := new(cdx.BOM)
	if err := cdx.NewBOMDecoder(&buf, cdx.BOMFileFormatJSON).Decode(bom); err != nil {
		return fmt.Errorf("re-read SBOM: %w", err)
	}
	// A BOM with vulnerabilities is another document than the bare SBOM.
	bom.SerialNumber = "urn:uuid:" + stableUUID(bom.SerialNumber, "vulnerabilities")
	if bom.Metadata != nil {
		bom.Metadata.Timestamp = v.when.Format("2006-01-02T15:04:05Z")
	}

	refs := componentRefs(bom)
	var vulns []cdx.Vulnerability
	index := map[string]int{}
	for _, g := range v.groups {
		ref := refs.lookup(g.ref.PURL, g.ref.Name, g.ref.Version)
		for i := range g.findings {
			f := &g.findings[i]
			n, ok := index[f.VulnerabilityID]
			if !ok {
				n = len(vulns)
				index[f.VulnerabilityID] = n
				vulns = append(vulns, cdxVulnerability(f))
			}
			cv := &vulns[n]
			if ref != "" {
				*cv.Affects = append(*cv.Affects, cdx.Affects{Ref: ref, Range: &[]cdx.AffectedVersions{{Version: f.Package.Version, Status: cdx.VulnerabilityStatusAffected}}})
			}
			addRating(cv, f)
			if f.FixedVersion != "" {
				rec := "Upgrade " + f.Package.Name + " to " + f.FixedVersion
				if cv.Recommendation == "" {
					cv.Recommendation = rec
				} else if !strings.Contains(cv.Recommendation, rec) {
					cv.Recommendation += "; " + rec
				}
			}
		}
	}
	if len(vulns) > 0 {
		bom.Vulnerabilities = &vulns
	}
	enc := cdx.NewBOMEncoder(w, cdx.BOMFileFormatJSON)
	enc.SetPretty(true)
	enc.SetEscapeHTML(false)
	return enc.EncodeVersion(bom, cdx.SpecVersion1_6)
}

type cdxRefs struct {
	byPURL map[string]string
	byName map[string]string
}

func componentRefs(bom *cdx.BOM) cdxRefs {
	r := cdxRefs{byPURL: map[string]string{}, byName: map[string]string{}}
	if bom.Components == nil {
		return r
	}
	for _, c := range *bom.Components {
		if c.BOMRef == "" {
			continue
		}
		if c.PackageURL != "" {
			if _, ok := r.byPURL[c.PackageURL]; !ok {
				r.byPURL[c.PackageURL] = c.BOMRef
			}
		}
		name := c.Name
		if c.Group != "" {
			name = c.Group + ":" + c.Name // Maven's group:artifact, as the model names it
		}
		if _, ok := r.byName[name+"@"+c.Version]; !ok {
			r.byName[name+"@"+c.Version] = c.BOMRef
		}
	}
	return r
}

func (r cdxRefs) lookup(purl, name, version string) string {
	if ref, ok := r.byPURL[purl]; ok && purl != "" {
		return ref
	}
	return r.byName[name+"@"+version]
}

func cdxVulnerability(f *vuln.Finding) cdx.Vulnerability {
	cv := cdx.Vulnerability{
		BOMRef:      f.VulnerabilityID,
		ID:          f.VulnerabilityID,
		Source:      &cdx.Source{Name: "OSV", URL: OSVURL(f.VulnerabilityID)},
		Description: f.Summary,
		Affects:     &[]cdx.Affects{},
		Ratings:     &[]cdx.VulnerabilityRating{},
	}
	var refs []cdx.VulnerabilityReference
	for _, a := range f.Aliases {
		if a == "" || a == f.VulnerabilityID {
			continue
		}
		refs = append(refs, cdx.VulnerabilityReference{ID: a, Source: aliasSource(a)})
	}
	if len(refs) > 0 {
		cv.References = &refs
	}
	if len(f.URLs) > 0 {
		advs := make([]cdx.Advisory, 0, len(f.URLs))
		for _, u := range f.URLs {
			advs = append(advs, cdx.Advisory{URL: u})
		}
		cv.Advisories = &advs
	}
	return cv
}

func aliasSource(id string) *cdx.Source {
	up := strings.ToUpper(id)
	switch {
	case strings.HasPrefix(up, "CVE-"):
		return &cdx.Source{Name: "NVD", URL: "https://nvd.nist.gov/vuln/detail/" + id}
	case strings.HasPrefix(up, "GHSA-"):
		return &cdx.Source{Name: "GitHub", URL: "https://github.com/advisories/" + id}
	}
	return &cdx.Source{Name: "OSV", URL: OSVURL(id)}
}

// addRating adds the finding's rating unless the vulnerability already has the same one (the
// same vulnerability found in several packages).
func addRating(cv *cdx.Vulnerability, f *vuln.Finding) {
	r := cdx.VulnerabilityRating{Severity: cdxSeverity(f.Severity)}
	if f.CVSSScore > 0 {
		s := f.CVSSScore
		r.Score = &s
	}
	if f.CVSSVector != "" {
		r.Method, r.Vector = cvssMethod(f.CVSSVector), f.CVSSVector
	}
	same := func(o cdx.VulnerabilityRating) bool {
		return o.Severity == r.Severity && o.Method == r.Method && o.Vector == r.Vector &&
			(o.Score == nil) == (r.Score == nil) && (o.Score == nil || *o.Score == *r.Score)
	}
	if !slices.ContainsFunc(*cv.Ratings, same) {
		*cv.Ratings = append(*cv.Ratings, r)
	}
}

func cdxSeverity(s string) cdx.Severity {
	switch s {
	case vuln.SeverityCritical:
		return cdx.SeverityCritical
	case vuln.SeverityHigh:
		return cdx.SeverityHigh
	case vuln.SeverityMedium:
		return cdx.SeverityMedium
	case vuln.SeverityLow:
		return cdx.SeverityLow
	}
	return cdx.SeverityUnknown
}

func cvssMethod(vector string) cdx.ScoringMethod {
	switch {
	case strings.HasPrefix(vector, "CVSS:4."):
		return cdx.ScoringMethodCVSSv4
	case strings.HasPrefix(vector, "CVSS:3.1/"):
		return cdx.ScoringMethodCVSSv31
	case strings.HasPrefix(vector, "CVSS:3"):
		return cdx.ScoringMethodCVSSv3
	case strings.HasPrefix(vector, "AV:") || strings.HasPrefix(vector, "(AV:"):
		return cdx.ScoringMethodCVSSv2
	}
	return cdx.ScoringMethodOther
}
