package store

import (
	"context"
	"testing"

	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

func fixedOf(t *testing.T, s *Store, k PackageKey, id string) string {
	t.Helper()
	m, err := s.AdvisoriesFor(context.Background(), []PackageKey{k})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range m[k] {
		if a.ID == id {
			return a.Affected[0].Ranges[0].Events[1].Fixed
		}
	}
	t.Fatalf("%s not found for %v", id, k)
	return ""
}

// The decoded-advisory cache must never serve a record another process (a second replica, here a
// second Store on the same database) has replaced, nor one this process replaced or removed.
func TestAdvisoryCacheFollowsChanges(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		a, b := open(t, dsn), open(t, dsn)
		adv := func(fixed string) *vuln.Advisory {
			x := advisory("DSA-1", keyOpenSSL, keyCurl)
			x.Affected[0].Ranges[0].Events[1].Fixed = fixed
			return x
		}
		importAll(t, a, "osv:Debian", false, adv("1.0.0-1"), advisory("DSA-2", keyOpenSSL))
		if got := fixedOf(t, a, keyOpenSSL, "DSA-1"); got != "1.0.0-1" {
			t.Fatalf("fixed = %q, want 1.0.0-1", got)
		}
		// Warm: the same decoded value is handed out again, for every key it affects.
		m, err := a.AdvisoriesFor(context.Background(), []PackageKey{keyOpenSSL, keyCurl})
		if err != nil {
			t.Fatal(err)
		}
		if len(m[keyOpenSSL]) != 2 || len(m[keyCurl]) != 1 || m[keyCurl][0] != m[keyOpenSSL][0] {
			t.Fatalf("AdvisoriesFor = %v", m)
		}
		importAll(t, b, "osv:Debian", false, adv("2.0.0-1"))
		if got := fixedOf(t, a, keyOpenSSL, "DSA-1"); got != "2.0.0-1" {
			t.Errorf("after another store's import: fixed = %q, want 2.0.0-1", got)
		}
		importAll(t, a, "osv:Debian", false, adv("3.0.0-1"))
		if got := fixedOf(t, a, keyCurl, "DSA-1"); got != "3.0.0-1" {
			t.Errorf("after this store's import: fixed = %q, want 3.0.0-1", got)
		}
		importAll(t, a, "osv:Debian", true, advisory("DSA-2", keyOpenSSL))
		if ids := advisoryIDs(t, a, keyOpenSSL, keyCurl); len(ids[keyCurl]) != 0 || len(ids[keyOpenSSL]) != 1 {
			t.Errorf("after a full import without DSA-1: %v", ids)
		}
	})
}

func TestAdvisoryCacheEvictsLeastRecentlyUsed(t *testing.T) {
	c := newAdvisoryCache(2)
	h := func(b byte) []byte { x := make([]byte, 32); x[0] = b; return x }
	one, two, three := &vuln.Advisory{ID: "1"}, &vuln.Advisory{ID: "2"}, &vuln.Advisory{ID: "3"}
	c.put("1", h(1), one)
	c.put("2", h(2), two)
	if c.get("1", h(1)) != one {
		t.Fatal("1 not cached")
	}
	if c.get("1", h(9)) != nil {
		t.Fatal("1 served under another hash")
	}
	c.put("3", h(3), three) // evicts 2, the least recently used
	if c.get("2", h(2)) != nil || c.get("1", h(1)) != one || c.get("3", h(3)) != three {
		t.Fatal("wrong eviction")
	}
	c.forget([]string{"1"})
	if c.get("1", h(1)) != nil {
		t.Fatal("forgotten entry served")
	}
}
