package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// The spec's test vector (artifactory.md §5.3): 416 bytes, signed with "s3cr3t".
const (
	vectorBody = `{"domain":"docker","event_type":"pushed","data":{"repo_key":"docker-local","path":"team/app/1.2.3/manifest.json","name":"manifest.json","sha256":"6aed41d43187f94e2bcab5ed0b3f1d53ba20b2f2076a2e261bb11bbab8846491","size":1166,"image_name":"app","tag":"1.2.3","platforms":[],"image_type":"docker"},"subscription_key":"image-indexer","jpd_origin":"https://acme.jfrog.io","source":"jfrog/jfrt@01jzq1wpac4msw1djjwqwh09w0"}`
	vectorSig  = "1528d9f3fa05f9d144728f7e538db28b5bcbb34b27f0a0d99507f576ae9d9bc1"
	secret     = "s3cr3t"
)

// Captured payloads from the spec (§5.2).
const (
	cloudNested = `{"domain":"docker","event_type":"pushed","data":{"repo_key":"test-repo","path":"foo/bar/busybox/latest/manifest.json","name":"manifest.json","sha256":"2278daae78b8899e6c7192a8a6f49763b9e0cde6fcf94de34f115df4401b955f","size":527,"image_name":"busybox","tag":"latest","platforms":[],"image_type":"docker"},"subscription_key":"test-webhook","jpd_origin":"https://trial30g6c2.jfrog.io","source":"jfrog/jfrt@01jzq1wpac4msw1djjwqwh09w0"}`
	multiArch   = `{"domain":"docker","event_type":"pushed","data":{"repo_key":"docker-remote-cache","event_type":"pushed","path":"library/ubuntu/latest/list.manifest.json","name":"list.manifest.json","sha256":"35c4a2c15539c6c1e4e5fa4e554dac323ad0107d8eb5c582d6ff386b383b7dce","size":1206,"image_name":"library/ubuntu","tag":"latest","platforms":[{"architecture":"amd64","os":"linux"},{"architecture":"arm","os":"linux"},{"architecture":"arm64","os":"linux"},{"architecture":"ppc64le","os":"linux"},{"architecture":"s390x","os":"linux"}]},"subscription_key":"k","source":"jfrog/jfrt@x"}`
	deleted     = `{"domain":"docker","event_type":"deleted","data":{"repo_key":"docker-myorg-local","path":"myorg-tcd/myorg-tcd-frontend/1.2.9/manifest.json","name":"manifest.json","sha256":"b416d974092956b84d9f333ec6efcd579533a0ee07195de6257c315a67a32202","size":1166,"image_name":"myorg-tcd-frontend","tag":"1.2.9","platforms":[],"image_type":"docker"},"subscription_key":"kargo","source":"jfrog/jfrt@01jbh00r1jm0qp0j5pr3rt0f0d"}`
	artifactEv  = `{"domain":"artifact","event_type":"deployed","data":{"repo_key":"example-repo-local","path":"some.log","name":"some.log","sha256":"069092736c73613a25917f582f8a2621b8495cb723914c85dc570761ce0846f8","size":353178},"subscription_key":"test","source":"jfrog/jfrt@01h9mspg5atsp402qqxm071zjv"}`
)

func sign(body, key string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(body))
	return hex.EncodeToString(m.Sum(nil))
}

func jfrogReq(body, auth string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/hooks/artifactory", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if auth != "" {
		r.Header.Set("X-JFrog-Event-Auth", auth)
	}
	return r
}

func TestArtifactoryVector(t *testing.T) {
	if len(vectorBody) != 416 || sign(vectorBody, secret) != vectorSig {
		t.Fatal("test vector does not reproduce")
	}
	for _, auth := range []string{vectorSig, secret, strings.ToUpper(vectorSig), "sha256=" + vectorSig} {
		evs, err := ParseArtifactory(jfrogReq(vectorBody, auth), secret, 1<<20)
		if err != nil {
			t.Fatalf("auth %q: %v", auth, err)
		}
		want := Event{Kind: Push, Source: SourceArtifactory, ID: evs[0].ID, Registry: "acme.jfrog.io", RepoKey: "docker-local",
			Repository: "team/app", Tag: "1.2.3", Digest: "sha256:6aed41d43187f94e2bcab5ed0b3f1d53ba20b2f2076a2e261bb11bbab8846491"}
		if len(evs) != 1 || !reflect.DeepEqual(evs[0], want) || evs[0].ID == "" {
			t.Fatalf("auth %q: got %+v", auth, evs)
		}
	}
	if mode, _ := VerifyArtifactory(vectorSig, []byte(vectorBody), secret); mode != "hmac" {
		t.Errorf("mode %q, want hmac", mode)
	}
	if mode, _ := VerifyArtifactory(secret, []byte(vectorBody), secret); mode != "plain" {
		t.Errorf("mode %q, want plain", mode)
	}
}

func TestArtifactoryRejects(t *testing.T) {
	cases := []struct {
		name, body, auth, secret string
		max                      int64
		want                     error
	}{
		{"missing header", vectorBody, "", secret, 1 << 20, ErrUnauthorized},
		{"wrong secret", vectorBody, "nope", secret, 1 << 20, ErrUnauthorized},
		{"hmac with other key", vectorBody, sign(vectorBody, "other"), secret, 1 << 20, ErrUnauthorized},
		{"hmac of other body", vectorBody, sign(vectorBody+" ", secret), secret, 1 << 20, ErrUnauthorized},
		{"no secret configured", vectorBody, "", "", 1 << 20, ErrUnauthorized},
		{"no secret configured, empty header matches", vectorBody, secret, "", 1 << 20, ErrUnauthorized},
		{"oversized", vectorBody, vectorSig, secret, 100, ErrTooLarge},
		{"not json", "{not json", secret, secret, 1 << 20, ErrMalformed},
		{"no domain", `{"event_type":"pushed"}`, secret, secret, 1 << 20, ErrMalformed},
		{"docker without data", `{"domain":"docker","event_type":"pushed"}`, secret, secret, 1 << 20, ErrMalformed},
		{"short path", `{"domain":"docker","event_type":"pushed","data":{"repo_key":"r","path":"1.0/manifest.json","tag":"1.0"}}`, secret, secret, 1 << 20, ErrMalformed},
		{"not a manifest", `{"domain":"docker","event_type":"pushed","data":{"repo_key":"r","path":"a/1.0/x.json","tag":"1.0"}}`, secret, secret, 1 << 20, ErrMalformed},
		{"traversal", `{"domain":"docker","event_type":"pushed","data":{"repo_key":"r","path":"a/../b/1.0/manifest.json","tag":"1.0"}}`, secret, secret, 1 << 20, ErrMalformed},
		{"tag mismatch", `{"domain":"docker","event_type":"pushed","data":{"repo_key":"r","path":"a/1.0/manifest.json","tag":"2.0"}}`, secret, secret, 1 << 20, ErrMalformed},
		{"bad sha", `{"domain":"docker","event_type":"pushed","data":{"repo_key":"r","path":"a/1.0/manifest.json","tag":"1.0","sha256":"zz"}}`, secret, secret, 1 << 20, ErrMalformed},
		{"repo key with slash", `{"domain":"docker","event_type":"pushed","data":{"repo_key":"r/x","path":"a/1.0/manifest.json","tag":"1.0"}}`, secret, secret, 1 << 20, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			evs, err := ParseArtifactory(jfrogReq(c.body, c.auth), c.secret, c.max)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, %+v; want %v", err, evs, c.want)
			}
		})
	}
	r := jfrogReq(vectorBody, secret)
	r.Header.Set("Content-Type", "text/html")
	if _, err := ParseArtifactory(r, secret, 1<<20); !errors.Is(err, ErrMalformed) {
		t.Errorf("text/html: got %v", err)
	}
}

func TestArtifactoryEvents(t *testing.T) {
	cases := []struct {
		name, body string
		want       Event
	}{
		{"image_name quirk: path wins", cloudNested, Event{Kind: Push, RepoKey: "test-repo", Registry: "trial30g6c2.jfrog.io",
			Repository: "foo/bar/busybox", Tag: "latest", Digest: "sha256:2278daae78b8899e6c7192a8a6f49763b9e0cde6fcf94de34f115df4401b955f"}},
		{"multi-platform: one event, index digest", multiArch, Event{Kind: Push, RepoKey: "docker-remote-cache", Repository: "library/ubuntu", Tag: "latest",
			Digest:    "sha256:35c4a2c15539c6c1e4e5fa4e554dac323ad0107d8eb5c582d6ff386b383b7dce",
			Platforms: []Platform{{"linux", "amd64", ""}, {"linux", "arm", ""}, {"linux", "arm64", ""}, {"linux", "ppc64le", ""}, {"linux", "s390x", ""}}}},
		{"deleted", deleted, Event{Kind: Delete, RepoKey: "docker-myorg-local", Repository: "myorg-tcd/myorg-tcd-frontend", Tag: "1.2.9",
			Digest: "sha256:b416d974092956b84d9f333ec6efcd579533a0ee07195de6257c315a67a32202"}},
		{"artifact domain ignored", artifactEv, Event{Kind: Ignored, Reason: `domain "artifact" is not docker`}},
		{"promoted ignored", strings.Replace(deleted, `"deleted"`, `"promoted"`, 1), Event{Kind: Ignored, Reason: `docker event "promoted" is not pushed or deleted`}},
		{"per-platform folder ignored", `{"domain":"docker","event_type":"pushed","data":{"repo_key":"r","path":"a/sha256__2278daae78b8899e6c7192a8a6f49763b9e0cde6fcf94de34f115df4401b955f/manifest.json"}}`,
			Event{Kind: Ignored, RepoKey: "r", Repository: "a", Reason: "per-platform manifest folder sha256__2278daae78b8899e6c7192a8a6f49763b9e0cde6fcf94de34f115df4401b955f"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			evs, err := ParseArtifactory(jfrogReq(c.body, sign(c.body, secret)), secret, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			got := evs[0]
			if got.ID == "" || got.Source != SourceArtifactory {
				t.Errorf("id %q source %q", got.ID, got.Source)
			}
			got.ID, got.Source = "", ""
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
	// Redelivery keeps the ID; another tag changes it.
	a, _ := parseArtifactoryBody([]byte(vectorBody))
	b, _ := parseArtifactoryBody([]byte(strings.ReplaceAll(vectorBody, "1.2.3", "1.2.4")))
	if a2, _ := parseArtifactoryBody([]byte(vectorBody)); a.ID != a2.ID || a.ID == b.ID {
		t.Errorf("IDs %s %s %s", a.ID, a2.ID, b.ID)
	}
}

func TestEventJSON(t *testing.T) {
	ev, err := parseArtifactoryBody([]byte(multiArch))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var back Event
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, ev) {
		t.Fatalf("round trip: %v\n%s\n%+v", err, b, back)
	}
	if !strings.Contains(string(b), `"kind":"push"`) || !strings.Contains(string(b), `"repo_key":"docker-remote-cache"`) {
		t.Errorf("json %s", b)
	}
}

// A push of a multi-platform image to distribution 2.8 as the registry sends it: layers,
// per-platform manifests by digest, then the tagged index.
const distPush = `{"events":[
{"id":"e1","timestamp":"2025-01-01T00:00:00Z","action":"push","target":{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":10,"digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","length":10,"repository":"team/app","url":"http://reg:5000/v2/team/app/blobs/sha256:1111111111111111111111111111111111111111111111111111111111111111"},"request":{"id":"r1","addr":"127.0.0.1:1","host":"reg:5000","method":"PUT","useragent":"docker"},"actor":{},"source":{"addr":"reg:5000","instanceID":"i"}},
{"id":"e2","timestamp":"2025-01-01T00:00:00Z","action":"push","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":500,"digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","length":500,"repository":"team/app","url":"http://reg:5000/v2/team/app/manifests/sha256:2222222222222222222222222222222222222222222222222222222222222222"},"request":{"host":"reg:5000"}},
{"id":"e3","timestamp":"2025-01-01T00:00:00Z","action":"push","target":{"mediaType":"application/vnd.oci.image.index.v1+json","size":900,"digest":"sha256:3333333333333333333333333333333333333333333333333333333333333333","length":900,"repository":"team/app","url":"http://reg:5000/v2/team/app/manifests/sha256:3333333333333333333333333333333333333333333333333333333333333333","tag":"1.0"},"request":{"host":"reg:5000"}},
{"id":"e4","timestamp":"2025-01-01T00:00:00Z","action":"pull","target":{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:3333333333333333333333333333333333333333333333333333333333333333","repository":"team/app","tag":"1.0"},"request":{"host":"reg:5000"}},
{"id":"e5","timestamp":"2025-01-01T00:00:00Z","action":"delete","target":{"digest":"sha256:3333333333333333333333333333333333333333333333333333333333333333","repository":"team/app"},"request":{"host":"reg:5000"}},
{"id":"e6","timestamp":"2025-01-01T00:00:00Z","action":"delete","target":{"repository":"team/app","tag":"0.9"},"request":{"host":"reg:5000"}},
{"id":"e7","timestamp":"2025-01-01T00:00:00Z","action":"push","target":{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"sha256:44","repository":"team/app","tag":"x"},"request":{"host":"reg:5000"}}
]}`

func distReq(body, auth string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/hooks/registry", strings.NewReader(body))
	r.Header.Set("Content-Type", DistributionMediaType)
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	return r
}

func TestDistribution(t *testing.T) {
	evs, err := ParseDistribution(distReq(distPush, "Bearer tok3n"), "tok3n", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range evs {
		kinds = append(kinds, string(e.Kind))
	}
	if got := strings.Join(kinds, ","); got != "ignored,ignored,push,ignored,delete,delete,ignored" {
		t.Fatalf("kinds %s: %+v", got, evs)
	}
	want := Event{Kind: Push, Source: SourceDistribution, ID: "e3", Registry: "reg:5000", Repository: "team/app", Tag: "1.0",
		Digest: "sha256:3333333333333333333333333333333333333333333333333333333333333333", MediaType: "application/vnd.oci.image.index.v1+json"}
	if !reflect.DeepEqual(evs[2], want) {
		t.Errorf("push: %+v", evs[2])
	}
	if evs[5].Tag != "0.9" || evs[4].Digest == "" || !strings.Contains(evs[6].Reason, "bad digest") {
		t.Errorf("deletes/bad: %+v %+v %+v", evs[4], evs[5], evs[6])
	}
	if !strings.Contains(evs[0].Reason, "blob") || !strings.Contains(evs[1].Reason, "without a tag") {
		t.Errorf("reasons: %q %q", evs[0].Reason, evs[1].Reason)
	}
}

func TestDistributionRejects(t *testing.T) {
	cases := []struct {
		name, body, auth, token string
		max                     int64
		want                    error
	}{
		{"missing", distPush, "", "tok3n", 1 << 20, ErrUnauthorized},
		{"wrong", distPush, "Bearer nope", "tok3n", 1 << 20, ErrUnauthorized},
		{"basic", distPush, "Basic dG9rM246", "tok3n", 1 << 20, ErrUnauthorized},
		{"none configured", distPush, "Bearer ", "", 1 << 20, ErrUnauthorized},
		{"oversized", distPush, "Bearer tok3n", "tok3n", 64, ErrTooLarge},
		{"bad json", `{"events":[`, "Bearer tok3n", "tok3n", 1 << 20, ErrMalformed},
		{"no events", `{}`, "Bearer tok3n", "tok3n", 1 << 20, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if evs, err := ParseDistribution(distReq(c.body, c.auth), c.token, c.max); !errors.Is(err, c.want) {
				t.Fatalf("got %v %+v, want %v", err, evs, c.want)
			}
		})
	}
	if evs, err := ParseDistribution(distReq(distPush, "bearer tok3n"), "tok3n", 1<<20); err != nil || len(evs) != 7 {
		t.Errorf("lower-case scheme: %v", err)
	}
}

func FuzzParseArtifactory(f *testing.F) {
	for _, s := range []string{vectorBody, cloudNested, multiArch, deleted, artifactEv, `{"domain":"docker","event_type":"pushed","data":null}`, "", "[]"} {
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, signed bool) {
		auth := secret
		if signed {
			auth = sign(string(body), secret)
		}
		evs, err := ParseArtifactory(jfrogReq(string(body), auth), secret, 1<<16)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		for _, e := range evs {
			if e.Kind != Ignored && (!validRepo(e.Repository) || !validTag(e.Tag)) {
				t.Fatalf("accepted bad event %+v", e)
			}
		}
	})
}

func FuzzParseDistribution(f *testing.F) {
	for _, s := range []string{distPush, `{"events":[]}`, `{"events":[{"action":"push","target":{"repository":"a","tag":"b"}}]}`, "null"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, err := ParseDistribution(distReq(string(body), "Bearer t"), "t", 1<<16)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		for _, e := range evs {
			if e.Kind == Push && (!validRepo(e.Repository) || !validTag(e.Tag)) {
				t.Fatalf("accepted bad event %+v", e)
			}
		}
	})
}
