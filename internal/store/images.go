package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

// PackageKey is the advisory lookup key of a package: the OSV ecosystem ("Debian:12", "PyPI")
// and the normalized name advisories use. The zero key means "not matchable".
type PackageKey struct{ Ecosystem, Name string }

// IsZero reports whether k is the zero key.
func (k PackageKey) IsZero() bool { return k.Ecosystem == "" && k.Name == "" }

// StoredPackage is a package of a stored image.
type StoredPackage struct {
	ImageDigest string
	Package     vuln.PackageRef
}

// Tag is a repository tag pointing at a manifest digest.
type Tag struct {
	Repository string
	Tag        string
	Digest     string
	UpdatedAt  time.Time
}

// PutImage stores an indexed image, replacing what was stored under its digest (its packages
// and layers; findings are kept, the caller re-matches). keys[i] is the match key of
// sb.Packages[i]; a zero key (or a short keys slice) means not matchable.
func (s *Store) PutImage(ctx context.Context, sb *sbom.SBOM, keys []PackageKey) error {
	return s.putImage(ctx, sb, keys, nil)
}

// PutImageFindings stores an indexed image as PutImage does and replaces all its findings as
// ReplaceFindings (nil scope) does, in one transaction: a pushed image costs one commit
// instead of two, and readers never see the image without its findings.
func (s *Store) PutImageFindings(ctx context.Context, sb *sbom.SBOM, keys []PackageKey, findings []vuln.Finding, reason string, now time.Time) (ChangeSummary, error) {
	var sum ChangeSummary
	if sb == nil || sb.Image.Digest == "" {
		return sum, errors.New("put image: the SBOM has no image digest")
	}
	d := sb.Image.Digest
	updates := []FindingsUpdate{{Digest: d, Findings: findings}}
	enc, err := encodeFindings(updates)
	if err != nil {
		return sum, fmt.Errorf("put image %s: %w", d, err)
	}
	err = s.putImage(ctx, sb, keys, func(tx *txw) error {
		return replaceFindingsTx(ctx, tx, updates, enc, []string{d}, reason, now, &sum)
	})
	if err != nil {
		return ChangeSummary{}, err
	}
	return sum, nil
}

// putImage is PutImage, running then (if not nil) in the same transaction.
func (s *Store) putImage(ctx context.Context, sb *sbom.SBOM, keys []PackageKey, then func(tx *txw) error) error {
	if sb == nil || sb.Image.Digest == "" {
		return errors.New("put image: the SBOM has no image digest")
	}
	if len(keys) > len(sb.Packages) {
		return fmt.Errorf("put image %s: %d keys for %d packages", sb.Image.Digest, len(keys), len(sb.Packages))
	}
	raw, err := json.Marshal(sb)
	if err != nil {
		return fmt.Errorf("put image %s: encode SBOM: %w", sb.Image.Digest, err)
	}
	blob := s.enc.EncodeAll(raw, nil)
	digest := sb.Image.Digest
	sets := packageSets(sb, keys)
	var osID, osVersion string
	if sb.OS != nil {
		osID, osVersion = sb.OS.ID, sb.OS.VersionID
	}
	var created sql.NullInt64
	if sb.Image.Created != nil {
		created = sql.NullInt64{Int64: sb.Image.Created.UnixNano(), Valid: true}
	}
	indexedAt := sb.Created
	if indexedAt.IsZero() {
		indexedAt = time.Now()
	}
	err = s.write(ctx, func(tx *txw) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO images
			(digest, reference, name, platform, os_id, os_version, created, indexed_at, package_count, sbom, index_digest)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
			ON CONFLICT (digest) DO UPDATE SET reference = excluded.reference, name = excluded.name,
				index_digest = excluded.index_digest,
				platform = excluded.platform, os_id = excluded.os_id, os_version = excluded.os_version,
				created = excluded.created, indexed_at = excluded.indexed_at,
				package_count = excluded.package_count, sbom = excluded.sbom`,
			digest, sb.Image.Reference, sb.Image.Name, sb.Image.Platform.String(), osID, osVersion,
			created, indexedAt.UnixNano(), len(sb.Packages), blob, sb.Image.IndexDigest); err != nil {
			return fmt.Errorf("image row: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM layers WHERE image_digest = $1`, digest); err != nil {
			return fmt.Errorf("delete old layers: %w", err)
		}
		if err := insertRows(ctx, tx, `INSERT INTO layers (image_digest, idx, digest, diff_id) VALUES `, 4, len(sb.Image.Layers), func(i int, args []any) []any {
			l := sb.Image.Layers[i]
			return append(args, digest, l.Index, l.Digest, l.DiffID)
		}); err != nil {
			return fmt.Errorf("layers: %w", err)
		}
		if err := putPackageSets(ctx, tx, digest, sb.Packages, sets); err != nil {
			return fmt.Errorf("packages: %w", err)
		}
		if then != nil {
			return then(tx)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("put image %s: %w", digest, err)
	}
	return nil
}

// maxParams bounds the parameters of one statement (SQLite's default limit is 32766,
// PostgreSQL's 65535).
const maxParams = 30000

// insertRows runs a multi-row INSERT of n rows of cols columns in chunks, appending each row's
// values with row. prefix ends with "VALUES "; suffix-free.
func insertRows(ctx context.Context, tx *txw, prefix string, cols, n int, row func(i int, args []any) []any) error {
	return insertRowsSuffix(ctx, tx, prefix, "", cols, n, row)
}

func insertRowsSuffix(ctx context.Context, tx *txw, prefix, suffix string, cols, n int, row func(i int, args []any) []any) error {
	per := max(1, min(1000, maxParams/cols))
	args := make([]any, 0, per*cols)
	for start := 0; start < n; start += per {
		end := min(n, start+per)
		args = args[:0]
		for i := start; i < end; i++ {
			args = row(i, args)
		}
		var b strings.Builder
		b.WriteString(prefix)
		placeholders(tx.d, &b, 1, end-start, cols)
		b.WriteString(suffix)
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return err
		}
	}
	return nil
}

// Image returns the stored SBOM of digest, or ErrNotFound.
func (s *Store) Image(ctx context.Context, digest string) (*sbom.SBOM, error) {
	var blob []byte
	err := s.db.QueryRowContext(ctx, `SELECT sbom FROM images WHERE digest = $1`, digest).Scan(&blob)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("image %s: %w", digest, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", digest, err)
	}
	raw, err := s.dec.DecodeAll(blob, nil)
	if err != nil {
		return nil, fmt.Errorf("image %s: decompress SBOM: %w", digest, err)
	}
	var sb sbom.SBOM
	if err := json.Unmarshal(raw, &sb); err != nil {
		return nil, fmt.Errorf("image %s: decode SBOM: %w", digest, err)
	}
	return &sb, nil
}

// SetTag points repository:tag at digest.
func (s *Store) SetTag(ctx context.Context, repository, tag, digest string) error {
	err := s.write(ctx, func(tx *txw) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO tags (repository, tag, digest, updated_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (repository, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at`,
			repository, tag, digest, time.Now().UnixNano())
		return err
	})
	if err != nil {
		return fmt.Errorf("set tag %s:%s: %w", repository, tag, err)
	}
	return nil
}

// DeleteTag removes repository:tag; deleting a missing tag is not an error.
func (s *Store) DeleteTag(ctx context.Context, repository, tag string) error {
	err := s.write(ctx, func(tx *txw) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM tags WHERE repository = $1 AND tag = $2`, repository, tag)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete tag %s:%s: %w", repository, tag, err)
	}
	return nil
}

// Tags lists the tags of repository ("" = every repository), ordered by repository and tag.
func (s *Store) Tags(ctx context.Context, repository string) ([]Tag, error) {
	q := `SELECT repository, tag, digest, updated_at FROM tags WHERE repository = $1 ORDER BY repository, tag`
	args := []any{repository}
	if repository == "" {
		q = `SELECT repository, tag, digest, updated_at FROM tags ORDER BY repository, tag`
		args = nil
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("tags of %q: %w", repository, err)
	}
	defer rows.Close()
	var out []Tag
	for rows.Next() {
		var t Tag
		var ns int64
		if err := rows.Scan(&t.Repository, &t.Tag, &t.Digest, &ns); err != nil {
			return nil, fmt.Errorf("tags of %q: %w", repository, err)
		}
		t.UpdatedAt = time.Unix(0, ns)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("tags of %q: %w", repository, err)
	}
	return out, nil
}

// ImagePackages lists the stored packages of digest (matchable or not), grouped by the layer
// that introduced them (in layer order) and in SBOM order within a layer.
func (s *Store) ImagePackages(ctx context.Context, digest string) ([]StoredPackage, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT image_digest, type, name, version, purl, ecosystem, match_name
		FROM packages WHERE image_digest = $1 ORDER BY idx`, digest)
	if err != nil {
		return nil, fmt.Errorf("packages of %s: %w", digest, err)
	}
	var out []StoredPackage
	err = scanPackages(rows, func(p StoredPackage) error { out = append(out, p); return nil })
	if err != nil {
		return nil, fmt.Errorf("packages of %s: %w", digest, err)
	}
	return out, nil
}

func scanPackages(rows *sql.Rows, fn func(StoredPackage) error) error {
	defer rows.Close()
	for rows.Next() {
		var p StoredPackage
		r := &p.Package
		if err := rows.Scan(&p.ImageDigest, &r.Type, &r.Name, &r.Version, &r.PURL, &r.Ecosystem, &r.MatchName); err != nil {
			return err
		}
		if err := fn(p); err != nil {
			return err
		}
	}
	return rows.Err()
}

// keyBatch is how many keys one lookup query carries on SQLite (two parameters each).
const keyBatch = 500

// PackagesWithKeys calls fn for every stored package whose match key is in keys, across all
// images: the images to re-match after those keys' advisories changed.
func (s *Store) PackagesWithKeys(ctx context.Context, keys []PackageKey, fn func(StoredPackage) error) error {
	sets := map[string][]vuln.PackageRef{}
	return s.PackageSetsWithKeys(ctx, keys, func(set string, p vuln.PackageRef) error {
		sets[set] = append(sets[set], p)
		return nil
	}, func(set, digest string) error {
		for _, p := range sets[set] {
			if err := fn(StoredPackage{ImageDigest: digest, Package: p}); err != nil {
				return err
			}
		}
		return nil
	})
}

// HeldKeys returns those of keys that some stored package has.
func (s *Store) HeldKeys(ctx context.Context, keys []PackageKey) ([]PackageKey, error) {
	keys = uniqueKeys(keys)
	var out []PackageKey
	scan := func(rows *sql.Rows) error {
		defer rows.Close()
		for rows.Next() {
			var k PackageKey
			if err := rows.Scan(&k.Ecosystem, &k.Name); err != nil {
				return err
			}
			out = append(out, k)
		}
		return rows.Err()
	}
	if s.dialect == dialectPostgres {
		es, ns := splitKeys(keys)
		rows, err := s.db.QueryContext(ctx, `SELECT k.e, k.n FROM unnest($1::text[], $2::text[]) AS k(e, n)
			WHERE EXISTS (SELECT 1 FROM set_packages p WHERE p.ecosystem = k.e AND p.match_name = k.n)`, es, ns)
		if err != nil {
			return nil, fmt.Errorf("stored package keys: %w", err)
		}
		if err := scan(rows); err != nil {
			return nil, fmt.Errorf("stored package keys: %w", err)
		}
		return out, nil
	}
	for start := 0; start < len(keys); start += keyBatch {
		chunk := keys[start:min(len(keys), start+keyBatch)]
		q, args := keyInQuery(s.dialect, `SELECT DISTINCT ecosystem, match_name FROM set_packages WHERE (ecosystem, match_name) IN (VALUES `, chunk)
		rows, err := s.db.QueryContext(ctx, q+")", args...)
		if err != nil {
			return nil, fmt.Errorf("stored package keys: %w", err)
		}
		if err := scan(rows); err != nil {
			return nil, fmt.Errorf("stored package keys: %w", err)
		}
	}
	return out, nil
}

// PackageSetsWithKeys reads the stored packages whose match key is in keys by package set,
// handing each to pkg, then the images holding those sets, handing each (set, image) to image.
// Sets are far fewer than their packages' rows across images, and a re-match can start
// matching packages before it knows their images.
func (s *Store) PackageSetsWithKeys(ctx context.Context, keys []PackageKey, pkg func(set string, p vuln.PackageRef) error, image func(set, digest string) error) error {
	keys = uniqueKeys(keys)
	var sets []string
	seen := map[string]bool{}
	scanSets := func(rows *sql.Rows) error {
		defer rows.Close()
		var id sql.RawBytes
		for rows.Next() {
			var r vuln.PackageRef
			if err := rows.Scan(&id, &r.Type, &r.Name, &r.Version, &r.PURL, &r.Ecosystem, &r.MatchName); err != nil {
				return err
			}
			set := string(id)
			if !seen[set] {
				seen[set] = true
				sets = append(sets, set)
			}
			if err := pkg(set, r); err != nil {
				return err
			}
		}
		return rows.Err()
	}
	const cols = `set_id, type, name, version, purl, ecosystem, match_name`
	if s.dialect == dialectPostgres {
		es, ns := splitKeys(keys)
		rows, err := s.db.QueryContext(ctx, `SELECT `+cols+` FROM unnest($1::text[], $2::text[]) AS k(e, n)
			JOIN set_packages p ON p.ecosystem = k.e AND p.match_name = k.n`, es, ns)
		if err != nil {
			return fmt.Errorf("packages by key: %w", err)
		}
		if err := scanSets(rows); err != nil {
			return fmt.Errorf("packages by key: %w", err)
		}
	} else {
		for start := 0; start < len(keys); start += keyBatch {
			chunk := keys[start:min(len(keys), start+keyBatch)]
			q, args := keyInQuery(s.dialect, `SELECT `+cols+` FROM set_packages WHERE (ecosystem, match_name) IN (VALUES `, chunk)
			rows, err := s.db.QueryContext(ctx, q+")", args...)
			if err != nil {
				return fmt.Errorf("packages by key: %w", err)
			}
			if err := scanSets(rows); err != nil {
				return fmt.Errorf("packages by key: %w", err)
			}
		}
	}
	scanImages := func(rows *sql.Rows) error {
		defer rows.Close()
		var set sql.RawBytes
		var digest string
		for rows.Next() {
			if err := rows.Scan(&set, &digest); err != nil {
				return err
			}
			if err := image(string(set), digest); err != nil {
				return err
			}
		}
		return rows.Err()
	}
	if s.dialect == dialectPostgres {
		if len(sets) == 0 {
			return nil
		}
		rows, err := s.db.QueryContext(ctx, `SELECT set_id, image_digest FROM image_sets WHERE set_id = ANY($1::text[])`, sets)
		if err != nil {
			return fmt.Errorf("images of package sets: %w", err)
		}
		if err := scanImages(rows); err != nil {
			return fmt.Errorf("images of package sets: %w", err)
		}
		return nil
	}
	for start := 0; start < len(sets); start += maxParams {
		q, args := idInQuery(s.dialect, `SELECT set_id, image_digest FROM image_sets WHERE set_id IN (`, sets[start:min(len(sets), start+maxParams)])
		rows, err := s.db.QueryContext(ctx, q+")", args...)
		if err != nil {
			return fmt.Errorf("images of package sets: %w", err)
		}
		if err := scanImages(rows); err != nil {
			return fmt.Errorf("images of package sets: %w", err)
		}
	}
	return nil
}

// keyInQuery appends "($1,$2),($3,$4)..." for keys to prefix.
func keyInQuery(d dialect, prefix string, keys []PackageKey) (string, []any) {
	var b strings.Builder
	b.WriteString(prefix)
	placeholders(d, &b, 1, len(keys), 2)
	args := make([]any, 0, 2*len(keys))
	for _, k := range keys {
		args = append(args, k.Ecosystem, k.Name)
	}
	return b.String(), args
}

func splitKeys(keys []PackageKey) (es, ns []string) {
	es = make([]string, len(keys))
	ns = make([]string, len(keys))
	for i, k := range keys {
		es[i], ns[i] = k.Ecosystem, k.Name
	}
	return es, ns
}

// uniqueKeys drops duplicates and zero keys, keeping the first occurrence's order.
func uniqueKeys(keys []PackageKey) []PackageKey {
	seen := make(map[PackageKey]struct{}, len(keys))
	out := make([]PackageKey, 0, len(keys))
	for _, k := range keys {
		if k.IsZero() {
			continue
		}
		if _, ok := seen[k]; ok {
			continue
		}
		seen[k] = struct{}{}
		out = append(out, k)
	}
	return out
}

// Ecosystems lists the distinct ecosystems of stored packages, sorted.
func (s *Store) Ecosystems(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT ecosystem FROM packages WHERE ecosystem <> '' ORDER BY ecosystem`)
	if err != nil {
		return nil, fmt.Errorf("ecosystems: %w", err)
	}
	out, err := scanStrings(rows)
	if err != nil {
		return nil, fmt.Errorf("ecosystems: %w", err)
	}
	return out, nil
}

// packageSet is a group of an image's packages stored once for every image that has the same
// group: the packages one layer introduced.
type packageSet struct {
	id   string // hex SHA-256 of the set's rows
	pkgs []int  // indexes into the SBOM's packages, in SBOM order
	keys []PackageKey
}

// packageSets groups sb's packages by the layer that introduced them (their first location's
// layer), in the image's layer order, and names each group by the hash of its stored rows, so
// that images sharing a base layer share its set. keys[i] is the match key of sb.Packages[i].
func packageSets(sb *sbom.SBOM, keys []PackageKey) []packageSet {
	order := make(map[string]int, len(sb.Image.Layers))
	for i, l := range sb.Image.Layers {
		order[l.DiffID] = i
	}
	byLayer := map[int]*packageSet{}
	var positions []int
	for i := range sb.Packages {
		p := &sb.Packages[i]
		pos := len(sb.Image.Layers) // packages without a known layer come last
		if len(p.Locations) > 0 {
			if o, ok := order[p.Locations[0].DiffID]; ok {
				pos = o
			}
		}
		set := byLayer[pos]
		if set == nil {
			set = &packageSet{}
			byLayer[pos] = set
			positions = append(positions, pos)
		}
		var k PackageKey
		if i < len(keys) {
			k = keys[i]
		}
		set.pkgs = append(set.pkgs, i)
		set.keys = append(set.keys, k)
	}
	slices.Sort(positions)
	out := make([]packageSet, 0, len(positions))
	for _, pos := range positions {
		set := byLayer[pos]
		h := sha256.New()
		var buf []byte
		for j, i := range set.pkgs {
			p := &sb.Packages[i]
			buf = buf[:0]
			// Length-prefixed fields: names come from image content, and no choice of them may
			// make two different sets hash alike.
			for _, f := range [...]string{p.Type, p.Name, p.Version, p.PURL, set.keys[j].Ecosystem, set.keys[j].Name} {
				buf = binary.AppendUvarint(buf, uint64(len(f)))
				buf = append(buf, f...)
			}
			h.Write(buf)
		}
		set.id = hex.EncodeToString(h.Sum(nil))
		out = append(out, *set)
	}
	return out
}

// putPackageSets points digest's packages at sets, writing the rows of the sets the store does
// not hold yet and dropping the sets it used before that no image uses any more.
func putPackageSets(ctx context.Context, tx *txw, digest string, pkgs []sbom.Package, sets []packageSet) error {
	old, err := imageSetIDs(ctx, tx, digest)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM image_sets WHERE image_digest = $1`, digest); err != nil {
		return fmt.Errorf("delete old package sets: %w", err)
	}
	for _, set := range sets {
		res, err := tx.ExecContext(ctx, `INSERT INTO package_sets (id, package_count) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING`,
			set.id, len(set.pkgs))
		if err != nil {
			return fmt.Errorf("package set: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			continue // stored already, by an image with the same layer
		}
		if err := copyRows(ctx, tx, "set_packages", []string{"set_id", "idx", "type", "name", "version", "purl", "ecosystem", "match_name"}, len(set.pkgs), func(j int, args []any) []any {
			p := &pkgs[set.pkgs[j]]
			return append(args, set.id, j, p.Type, p.Name, p.Version, p.PURL, set.keys[j].Ecosystem, set.keys[j].Name)
		}); err != nil {
			return fmt.Errorf("package set rows: %w", err)
		}
	}
	if err := insertRows(ctx, tx, `INSERT INTO image_sets (image_digest, pos, set_id) VALUES `, 3, len(sets), func(i int, args []any) []any {
		return append(args, digest, i, sets[i].id)
	}); err != nil {
		return fmt.Errorf("image package sets: %w", err)
	}
	return dropUnusedSets(ctx, tx, old)
}

// imageSetIDs returns the ids of the package sets digest uses.
func imageSetIDs(ctx context.Context, tx *txw, digest string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT set_id FROM image_sets WHERE image_digest = $1`, digest)
	if err != nil {
		return nil, fmt.Errorf("package sets of %s: %w", digest, err)
	}
	ids, err := scanStrings(rows)
	if err != nil {
		return nil, fmt.Errorf("package sets of %s: %w", digest, err)
	}
	return ids, nil
}

// dropUnusedSets deletes those of ids that no image uses any more (their rows go with them).
func dropUnusedSets(ctx context.Context, tx *txw, ids []string) error {
	for _, id := range ids {
		if _, err := tx.ExecContext(ctx, `DELETE FROM package_sets WHERE id = $1
			AND NOT EXISTS (SELECT 1 FROM image_sets WHERE set_id = $1)`, id); err != nil {
			return fmt.Errorf("drop unused package set: %w", err)
		}
	}
	return nil
}
