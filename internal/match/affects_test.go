package match

import (
	"errors"
	"testing"

	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

func rng(typ string, events ...vuln.Event) vuln.Range { return vuln.Range{Type: typ, Events: events} }
func intro(v string) vuln.Event                       { return vuln.Event{Introduced: v} }
func fix(v string) vuln.Event                         { return vuln.Event{Fixed: v} }
func last(v string) vuln.Event                        { return vuln.Event{LastAffected: v} }
func limit(v string) vuln.Event                       { return vuln.Event{Limit: v} }

func TestAffectsEdgeCases(t *testing.T) {
	tests := []struct {
		name      string
		aff       vuln.Affected
		version   string
		affected  bool
		fixed     string
		rangeText string
	}{
		// Debian: epochs outrank everything; "~" sorts before the empty string.
		{"debian epoch below fix", vuln.Affected{Ecosystem: "Debian:12", Ranges: []vuln.Range{rng("ECOSYSTEM", intro("0"), fix("1:1.2.13.dfsg-1"))}},
			"1.2.13.dfsg-1", true, "1:1.2.13.dfsg-1", "<1:1.2.13.dfsg-1"},
		{"debian epoch above fix", vuln.Affected{Ecosystem: "Debian:12", Ranges: []vuln.Range{rng("ECOSYSTEM", intro("0"), fix("2.0-1"))}},
			"1:1.0-1", false, "", ""},
		{"debian tilde before release", vuln.Affected{Ecosystem: "Debian:12", Ranges: []vuln.Range{rng("ECOSYSTEM", intro("0"), fix("3.0.11-1~deb12u2"))}},
			"3.0.11-1~deb12u1", true, "3.0.11-1~deb12u2", "<3.0.11-1~deb12u2"},
		{"debian tilde fix reached", vuln.Affected{Ecosystem: "Debian:12", Ranges: []vuln.Range{rng("ECOSYSTEM", intro("0"), fix("3.0.11-1~deb12u2"))}},
			"3.0.11-1~deb12u2", false, "", ""},
		{"debian tilde sorts below plain revision", vuln.Affected{Ecosystem: "Debian:12", Ranges: []vuln.Range{rng("ECOSYSTEM", intro("0"), fix("1.0-1"))}},
			"1.0-1~bpo1", true, "1.0-1", "<1.0-1"},
		{"ubuntu revision", vuln.Affected{Ecosystem: "Ubuntu:22.04:LTS", Ranges: []vuln.Range{rng("ECOSYSTEM", intro("0"), fix("2.35-0ubuntu3.14"))}},
			"2.35-0ubuntu3.9", true, "2.35-0ubuntu3.14", "<2.35-0ubuntu3.14"},
		// Alpine: -rN release suffixes compare numerically; _p patches come after the release.
		{"apk release suffix numeric", vuln.Affected{Ecosystem: "Alpine:v3.19", Ranges: []vuln.Range{rng("ECOSYSTEM", intro("0"), fix("1.36.1-r30"))}},
			"1.36.1-r29", true, "1.36.1-r30", "<1.36.1-r30"},
		{"apk release suffix r10 above r9", vuln.Affected{Ecosystem: "Alpine:v3.21", Ranges: []vuln.Range{rng("ECOSYSTEM", intro("0.9.13"), fix("1.2.5-r9"))}},
			"1.2.5-r10", false, "", ""},
		{"apk _p patch above release", vuln.Affected{Ecosystem: "Alpine:v3.19", Ranges: []vuln.Range{rng("ECOSYSTEM", intro("0"), fix("9.6_p1-r0"))}},
			"9.6-r0", true, "9.6_p1-r0", "<9.6_p1-r0"},
		{"apk _p patch fixed", vuln.Affected{Ecosystem: "Alpine:v3.19", Ranges: []vuln.Range{rng("ECOSYSTEM", intro("0"), fix("9.6_p1-r0"))}},
			"9.6_p1-r1", false, "", ""},
		{"apk _git snapshot below fix", vuln.Affected{Ecosystem: "Alpine:v3.19", Ranges: []vuln.Range{rng("ECOSYSTEM", intro("0.9.13"), fix("1.2.4_git20230717-r5"))}},
			"1.2.4_git20230717-r4", true, "1.2.4_git20230717-r5", ">=0.9.13 <1.2.4_git20230717-r5"},
		// PEP 440: dev < pre < release < post.
		{"pypi dev below release", vuln.Affected{Ecosystem: "PyPI", Ranges: []vuln.Range{rng("ECOSYSTEM", intro("2.3.0"), fix("2.31.0"))}},
			"2.31.0.dev1", true, "2.31.0", ">=2.3.0 <2.31.0"},
		{"pypi rc below release", vuln.Affected{Ecosystem: "PyPI", Ranges: []vuln.Range{rng("ECOSYSTEM", intro("0"), fix("2.0"))}},
			"2.0rc1", true, "2.0", "<2.0"},
		{"pypi post above release", vuln.Affected{Ecosystem: "PyPI", Ranges: []vuln.Range{rng("ECOSYSTEM", intro("0"), fix("2.0"))}},
			"2.0.post1", false, "", ""},
		{"pypi pre below introduced", vuln.Affected{Ecosystem: "PyPI", Ranges: []vuln.Range{rng("ECOSYSTEM", intro("2.3.0"), fix("2.31.0"))}},
			"2.3.0a1", false, "", ""},
		// Semver: pre-releases sort before their release.
		{"semver prerelease below fix", vuln.Affected{Ecosystem: "npm", Ranges: []vuln.Range{rng("SEMVER", intro("0"), fix("4.17.21"))}},
			"4.17.21-beta.1", true, "4.17.21", "<4.17.21"},
		{"semver prerelease below introduced", vuln.Affected{Ecosystem: "Go", Ranges: []vuln.Range{rng("SEMVER", intro("1.19.0"), fix("1.19.1"))}},
			"1.19.0-rc.1", false, "", ""},
		{"go -0 introduced covers prereleases", vuln.Affected{Ecosystem: "Go", Ranges: []vuln.Range{rng("SEMVER", intro("0"), fix("1.18.6"), intro("1.19.0-0"), fix("1.19.1"))}},
			"1.19.0-rc.1", true, "1.19.1", ">=1.19.0-0 <1.19.1"},
		// Maven qualifiers: alpha < beta < milestone < rc < snapshot < release < sp.
		{"maven rc below release", vuln.Affected{Ecosystem: "Maven", Ranges: []vuln.Range{rng("ECOSYSTEM", intro("4.7"), fix("4.13.1"))}},
			"4.13-rc-2", true, "4.13.1", ">=4.7 <4.13.1"},
		{"maven beta below introduced", vuln.Affected{Ecosystem: "Maven", Ranges: []vuln.Range{rng("ECOSYSTEM", intro("4.7"), fix("4.13.1"))}},
			"4.7-beta-1", false, "", ""},
		{"maven final equals release", vuln.Affected{Ecosystem: "Maven", Ranges: []vuln.Range{rng("ECOSYSTEM", intro("0"), fix("2.17.1"))}},
			"2.17.1.Final", false, "", ""},
		{"maven sp after release", vuln.Affected{Ecosystem: "Maven", Ranges: []vuln.Range{rng("ECOSYSTEM", intro("0"), fix("1.0-sp1"))}},
			"1.0", true, "1.0-sp1", "<1.0-sp1"},
		// last_affected is inclusive; fixed is exclusive.
		{"last_affected inclusive", vuln.Affected{Ecosystem: "PyPI", Ranges: []vuln.Range{rng("ECOSYSTEM", intro("1.0"), last("1.4.2"))}},
			"1.4.2", true, "", ">=1.0 <=1.4.2"},
		{"above last_affected", vuln.Affected{Ecosystem: "PyPI", Ranges: []vuln.Range{rng("ECOSYSTEM", intro("1.0"), last("1.4.2"))}},
			"1.4.3", false, "", ""},
		{"fixed exclusive", vuln.Affected{Ecosystem: "PyPI", Ranges: []vuln.Range{rng("ECOSYSTEM", intro("1.0"), fix("1.4.2"))}},
			"1.4.2", false, "", ""},
		{"open ended", vuln.Affected{Ecosystem: "npm", Ranges: []vuln.Range{rng("SEMVER", intro("1.0.0"))}},
			"9.9.9", true, "", ">=1.0.0"},
		{"every version", vuln.Affected{Ecosystem: "npm", Ranges: []vuln.Range{rng("SEMVER", intro("0"))}},
			"0.0.1", true, "", "*"},
		// limit bounds the range from above.
		{"below limit", vuln.Affected{Ecosystem: "npm", Ranges: []vuln.Range{rng("SEMVER", intro("1.0.0"), limit("2.0.0"))}},
			"1.5.0", true, "", ">=1.0.0"},
		{"at limit", vuln.Affected{Ecosystem: "npm", Ranges: []vuln.Range{rng("SEMVER", intro("1.0.0"), limit("2.0.0"))}},
			"2.0.0", false, "", ""},
		{"limit star", vuln.Affected{Ecosystem: "npm", Ranges: []vuln.Range{rng("SEMVER", intro("1.0.0"), limit("*"))}},
			"5.0.0", true, "", ">=1.0.0"},
		// Events out of order are sorted before evaluation.
		{"unsorted events", vuln.Affected{Ecosystem: "npm", Ranges: []vuln.Range{rng("SEMVER", fix("2.0.1"), intro("2.0.0"), fix("1.0.1"), intro("0"))}},
			"2.0.0", true, "2.0.1", ">=2.0.0 <2.0.1"},
		{"between two intervals", vuln.Affected{Ecosystem: "npm", Ranges: []vuln.Range{rng("SEMVER", intro("0"), fix("1.0.1"), intro("2.0.0"), fix("2.0.1"))}},
			"1.5.0", false, "", ""},
		// Several ranges: any matches; the nearest fix is reported.
		{"several ranges", vuln.Affected{Ecosystem: "PyPI", Ranges: []vuln.Range{
			rng("ECOSYSTEM", intro("3.0"), fix("3.2")),
			rng("ECOSYSTEM", intro("2.0"), fix("2.8.1")),
		}}, "2.5", true, "2.8.1", ">=2.0 <2.8.1"},
		{"several ranges none", vuln.Affected{Ecosystem: "PyPI", Ranges: []vuln.Range{
			rng("ECOSYSTEM", intro("3.0"), fix("3.2")),
			rng("ECOSYSTEM", intro("2.0"), fix("2.8.1")),
		}}, "2.9", false, "", ""},
		// GIT ranges name commits: ignored.
		{"git range ignored", vuln.Affected{Ecosystem: "PyPI", Ranges: []vuln.Range{rng("GIT", intro("0"), fix("74ea7cf7a6a27a4eeb2ae24e162bcc942a6706d5"))}},
			"2.0", false, "", ""},
		// Versions lists: exact versions, also for ecosystems without ranges.
		{"versions list", vuln.Affected{Ecosystem: "Debian:9", Versions: []string{"1.1.0f-3", "1.1.0l-1~deb9u5"}},
			"1.1.0l-1~deb9u5", true, "", "=1.1.0l-1~deb9u5"},
		{"versions list miss", vuln.Affected{Ecosystem: "Debian:9", Versions: []string{"1.1.0f-3"}},
			"1.1.0f-4", false, "", ""},
		{"versions list and range: range wins the text", vuln.Affected{Ecosystem: "Debian:9", Versions: []string{"1.1.0f-3"},
			Ranges: []vuln.Range{rng("ECOSYSTEM", intro("0"), fix("1.1.0l-1~deb9u6"))}},
			"1.1.0f-3", true, "1.1.0l-1~deb9u6", "<1.1.0l-1~deb9u6"},
		// RPM: epoch:version-release.
		{"rpm release", vuln.Affected{Ecosystem: "Rocky Linux:9", Ranges: []vuln.Range{rng("ECOSYSTEM", intro("0"), fix("1:3.0.7-25.el9_3"))}},
			"1:3.0.7-24.el9", true, "1:3.0.7-25.el9_3", "<1:3.0.7-25.el9_3"},
		{"nuget", vuln.Affected{Ecosystem: "NuGet", Ranges: []vuln.Range{rng("ECOSYSTEM", intro("0"), fix("13.0.1"))}},
			"12.0.3", true, "13.0.1", "<13.0.1"},
		{"rubygems prerelease", vuln.Affected{Ecosystem: "RubyGems", Ranges: []vuln.Range{rng("ECOSYSTEM", intro("0"), fix("1.13.10"))}},
			"1.13.10.rc1", true, "1.13.10", "<1.13.10"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			aff, fixed, text := Affects(&tc.aff, tc.version)
			if aff != tc.affected || fixed != tc.fixed || text != tc.rangeText {
				t.Fatalf("Affects(%s) = %v %q %q, want %v %q %q", tc.version, aff, fixed, text, tc.affected, tc.fixed, tc.rangeText)
			}
		})
	}
}

func TestAffectsUnparsable(t *testing.T) {
	a := &vuln.Affected{Ecosystem: "Debian:12", Name: "x", Ranges: []vuln.Range{rng("ECOSYSTEM", intro("0"), fix("1.0-1"))}}
	v, err := Evaluate(a, "not a version!")
	if !errors.Is(err, ErrUnparsable) || v.Affected {
		t.Fatalf("Evaluate(garbage) = %+v, %v; want not affected and ErrUnparsable", v, err)
	}
	if aff, _, _ := Affects(a, ""); aff {
		t.Fatal("empty version must not be affected")
	}
	// An unparsable event is skipped with a warning; the rest of the range still applies.
	b := &vuln.Affected{Ecosystem: "PyPI", Ranges: []vuln.Range{rng("ECOSYSTEM", intro("0"), fix("not/a/version"), fix("2.0"))}}
	v, err = Evaluate(b, "1.5")
	if err != nil || !v.Affected || v.Fixed != "2.0" || len(v.Warnings) != 1 {
		t.Fatalf("Evaluate with bad event = %+v, %v", v, err)
	}
	// Unknown ecosystem: no ordering, not affected, error.
	c := &vuln.Affected{Ecosystem: "Nonexistent", Ranges: []vuln.Range{rng("ECOSYSTEM", intro("0"))}}
	if v, err := Evaluate(c, "1.0"); err == nil || v.Affected {
		t.Fatalf("unknown ecosystem: %+v, %v", v, err)
	}
}

func FuzzAffects(f *testing.F) {
	f.Add("Debian:12", "1:1.2.3-1~deb12u1", "0", "1.2.4-1", "", "")
	f.Add("Alpine:v3.19", "1.2.4_git20230717-r4", "0.9.13", "1.2.4_git20230717-r5", "", "")
	f.Add("PyPI", "2.0.post1.dev3", "1.0a1", "", "2.0", "")
	f.Add("npm", "1.0.0-beta.1+build", "0", "1.0.0", "", "2.0.0")
	f.Add("Maven", "1.0-SNAPSHOT", "0", "1.0.Final", "", "")
	f.Add("Red Hat:9", "1:3.0.7-24.el9", "0", "1:3.0.7-25.el9_3", "", "")
	f.Add("Go", "v0.0.0-20220906165146-f3363e06e74c", "0", "0.0.0-20220906165146-f3363e06e74c", "", "")
	f.Fuzz(func(t *testing.T, eco, version, in, fx, la, lim string) {
		a := &vuln.Affected{Ecosystem: eco, Versions: []string{fx}, Ranges: []vuln.Range{
			rng("ECOSYSTEM", intro(in), fix(fx), last(la), limit(lim)),
			rng("SEMVER", intro("0"), fix(version)),
		}}
		v, err := Evaluate(a, version)
		if err != nil && v.Affected {
			t.Fatalf("affected despite error %v", err)
		}
	})
}
