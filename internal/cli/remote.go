package cli

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/crowsnest-dev/crowsnest/internal/apiclient"
	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/sbom/format"
	"github.com/crowsnest-dev/crowsnest/internal/server"
	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

// maxRemoteImages bounds how many images `images --server` pages through.
const maxRemoteImages = 100_000

// remoteImages lists a server's images, page by page.
func remoteImages(ctx context.Context, c *apiclient.Client, repository string) ([]server.ImageSummary, error) {
	var all []server.ImageSummary
	offset := 0
	for {
		q := url.Values{"limit": {"500"}, "offset": {strconv.Itoa(offset)}}
		if repository != "" {
			q.Set("repository", repository)
		}
		var page server.ImageList
		if err := c.Get(ctx, "/api/v1/images", q, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Images...)
		if page.NextOffset == nil || len(all) >= maxRemoteImages {
			return all, nil
		}
		offset = *page.NextOffset
	}
}

// remoteDigest finds the image a reference names on the server: a digest, or repository:tag
// (with or without the registry host), picking platform (default: this machine's) among several.
func remoteDigest(ctx context.Context, c *apiclient.Client, ref, platform string) (string, error) {
	ref = strings.TrimPrefix(ref, "registry://")
	if strings.HasPrefix(ref, "sha256:") {
		return ref, nil
	}
	if _, d, ok := strings.Cut(ref, "@"); ok {
		return d, nil
	}
	repo, tag, ok := splitTag(ref)
	if !ok {
		repo, tag = ref, "latest"
	}
	candidates := repositoryCandidates(repo)
	for _, r := range candidates {
		var page server.ImageList
		if err := c.Get(ctx, "/api/v1/images", url.Values{"repository": {r}, "tag": {tag}, "limit": {"100"}}, &page); err != nil {
			return "", err
		}
		platforms := make([]string, len(page.Images))
		for i, im := range page.Images {
			platforms[i] = im.Platform
		}
		if i := pickPlatform(platforms, platform); i >= 0 {
			return page.Images[i].Digest, nil
		}
	}
	return "", fmt.Errorf("the server has no image %s", ref)
}

// remoteSBOM reads an image's SBOM from the server.
func remoteSBOM(ctx context.Context, c *apiclient.Client, digest string) (*sbom.SBOM, error) {
	var raw []byte
	if err := c.Get(ctx, "/api/v1/images/"+digest+"/sbom", url.Values{"format": {"json"}}, &raw); err != nil {
		return nil, err
	}
	return format.Decode(strings.NewReader(string(raw)), format.JSON)
}

// remoteFindings reads an image's current findings from the server.
func remoteFindings(ctx context.Context, c *apiclient.Client, digest string) ([]vuln.Finding, error) {
	var detail server.ImageDetail
	if err := c.Get(ctx, "/api/v1/images/"+digest, nil, &detail); err != nil {
		return nil, err
	}
	return detail.Vulnerabilities, nil
}
