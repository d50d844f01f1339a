package image

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
)

// benchBlob is a gzip layer of 32 MiB, half compressible, like a typical filesystem layer.
func benchBlob(b *testing.B) ([]byte, v1.Hash) {
	r := rand.New(rand.NewPCG(1, 2))
	raw := make([]byte, 32<<20)
	for i := 0; i < len(raw); i += 2 {
		raw[i] = byte(r.Uint32())
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	zw.Write(raw)
	zw.Close()
	return buf.Bytes(), sha256Hash(buf.Bytes())
}

// BenchmarkLayerReader measures verify + decompress of one blob (the hash runs once).
func BenchmarkLayerReader(b *testing.B) {
	blob, d := benchBlob(b)
	b.SetBytes(int64(len(blob)))
	for b.Loop() {
		lr, err := newLayerReader(io.NopCloser(bytes.NewReader(blob)), d, int64(len(blob)), 0)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, lr); err != nil {
			b.Fatal(err)
		}
		lr.Close()
	}
}

// BenchmarkSHA256 is the cost a second verification pass would add.
func BenchmarkSHA256(b *testing.B) {
	blob, _ := benchBlob(b)
	b.SetBytes(int64(len(blob)))
	for b.Loop() {
		h := sha256.New()
		h.Write(blob)
		h.Sum(nil)
	}
}
