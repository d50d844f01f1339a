package image

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Errors of layer streams. Read errors wrap one of them and name the layer digest.
var (
	// ErrDigestMismatch: the blob's bytes do not hash to the digest the manifest names.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrTruncated: the blob ended before the size the manifest names.
	ErrTruncated = errors.New("blob truncated")
	// ErrLayerTooLarge: the uncompressed layer exceeds Options.MaxLayerSize.
	ErrLayerTooLarge = errors.New("uncompressed layer too large")
)

// DefaultMaxLayerSize bounds the uncompressed size of one layer (a gzip bomb stops here).
const DefaultMaxLayerSize = 64 << 30

// zstdMaxWindow bounds the decoder's memory: zstd --long=27 (the largest window tools use by
// default for "long" mode) needs 128 MiB; the format allows far more, which a hostile layer
// could use to make us allocate gigabytes.
const zstdMaxWindow = 128 << 20

var (
	magicGzip = []byte{0x1f, 0x8b}
	magicZstd = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// verifier hashes the compressed bytes as they pass and, at the end, compares count and digest
// with the descriptor. It is the only place a layer blob is hashed.
type verifier struct {
	r      io.Reader
	h      hash.Hash
	digest v1.Hash
	size   int64 // declared size; < 0 unknown
	n      int64
	err    error // sticky: the first integrity error
}

func newVerifier(r io.Reader, digest v1.Hash, size int64) *verifier {
	if size >= 0 {
		// One byte beyond the declared size is enough to know the blob is too long.
		r = io.LimitReader(r, size+1)
	}
	return &verifier{r: r, h: sha256.New(), digest: digest, size: size}
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	switch {
	case v.size >= 0 && v.n > v.size:
		v.err = fmt.Errorf("layer %s: more than the declared %d bytes: %w", v.digest, v.size, ErrDigestMismatch)
		return 0, v.err
	case err == io.EOF:
		if v.size >= 0 && v.n < v.size {
			v.err = fmt.Errorf("layer %s: got %d of %d bytes: %w", v.digest, v.n, v.size, ErrTruncated)
			return n, v.err
		}
		if !bytes.Equal(v.h.Sum(nil), mustHex(v.digest)) {
			v.err = fmt.Errorf("layer %s: content hashes to sha256:%x: %w", v.digest, v.h.Sum(nil), ErrDigestMismatch)
			return n, v.err
		}
	case errors.Is(err, io.ErrUnexpectedEOF):
		v.err = fmt.Errorf("layer %s: got %d of %d bytes: %w (%v)", v.digest, v.n, v.size, ErrTruncated, err)
		return n, v.err
	}
	return n, err
}

// drain reads the rest of the blob so that the digest can be judged. Used when the decompressor
// fails first: a corrupt blob should be reported as such, not as a gzip error.
func (v *verifier) drain() error {
	if v.err != nil {
		return v.err
	}
	_, err := io.Copy(io.Discard, v)
	if v.err != nil {
		return v.err
	}
	return err
}

func mustHex(h v1.Hash) []byte {
	b := make([]byte, 32)
	for i := range b {
		b[i] = unhex(h.Hex[2*i])<<4 | unhex(h.Hex[2*i+1])
	}
	return b
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10
	}
	return 0
}

// layerReader is the uncompressed stream handed to the index pipeline.
type layerReader struct {
	raw    io.Closer
	v      *verifier
	dec    io.Reader
	closer func() // releases the decompressor
	digest v1.Hash
	max    int64
	n      int64
	err    error
}

// newLayerReader verifies and decompresses raw, a layer blob with the given digest and size.
func newLayerReader(raw io.ReadCloser, digest v1.Hash, size, maxSize int64) (*layerReader, error) {
	if !validSHA256(digest) {
		raw.Close()
		return nil, fmt.Errorf("layer %s: only sha256 digests are supported", digest)
	}
	if maxSize <= 0 {
		maxSize = DefaultMaxLayerSize
	}
	raw = newPrefetchReader(raw)
	v := newVerifier(raw, digest, size)
	br := bufio.NewReaderSize(v, 64<<10)
	lr := &layerReader{raw: raw, v: v, digest: digest, max: maxSize, closer: func() {}}
	head, err := br.Peek(4)
	if err != nil && err != io.EOF {
		raw.Close()
		return nil, err
	}
	switch {
	case bytes.HasPrefix(head, magicGzip):
		zr, err := gzip.NewReader(br)
		if err != nil {
			raw.Close()
			if v.err != nil {
				return nil, v.err
			}
			return nil, fmt.Errorf("layer %s: gzip: %w", digest, err)
		}
		lr.dec = zr
		lr.closer = func() { zr.Close() }
	case bytes.HasPrefix(head, magicZstd):
		zr, err := zstd.NewReader(br, zstd.WithDecoderMaxWindow(zstdMaxWindow), zstd.WithDecoderConcurrency(1))
		if err != nil {
			raw.Close()
			return nil, fmt.Errorf("layer %s: zstd: %w", digest, err)
		}
		lr.dec = zr
		lr.closer = zr.Close
	default:
		lr.dec = br
	}
	return lr, nil
}

// Read returns io.EOF only once the whole blob has been read and verified: read to EOF (also
// after the tar end-of-archive marker) to know the layer was intact.
func (l *layerReader) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	if rem := l.max - l.n; int64(len(p)) > rem+1 {
		p = p[:rem+1]
	}
	n, err := l.dec.Read(p)
	l.n += int64(n)
	if l.n > l.max {
		l.err = fmt.Errorf("layer %s: more than %d bytes uncompressed: %w", l.digest, l.max, ErrLayerTooLarge)
		return 0, l.err
	}
	if err == nil {
		return n, nil
	}
	if err == io.EOF {
		// The decompressor may stop at the end of its stream before the blob's end; the
		// digest covers the whole blob, so read what is left.
		if derr := l.v.drain(); derr != nil {
			l.err = derr
			return n, derr
		}
		l.err = io.EOF
		return n, io.EOF
	}
	if l.v.err == nil {
		_ = l.v.drain()
	}
	if l.v.err != nil {
		l.err = l.v.err
	} else {
		l.err = fmt.Errorf("layer %s: decompress: %w", l.digest, err)
	}
	return n, l.err
}

func (l *layerReader) Close() error {
	l.closer()
	return l.raw.Close()
}
