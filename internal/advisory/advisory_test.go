package advisory

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustParse(t *testing.T, name string) *vuln.Advisory {
	t.Helper()
	a, err := Parse(readTestdata(t, name))
	if err != nil {
		t.Fatalf("Parse(%s): %v", name, err)
	}
	return a
}

func TestParseGo(t *testing.T) {
	a := mustParse(t, "osv/Go/GO-2022-0969.json")
	if a.ID != "GO-2022-0969" || a.Withdrawn != nil {
		t.Fatalf("id/withdrawn: %+v", a)
	}
	if got := strings.Join(a.Aliases, ","); got != "CVE-2022-27664,GHSA-69cg-p879-7622" {
		t.Errorf("aliases = %s", got)
	}
	if a.Published.Format("2006-01-02") != "2022-09-12" || !a.Modified.IsZero() && a.Modified.Year() != 1 {
		t.Errorf("times: %v %v", a.Published, a.Modified)
	}
	if len(a.Affected) != 2 || a.Affected[0].Name != "stdlib" || a.Affected[1].Name != "golang.org/x/net" {
		t.Fatalf("affected: %+v", a.Affected)
	}
	ev := a.Affected[0].Ranges[0].Events
	if len(ev) != 4 || ev[2].Introduced != "1.19.0-0" || ev[3].Fixed != "1.19.1" {
		t.Errorf("events: %+v", ev)
	}
	if len(a.Severity) != 0 || a.Affected[0].EcosystemSeverity != "" {
		t.Errorf("Go records carry no severity: %+v %q", a.Severity, a.Affected[0].EcosystemSeverity)
	}
}

func TestParseWithdrawn(t *testing.T) {
	a := mustParse(t, "osv/Go/GO-2024-2442.json")
	if a.Withdrawn == nil || a.Withdrawn.Format("2006-01-02T15:04:05Z") != "2024-01-23T12:50:23Z" {
		t.Fatalf("withdrawn = %v", a.Withdrawn)
	}
}

func TestParseGHSA(t *testing.T) {
	a := mustParse(t, "osv/npm/GHSA-whgm-jr23-g3j9.json")
	if len(a.Severity) != 1 || a.Severity[0].Type != "CVSS_V3" || a.Severity[0].Score != 7.5 {
		t.Fatalf("severity = %+v, want CVSS_V3 7.5", a.Severity)
	}
	// GHSA's own rating sits in the top-level database_specific.
	if a.Affected[0].EcosystemSeverity != vuln.SeverityHigh {
		t.Errorf("ecosystem severity = %q", a.Affected[0].EcosystemSeverity)
	}
	if len(a.References) != 7 || a.References[1] != "https://nvd.nist.gov/vuln/detail/CVE-2021-23424" {
		t.Errorf("references = %v", a.References)
	}
	m := mustParse(t, "osv/Maven/GHSA-269g-pwp5-87pp.json")
	if m.Affected[0].Name != "junit:junit" || m.Affected[0].EcosystemSeverity != vuln.SeverityMedium {
		t.Errorf("maven: %+v", m.Affected[0])
	}
	if m.Severity[0].Score != 4.4 {
		t.Errorf("maven CVSS = %+v, want 4.4", m.Severity)
	}
}

func TestParseDistributions(t *testing.T) {
	d := mustParse(t, "osv/Debian/DLA-3008-1.json")
	// Debian names its CVE in upstream, not aliases.
	if got := strings.Join(d.Aliases, ","); got != "CVE-2022-1292,DEBIAN-CVE-2022-1292" {
		t.Errorf("DLA aliases = %s", got)
	}
	if d.Affected[0].Ecosystem != "Debian:9" || len(d.Affected[0].Versions) != 19 {
		t.Errorf("DLA affected: %+v", d.Affected[0])
	}
	al := mustParse(t, "osv/Alpine/ALPINE-CVE-2025-26519.json")
	if len(al.Affected) != 9 || al.Affected[3].Ecosystem != "Alpine:v3.19" || al.Affected[3].Ranges[0].Events[1].Fixed != "1.2.4_git20230717-r5" {
		t.Errorf("alpine affected: %+v", al.Affected)
	}
	if al.Severity[0].Score != 7.0 {
		t.Errorf("alpine CVSS = %+v, want 7.0", al.Severity)
	}
	u := mustParse(t, "osv/Ubuntu/USN-8611-1.json")
	// The notice's packages take the highest Ubuntu priority of its CVEs.
	if u.Affected[0].EcosystemSeverity != vuln.SeverityMedium {
		t.Errorf("USN severity = %q", u.Affected[0].EcosystemSeverity)
	}
	if len(u.Aliases) != 14 {
		t.Errorf("USN aliases = %v", u.Aliases)
	}
	dc := mustParse(t, "reconstructed/DEBIAN-CVE-2022-1292.json")
	if dc.Affected[0].EcosystemSeverity != vuln.SeverityLow {
		t.Errorf("Debian urgency = %q", dc.Affected[0].EcosystemSeverity)
	}
}

func TestParsePyPINormalizesNames(t *testing.T) {
	rec := `{"id":"X-1","affected":[{"package":{"ecosystem":"PyPI","name":"Zope.Interface"}},
	{"package":{"ecosystem":"NuGet","name":"Newtonsoft.Json"}},{"package":{"ecosystem":"Packagist","name":"Symfony/HTTP-Kernel"}},
	{"package":{"ecosystem":"","name":"x"}},{"ranges":[{"type":"GIT","events":[{"introduced":"0"}]}]}]}`
	a, err := Parse([]byte(rec))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, af := range a.Affected {
		names = append(names, af.Name)
	}
	if got := strings.Join(names, ","); got != "zope-interface,newtonsoft.json,symfony/http-kernel" {
		t.Errorf("names = %s", got)
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{``, `[]`, `{}`, `{"id":""}`, `{"id":1}`, `{"id":"X","modified":"yesterday"}`, `{"id":"X","affected":{}}`} {
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("Parse(%q) succeeded", in)
		}
	}
	// Numeric scores where a vector belongs are kept as scores; bad vectors keep the vector.
	a, err := Parse([]byte(`{"id":"X","severity":[{"type":"CVSS_V3","score":"9.8"},{"type":"CVSS_V3","score":"CVSS:3.1/AV:X"},{"type":"Ubuntu","score":"high"}]}`))
	if err != nil || len(a.Severity) != 2 || a.Severity[0].Score != 9.8 || a.Severity[1].Score != 0 {
		t.Fatalf("severity = %+v, %v", a, err)
	}
}

func collect(t *testing.T, path string) ([]string, Stats, error) {
	t.Helper()
	var ids []string
	st, err := Walk(context.Background(), path, func(a *vuln.Advisory) error {
		ids = append(ids, a.ID)
		return nil
	})
	sort.Strings(ids)
	return ids, st, err
}

func TestWalkFileAndDir(t *testing.T) {
	ids, st, err := collect(t, "testdata/osv/npm/GHSA-whgm-jr23-g3j9.json")
	if err != nil || len(ids) != 1 || st.Read != 1 {
		t.Fatalf("file: %v %+v %v", ids, st, err)
	}
	ids, st, err = collect(t, "testdata/osv")
	if err != nil || st.Read != 9 || st.Withdrawn != 1 || st.Skipped != 0 {
		t.Fatalf("dir: %v %+v %v", ids, st, err)
	}
	// A malformed file in a tree is skipped and counted, with its name in the errors.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "good.json"), readTestdata(t, "osv/Go/GO-2020-0001.json"), 0o644)
	os.WriteFile(filepath.Join(dir, "bad.json"), []byte(`{"id": `), 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte(`ignored`), 0o644)
	ids, st, err = collect(t, dir)
	if err != nil || len(ids) != 1 || st.Skipped != 1 || !strings.Contains(st.Errors[0], "bad.json") {
		t.Fatalf("dir with bad file: %v %+v %v", ids, st, err)
	}
	// A single malformed file is an error.
	if _, _, err := collect(t, filepath.Join(dir, "bad.json")); err == nil {
		t.Fatal("single malformed file: no error")
	}
}

type zipEntry struct {
	name string
	data []byte
}

func writeZip(t testing.TB, entries []zipEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		w, err := zw.Create(e.name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(e.data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func testdataZip(t testing.TB) []byte {
	var entries []zipEntry
	for _, n := range []string{"osv/Go/GO-2020-0001.json", "osv/Go/GO-2024-2442.json", "osv/Debian/DLA-3008-1.json", "osv/Alpine/ALPINE-CVE-2025-26519.json"} {
		entries = append(entries, zipEntry{filepath.Base(n), readTestdata(t, n)})
	}
	entries = append(entries, zipEntry{"broken.json", []byte(`{"id": "X", "affected": 5}`)})
	return writeZip(t, entries)
}

func TestWalkZip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "all.zip")
	os.WriteFile(path, testdataZip(t), 0o644)
	ids, st, err := collect(t, path)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ids, ","); got != "ALPINE-CVE-2025-26519,DLA-3008-1,GO-2020-0001,GO-2024-2442" {
		t.Errorf("ids = %s", got)
	}
	if st.Read != 4 || st.Skipped != 1 || st.Withdrawn != 1 || len(st.Errors) != 1 || !strings.Contains(st.Errors[0], "all.zip!broken.json") {
		t.Errorf("stats = %+v", st)
	}
	// The callback's error stops the walk and comes back as is.
	stop := errors.New("stop")
	if _, err := Walk(context.Background(), path, func(*vuln.Advisory) error { return stop }); err != stop {
		t.Errorf("callback error = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Walk(ctx, path, func(*vuln.Advisory) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled walk = %v", err)
	}
}

func TestWalkBrokenArchives(t *testing.T) {
	dir := t.TempDir()
	good := testdataZip(t)
	cases := map[string][]byte{
		"notzip.zip":    []byte("this is not a zip archive at all"),
		"truncated.zip": good[:len(good)/2],
		"empty.zip":     nil,
	}
	// A corrupt entry: flip bytes inside the first entry's compressed data.
	corrupt := bytes.Clone(good)
	for i := 60; i < 90; i++ {
		corrupt[i] ^= 0xff
	}
	cases["corrupt.zip"] = corrupt
	for name, data := range cases {
		path := filepath.Join(dir, name)
		os.WriteFile(path, data, 0o644)
		n := 0
		_, err := Walk(context.Background(), path, func(*vuln.Advisory) error { n++; return nil })
		if !errors.Is(err, ErrBrokenArchive) {
			t.Errorf("%s: err = %v, want ErrBrokenArchive", name, err)
		}
	}
}

func TestWalkZipBomb(t *testing.T) {
	// One entry inflating past MaxRecordSize from a few KB.
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("bomb.json")
	chunk := bytes.Repeat([]byte(" "), 1<<20)
	for i := 0; i < MaxRecordSize>>20+1; i++ {
		w.Write(chunk)
	}
	zw.Close()
	if buf.Len() > 1<<20 {
		t.Fatalf("bomb is %d bytes", buf.Len())
	}
	path := filepath.Join(t.TempDir(), "bomb.zip")
	os.WriteFile(path, buf.Bytes(), 0o644)
	_, err := Walk(context.Background(), path, func(*vuln.Advisory) error { return nil })
	if !errors.Is(err, ErrBrokenArchive) || !strings.Contains(err.Error(), "zip bomb") {
		t.Fatalf("bomb: %v", err)
	}
}

func TestFetchConditional(t *testing.T) {
	body := testdataZip(t)
	requests := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests++
		if r.URL.Path != "/Debian/all.zip" {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Last-Modified", "Mon, 02 Jan 2026 15:04:05 GMT")
		w.Write(body)
	}))
	defer srv.Close()
	dir := t.TempDir()
	ctx := context.Background()
	src := DefaultSources([]string{"Debian:12"}, srv.URL)[0]
	path, v, nm, err := Fetch(ctx, srv.Client(), src.URL, dir, Validators{})
	if err != nil || nm || v.ETag != `"v1"` || v.LastModified == "" {
		t.Fatalf("first fetch: %q %+v %v %v", path, v, nm, err)
	}
	if filepath.Dir(path) != dir {
		t.Errorf("downloaded to %s, not inside %s", path, dir)
	}
	ids, _, err := collect(t, path)
	if err != nil || len(ids) != 4 {
		t.Fatalf("walk downloaded archive: %v %v", ids, err)
	}
	path2, v2, nm, err := Fetch(ctx, srv.Client(), src.URL, dir, v)
	if err != nil || !nm || path2 != "" || v2 != v {
		t.Fatalf("conditional fetch: %q %+v %v %v", path2, v2, nm, err)
	}
	if _, _, _, err := Fetch(ctx, srv.Client(), srv.URL+"/missing/all.zip", dir, Validators{}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("404: %v", err)
	}
	if requests != 3 {
		t.Errorf("requests = %d", requests)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temp files left: %d", len(entries))
	}
}

func TestFetchTruncated(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.Write([]byte("short"))
	}))
	defer srv.Close()
	dir := t.TempDir()
	if _, _, _, err := Fetch(context.Background(), srv.Client(), srv.URL, dir, Validators{}); err == nil {
		t.Fatal("truncated download accepted")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("temp file left behind")
	}
}

func TestDefaultSources(t *testing.T) {
	got := DefaultSources([]string{"Debian:12", "Debian:11", "Ubuntu:22.04", "Red Hat:9", "PyPI", "crates.io", "Nope", "Alpine:v3.19"}, "")
	var urls []string
	for _, s := range got {
		urls = append(urls, s.URL)
	}
	want := []string{
		OSVBaseURL + "/Alpine/all.zip",
		OSVBaseURL + "/Debian/all.zip",
		OSVBaseURL + "/PyPI/all.zip",
		OSVBaseURL + "/Red%20Hat/all.zip",
		OSVBaseURL + "/Ubuntu/all.zip",
		OSVBaseURL + "/crates.io/all.zip",
	}
	if strings.Join(urls, "\n") != strings.Join(want, "\n") {
		t.Errorf("sources:\n%s\nwant:\n%s", strings.Join(urls, "\n"), strings.Join(want, "\n"))
	}
	m := DefaultSources([]string{"Go"}, "http://mirror.internal/osv/")
	if len(m) != 1 || m[0].URL != "http://mirror.internal/osv/Go/all.zip" {
		t.Errorf("mirror: %+v", m)
	}
}

func FuzzParse(f *testing.F) {
	for _, n := range []string{"osv/Go/GO-2022-0969.json", "osv/npm/GHSA-whgm-jr23-g3j9.json", "osv/Ubuntu/USN-8611-1.json", "reconstructed/DEBIAN-CVE-2022-1292.json"} {
		f.Add(readTestdata(f, n))
	}
	f.Add([]byte(`{"id":"X","severity":[{"type":"CVSS_V4","score":"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Parse(data)
		if err == nil && a.ID == "" {
			t.Fatal("advisory without id")
		}
	})
}

func FuzzWalkZip(f *testing.F) {
	f.Add(testdataZip(f))
	f.Add(writeZip(f, []zipEntry{{"a.json", []byte(`{"id":"A"}`)}, {"dir/", nil}}))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		// Fuzz workers run in parallel: one file each.
		tmp, err := os.CreateTemp(dir, "fuzz-*.zip")
		if err != nil {
			t.Fatal(err)
		}
		path := tmp.Name()
		defer os.Remove(path)
		_, err = tmp.Write(data)
		tmp.Close()
		if err != nil {
			t.Fatal(err)
		}
		// Small bounds keep inflating hostile entries cheap under coverage instrumentation;
		// the bound logic is the same.
		lim := limits{record: 64 << 10, total: 1 << 20, entries: 1000}
		st, err := walk(context.Background(), path, lim, func(a *vuln.Advisory) error {
			if a.ID == "" {
				t.Fatal("advisory without id")
			}
			return nil
		})
		if err == nil && st.Read+st.Skipped > lim.entries {
			t.Fatal("entry bound not held")
		}
	})
}
