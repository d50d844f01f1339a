package image

import (
	"io"
	"sync"
)

// Read-ahead of a layer blob: the blob is read in its own goroutine while the caller decompresses
// and walks it, so the network (and a registry on the same machine) keeps working instead of
// waiting for the decompressor. Bounded: prefetchDepth chunks of prefetchChunkSize bytes.
const (
	prefetchChunkSize = 1 << 20
	prefetchDepth     = 8
)

type blobChunk struct {
	data []byte
	err  error
}

type prefetchReader struct {
	src    io.ReadCloser
	chunks chan blobChunk
	free   chan []byte // consumed buffers, reused by fill
	done   chan struct{}
	once   sync.Once
	cur    []byte
	buf    []byte // the buffer cur points into
	err    error
}

func newPrefetchReader(src io.ReadCloser) *prefetchReader {
	p := &prefetchReader{src: src, chunks: make(chan blobChunk, prefetchDepth), free: make(chan []byte, prefetchDepth+2),
		done: make(chan struct{})}
	go p.fill()
	return p
}

func (p *prefetchReader) fill() {
	defer close(p.chunks)
	for {
		var buf []byte
		select {
		case buf = <-p.free:
		default:
			buf = make([]byte, prefetchChunkSize)
		}
		n := 0
		var err error
		for n < len(buf) && err == nil {
			var m int
			m, err = p.src.Read(buf[n:])
			n += m
		}
		if n > 0 {
			select {
			case p.chunks <- blobChunk{data: buf[:n]}:
			case <-p.done:
				return
			}
		}
		if err != nil {
			select {
			case p.chunks <- blobChunk{err: err}:
			case <-p.done:
			}
			return
		}
	}
}

func (p *prefetchReader) Read(b []byte) (int, error) {
	for len(p.cur) == 0 {
		if p.buf != nil {
			select {
			case p.free <- p.buf[:cap(p.buf)]:
			default:
			}
			p.buf = nil
		}
		if p.err != nil {
			return 0, p.err
		}
		c, ok := <-p.chunks
		if !ok {
			p.err = io.ErrClosedPipe
			return 0, p.err
		}
		if c.err != nil {
			p.err = c.err
			return 0, p.err
		}
		p.cur, p.buf = c.data, c.data
	}
	n := copy(b, p.cur)
	p.cur = p.cur[n:]
	return n, nil
}

// Close stops the read-ahead and closes the blob (which unblocks a read in progress).
func (p *prefetchReader) Close() error {
	p.once.Do(func() { close(p.done) })
	return p.src.Close()
}
