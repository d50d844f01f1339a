package demo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPrepareDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	lock, err := prepareDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A second demo on the same directory while the first runs is refused and deletes nothing.
	os.WriteFile(filepath.Join(dir, "crowsnest.db"), []byte("in use"), 0o600)
	if _, err := prepareDir(dir); err == nil || !strings.Contains(err.Error(), "another crowsnest demo is running") {
		t.Fatalf("concurrent run: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "crowsnest.db")); err != nil {
		t.Fatalf("a running demo's store was removed: %v", err)
	}
	lock.Close()

	// The next run starts afresh.
	os.MkdirAll(filepath.Join(dir, "layers", "sha256"), 0o700)
	lock, err = prepareDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != marker {
		t.Fatalf("previous demo left %v", entries)
	}

	// A directory the demo did not make is left alone.
	foreign := t.TempDir()
	os.WriteFile(filepath.Join(foreign, "notes"), []byte("mine"), 0o600)
	if _, err := prepareDir(foreign); err == nil || !strings.Contains(err.Error(), "not made by crowsnest demo") {
		t.Fatalf("foreign directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(foreign, "notes")); err != nil {
		t.Fatal(err)
	}
}

// Building the fixtures twice gives the same digests: every run prints the same ones.
func TestFixturesAreReproducible(t *testing.T) {
	a, err := seedImages()
	if err != nil {
		t.Fatal(err)
	}
	b, err := seedImages()
	if err != nil {
		t.Fatal(err)
	}
	for i := range a {
		da, _ := a[i].Image.Digest()
		db, _ := b[i].Image.Digest()
		if da != db {
			t.Errorf("%s: %s then %s", a[i].Name, da, db)
		}
	}
	p, err := pushedImage()
	if err != nil {
		t.Fatal(err)
	}
	dp, _ := p.Image.Digest()
	d0, _ := a[0].Image.Digest()
	if dp == d0 {
		t.Error("the pushed image is the same as the first one")
	}
}
