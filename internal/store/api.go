package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Bounds of the API queries: a page never holds more rows than this.
const (
	MaxPageLimit     = 1000
	defaultPageLimit = 50
	// maxBaseCandidates bounds how many images sharing layers the base-image chain considers.
	maxBaseCandidates = 1000
)

// Page is a window of a result list.
type Page struct {
	Limit, Offset int
}

func (p Page) norm() Page {
	if p.Limit <= 0 {
		p.Limit = defaultPageLimit
	}
	p.Limit = min(p.Limit, MaxPageLimit)
	p.Offset = max(p.Offset, 0)
	return p
}

// where builds a WHERE clause with $n placeholders, which both dialects bind by number.
type where struct {
	conds []string
	args  []any
}

// arg adds v and returns its placeholder.
func (w *where) arg(v any) string {
	w.args = append(w.args, v)
	return "$" + strconv.Itoa(len(w.args))
}

func (w *where) add(cond string) { w.conds = append(w.conds, cond) }

func (w *where) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// severitiesAtLeast lists the ratings ranked at or above min ("" = no filter).
func severitiesAtLeast(min string) ([]string, error) {
	all := []string{"unspecified", "low", "medium", "high", "critical"}
	for i, s := range all {
		if s == min {
			return all[i:], nil
		}
	}
	return nil, fmt.Errorf("unknown severity %q (want one of %s)", min, strings.Join(all, ", "))
}

// list adds vals and returns "($i,...,$j)".
func (w *where) list(vals []string) string {
	ps := make([]string, len(vals))
	for i, v := range vals {
		ps[i] = w.arg(v)
	}
	return "(" + strings.Join(ps, ",") + ")"
}

func (w *where) in(col string, vals []string) { w.add(col + " IN " + w.list(vals)) }

// ImageQuery filters the image list. Empty fields do not filter.
type ImageQuery struct {
	// Registry matches repositories under that host ("registry.example:5000").
	Registry string
	// Repository matches the image's repository name or a repository tagging it.
	Repository string
	Tag        string
	// Severity keeps images with at least one finding rated at or above it.
	Severity string
	// Package (and Version) keep images holding that package.
	Package, Version string
	// Vulnerability keeps images affected by that vulnerability id.
	Vulnerability string
	// Sort is "name" (default), "-name", "indexed" or "-indexed" (newest first).
	Sort string
	Page
}

// ImageSummary is one stored image (one platform manifest) with its tags and finding counts.
type ImageSummary struct {
	Digest, IndexDigest string
	Reference, Name     string
	Platform            string
	OSID, OSVersion     string
	Created             *time.Time
	IndexedAt           time.Time
	Packages            int
	// Tags are "repository:tag" pointing at the image or at the index it belongs to.
	Tags []string
	// Findings counts findings by severity rating.
	Findings map[string]int
}

// ErrBadQuery is wrapped by errors that a query's parameters caused.
var ErrBadQuery = errors.New("bad query")

// ListImages returns a page of images matching q and how many match in all.
func (s *Store) ListImages(ctx context.Context, q ImageQuery) ([]ImageSummary, int, error) {
	var w where
	if q.Registry != "" {
		w.add("i.name LIKE " + w.arg(likeEscape(q.Registry)+"/%") + ` ESCAPE '\'`)
	}
	switch {
	case q.Repository != "" && q.Tag != "":
		r, t := w.arg(q.Repository), w.arg(q.Tag)
		w.add(`EXISTS (SELECT 1 FROM tags t WHERE t.repository = ` + r + ` AND t.tag = ` + t +
			` AND (t.digest = i.digest OR (i.index_digest <> '' AND t.digest = i.index_digest)))`)
	case q.Repository != "":
		r := w.arg(q.Repository)
		w.add(`(i.name = ` + r + ` OR EXISTS (SELECT 1 FROM tags t WHERE t.repository = ` + r +
			` AND (t.digest = i.digest OR (i.index_digest <> '' AND t.digest = i.index_digest))))`)
	case q.Tag != "":
		t := w.arg(q.Tag)
		w.add(`EXISTS (SELECT 1 FROM tags t WHERE t.tag = ` + t +
			` AND (t.digest = i.digest OR (i.index_digest <> '' AND t.digest = i.index_digest)))`)
	}
	if q.Severity != "" {
		sevs, err := severitiesAtLeast(q.Severity)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: %w", ErrBadQuery, err)
		}
		w.add(`i.digest IN (SELECT f.image_digest FROM findings f WHERE f.severity IN ` + w.list(sevs) + `)`)
	}
	if q.Package != "" {
		// IN (subquery) rather than EXISTS: the subquery reads the name index once instead of
		// probing every image's packages.
		c := `i.digest IN (SELECT p.image_digest FROM packages p WHERE p.name = ` + w.arg(q.Package)
		if q.Version != "" {
			c += ` AND p.version = ` + w.arg(q.Version)
		}
		w.add(c + `)`)
	}
	if q.Vulnerability != "" {
		w.add(`i.digest IN (SELECT f.image_digest FROM findings f WHERE f.vuln_id = ` + w.arg(q.Vulnerability) + `)`)
	}
	var order string
	switch q.Sort {
	case "", "name":
		order = "i.name, i.platform, i.digest"
	case "-name":
		order = "i.name DESC, i.platform DESC, i.digest DESC"
	case "indexed":
		order = "i.indexed_at, i.digest"
	case "-indexed":
		order = "i.indexed_at DESC, i.digest DESC"
	default:
		return nil, 0, fmt.Errorf("%w: unknown sort %q (want name, -name, indexed or -indexed)", ErrBadQuery, q.Sort)
	}
	var total int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM images i`+w.String(), w.args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("list images: %w", err)
	}
	p := q.Page.norm()
	args := append(w.args, p.Limit, p.Offset)
	rows, err := s.db.QueryContext(ctx, `SELECT i.digest, i.index_digest, i.reference, i.name, i.platform, i.os_id, i.os_version,
		i.created, i.indexed_at, i.package_count FROM images i`+w.String()+` ORDER BY `+order+
		` LIMIT $`+strconv.Itoa(len(w.args)+1)+` OFFSET $`+strconv.Itoa(len(w.args)+2), args...)
	if err != nil {
		return nil, 0, fmt.Errorf("list images: %w", err)
	}
	defer rows.Close()
	var out []ImageSummary
	for rows.Next() {
		var im ImageSummary
		var created *int64
		var indexed int64
		if err := rows.Scan(&im.Digest, &im.IndexDigest, &im.Reference, &im.Name, &im.Platform, &im.OSID, &im.OSVersion,
			&created, &indexed, &im.Packages); err != nil {
			return nil, 0, fmt.Errorf("list images: %w", err)
		}
		if created != nil {
			t := time.Unix(0, *created).UTC()
			im.Created = &t
		}
		im.IndexedAt = time.Unix(0, indexed).UTC()
		out = append(out, im)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("list images: %w", err)
	}
	rows.Close()
	if err := s.fillSummaries(ctx, out); err != nil {
		return nil, 0, err
	}
	return out, total, nil
}

func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// fillSummaries sets the tags and finding counts of images.
func (s *Store) fillSummaries(ctx context.Context, images []ImageSummary) error {
	if len(images) == 0 {
		return nil
	}
	refs := make([]tagged, len(images))
	digests := map[string]bool{}
	for i, im := range images {
		refs[i] = tagged{im.Digest, im.IndexDigest}
		digests[im.Digest] = true
	}
	tags, err := s.tagsOf(ctx, refs)
	if err != nil {
		return err
	}
	counts, err := s.findingCounts(ctx, digests)
	if err != nil {
		return err
	}
	for i := range images {
		images[i].Tags = tags[i]
		images[i].Findings = counts[images[i].Digest]
		if images[i].Findings == nil {
			images[i].Findings = map[string]int{}
		}
	}
	return nil
}

type tagged struct{ digest, indexDigest string }

// tagsOf returns, for each image, the "repository:tag" names pointing at it or at its index.
func (s *Store) tagsOf(ctx context.Context, images []tagged) ([][]string, error) {
	want := map[string]bool{}
	for _, im := range images {
		want[im.digest] = true
		if im.indexDigest != "" {
			want[im.indexDigest] = true
		}
	}
	list := make([]string, 0, len(want))
	for d := range want {
		list = append(list, d)
	}
	sort.Strings(list)
	byDigest := map[string][]string{}
	for start := 0; start < len(list); start += digestBatch {
		var w where
		w.in("digest", list[start:min(start+digestBatch, len(list))])
		rows, err := s.db.QueryContext(ctx, `SELECT repository, tag, digest FROM tags`+w.String()+` ORDER BY repository, tag`, w.args...)
		if err != nil {
			return nil, fmt.Errorf("tags of images: %w", err)
		}
		for rows.Next() {
			var repo, tag, d string
			if err := rows.Scan(&repo, &tag, &d); err != nil {
				rows.Close()
				return nil, fmt.Errorf("tags of images: %w", err)
			}
			byDigest[d] = append(byDigest[d], repo+":"+tag)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("tags of images: %w", err)
		}
	}
	out := make([][]string, len(images))
	for i, im := range images {
		t := append([]string{}, byDigest[im.digest]...)
		if im.indexDigest != "" && im.indexDigest != im.digest {
			t = append(t, byDigest[im.indexDigest]...)
		}
		sort.Strings(t)
		out[i] = t
	}
	return out, nil
}

// ImageSummaryOf returns the summary of one stored image, or ErrNotFound.
func (s *Store) ImageSummaryOf(ctx context.Context, digest string) (ImageSummary, error) {
	var im ImageSummary
	var created *int64
	var indexed int64
	err := s.db.QueryRowContext(ctx, `SELECT digest, index_digest, reference, name, platform, os_id, os_version, created, indexed_at, package_count
		FROM images WHERE digest = $1`, digest).Scan(&im.Digest, &im.IndexDigest, &im.Reference, &im.Name, &im.Platform,
		&im.OSID, &im.OSVersion, &created, &indexed, &im.Packages)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return im, fmt.Errorf("image %s: %w", digest, ErrNotFound)
		}
		return im, fmt.Errorf("image %s: %w", digest, err)
	}
	if created != nil {
		t := time.Unix(0, *created).UTC()
		im.Created = &t
	}
	im.IndexedAt = time.Unix(0, indexed).UTC()
	list := []ImageSummary{im}
	if err := s.fillSummaries(ctx, list); err != nil {
		return im, err
	}
	return list[0], nil
}

// imageDigestRE matches a manifest digest as the API and dashboard accept it.
var imageDigestRE = regexp.MustCompile(`^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$`)

// ResolveRef turns a digest or "repository:tag" into one stored image digest; platform picks one
// of a multi-platform tag's images (it may be empty when the tag has one).
func (s *Store) ResolveRef(ctx context.Context, ref, platform string) (string, error) {
	if imageDigestRE.MatchString(ref) {
		return ref, nil
	}
	i := strings.LastIndexByte(ref, ':')
	if i <= 0 || strings.Contains(ref[i:], "/") {
		return "", fmt.Errorf("%w: %q is neither a digest nor repository:tag", ErrBadQuery, ref)
	}
	ims, err := s.ResolveTag(ctx, ref[:i], ref[i+1:])
	if err != nil {
		return "", err
	}
	var plats []string
	for _, im := range ims {
		if platform == "" && len(ims) == 1 || im.Platform == platform {
			return im.Digest, nil
		}
		plats = append(plats, im.Platform)
	}
	if len(ims) == 0 {
		return "", fmt.Errorf("%s: %w", ref, ErrNotFound)
	}
	return "", fmt.Errorf("%w: %s has platforms %s; choose one with platform=", ErrBadQuery, ref, strings.Join(plats, ", "))
}

// ResolveTag returns the image digests repository:tag stands for: the digest it points at, or the
// platform images of the index it points at (sorted by platform). None when the tag is unknown or
// its image is not stored.
func (s *Store) ResolveTag(ctx context.Context, repository, tag string) ([]ImageSummary, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT i.digest, i.platform FROM tags t JOIN images i
		ON i.digest = t.digest OR (i.index_digest <> '' AND i.index_digest = t.digest)
		WHERE t.repository = $1 AND t.tag = $2 ORDER BY i.platform, i.digest`, repository, tag)
	if err != nil {
		return nil, fmt.Errorf("resolve %s:%s: %w", repository, tag, err)
	}
	defer rows.Close()
	var out []ImageSummary
	for rows.Next() {
		var im ImageSummary
		if err := rows.Scan(&im.Digest, &im.Platform); err != nil {
			return nil, fmt.Errorf("resolve %s:%s: %w", repository, tag, err)
		}
		out = append(out, im)
	}
	return out, rows.Err()
}

// SharedLayer says how many other stored images hold a layer of an image.
type SharedLayer struct {
	DiffID      string
	OtherImages int
}

// BaseImage is a stored image whose layers are all the bottom layers of another image.
type BaseImage struct {
	Digest, Name, Platform string
	Layers                 int
	Tags                   []string
}

// LayerSharing returns, for the layers of digest, how many other images hold each (by diffID),
// and the base-image chain: the stored images whose whole layer list is a proper prefix of the
// image's, from the smallest up. This is the chain as far as the store knows it; an image built on
// a base that was never stored shows only the sharing counts.
func (s *Store) LayerSharing(ctx context.Context, digest string) ([]SharedLayer, []BaseImage, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT idx, diff_id FROM layers WHERE image_digest = $1 ORDER BY idx`, digest)
	if err != nil {
		return nil, nil, fmt.Errorf("layers of %s: %w", digest, err)
	}
	var mine []string
	for rows.Next() {
		var idx int
		var d string
		if err := rows.Scan(&idx, &d); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("layers of %s: %w", digest, err)
		}
		mine = append(mine, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("layers of %s: %w", digest, err)
	}
	shared := make([]SharedLayer, len(mine))
	for i, d := range mine {
		shared[i].DiffID = d
		if d == "" {
			continue
		}
		if err := s.db.QueryRowContext(ctx, `SELECT COUNT(DISTINCT image_digest) FROM layers WHERE diff_id = $1 AND image_digest <> $2`,
			d, digest).Scan(&shared[i].OtherImages); err != nil {
			return nil, nil, fmt.Errorf("layer sharing of %s: %w", digest, err)
		}
	}
	if len(mine) < 2 || mine[0] == "" {
		return shared, nil, nil
	}
	// Candidates hold the image's bottom layer at the bottom; a base has fewer layers, all equal
	// to the image's at the same positions.
	rows, err = s.db.QueryContext(ctx, `SELECT l.image_digest FROM layers l WHERE l.diff_id = $1 AND l.idx = 0 AND l.image_digest <> $2
		ORDER BY l.image_digest LIMIT $3`, mine[0], digest, maxBaseCandidates)
	if err != nil {
		return nil, nil, fmt.Errorf("base images of %s: %w", digest, err)
	}
	var cands []string
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("base images of %s: %w", digest, err)
		}
		cands = append(cands, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("base images of %s: %w", digest, err)
	}
	layersOf := map[string][]string{}
	for start := 0; start < len(cands); start += digestBatch {
		var w where
		w.in("image_digest", cands[start:min(start+digestBatch, len(cands))])
		rows, err := s.db.QueryContext(ctx, `SELECT image_digest, diff_id FROM layers`+w.String()+` ORDER BY image_digest, idx`, w.args...)
		if err != nil {
			return nil, nil, fmt.Errorf("base images of %s: %w", digest, err)
		}
		for rows.Next() {
			var d, diff string
			if err := rows.Scan(&d, &diff); err != nil {
				rows.Close()
				return nil, nil, fmt.Errorf("base images of %s: %w", digest, err)
			}
			layersOf[d] = append(layersOf[d], diff)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, nil, fmt.Errorf("base images of %s: %w", digest, err)
		}
	}
	var bases []BaseImage
	for _, c := range cands {
		ls := layersOf[c]
		if len(ls) == 0 || len(ls) >= len(mine) {
			continue
		}
		prefix := true
		for i, d := range ls {
			if mine[i] != d {
				prefix = false
				break
			}
		}
		if prefix {
			bases = append(bases, BaseImage{Digest: c, Layers: len(ls)})
		}
	}
	sort.Slice(bases, func(i, j int) bool {
		if bases[i].Layers != bases[j].Layers {
			return bases[i].Layers < bases[j].Layers
		}
		return bases[i].Digest < bases[j].Digest
	})
	for i := range bases {
		sum, err := s.ImageSummaryOf(ctx, bases[i].Digest)
		if err != nil {
			return nil, nil, err
		}
		bases[i].Name, bases[i].Platform, bases[i].Tags = sum.Name, sum.Platform, sum.Tags
	}
	return shared, bases, nil
}

// VulnQuery filters the vulnerability list.
type VulnQuery struct {
	// Severity keeps vulnerabilities rated at or above it (in at least one image).
	Severity string
	// Package keeps vulnerabilities found in packages of that name.
	Package string
	// Repository keeps vulnerabilities of images of that repository name.
	Repository string
	Page
}

// VulnSummary is one vulnerability found in stored images.
type VulnSummary struct {
	ID       string
	Severity string
	// Images and Packages count the distinct images and package names it affects.
	Images, Packages int
}

const severityRankSQL = `CASE f.severity WHEN 'critical' THEN 4 WHEN 'high' THEN 3 WHEN 'medium' THEN 2 WHEN 'low' THEN 1 ELSE 0 END`

var rankSeverity = []string{"unspecified", "low", "medium", "high", "critical"}

// ListVulnerabilities returns a page of the vulnerabilities found in stored images, the most
// widespread first, and how many match in all.
func (s *Store) ListVulnerabilities(ctx context.Context, q VulnQuery) ([]VulnSummary, int, error) {
	var w where
	if q.Severity != "" {
		sevs, err := severitiesAtLeast(q.Severity)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: %w", ErrBadQuery, err)
		}
		w.in("f.severity", sevs)
	}
	if q.Package != "" {
		w.add("f.pkg_name = " + w.arg(q.Package))
	}
	if q.Repository != "" {
		w.add("f.image_digest IN (SELECT digest FROM images WHERE name = " + w.arg(q.Repository) + ")")
	}
	var total int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(DISTINCT f.vuln_id) FROM findings f`+w.String(), w.args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("list vulnerabilities: %w", err)
	}
	p := q.Page.norm()
	args := append(w.args, p.Limit, p.Offset)
	rows, err := s.db.QueryContext(ctx, `SELECT f.vuln_id, MAX(`+severityRankSQL+`), COUNT(DISTINCT f.image_digest), COUNT(DISTINCT f.pkg_name)
		FROM findings f`+w.String()+` GROUP BY f.vuln_id ORDER BY 3 DESC, 2 DESC, f.vuln_id
		LIMIT $`+strconv.Itoa(len(w.args)+1)+` OFFSET $`+strconv.Itoa(len(w.args)+2), args...)
	if err != nil {
		return nil, 0, fmt.Errorf("list vulnerabilities: %w", err)
	}
	defer rows.Close()
	var out []VulnSummary
	for rows.Next() {
		var v VulnSummary
		var rank int
		if err := rows.Scan(&v.ID, &rank, &v.Images, &v.Packages); err != nil {
			return nil, 0, fmt.Errorf("list vulnerabilities: %w", err)
		}
		v.Severity = rankSeverity[max(0, min(rank, 4))]
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("list vulnerabilities: %w", err)
	}
	return out, total, nil
}

// AffectedImage is one image a vulnerability affects through one package.
type AffectedImage struct {
	Digest, IndexDigest, Name, Platform string
	Tags                                []string
	PackageType, PackageName, Version   string
	Severity, FixedVersion              string
}

// VulnerabilityImages returns a page of the images (and packages) vulnerability id affects, by
// image digest, and how many there are in all.
func (s *Store) VulnerabilityImages(ctx context.Context, id string, page Page) ([]AffectedImage, int, error) {
	var total int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM findings WHERE vuln_id = $1`, id).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("images affected by %s: %w", id, err)
	}
	p := page.norm()
	rows, err := s.db.QueryContext(ctx, `SELECT f.image_digest, i.index_digest, i.name, i.platform, f.pkg_type, f.pkg_name, f.pkg_version,
		f.severity, f.fixed_version
		FROM findings f JOIN images i ON i.digest = f.image_digest
		WHERE f.vuln_id = $1 ORDER BY f.image_digest, f.pkg_type, f.pkg_name, f.pkg_version LIMIT $2 OFFSET $3`, id, p.Limit, p.Offset)
	if err != nil {
		return nil, 0, fmt.Errorf("images affected by %s: %w", id, err)
	}
	defer rows.Close()
	var out []AffectedImage
	for rows.Next() {
		var a AffectedImage
		if err := rows.Scan(&a.Digest, &a.IndexDigest, &a.Name, &a.Platform, &a.PackageType, &a.PackageName, &a.Version,
			&a.Severity, &a.FixedVersion); err != nil {
			return nil, 0, fmt.Errorf("images affected by %s: %w", id, err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("images affected by %s: %w", id, err)
	}
	rows.Close()
	refs := make([]tagged, len(out))
	for i, a := range out {
		refs[i] = tagged{a.Digest, a.IndexDigest}
	}
	tags, err := s.tagsOf(ctx, refs)
	if err != nil {
		return nil, 0, err
	}
	for i := range out {
		out[i].Tags = tags[i]
	}
	return out, total, nil
}

// PackageQuery selects packages by name, and optionally version and type.
type PackageQuery struct {
	Name, Version, Type string
	Page
}

// PackageImage is one image holding a package.
type PackageImage struct {
	Type, Name, Version, PURL            string
	Digest, IndexDigest, Image, Platform string
	Tags                                 []string
}

// FindPackages returns a page of the stored images holding package q.Name (at q.Version), and how
// many there are in all.
func (s *Store) FindPackages(ctx context.Context, q PackageQuery) ([]PackageImage, int, error) {
	if q.Name == "" {
		return nil, 0, fmt.Errorf("%w: a package name is required", ErrBadQuery)
	}
	var w where
	w.add("p.name = " + w.arg(q.Name))
	if q.Version != "" {
		w.add("p.version = " + w.arg(q.Version))
	}
	if q.Type != "" {
		w.add("p.type = " + w.arg(q.Type))
	}
	var total int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM packages p`+w.String(), w.args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("find package %s: %w", q.Name, err)
	}
	p := q.Page.norm()
	args := append(w.args, p.Limit, p.Offset)
	rows, err := s.db.QueryContext(ctx, `SELECT p.type, p.name, p.version, p.purl, i.digest, i.index_digest, i.name, i.platform
		FROM packages p JOIN images i ON i.digest = p.image_digest`+w.String()+
		` ORDER BY p.version, p.type, i.name, i.digest, p.idx LIMIT $`+strconv.Itoa(len(w.args)+1)+` OFFSET $`+strconv.Itoa(len(w.args)+2), args...)
	if err != nil {
		return nil, 0, fmt.Errorf("find package %s: %w", q.Name, err)
	}
	defer rows.Close()
	var out []PackageImage
	for rows.Next() {
		var pi PackageImage
		if err := rows.Scan(&pi.Type, &pi.Name, &pi.Version, &pi.PURL, &pi.Digest, &pi.IndexDigest, &pi.Image, &pi.Platform); err != nil {
			return nil, 0, fmt.Errorf("find package %s: %w", q.Name, err)
		}
		out = append(out, pi)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("find package %s: %w", q.Name, err)
	}
	rows.Close()
	refs := make([]tagged, len(out))
	for i, a := range out {
		refs[i] = tagged{a.Digest, a.IndexDigest}
	}
	tags, err := s.tagsOf(ctx, refs)
	if err != nil {
		return nil, 0, err
	}
	for i := range out {
		out[i].Tags = tags[i]
	}
	return out, total, nil
}

// SetTags points each of tags at digest in one transaction.
func (s *Store) SetTags(ctx context.Context, digest string, tags []Tag) error {
	now := time.Now().UnixNano()
	err := s.write(ctx, func(tx *txw) error {
		for _, t := range tags {
			if _, err := tx.ExecContext(ctx, `INSERT INTO tags (repository, tag, digest, updated_at) VALUES ($1, $2, $3, $4)
				ON CONFLICT (repository, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at`,
				t.Repository, t.Tag, digest, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("tag %s: %w", digest, err)
	}
	return nil
}

// DeleteImage removes a stored image with its packages, layers and findings (finding-change
// history is kept). Deleting a missing image is not an error.
func (s *Store) DeleteImage(ctx context.Context, digest string) error {
	err := s.write(ctx, func(tx *txw) error {
		sets, err := imageSetIDs(ctx, tx, digest)
		if err != nil {
			return err
		}
		for _, q := range []string{
			`DELETE FROM findings WHERE image_digest = $1`,
			`DELETE FROM image_sets WHERE image_digest = $1`,
			`DELETE FROM layers WHERE image_digest = $1`,
			`DELETE FROM images WHERE digest = $1`,
		} {
			if _, err := tx.ExecContext(ctx, q, digest); err != nil {
				return err
			}
		}
		return dropUnusedSets(ctx, tx, sets)
	})
	if err != nil {
		return fmt.Errorf("delete image %s: %w", digest, err)
	}
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	var one int
	if err := s.db.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	return nil
}

// HasImage reports whether an image manifest is stored under digest.
func (s *Store) HasImage(ctx context.Context, digest string) (bool, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM images WHERE digest = $1`, digest).Scan(&n); err != nil {
		return false, fmt.Errorf("is %s stored: %w", digest, err)
	}
	return n > 0, nil
}
