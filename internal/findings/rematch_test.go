package findings

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/crowsnest-dev/crowsnest/internal/advisory"
	"github.com/crowsnest-dev/crowsnest/internal/match"
	"github.com/crowsnest-dev/crowsnest/internal/sbom"
	"github.com/crowsnest-dev/crowsnest/internal/store"
	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

// A re-match matches each distinct package once and assembles every image's findings from
// those results: they must be exactly what matching the image's packages gives, order included
// (the store keeps the first of two findings with one key).
func TestPerReferenceMatchesEqualPerImageMatches(t *testing.T) {
	ctx := context.Background()
	src := match.NewMemorySource()
	type key struct{ eco, name, typ string }
	var keys []key
	// Synthetic records at mixed revisions, and the genuine ones (several per key, merged
	// through aliases: the Debian openssl DLA and its per-CVE record).
	for i := range 3000 {
		a, err := advisory.Parse(osvRecord(i, i%3))
		if err != nil {
			t.Fatal(err)
		}
		src.Add(a)
		eco, name, typ := benchEco(advisoryKey(i))
		keys = append(keys, key{eco, name, typ})
		if i%10 == 0 {
			// A second, less severe vulnerability of the same package.
			var rec map[string]any
			if err := json.Unmarshal(osvRecord(i, 0), &rec); err != nil {
				t.Fatal(err)
			}
			rec["id"], rec["aliases"] = fmt.Sprintf("CVE-2023-%06d", i), []string{}
			rec["severity"] = []map[string]string{{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N"}}
			data, err := json.Marshal(rec)
			if err != nil {
				t.Fatal(err)
			}
			b, err := advisory.Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			src.Add(b)
		}
	}
	types := map[string]string{"Debian:9": sbom.TypeDeb, "Debian:11": sbom.TypeDeb, "Alpine:v3.19": sbom.TypeAPK,
		"Go": sbom.TypeGolang, "Maven": sbom.TypeMaven, "PyPI": sbom.TypePyPI, "npm": sbom.TypeNPM, "Ubuntu:22.04:LTS": sbom.TypeDeb}
	for _, dir := range []string{genuine, "../advisory/testdata/reconstructed"} {
		if _, err := advisory.Walk(ctx, dir, func(a *vuln.Advisory) error {
			src.Add(a)
			for _, af := range a.Affected {
				if typ, ok := types[af.Ecosystem]; ok {
					keys = append(keys, key{af.Ecosystem, af.Name, typ})
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	versions := []string{"0.0.1", "1.0.0", "1.2.0", "1.3.0", "1.4.0", "1.5.0", "1.9.0", "1.1.0f-3", "1.2.4-r3", "2.35-0ubuntu1", "4.11", "99"}
	byImage := map[string][]vuln.PackageRef{}
	for img := range 200 {
		d := fmt.Sprintf("sha256:%064x", img)
		var refs []vuln.PackageRef
		for p := range 40 {
			h := mix(uint64(img)<<20 | uint64(p))
			k := keys[h%uint64(len(keys))]
			v := versions[h>>32%uint64(len(versions))]
			r := vuln.PackageRef{Type: k.typ, Name: k.name, Version: v, PURL: "pkg:" + k.typ + "/" + k.name + "@" + v, Ecosystem: k.eco, MatchName: k.name}
			refs = append(refs, r)
			switch h >> 40 % 8 {
			case 0: // the same package found twice
				refs = append(refs, r)
			case 1: // the same package under another PURL: the first one counts
				r2 := r
				r2.PURL += "?arch=amd64"
				refs = append(refs, r2)
			case 2: // a package of another type with the same name and version
				r2 := r
				r2.Type, r2.PURL = sbom.TypeNPM, "pkg:npm/"+r.Name+"@"+v
				refs = append(refs, r2)
			case 3: // a package without a key
				refs = append(refs, vuln.PackageRef{Type: "generic", Name: k.name, Version: v})
			}
		}
		byImage[d] = refs
	}
	m, err := matchRefs(ctx, src, byImage)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for d, refs := range byImage {
		want, err := match.MatchPackages(ctx, src, refs)
		if err != nil {
			t.Fatal(err)
		}
		u, err := m.update(d, nil, refs)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(u.Findings, want) {
			t.Fatalf("image %s: per-reference findings\n%+v\nwant\n%+v", d, u.Findings, want)
		}
		for i := range want {
			if e, err := store.EncodeFinding(&want[i]); err != nil || !reflect.DeepEqual(u.Encoded[i], e) {
				t.Fatalf("image %s: finding %d stored as %+v, want %+v (%v)", d, i, u.Encoded[i], e, err)
			}
		}
		total += len(want)
	}
	if total < 1000 {
		t.Fatalf("only %d findings in all: the test matches too little", total)
	}
}

// An import writes each image's finding deltas (the packages' findings under the advisories
// before and after it) without reading the stored findings. After every import the stored
// findings must be exactly what matching the image now gives, and where the store does not hold
// what the deltas start from, the re-match must notice and compare with the stored findings.
func TestRematchDeltasKeepFindingsExact(t *testing.T) {
	for name, dsn := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			st := openStore(t, dsn)
			var logs bytes.Buffer
			svc := &Service{Store: st, Log: slog.New(slog.NewTextHandler(&logs, nil))}
			const advisories = 600
			dir := t.TempDir()
			archive := func(rev int, keep func(int) bool) string {
				path := filepath.Join(dir, fmt.Sprintf("rev%d-%p.zip", rev, keep))
				writeArchive(t, path, advisories, rev, keep)
				return path
			}
			if _, err := svc.Import(ctx, archive(0, nil), "bench", false); err != nil {
				t.Fatal(err)
			}
			var images []*sbom.SBOM
			for img := range 60 {
				d := fmt.Sprintf("sha256:%064x", img)
				sb := &sbom.SBOM{Image: sbom.Image{Digest: d}, OS: &sbom.OS{ID: "debian", VersionID: "12"}}
				for p := range 40 {
					h := mix(uint64(img)<<20 | uint64(p))
					_, name, typ := benchEco(advisoryKey(int(h % advisories)))
					v := "1." + fmt.Sprint(h>>32%10) + ".0"
					pkg := sbom.Package{Type: typ, Name: name, Version: v, PURL: "pkg:" + typ + "/" + name + "@" + v}
					if typ == sbom.TypeDeb {
						pkg.Source = &sbom.Source{Name: name}
					}
					sb.Packages = append(sb.Packages, pkg)
				}
				if _, err := svc.Ingest(ctx, sb, ReasonIndex); err != nil {
					t.Fatal(err)
				}
				images = append(images, sb)
			}
			check := func(step string) int {
				t.Helper()
				total := 0
				for _, sb := range images {
					want, _, err := svc.Match(ctx, sb)
					if err != nil {
						t.Fatal(err)
					}
					got, err := st.Findings(ctx, sb.Image.Digest)
					if err != nil {
						t.Fatal(err)
					}
					if a, b := encodedSet(t, got), encodedSet(t, want); !reflect.DeepEqual(a, b) {
						t.Fatalf("%s: image %s holds\n%v\nmatching gives\n%v", step, sb.Image.Digest, a, b)
					}
					total += len(want)
				}
				return total
			}
			if n := check("ingest"); n < 200 {
				t.Fatalf("only %d findings: the test matches too little", n)
			}
			third := func(i int) bool { return i%3 == 0 }
			for round, rev := range []int{1, 2, 1} {
				rep, err := svc.Import(ctx, archive(rev, third), "bench", false)
				if err != nil {
					t.Fatal(err)
				}
				if rep.Changes.Added+rep.Changes.Removed == 0 {
					t.Fatalf("round %d: nothing changed: %+v", round, rep.Changes)
				}
				check(fmt.Sprintf("round %d", round))
			}
			if strings.Contains(logs.String(), "comparing with them instead") {
				t.Fatalf("a consistent store fell back to comparing:\n%s", logs.String())
			}
			if pending, err := st.PendingRematches(ctx); err != nil || len(pending) != 0 {
				t.Fatalf("finished imports left re-matches pending: %v %v", pending, err)
			}

			// The process stops between an import's commit and its re-match: the advisories
			// are stored, the findings are not written. The next start re-matches.
			imp, err := st.BeginImport(ctx, "bench", false)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := advisory.Walk(ctx, archive(2, third), func(a *vuln.Advisory) error {
				a.Source = "bench"
				return imp.Put(a)
			}); err != nil {
				t.Fatal(err)
			}
			res, err := imp.Commit()
			if err != nil {
				t.Fatal(err)
			}
			pending, err := st.PendingRematches(ctx)
			if err != nil || !reflect.DeepEqual(pending, map[string][]store.PackageKey{res.ID: res.ChangedKeys}) {
				t.Fatalf("pending after an interrupted import: %v %v (want the %d changed keys of %s)", pending, err, len(res.ChangedKeys), res.ID)
			}
			sum, err := svc.ResumeRematches(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if sum.Added+sum.Removed == 0 {
				t.Fatalf("resuming changed nothing: %+v", sum)
			}
			check("after resuming an interrupted re-match")
			if pending, err := st.PendingRematches(ctx); err != nil || len(pending) != 0 {
				t.Fatalf("resumed re-matches still pending: %v %v", pending, err)
			}
			if _, err := svc.Import(ctx, archive(1, third), "bench", false); err != nil {
				t.Fatal(err)
			}
			check("round after resuming")

			// A finding the next import rewrites goes missing behind the re-match's back: the
			// deltas do not apply, and the re-match must compare with what is stored.
			var digest, vulnID string
			if err := st.DB().QueryRowContext(ctx, `SELECT image_digest, vuln_id FROM findings
				WHERE fixed_version = '1.3.0' ORDER BY image_digest, vuln_id LIMIT 1`).Scan(&digest, &vulnID); err != nil {
				t.Fatal(err)
			}
			if _, err := st.DB().ExecContext(ctx, `DELETE FROM findings WHERE image_digest = $1 AND vuln_id = $2`, digest, vulnID); err != nil {
				t.Fatal(err)
			}
			if _, err := svc.Import(ctx, archive(2, third), "bench", false); err != nil {
				t.Fatal(err)
			}
			check("after a finding went missing")
			if !strings.Contains(logs.String(), "comparing with them instead") {
				t.Fatal("the re-match did not notice that a finding it rewrote was missing")
			}
		})
	}
}

// encodedSet is the stored form of each finding, sorted.
func encodedSet(t *testing.T, fs []vuln.Finding) []string {
	t.Helper()
	out := make([]string, len(fs))
	for i := range fs {
		data, err := json.Marshal(&fs[i])
		if err != nil {
			t.Fatal(err)
		}
		out[i] = string(data)
	}
	sort.Strings(out)
	return out
}
