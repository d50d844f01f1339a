package store

import (
	"fmt"
	"testing"
)

// A process that remembers which advisories a key has sees an import made by another process
// (another replica, or `crowsnest db import` beside a watcher) at its next lookup.
func TestAdvisoriesForSeesImportsOfOtherProcesses(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		reader, writer := open(t, dsn), open(t, dsn)
		importAll(t, writer, "debian", false, advisory("DSA-1", keyOpenSSL))
		if got := fmt.Sprint(advisoryIDs(t, reader, keyOpenSSL, keyCurl)); got != "map[{Debian:12 openssl}:[DSA-1]]" {
			t.Fatalf("first lookup: %s", got)
		}
		// The reader now remembers both keys, curl as having none.
		importAll(t, writer, "debian", false, advisory("DSA-2", keyCurl, keyOpenSSL))
		if got := fmt.Sprint(advisoryIDs(t, reader, keyOpenSSL, keyCurl)); got != "map[{Debian:12 curl}:[DSA-2] {Debian:12 openssl}:[DSA-1 DSA-2]]" {
			t.Fatalf("after another process's import: %s", got)
		}
		importAll(t, writer, "debian", true, advisory("DSA-2", keyCurl))
		if got := fmt.Sprint(advisoryIDs(t, reader, keyOpenSSL, keyCurl)); got != "map[{Debian:12 curl}:[DSA-2]]" {
			t.Fatalf("after a full import dropped DSA-1: %s", got)
		}
	})
}
