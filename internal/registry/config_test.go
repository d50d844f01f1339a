package registry

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

const canonical1 = `type=artifactory,registry=example.jfrog.io,api=https://example.jfrog.io/artifactory,include=*/frontend*,exclude=*/dta/*,repository=docker-local,port=9000,subdomain-mode=true`

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

var secretEnv = env(map[string]string{
	"CROWSNEST_ARTIFACTORY_WEBHOOK_SECRET": "hook-secret-value",
	"CROWSNEST_ARTIFACTORY_API_USER":       "ci",
	"CROWSNEST_ARTIFACTORY_API_PASSWORD":   "api-password-value",
})

func TestParseCanonical(t *testing.T) {
	// Both documented invocations carry the same --registry string verbatim.
	c, err := ParseConfigEnv(canonical1, secretEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Type: TypeArtifactory, Registry: "example.jfrog.io", API: "https://example.jfrog.io/artifactory",
		Repositories: []string{"docker-local"}, Includes: []string{"*/frontend*"}, Excludes: []string{"*/dta/*"},
		Port: 9000, SubdomainMode: true, Listing: ListingAuto,
		Creds: Credentials{APIUser: "ci", APIPassword: "api-password-value", WebhookSecret: "hook-secret-value"},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %#v\nwant %#v", c, want)
	}
	a, _ := NewArtifactory(c, Options{})
	if got := a.ImageRef("docker-local/team/frontend-web", "1.0"); got != "docker-local.example.jfrog.io/team/frontend-web:1.0" {
		t.Errorf("ImageRef %s", got)
	}
}

func TestParseConfig(t *testing.T) {
	base := "type=artifactory,registry=rt.example.com,api=https://rt.example.com/artifactory,repository=docker-local"
	cases := []struct {
		in    string
		check func(Config) bool
	}{
		{"registry.example.com:5000", func(c Config) bool { return c.Type == TypeOCI && c.Registry == "registry.example.com:5000" }},
		{"type=oci,registry=localhost:5000,insecure=true,include=team/*", func(c Config) bool {
			return c.Type == TypeOCI && c.Insecure && reflect.DeepEqual(c.Includes, []string{"team/*"})
		}},
		// Docker Scout's quoting of the whole pair, our quoting of the value, repeated keys.
		{base + `,"include=*/a*,*/b*",exclude="*/x/*,*/y/*",exclude=*/z/*`, func(c Config) bool {
			return reflect.DeepEqual(c.Includes, []string{"*/a*", "*/b*"}) && reflect.DeepEqual(c.Excludes, []string{"*/x/*", "*/y/*", "*/z/*"})
		}},
		{`type=artifactory,registry=rt.example.com,api=https://rt.example.com/artifactory,"repository=docker-test1,docker-test2"`, func(c Config) bool {
			return reflect.DeepEqual(c.Repositories, []string{"docker-test1", "docker-test2"})
		}},
		{base + `,includes="a\"b"`, func(c Config) bool { return c.Includes[0] == `a"b` }},
		{base + `,INCLUDES=x , subdomain-mode = false`, func(c Config) bool { return c.Includes[0] == "x" && !c.SubdomainMode }},
		{base + ",registry-template={server}-{repo}.jfrog.io", func(c Config) bool { return c.RegistryTemplate == "{server}-{repo}.jfrog.io" }},
		{base + `,"registry-port=8876,docker-dev:8877"`, func(c Config) bool {
			return reflect.DeepEqual(c.RegistryPorts, map[string]int{"": 8876, "docker-dev": 8877})
		}},
		{base + ",listing=CATALOG,api=https://x/artifactory/", nil}, // api twice
		{base + ",listing=CATALOG", func(c Config) bool { return c.Listing == ListingCatalog }},
		{strings.Replace(base, "api=https://rt.example.com/artifactory", "api=http://127.0.0.1:8081/artifactory/", 1), func(c Config) bool {
			return c.API == "http://127.0.0.1:8081/artifactory"
		}},
	}
	for _, tc := range cases {
		c, err := ParseConfigEnv(tc.in, env(nil))
		if tc.check == nil {
			if err == nil {
				t.Errorf("%s: want error", tc.in)
			}
			continue
		}
		if err != nil || !tc.check(c) {
			t.Errorf("%s: %v %#v", tc.in, err, c)
		}
	}
}

func TestParseConfigErrors(t *testing.T) {
	base := "type=artifactory,registry=rt.example.com,api=https://rt.example.com/artifactory,repository=docker-local"
	cases := []struct{ in, want string }{
		{"", "empty"},
		{"type=harbour,registry=x", `unknown type "harbour" (known types: artifactory, oci)`},
		{"registry=x.io,api=https://x", `missing required key "type"`},
		{base + ",colour=blue", `unknown key "colour" for type=artifactory (accepted keys: api, exclude, excludes, include, includes, insecure, listing, port, registry, registry-port, registry-template, repository, subdomain-mode, type)`},
		{"type=oci,registry=x.io,api=https://x", `unknown key "api" for type=oci`},
		{"type=artifactory,api=https://x/artifactory,repository=r", `missing required key "registry"`},
		{"type=artifactory,registry=x.io,repository=r", `missing required key "api"`},
		{"type=artifactory,registry=x.io,api=https://x/artifactory", `missing required key "repository"`},
		{base + ",include=[a-", `bad glob "[a-"`},
		{base + ",exclude=a\\", `bad glob`},
		{base + ",port=0", `key "port": want a port number`},
		{base + ",port=70000", `key "port"`},
		{base + ",port=nine", `key "port"`},
		{base + ",subdomain-mode=maybe", `key "subdomain-mode"`},
		{base + ",registry=y.io", `key "registry" given twice`},
		{base + `,include="unterminated`, "unterminated double quote"},
		{base + ",justakey", `"justakey" is not key=value`},
		{"type=artifactory,registry=https://x.io,api=https://x/artifactory,repository=r", `key "registry": want a registry host`},
		{"type=artifactory,registry=x.io,api=ftp://x/artifactory,repository=r", `key "api"`},
		{"type=artifactory,registry=x.io,api=https://u:p@x/artifactory,repository=r", `key "api"`},
		{base + ",registry-template=static.example.com", "no {repo} placeholder"},
		{base + ",registry-port=8876,subdomain-mode=true", "different access methods"},
		{base + ",listing=fast", `key "listing"`},
		{base + ",port=9000", "CROWSNEST_ARTIFACTORY_WEBHOOK_SECRET"},
		{"type=oci,registry=x.io,port=9000", "CROWSNEST_OCI_WEBHOOK_TOKEN"},
		{"bad!host", "invalid registry host"},
	}
	for _, tc := range cases {
		_, err := ParseConfigEnv(tc.in, env(nil))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want error containing %q", tc.in, err, tc.want)
		}
	}
}

func TestCredentialAliases(t *testing.T) {
	scout := env(map[string]string{
		"DOCKER_SCOUT_ARTIFACTORY_API_USER":       "scout-user",
		"DOCKER_SCOUT_ARTIFACTORY_API_PASSWORD":   "scout-pass",
		"DOCKER_SCOUT_ARTIFACTORY_WEBHOOK_SECRET": "scout-secret",
		"CROWSNEST_ARTIFACTORY_WEBHOOK_SECRET":    "crows-secret",
	})
	c, err := ParseConfigEnv(canonical1, scout)
	if err != nil {
		t.Fatal(err)
	}
	if c.Creds.APIUser != "scout-user" || c.Creds.APIPassword != "scout-pass" || c.Creds.WebhookSecret != "crows-secret" {
		t.Errorf("creds %#v", c.Creds)
	}
	o, err := ParseConfigEnv("type=oci,registry=r.io,port=5001", env(map[string]string{
		"DOCKER_SCOUT_REGISTRY_TOKEN": "scout-tok", "CROWSNEST_OCI_WEBHOOK_TOKEN": "hook",
		"CROWSNEST_REGISTRY_USER": "u", "CROWSNEST_REGISTRY_PASSWORD": "p",
	}))
	if err != nil || o.Creds.RegistryToken != "scout-tok" || o.Creds.RegistryUser != "u" || o.Creds.WebhookToken != "hook" {
		t.Errorf("oci creds %v %#v", err, o.Creds)
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	c, err := ParseConfigEnv(canonical1, secretEnv)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(c)
	for _, s := range []string{c.String(), fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprintf("%v", c.Creds), fmt.Sprintf("%#v", c.Creds), string(js)} {
		if strings.Contains(s, "hook-secret-value") || strings.Contains(s, "api-password-value") {
			t.Errorf("secret leaked: %s", s)
		}
	}
	if !strings.Contains(fmt.Sprintf("%+v", c.Creds), "[redacted]") {
		t.Errorf("no redaction marker in %+v", c.Creds)
	}
	// String round-trips through the parser.
	back, err := ParseConfigEnv(c.String(), secretEnv)
	if err != nil || !reflect.DeepEqual(back, c) {
		t.Errorf("round trip %q: %v\n%#v", c.String(), err, back)
	}
}

func TestImageRefMethods(t *testing.T) {
	base := "type=artifactory,registry=%s,api=https://x.example.com/artifactory,repository=docker-local"
	cases := []struct{ registry, extra, want string }{
		{"acme.jfrog.io", "", "acme.jfrog.io/docker-local/team/app:1.2.3"},
		{"rt.example.com", ",subdomain-mode=true", "docker-local.rt.example.com/team/app:1.2.3"},
		{"acme.jfrog.io", ",registry-template={server}-{repo}.jfrog.io", "acme-docker-local.jfrog.io/team/app:1.2.3"},
		{"rt.example.com:8082", ",registry-port=8876", "rt.example.com:8876/team/app:1.2.3"},
		{"rt.example.com", ",registry-port=docker-dev:8877", "rt.example.com/docker-local/team/app:1.2.3"},
	}
	for _, tc := range cases {
		c, err := ParseConfigEnv(fmt.Sprintf(base, tc.registry)+tc.extra, env(nil))
		if err != nil {
			t.Fatal(err)
		}
		a, _ := NewArtifactory(c, Options{})
		if got := a.ImageRef("docker-local/team/app", "1.2.3"); got != tc.want {
			t.Errorf("%s%s: %s, want %s", tc.registry, tc.extra, got, tc.want)
		}
	}
	a, _ := NewArtifactory(Config{Type: TypeArtifactory, Registry: "r.io", API: "https://r.io/artifactory", Repositories: []string{"k"}}, Options{})
	d := "sha256:" + strings.Repeat("a", 64)
	if got := a.ImageRef("k/app", d); got != "r.io/k/app@"+d {
		t.Errorf("digest ref %s", got)
	}
}

func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{canonical1, "registry.example.com", `type=oci,registry=x,"include=a,b"`, `a="\"\\"`, `type=artifactory,"registry-port=1,k:2"`, `,,,=`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseConfigEnv(s, secretEnv)
		if err != nil {
			return
		}
		// A valid Config's String must parse back to the same Config.
		back, err := ParseConfigEnv(c.String(), secretEnv)
		if err != nil {
			t.Fatalf("String %q of %q does not parse: %v", c.String(), s, err)
		}
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip of %q:\n%#v\n%#v", s, c, back)
		}
	})
}
