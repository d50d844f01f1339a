package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// layoutBackend reads an OCI image layout directory. Blobs are addressed by digest, so the
// layout's own files are all we need; ggcr's layout.Path knows where they live.
type layoutBackend struct {
	p layout.Path
}

func (l layoutBackend) manifest(_ context.Context, d v1.Descriptor) ([]byte, error) {
	return l.small(d, maxManifestSize, "manifest")
}

func (l layoutBackend) config(_ context.Context, d v1.Descriptor) ([]byte, error) {
	return l.small(d, maxConfigSize, "config")
}

func (l layoutBackend) small(d v1.Descriptor, limit int64, what string) ([]byte, error) {
	rc, err := l.blob(context.Background(), d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return readVerified(rc, d.Digest, limit, what)
}

func (l layoutBackend) blob(_ context.Context, d v1.Descriptor) (io.ReadCloser, error) {
	if !validSHA256(d.Digest) {
		return nil, fmt.Errorf("blob %s: only sha256 digests are supported", d.Digest)
	}
	rc, err := l.p.Blob(d.Digest)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	return rc, nil
}

// Limits on archive structure: a docker save of a large image has a few hundred entries.
const (
	maxArchiveEntries = 100_000
	maxSymlinkHops    = 8
)

type tarEntry struct {
	off, size int64
	link      string // symlink target, resolved to an archive path
}

// archiveBackend reads blobs straight out of an uncompressed tar (docker save or OCI archive)
// by offset: the archive is scanned once for its table of contents and never unpacked.
type archiveBackend struct {
	file    string
	entries map[string]tarEntry
	// byDigest maps digests to archive paths for docker-save layouts whose file names are not
	// digests; synth holds manifests crowsnest wrote for them (docker save has none).
	byDigest map[v1.Hash]string
	synth    map[v1.Hash][]byte
}

func scanArchive(file string) (*archiveBackend, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err == nil && (magic[0] == 0x1f && magic[1] == 0x8b || string(magic[:]) == string(magicZstd)) {
		return nil, errors.New("the archive is compressed; decompress it first (crowsnest reads blobs by offset from a plain tar)")
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	a := &archiveBackend{file: file, entries: map[string]tarEntry{}, byDigest: map[v1.Hash]string{}, synth: map[v1.Hash][]byte{}}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read tar: %w", err)
		}
		if len(a.entries) >= maxArchiveEntries {
			return nil, fmt.Errorf("more than %d entries", maxArchiveEntries)
		}
		p := cleanArchivePath(h.Name)
		switch h.Typeflag {
		case tar.TypeReg: // Next reports the old TypeRegA as TypeReg
			if isSparse(h) {
				// Sparse data is not stored contiguously; blobs never are sparse.
				continue
			}
			// archive/tar reads headers straight from f, so after Next the offset is the
			// start of the entry's data.
			off, err := f.Seek(0, io.SeekCurrent)
			if err != nil {
				return nil, err
			}
			a.entries[p] = tarEntry{off: off, size: h.Size}
		case tar.TypeSymlink:
			target := h.Linkname
			if !strings.HasPrefix(target, "/") {
				target = path.Join(path.Dir(p), target)
			}
			a.entries[p] = tarEntry{link: cleanArchivePath(target)}
		case tar.TypeLink:
			a.entries[p] = tarEntry{link: cleanArchivePath(h.Linkname)}
		}
	}
	return a, nil
}

func cleanArchivePath(p string) string {
	return strings.TrimPrefix(path.Clean("/"+p), "/")
}

func (a *archiveBackend) lookup(p string) (tarEntry, error) {
	p = cleanArchivePath(p)
	for range maxSymlinkHops {
		e, ok := a.entries[p]
		if !ok {
			return tarEntry{}, fmt.Errorf("%s not in archive", p)
		}
		if e.link == "" {
			return e, nil
		}
		p = e.link
	}
	return tarEntry{}, fmt.Errorf("%s: too many symlinks", p)
}

func (a *archiveBackend) open(p string) (io.ReadCloser, int64, error) {
	e, err := a.lookup(p)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(a.file)
	if err != nil {
		return nil, 0, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(f, e.off, e.size), f}, e.size, nil
}

func (a *archiveBackend) has(p string) bool {
	_, err := a.lookup(p)
	return err == nil
}

func (a *archiveBackend) readFile(p string, limit int64) ([]byte, error) {
	rc, size, err := a.open(p)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if size > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", p, limit)
	}
	return io.ReadAll(rc)
}

func (a *archiveBackend) blobPath(d v1.Descriptor) string {
	if p, ok := a.byDigest[d.Digest]; ok {
		return p
	}
	return path.Join("blobs", d.Digest.Algorithm, d.Digest.Hex)
}

func (a *archiveBackend) manifest(ctx context.Context, d v1.Descriptor) ([]byte, error) {
	if b, ok := a.synth[d.Digest]; ok {
		return b, nil
	}
	return a.small(ctx, d, maxManifestSize, "manifest")
}

func (a *archiveBackend) config(ctx context.Context, d v1.Descriptor) ([]byte, error) {
	return a.small(ctx, d, maxConfigSize, "config")
}

func (a *archiveBackend) small(ctx context.Context, d v1.Descriptor, limit int64, what string) ([]byte, error) {
	rc, err := a.blob(ctx, d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return readVerified(rc, d.Digest, limit, what)
}

func (a *archiveBackend) blob(_ context.Context, d v1.Descriptor) (io.ReadCloser, error) {
	if !validSHA256(d.Digest) {
		return nil, fmt.Errorf("blob %s: only sha256 digests are supported", d.Digest)
	}
	rc, _, err := a.open(a.blobPath(d))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	return rc, nil
}

func isSparse(h *tar.Header) bool {
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}
