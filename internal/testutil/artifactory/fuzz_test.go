package artifactory

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func FuzzParseAQL(f *testing.F) {
	for _, s := range []string{
		`items.find({"repo":"docker-local","type":"file","$or":[{"name":"manifest.json"},{"name":"list.manifest.json"}]}).include("repo","path","name","sha256","property.*").sort({"$asc":["path"]}).offset(0).limit(1000)`,
		`items.find({"created":{"$last":"2d"},"@docker.manifest":{"$match":"1.*"}}).distinct(false)`,
		`items.find({"$and":[{"size":{"$gt":3}},{"path":{"$nmatch":"*_uploads*"}}]})`,
		`items.find(`, `items.find({}).limit(`, `.find()`, `items.find([[[[[[[[1]]]]]]]])`,
	} {
		f.Add(s)
	}
	now := time.Date(2025, 8, 26, 10, 0, 0, 0, time.UTC)
	it := aqlItem{Item: &Item{Repo: "r", Path: "a/b", Name: "manifest.json", Size: 5, SHA256: "ab", Created: now, Modified: now,
		Properties: []Property{{"docker.manifest", "1.0"}}}}
	f.Fuzz(func(t *testing.T, src string) {
		q, err := parseAQL(src)
		if err != nil {
			return
		}
		pred, _, err := compileCriteria(q.criteria, now)
		if err != nil {
			return
		}
		pred(it)
		pred(aqlItem{Item: it.Item, folder: true})
		_, _, _, _ = resolveInclude(q.include)
	})
}

func FuzzJackson(f *testing.F) {
	for _, s := range []string{`{"errors":[{"status":401,"message":"Bad credentials"}]}`, `[]`, `{}`, `[{"a":[1,{"b":"c\"}"}]},[],{}]`, `"x"`, `1`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var v any
		if json.Unmarshal([]byte(s), &v) != nil {
			return
		}
		compact, err := marshalCompact(v)
		if err != nil {
			return
		}
		out := jackson(compact)
		var w any
		if err := json.Unmarshal(out, &w); err != nil {
			t.Fatalf("jackson(%s) = %s: %v", compact, out, err)
		}
		if !reflect.DeepEqual(v, w) {
			t.Fatalf("value changed: %s -> %s", compact, out)
		}
	})
}

func FuzzDockerPathAndAnt(f *testing.F) {
	for _, s := range []string{"team/app/manifests/1.0", "a/blobs/uploads/x?y", "a/b/tags/list", "manifests/x", "//blobs//", "team/**"} {
		f.Add(s, "team/app/1/manifest.json")
	}
	f.Fuzz(func(t *testing.T, p, q string) {
		if d, ok := parseDockerPath(p); ok && d.image == "" {
			t.Fatalf("empty image from %q", p)
		}
		antMatch(p, q)
		_, _ = relativeTime(p)
		if len(p) < 200 {
			_, _ = wildcard(p)
		}
	})
}
