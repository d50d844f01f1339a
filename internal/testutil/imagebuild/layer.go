// Package imagebuild builds fixture container images for tests, in Go, byte for byte: layers
// with every tar entry kind the index pipeline must handle (whiteouts, opaque dirs, links,
// devices), gzip/zstd/uncompressed blobs, image configs with history, multi-platform indexes,
// and hostile blobs (path traversal, symlink loops, decompression bombs, truncated streams,
// digest mismatches). Images can be pushed to a registry, or written as an OCI layout or a
// docker-save tarball.
package imagebuild

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"
	"path"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
)

// fixedTime is the modification time of every entry unless set otherwise: fixtures are
// reproducible, so the same spec always gives the same digests.
var fixedTime = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// Compression of a layer blob. The zero value is gzip, the common case.
type Compression int

const (
	Gzip Compression = iota
	Zstd
	Uncompressed
)

func (c Compression) String() string {
	switch c {
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	case Uncompressed:
		return "none"
	}
	return fmt.Sprintf("Compression(%d)", int(c))
}

// Entry is one tar entry. Build entries with File, Dir, Symlink, ... and adjust them with the
// With* methods; Header is exported for anything unusual.
type Entry struct {
	Header  tar.Header
	Content []byte
}

// tarName turns an image path into the name docker and buildkit write: relative, no leading "/".
func tarName(p string) string {
	return strings.TrimPrefix(p, "/")
}

func header(typ byte, p string, mode int64) tar.Header {
	return tar.Header{Typeflag: typ, Name: tarName(p), Mode: mode, ModTime: fixedTime, Format: tar.FormatPAX}
}

// File is a regular file, mode 0644, owned by root.
func File(p string, content []byte) Entry {
	h := header(tar.TypeReg, p, 0o644)
	h.Size = int64(len(content))
	return Entry{Header: h, Content: content}
}

// Exec is a regular file with mode 0755.
func Exec(p string, content []byte) Entry {
	return File(p, content).WithMode(0o755)
}

// Dir is a directory, mode 0755.
func Dir(p string) Entry {
	h := header(tar.TypeDir, p, 0o755)
	if !strings.HasSuffix(h.Name, "/") {
		h.Name += "/"
	}
	return Entry{Header: h}
}

// Symlink is a symbolic link at p pointing to target (kept verbatim: relative or absolute).
func Symlink(p, target string) Entry {
	h := header(tar.TypeSymlink, p, 0o777)
	h.Linkname = target
	return Entry{Header: h}
}

// Hardlink is a hard link at p to the earlier entry target (an image path, like p).
func Hardlink(p, target string) Entry {
	h := header(tar.TypeLink, p, 0o644)
	h.Linkname = tarName(target)
	return Entry{Header: h}
}

// Whiteout deletes p (a file or a whole directory) from the layers below: an empty file named
// .wh.<base> next to it.
func Whiteout(p string) Entry {
	dir, base := path.Split(tarName(p))
	h := header(tar.TypeReg, dir+".wh."+base, 0o644)
	return Entry{Header: h}
}

// OpaqueDir hides everything the layers below have in dir (dir itself stays): an empty file
// dir/.wh..wh..opq. Put Dir(dir) before it, as docker does.
func OpaqueDir(dir string) Entry {
	h := header(tar.TypeReg, path.Join(tarName(dir), ".wh..wh..opq"), 0o644)
	return Entry{Header: h}
}

// CharDevice is a character device node.
func CharDevice(p string, major, minor int64) Entry {
	h := header(tar.TypeChar, p, 0o666)
	h.Devmajor, h.Devminor = major, minor
	return Entry{Header: h}
}

// BlockDevice is a block device node.
func BlockDevice(p string, major, minor int64) Entry {
	h := header(tar.TypeBlock, p, 0o660)
	h.Devmajor, h.Devminor = major, minor
	return Entry{Header: h}
}

// FIFO is a named pipe.
func FIFO(p string) Entry {
	return Entry{Header: header(tar.TypeFifo, p, 0o644)}
}

// Raw is an entry whose name is written exactly as given (no leading-slash trimming), for
// hostile names such as "../../etc/passwd" or "/abs/path".
func Raw(typ byte, name string, content []byte) Entry {
	h := tar.Header{Typeflag: typ, Name: name, Mode: 0o644, ModTime: fixedTime, Format: tar.FormatPAX}
	if typ == tar.TypeReg {
		h.Size = int64(len(content))
	}
	return Entry{Header: h, Content: content}
}

// WithMode sets the permission bits (and setuid/setgid/sticky: 0o4755 etc.).
func (e Entry) WithMode(mode int64) Entry {
	e.Header.Mode = mode
	return e
}

// WithOwner sets the numeric owner.
func (e Entry) WithOwner(uid, gid int) Entry {
	e.Header.Uid, e.Header.Gid = uid, gid
	return e
}

// WithModTime sets the modification time.
func (e Entry) WithModTime(t time.Time) Entry {
	e.Header.ModTime = t
	return e
}

// WithLinkname sets the link target verbatim (hostile hard links: "../../etc/shadow").
func (e Entry) WithLinkname(target string) Entry {
	e.Header.Linkname = target
	return e
}

// Layer is the spec of one layer: ordered tar entries, the blob compression and the history line
// of the instruction that made it.
type Layer struct {
	Entries     []Entry
	Compression Compression
	// CreatedBy is the history's created_by (default "imagebuild: layer N").
	CreatedBy string
	// EmptyLayer makes a history-only step (ENV, LABEL, ...): no blob, Entries must be empty.
	EmptyLayer bool
}

// NewLayer is a gzip layer with the given entries.
func NewLayer(entries ...Entry) Layer {
	return Layer{Entries: entries}
}

// HistoryOnly is an empty-layer history step (e.g. `ENV A=b`).
func HistoryOnly(createdBy string) Layer {
	return Layer{EmptyLayer: true, CreatedBy: createdBy}
}

// Tar returns the uncompressed tar stream of the layer.
func (l Layer) Tar(t testing.TB) []byte {
	t.Helper()
	b, err := TarOf(l.Entries...)
	if err != nil {
		t.Fatalf("imagebuild: %v", err)
	}
	return b
}

// TarOf writes entries as a tar stream.
func TarOf(entries ...Entry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i, e := range entries {
		h := e.Header
		if h.Typeflag == tar.TypeReg && h.Size != int64(len(e.Content)) {
			return nil, fmt.Errorf("entry %d %q: header size %d but %d content bytes", i, h.Name, h.Size, len(e.Content))
		}
		if err := tw.WriteHeader(&h); err != nil {
			return nil, fmt.Errorf("entry %d %q: %w", i, h.Name, err)
		}
		if len(e.Content) > 0 {
			if _, err := tw.Write(e.Content); err != nil {
				return nil, fmt.Errorf("entry %d %q: %w", i, h.Name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Compress compresses data as c would in a layer blob.
func Compress(c Compression, data []byte) ([]byte, error) {
	var buf bytes.Buffer
	switch c {
	case Gzip:
		zw := gzip.NewWriter(&buf)
		if _, err := zw.Write(data); err != nil {
			return nil, err
		}
		if err := zw.Close(); err != nil {
			return nil, err
		}
	case Zstd:
		zw, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		if _, err := zw.Write(data); err != nil {
			return nil, err
		}
		if err := zw.Close(); err != nil {
			return nil, err
		}
	case Uncompressed:
		buf.Write(data)
	default:
		return nil, fmt.Errorf("unknown compression %v", c)
	}
	return buf.Bytes(), nil
}

// Decompress opens a reader over the uncompressed content of a blob.
func Decompress(c Compression, blob io.Reader) (io.ReadCloser, error) {
	switch c {
	case Gzip:
		return gzip.NewReader(blob)
	case Zstd:
		zr, err := zstd.NewReader(blob, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return zr.IOReadCloser(), nil
	case Uncompressed:
		return io.NopCloser(blob), nil
	}
	return nil, fmt.Errorf("unknown compression %v", c)
}

// MediaType is the layer media type for c, OCI or Docker flavour. Docker has no zstd type.
func (c Compression) MediaType(docker bool) types.MediaType {
	switch {
	case c == Gzip && docker:
		return types.DockerLayer
	case c == Gzip:
		return types.OCILayer
	case c == Uncompressed && docker:
		return types.DockerUncompressedLayer
	case c == Uncompressed:
		return types.OCIUncompressedLayer
	}
	return types.OCILayerZStd
}

// BuildLayer turns the spec into an OCI v1.Layer.
func BuildLayer(t testing.TB, l Layer) v1.Layer {
	t.Helper()
	return buildLayer(t, l, false)
}

func buildLayer(t testing.TB, l Layer, docker bool) v1.Layer {
	t.Helper()
	if l.Compression == Zstd && docker {
		t.Fatalf("imagebuild: zstd layers need OCI media types, not Docker's")
	}
	tb := l.Tar(t)
	blob, err := Compress(l.Compression, tb)
	if err != nil {
		t.Fatalf("imagebuild: compress layer: %v", err)
	}
	return &blobLayer{blob: blob, c: l.Compression, mt: l.Compression.MediaType(docker), digest: sha(blob), diffID: sha(tb)}
}

// RawLayer wraps an already made blob (possibly hostile) as a v1.Layer. diffID is what the image
// config will claim; pass nil to use the true digest of the decompressed content (the blob must
// then decompress cleanly).
func RawLayer(t testing.TB, blob []byte, c Compression, diffID *v1.Hash) v1.Layer {
	t.Helper()
	l := &blobLayer{blob: blob, c: c, mt: c.MediaType(false), digest: sha(blob)}
	if diffID != nil {
		l.diffID = *diffID
		return l
	}
	rc, err := Decompress(c, bytes.NewReader(blob))
	if err != nil {
		t.Fatalf("imagebuild: RawLayer: %v", err)
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		t.Fatalf("imagebuild: RawLayer: decompress for the diffID: %v", err)
	}
	l.diffID = v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", h.Sum(nil))}
	return l
}

func sha(b []byte) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256(b))}
}

// blobLayer is a layer held in memory as its exact blob bytes, so hostile blobs are served
// unchanged and digests are computed once.
type blobLayer struct {
	blob           []byte
	c              Compression
	mt             types.MediaType
	digest, diffID v1.Hash
}

func (l *blobLayer) Digest() (v1.Hash, error) { return l.digest, nil }
func (l *blobLayer) DiffID() (v1.Hash, error) { return l.diffID, nil }
func (l *blobLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.blob)), nil
}
func (l *blobLayer) Uncompressed() (io.ReadCloser, error) {
	return Decompress(l.c, bytes.NewReader(l.blob))
}
func (l *blobLayer) Size() (int64, error)                { return int64(len(l.blob)), nil }
func (l *blobLayer) MediaType() (types.MediaType, error) { return l.mt, nil }
