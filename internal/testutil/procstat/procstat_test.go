package procstat

import (
	"crypto/sha256"
	"os"
	"testing"
	"time"
)

func TestCPUGrowsWithWork(t *testing.T) {
	before, err := CPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for start := time.Now(); time.Since(start) < 300*time.Millisecond; {
		sha256.Sum256(buf)
	}
	after, err := CPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after-before < 50*time.Millisecond {
		t.Fatalf("CPU time grew by %v over 300 ms of hashing", after-before)
	}
	if _, err := CPU(-1); err == nil {
		t.Fatal("no error for a process that does not exist")
	}
}
