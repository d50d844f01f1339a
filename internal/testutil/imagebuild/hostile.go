package imagebuild

import (
	"archive/tar"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"net/http"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"
)

// TraversalEntries are entries whose names or link targets escape the root.
func TraversalEntries() []Entry {
	return []Entry{
		Raw(tar.TypeReg, "../../etc/passwd", []byte("root:x:0:0:pwned:/root:/bin/sh\n")),
		Raw(tar.TypeReg, "/abs/path", []byte("absolute\n")),
		Raw(tar.TypeReg, "a/../../b", []byte("escaped\n")),
		Raw(tar.TypeLink, "hardlink-out", nil).WithLinkname("../../etc/shadow"),
	}
}

// SymlinkEntries are a symlink loop (a -> b, b -> a) and an /etc/os-release that points
// outside the root; an extractor following it must not read the host's file.
func SymlinkEntries() []Entry {
	return []Entry{
		Symlink("a", "b"),
		Symlink("b", "a"),
		Dir("etc"),
		Symlink("etc/os-release", "../../../../host/file"),
		Symlink("etc/lsb-release", "/etc/lsb-release"), // points at itself
	}
}

// DeviceEntries are device nodes and a FIFO at paths extractors might want; reading them on a
// real filesystem would block or leak host data.
func DeviceEntries() []Entry {
	return []Entry{
		Dir("dev"),
		CharDevice("dev/null", 1, 3),
		CharDevice("dev/zero", 1, 5),
		BlockDevice("dev/sda", 8, 0),
		FIFO("dev/fifo"),
		Dir("var/lib/dpkg"),
		CharDevice("var/lib/dpkg/status", 1, 5),
		FIFO("etc/os-release"),
	}
}

// HostileLayer wraps entries in a layer blob of compression c.
func HostileLayer(t testing.TB, c Compression, entries ...Entry) v1.Layer {
	t.Helper()
	return BuildLayer(t, Layer{Entries: entries, Compression: c})
}

// TruncatedEntryLayer is a well-formed compressed stream holding a tar header for
// var/lib/dpkg/status declaring 10 GiB, followed by no data at all.
func TruncatedEntryLayer(t testing.TB, c Compression) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "var/lib/dpkg/status", Size: 10 << 30,
		Mode: 0o644, ModTime: fixedTime, Format: tar.FormatPAX})
	if err != nil {
		t.Fatalf("imagebuild: %v", err)
	}
	// No Close: the writer would insist on the 10 GiB it was promised.
	blob, err := Compress(c, buf.Bytes())
	if err != nil {
		t.Fatalf("imagebuild: %v", err)
	}
	d := sha(buf.Bytes())
	return RawLayer(t, blob, c, &d)
}

// TruncatedStreamLayer is a layer whose compressed stream stops in the middle: the first half
// of a gzip (or zstd) blob of a tar with a dpkg status and some filler. Its claimed diffID is the
// full tar's.
func TruncatedStreamLayer(t testing.TB, c Compression) v1.Layer {
	t.Helper()
	filler := bytes.Repeat([]byte("crowsnest truncated stream filler\n"), 4096)
	tb, err := TarOf(
		File("var/lib/dpkg/status", DpkgStatus(DebPkg{Package: "base-files", Version: "12.4", Architecture: "amd64",
			Maintainer: "Santiago Vila <sanvila@debian.org>", Description: "Debian base system miscellaneous files"})),
		File("filler", filler),
	)
	if err != nil {
		t.Fatalf("imagebuild: %v", err)
	}
	blob, err := Compress(c, tb)
	if err != nil {
		t.Fatalf("imagebuild: %v", err)
	}
	d := sha(tb)
	return RawLayer(t, blob[:len(blob)/2], c, &d)
}

// SizedFile is a file of Size zero bytes in a bomb.
type SizedFile struct {
	Path string
	Size int64
}

// BombFiles is the content of GzipBomb and ZstdBomb: a dpkg status of 1 GiB of zeros, which
// an extractor would want, and 10 GiB more of zeros nobody wants.
func BombFiles() []SizedFile {
	return []SizedFile{{"var/lib/dpkg/status", 1 << 30}, {"zeros/big", 10 << 30}}
}

var bombs struct {
	gzipOnce, zstdOnce sync.Once
	gzip, zstd         []byte
	gzipErr, zstdErr   error
}

// GzipBomb is a gzip layer of about 11 MB that inflates to 11 GiB of tar (BombFiles). Its
// claimed diffID is not the true one: computing that would mean hashing 11 GiB. The blob is
// built once per test binary run, in about a second.
func GzipBomb(t testing.TB) v1.Layer {
	t.Helper()
	bombs.gzipOnce.Do(func() { bombs.gzip, bombs.gzipErr = ZeroBomb(Gzip, BombFiles()...) })
	if bombs.gzipErr != nil {
		t.Fatalf("imagebuild: gzip bomb: %v", bombs.gzipErr)
	}
	return bombLayer(t, bombs.gzip, Gzip)
}

// ZstdBomb is GzipBomb in zstd: a few hundred KB.
func ZstdBomb(t testing.TB) v1.Layer {
	t.Helper()
	bombs.zstdOnce.Do(func() { bombs.zstd, bombs.zstdErr = ZeroBomb(Zstd, BombFiles()...) })
	if bombs.zstdErr != nil {
		t.Fatalf("imagebuild: zstd bomb: %v", bombs.zstdErr)
	}
	return bombLayer(t, bombs.zstd, Zstd)
}

func bombLayer(t testing.TB, blob []byte, c Compression) v1.Layer {
	t.Helper()
	d := sha([]byte("imagebuild: not the true diffID of a decompression bomb"))
	return RawLayer(t, blob, c, &d)
}

const bombChunk = 1 << 20 // zeros per repeated compressed chunk

// ZeroBomb writes a compressed tar of zero-filled files without compressing (or holding) the
// zeros: a compressed chunk standing for bombChunk zeros is made once and repeated.
//
// For gzip, the chunk is a byte-aligned run of deflate blocks (ended by a sync flush) made while
// the compressor's window held only zeros; its back-references reach at most 32 KiB, so it
// decodes to the same zeros wherever the previous 32 KiB of output are zeros. Each file's first
// 64 KiB of zeros go through the real compressor to establish that, and the compressor keeps
// going after the repeats because its window is zeros too. The gzip trailer's CRC and size
// cover every byte. For zstd, frames are independent, so the chunk is a whole frame and the
// stream is a concatenation of frames, which decoders read as one.
func ZeroBomb(c Compression, files ...SizedFile) ([]byte, error) {
	switch c {
	case Gzip:
		return gzipBomb(files)
	case Zstd:
		return zstdBomb(files)
	}
	return nil, fmt.Errorf("zero bomb: compression %v not supported", c)
}

// tarHeaderBytes returns the header blocks for a regular file of the given size.
func tarHeaderBytes(p string, size int64) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: p, Size: size, Mode: 0o644,
		ModTime: fixedTime, Format: tar.FormatPAX})
	return buf.Bytes(), err
}

func tarPadding(size int64) int64 { return (512 - size%512) % 512 }

const primeZeros = 64 << 10

func gzipBomb(files []SizedFile) ([]byte, error) {
	zeros := make([]byte, bombChunk)
	// The repeated chunk.
	var cb bytes.Buffer
	cw, err := flate.NewWriter(&cb, flate.BestCompression)
	if err != nil {
		return nil, err
	}
	cw.Write(zeros[:primeZeros])
	if err := cw.Flush(); err != nil {
		return nil, err
	}
	start := cb.Len()
	cw.Write(zeros)
	if err := cw.Flush(); err != nil {
		return nil, err
	}
	chunk := append([]byte(nil), cb.Bytes()[start:]...)
	chunkCRC := crc32.ChecksumIEEE(zeros)

	var out bytes.Buffer
	out.Write([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 0xff}) // gzip header: deflate, max compression, unknown OS
	fw, err := flate.NewWriter(&out, flate.BestCompression)
	if err != nil {
		return nil, err
	}
	crc := uint32(0)
	var total int64
	write := func(p []byte) error {
		crc = crc32.Update(crc, crc32.IEEETable, p)
		total += int64(len(p))
		_, err := fw.Write(p)
		return err
	}
	for _, f := range files {
		h, err := tarHeaderBytes(f.Path, f.Size)
		if err != nil {
			return nil, err
		}
		if err := write(h); err != nil {
			return nil, err
		}
		left := f.Size
		if left >= primeZeros+bombChunk {
			if err := write(zeros[:primeZeros]); err != nil {
				return nil, err
			}
			left -= primeZeros
			if err := fw.Flush(); err != nil {
				return nil, err
			}
			for ; left >= bombChunk; left -= bombChunk {
				out.Write(chunk)
				crc = crc32Combine(crc, chunkCRC, bombChunk)
				total += bombChunk
			}
		}
		for left > 0 {
			n := min(left, bombChunk)
			if err := write(zeros[:n]); err != nil {
				return nil, err
			}
			left -= n
		}
		if err := write(zeros[:tarPadding(f.Size)]); err != nil {
			return nil, err
		}
	}
	if err := write(zeros[:1024]); err != nil { // end-of-archive marker
		return nil, err
	}
	if err := fw.Close(); err != nil {
		return nil, err
	}
	var trailer [8]byte
	binary.LittleEndian.PutUint32(trailer[:4], crc)
	binary.LittleEndian.PutUint32(trailer[4:], uint32(total))
	out.Write(trailer[:])
	return out.Bytes(), nil
}

func zstdBomb(files []SizedFile) ([]byte, error) {
	const frameZeros = 64 << 20
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	if err != nil {
		return nil, err
	}
	defer enc.Close()
	zeros := make([]byte, frameZeros)
	frame := enc.EncodeAll(zeros, nil)
	var out []byte
	for _, f := range files {
		h, err := tarHeaderBytes(f.Path, f.Size)
		if err != nil {
			return nil, err
		}
		out = enc.EncodeAll(h, out)
		left := f.Size
		for ; left >= frameZeros; left -= frameZeros {
			out = append(out, frame...)
		}
		tailLen := left + tarPadding(f.Size)
		if tailLen > 0 {
			out = enc.EncodeAll(zeros[:tailLen], out)
		}
	}
	out = enc.EncodeAll(zeros[:1024], out)
	return out, nil
}

// crc32Combine returns the CRC-32 (IEEE) of A||B from crc(A), crc(B) and len(B), as zlib's
// crc32_combine does (GF(2) matrix squaring), so the bomb's trailer costs no pass over the
// zeros.
func crc32Combine(crc1, crc2 uint32, len2 int64) uint32 {
	if len2 <= 0 {
		return crc1
	}
	var even, odd [32]uint32
	odd[0] = 0xedb88320 // reversed IEEE polynomial
	row := uint32(1)
	for n := 1; n < 32; n++ {
		odd[n] = row
		row <<= 1
	}
	gf2MatrixSquare(even[:], odd[:]) // 2 zero bits
	gf2MatrixSquare(odd[:], even[:]) // 4 zero bits
	for {
		gf2MatrixSquare(even[:], odd[:])
		if len2&1 != 0 {
			crc1 = gf2MatrixTimes(even[:], crc1)
		}
		len2 >>= 1
		if len2 == 0 {
			break
		}
		gf2MatrixSquare(odd[:], even[:])
		if len2&1 != 0 {
			crc1 = gf2MatrixTimes(odd[:], crc1)
		}
		len2 >>= 1
		if len2 == 0 {
			break
		}
	}
	return crc1 ^ crc2
}

func gf2MatrixTimes(mat []uint32, vec uint32) uint32 {
	var sum uint32
	for i := 0; vec != 0; i, vec = i+1, vec>>1 {
		if vec&1 != 0 {
			sum ^= mat[i]
		}
	}
	return sum
}

func gf2MatrixSquare(square, mat []uint32) {
	for n := 0; n < 32; n++ {
		square[n] = gf2MatrixTimes(mat, mat[n])
	}
}

// TamperFunc returns the bytes to serve for the blob with the given digest in place of the
// true blob (return blob unchanged to serve it honestly).
type TamperFunc func(digest v1.Hash, blob []byte) []byte

// TamperingRegistry is a minimal read-only registry API (/v2/, manifests and blobs by GET and
// HEAD) serving img as repo:tag, where each blob's body passes through tamper first. A real
// registry verifies digests on upload, so a registry that lies is only possible in-process.
// Use it with httptest.NewServer.
func TamperingRegistry(t testing.TB, repo, tag string, img v1.Image, tamper TamperFunc) http.Handler {
	t.Helper()
	manifest, err := img.RawManifest()
	if err != nil {
		t.Fatalf("imagebuild: %v", err)
	}
	mt, err := img.MediaType()
	if err != nil {
		t.Fatalf("imagebuild: %v", err)
	}
	digest, err := img.Digest()
	if err != nil {
		t.Fatalf("imagebuild: %v", err)
	}
	blobs := map[string][]byte{}
	cfgName, err := img.ConfigName()
	if err != nil {
		t.Fatalf("imagebuild: %v", err)
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		t.Fatalf("imagebuild: %v", err)
	}
	blobs[cfgName.String()] = tamper(cfgName, cfg)
	layers, err := img.Layers()
	if err != nil {
		t.Fatalf("imagebuild: %v", err)
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			t.Fatalf("imagebuild: %v", err)
		}
		rc, err := l.Compressed()
		if err != nil {
			t.Fatalf("imagebuild: %v", err)
		}
		var buf bytes.Buffer
		_, err = buf.ReadFrom(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("imagebuild: %v", err)
		}
		blobs[d.String()] = tamper(d, buf.Bytes())
	}
	prefix := "/v2/" + repo + "/"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "read-only", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		if r.URL.Path == "/v2/" {
			w.WriteHeader(http.StatusOK)
			return
		}
		rest, ok := strings.CutPrefix(r.URL.Path, prefix)
		if !ok {
			http.NotFound(w, r)
			return
		}
		var body []byte
		switch {
		case rest == "manifests/"+tag || rest == "manifests/"+digest.String():
			body = manifest
			w.Header().Set("Content-Type", string(mt))
			w.Header().Set("Docker-Content-Digest", digest.String())
		case strings.HasPrefix(rest, "blobs/"):
			b, ok := blobs[strings.TrimPrefix(rest, "blobs/")]
			if !ok {
				http.NotFound(w, r)
				return
			}
			body = b
			w.Header().Set("Content-Type", "application/octet-stream")
		default:
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(body)
		}
	})
}

// TamperGzipMTime changes the MTIME field of gzip blobs' headers: the blob no longer matches its
// digest, yet it decompresses to exactly the same tar, so only digest verification notices.
// Other blobs are served unchanged.
func TamperGzipMTime(_ v1.Hash, blob []byte) []byte {
	if len(blob) < 10 || blob[0] != 0x1f || blob[1] != 0x8b {
		return blob
	}
	out := append([]byte(nil), blob...)
	out[4] ^= 0xff
	return out
}

// MismatchRegistry serves "mismatch/app:v1", an image with a gzip layer holding a dpkg status,
// whose layer blob does not match its digest (TamperGzipMTime). It returns the handler and
// "mismatch/app:v1"; prefix the latter with the httptest server's host.
func MismatchRegistry(t testing.TB) (http.Handler, string) {
	t.Helper()
	img := Image(t, NewLayer(Dir("var/lib/dpkg"), File("var/lib/dpkg/status", DpkgStatus(DebPkg{
		Package: "base-files", Version: "12.4+deb12u5", Architecture: "amd64",
		Maintainer: "Santiago Vila <sanvila@debian.org>", Description: "Debian base system miscellaneous files"}))))
	return TamperingRegistry(t, "mismatch/app", "v1", img, TamperGzipMTime), "mismatch/app:v1"
}
