package server

import (
	"testing"
)

// FuzzParsePush feeds hostile bodies and tags to the push parser: it must not panic, and what it
// accepts must pass the checks the store relies on.
func FuzzParsePush(f *testing.F) {
	f.Add(encode(f, alpineSBOM("app:1.0", muslVulnerable, "0.0.7")), "reg.example/app:1.0")
	f.Add([]byte(`{"schemaVersion":"1","image":{"digest":"sha256:`+
		"0000000000000000000000000000000000000000000000000000000000000000"+`","platform":{"os":"linux","architecture":"amd64"},"layers":[{"index":0}]},"packages":[{"type":"npm","name":"x"}]}`), "r:t")
	f.Add([]byte(`{"schemaVersion":"1","image":{}}`), ":")
	f.Add([]byte(`[]`), "a/b:c/d")
	f.Fuzz(func(t *testing.T, body []byte, tag string) {
		sb, tags, err := parsePush(body, []string{tag})
		if err != nil {
			return
		}
		if !digestRE.MatchString(sb.Image.Digest) {
			t.Fatalf("accepted digest %q", sb.Image.Digest)
		}
		for _, p := range sb.Packages {
			if p.Type == "" || p.Name == "" || p.PURL == "" {
				t.Fatalf("accepted package %+v", p)
			}
		}
		for _, tg := range tags {
			if tg.Repository == "" || !tagRE.MatchString(tg.Tag) {
				t.Fatalf("accepted tag %+v", tg)
			}
		}
	})
}
