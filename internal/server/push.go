package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/format"
	"github.com/crowsnest-dev/crowsnest/internal/store"
)

// Bounds of a pushed SBOM, beyond the body size: what a real image never exceeds.
const (
	maxPushPackages  = 200_000
	maxPushLayers    = 1000
	maxPushLocations = 1000
	maxPushWarnings  = 10_000
	maxPushTags      = 100
	maxFieldLen      = 4096
)

// ReasonPush is the reason finding changes of pushed images are recorded with.
const ReasonPush = "push"

var tagRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

// PushResult is the answer of POST /api/v1/images.
type PushResult struct {
	Digest   string   `json:"digest"`
	Packages int      `json:"packages"`
	Tags     []string `json:"tags"`
	Findings struct {
		Total      int            `json:"total"`
		BySeverity map[string]int `json:"bySeverity"`
	} `json:"findings"`
}

func (s *Server) pushImage(w http.ResponseWriter, r *http.Request) {
	outcome := "error"
	defer func() { s.metrics.Pushes.WithLabelValues(outcome).Inc() }()
	if r.ContentLength > s.maxBody {
		outcome = "too_large"
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body of %d bytes exceeds the limit of %d", r.ContentLength, s.maxBody))
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			outcome = "too_large"
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body exceeds the limit of %d bytes", s.maxBody))
			return
		}
		writeError(w, http.StatusBadRequest, "read body: "+err.Error())
		return
	}
	sb, tags, err := parsePush(data, r.URL.Query()["tag"])
	if err != nil {
		outcome = "invalid"
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	res, err := s.store1(r.Context(), sb, tags)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	outcome = "stored"
	w.Header().Set("Location", "/api/v1/images/"+sb.Image.Digest)
	writeJSON(w, http.StatusCreated, res)
}

// parsePush decodes and checks a pushed SBOM and its tags; nothing is stored unless both are valid.
func parsePush(data []byte, tagParams []string) (*sbom.SBOM, []store.Tag, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil, errors.New("empty body: send a crowsnest SBOM JSON document (docs/SBOM-JSON.md)")
	}
	sb, err := format.Decode(bytes.NewReader(data), format.JSON)
	if err != nil {
		return nil, nil, fmt.Errorf("invalid SBOM: %w", err)
	}
	if err := validateSBOM(sb); err != nil {
		return nil, nil, fmt.Errorf("invalid SBOM: %w", err)
	}
	if len(tagParams) > maxPushTags {
		return nil, nil, fmt.Errorf("%d tags, at most %d", len(tagParams), maxPushTags)
	}
	if len(tagParams) == 0 && sb.Image.Name != "" && sb.Image.Tag != "" {
		tagParams = []string{sb.Image.Name + ":" + sb.Image.Tag}
	}
	var tags []store.Tag
	for _, t := range tagParams {
		i := strings.LastIndexByte(t, ':')
		if i <= 0 || strings.Contains(t[i:], "/") || len(t) > maxFieldLen {
			return nil, nil, fmt.Errorf("tag %q: want repository:tag", t)
		}
		if !tagRE.MatchString(t[i+1:]) {
			return nil, nil, fmt.Errorf("tag %q: %q is not a valid tag", t, t[i+1:])
		}
		tags = append(tags, store.Tag{Repository: t[:i], Tag: t[i+1:]})
	}
	return sb, tags, nil
}

func validateSBOM(sb *sbom.SBOM) error {
	im := &sb.Image
	if !digestRE.MatchString(im.Digest) {
		return fmt.Errorf("image.digest %q is not a manifest digest (sha256:<64 hex digits>)", im.Digest)
	}
	if im.IndexDigest != "" && !digestRE.MatchString(im.IndexDigest) {
		return fmt.Errorf("image.indexDigest %q is not a digest", im.IndexDigest)
	}
	if im.Platform.OS == "" || im.Platform.Architecture == "" {
		return errors.New("image.platform needs os and architecture")
	}
	for name, v := range map[string]string{"image.reference": im.Reference, "image.name": im.Name, "image.tag": im.Tag} {
		if len(v) > maxFieldLen {
			return fmt.Errorf("%s is longer than %d bytes", name, maxFieldLen)
		}
	}
	if len(im.Layers) > maxPushLayers {
		return fmt.Errorf("%d layers, at most %d", len(im.Layers), maxPushLayers)
	}
	for i, l := range im.Layers {
		if l.Index != i {
			return fmt.Errorf("image.layers[%d].index is %d", i, l.Index)
		}
		if l.DiffID != "" && !digestRE.MatchString(l.DiffID) {
			return fmt.Errorf("image.layers[%d].diffID %q is not a digest", i, l.DiffID)
		}
	}
	if len(sb.Packages) > maxPushPackages {
		return fmt.Errorf("%d packages, at most %d", len(sb.Packages), maxPushPackages)
	}
	if len(sb.Warnings) > maxPushWarnings {
		return fmt.Errorf("%d warnings, at most %d", len(sb.Warnings), maxPushWarnings)
	}
	for i := range sb.Packages {
		p := &sb.Packages[i]
		if p.Type == "" || p.Name == "" {
			return fmt.Errorf("packages[%d]: type and name are required", i)
		}
		if len(p.Type) > 64 || len(p.Name) > maxFieldLen || len(p.Version) > maxFieldLen || len(p.PURL) > maxFieldLen {
			return fmt.Errorf("packages[%d] (%s): a field is longer than %d bytes", i, p.Name, maxFieldLen)
		}
		if len(p.Locations) > maxPushLocations {
			return fmt.Errorf("packages[%d] (%s): %d locations, at most %d", i, p.Name, len(p.Locations), maxPushLocations)
		}
		if p.PURL == "" {
			// The pipeline always sets PURLs; an agent built otherwise gets one derived here.
			p.PURL = sbom.PURL(p, sb.OS)
		}
	}
	return nil
}

// store1 stores a pushed image, its findings and tags. When a step fails after the image was
// written, an image that was new is removed again so that no half-stored push remains.
func (s *Server) store1(ctx context.Context, sb *sbom.SBOM, tags []store.Tag) (*PushResult, error) {
	d := sb.Image.Digest
	existed, err := s.store.HasImage(ctx, d)
	if err != nil {
		return nil, err
	}
	found, err := s.svc.Ingest(ctx, sb, ReasonPush)
	if err == nil {
		err = s.store.SetTags(ctx, d, tags)
	}
	if err != nil {
		if !existed {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			if derr := s.store.DeleteImage(cctx, d); derr != nil {
				s.log.Error("remove a half-stored push", "digest", d, "err", derr)
			}
			cancel()
		}
		return nil, fmt.Errorf("store pushed image %s: %w", d, err)
	}
	res := &PushResult{Digest: d, Packages: len(sb.Packages), Tags: []string{}}
	for _, t := range tags {
		res.Tags = append(res.Tags, t.Repository+":"+t.Tag)
	}
	res.Findings.Total = len(found)
	res.Findings.BySeverity = map[string]int{}
	for _, f := range found {
		res.Findings.BySeverity[f.Severity]++
	}
	return res, nil
}
