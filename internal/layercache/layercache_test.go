package layercache

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestPutGet(t *testing.T) {
	c, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := c.Get(digest, "v1"); ok || err != nil {
		t.Fatalf("empty cache: ok=%v err=%v", ok, err)
	}
	want := bytes.Repeat([]byte(`{"files":[]}`), 100)
	if err := c.Put(digest, "v1", want); err != nil {
		t.Fatal(err)
	}
	got, ok, err := c.Get(digest, "v1")
	if err != nil || !ok || !bytes.Equal(got, want) {
		t.Fatalf("Get = %q, %v, %v", got, ok, err)
	}
	if _, ok, _ := c.Get(digest, "v2"); ok {
		t.Fatal("another extractor-set version must miss")
	}
}

func TestRejectsHostileKeys(t *testing.T) {
	dir := t.TempDir()
	c, err := Open(filepath.Join(dir, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"../../etc/passwd", "sha256:../../x", "sha256:ABC", ""} {
		if err := c.Put(d, "v1", []byte("x")); err == nil {
			t.Errorf("Put(%q) accepted", d)
		}
	}
	if err := c.Put(digest, "../v", []byte("x")); err == nil {
		t.Error("Put with a version holding a path separator accepted")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("something was written outside the cache dir: %v", entries)
	}
}

func TestCorruptEntryIsAnError(t *testing.T) {
	dir := t.TempDir()
	c, _ := Open(dir)
	if err := c.Put(digest, "v1", []byte("data")); err != nil {
		t.Fatal(err)
	}
	p, _ := c.path(digest, "v1")
	if err := os.WriteFile(p, []byte("not zstd"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := c.Get(digest, "v1"); ok || err == nil {
		t.Fatalf("corrupt entry: ok=%v err=%v", ok, err)
	}
}
