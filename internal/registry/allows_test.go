package registry

import "testing"

// Allows is the filter webhook events are held to; it must agree with the listing's.
func TestConfigAllows(t *testing.T) {
	cfg, err := ParseConfigEnv("type=artifactory,registry=rt.example.com,api=https://rt.example.com/artifactory,"+
		"include=*/frontend*,include=*/team/*,exclude=*/team/legacy*,exclude=*/dta/*,repository=docker-local", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	for repo, want := range map[string]bool{
		"docker-local/frontend-web":     true,
		"docker-local/backend":          false,
		"docker-local/dta/frontend-old": false,
		"docker-local/team/app":         true,
		"docker-local/team/legacy-app":  false,
		"other-local/frontend-web":      true,
		// * matches '/' too, as Docker Scout's documented include/exclude pair needs.
		"docker-local/team/app/subimage":   true,
		"docker-local/apps/frontend-api":   true,
		"docker-local/dta/team/frontend-x": false,
	} {
		if got := cfg.Allows(repo); got != want {
			t.Errorf("Allows(%q) = %v, want %v", repo, got, want)
		}
	}
	if !(Config{}).Allows("anything/at/all") {
		t.Error("a config without globs must allow everything")
	}
}
