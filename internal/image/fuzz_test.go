package image

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

func FuzzLayerReader(f *testing.F) {
	plain := tarBytes(f, file{"a", "hello"}, file{"b/c", "world"})
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain)
	zw.Close()
	enc, _ := zstd.NewWriter(nil)
	zs := enc.EncodeAll(plain, nil)
	for _, seed := range [][]byte{plain, gz.Bytes(), zs, nil, {0x1f, 0x8b}, magicZstd} {
		f.Add(seed, true)
		f.Add(seed, false)
	}
	f.Fuzz(func(t *testing.T, data []byte, rightDigest bool) {
		sum := sha256.Sum256(data)
		if !rightDigest {
			sum[0] ^= 1
		}
		digest := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
		lr, err := newLayerReader(io.NopCloser(bytes.NewReader(data)), digest, int64(len(data)), 1<<20)
		if err != nil {
			return
		}
		defer lr.Close()
		out, err := io.ReadAll(lr)
		compressed := bytes.HasPrefix(data, magicGzip) || bytes.HasPrefix(data, magicZstd)
		switch {
		case !rightDigest && err == nil:
			t.Fatal("wrong digest accepted")
		case rightDigest && !compressed && (err != nil || !bytes.Equal(out, data)):
			t.Fatalf("plain blob with the right digest: err %v, %d of %d bytes", err, len(out), len(data))
		case int64(len(out)) > 1<<20:
			t.Fatalf("read %d bytes past the limit", len(out))
		}
	})
}

func FuzzOpenArchive(f *testing.F) {
	dir := f.TempDir()
	img := handmade(f, "amd64", compression.GZip)
	tag, _ := name.NewTag("example.test/app:1")
	save := filepath.Join(dir, "save.tar")
	if err := tarball.WriteToFile(save, tag, img); err != nil {
		f.Fatal(err)
	}
	b, _ := os.ReadFile(save)
	f.Add(b)
	f.Add(tarBytes(f, file{"manifest.json", `[{"Config":"c.json","RepoTags":["a:1"],"Layers":["l/layer.tar"]}]`},
		file{"c.json", `{"os":"linux","architecture":"amd64","rootfs":{"type":"layers","diff_ids":["sha256:` + zeros + `"]}}`},
		file{"l/layer.tar", ""}))
	f.Add(tarBytes(f, file{"oci-layout", `{"imageLayoutVersion":"1.0.0"}`},
		file{"index.json", `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` + zeros + `","size":2}]}`}))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "a.tar")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		target, err := Open(ctx, "archive://"+p, Options{})
		if err != nil {
			return
		}
		target.Platforms()
		imgs, err := target.Images(ctx)
		if err != nil {
			return
		}
		for _, im := range imgs {
			d := im.Describe()
			for i := range d.Layers {
				rc, err := im.OpenLayer(ctx, i)
				if err != nil {
					continue
				}
				io.Copy(io.Discard, io.LimitReader(rc, 4<<20))
				rc.Close()
			}
		}
	})
}

func FuzzMediaTypeOf(f *testing.F) {
	f.Add([]byte(`{"manifests":[]}`))
	f.Add([]byte(`{"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{}}`))
	f.Add([]byte(`{"schemaVersion":1,"fsLayers":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		mediaTypeOf("", b)
		descriptorFor(sha256Hash(b), b)
	})
}

const zeros = "0000000000000000000000000000000000000000000000000000000000000000"
