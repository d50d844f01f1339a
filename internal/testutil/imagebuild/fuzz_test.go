package imagebuild

import (
	"hash/crc32"
	"testing"
)

// FuzzCRC32Combine checks the bomb's CRC arithmetic against hashing the concatenation.
func FuzzCRC32Combine(f *testing.F) {
	f.Add([]byte("a"), []byte("b"))
	f.Add([]byte{}, make([]byte, 4096))
	f.Add([]byte("crowsnest"), []byte{})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		want := crc32.ChecksumIEEE(append(append([]byte(nil), a...), b...))
		if got := crc32Combine(crc32.ChecksumIEEE(a), crc32.ChecksumIEEE(b), int64(len(b))); got != want {
			t.Fatalf("crc32Combine(%x, %x) = %08x, want %08x", a, b, got, want)
		}
	})
}
