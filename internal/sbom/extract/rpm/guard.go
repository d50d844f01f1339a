package rpm

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/knqyf263/go-rpmdb/pkg/bdb"
)

// go-rpmdb walks Berkeley DB and NDB files in a goroutine of its own, trusting every offset and
// page number: a hostile database makes it panic (which no recover can catch, so the whole
// process dies), loop forever on a page chain, or allocate gigabytes from one length field.
// checkDatabase walks the same structures first, with bounds, and rejects anything go-rpmdb's
// reader could not walk safely. It also checks the start of every package header blob, because
// go-rpmdb sizes an allocation from it before validating it.
//
// This is a guard, not a second parser: it follows go-rpmdb v0.1.1's reading exactly (including
// its 16-bit offset arithmetic) and must be revisited when that dependency is upgraded.

type dbFormat int

const (
	formatBDB dbFormat = iota + 1
	formatNDB
	formatSQLite
)

var errNotRPMDB = errors.New("not an rpm database (Berkeley DB, NDB or SQLite)")

// detect mirrors rpmdb.Open's order: SQLite, then NDB, then Berkeley DB.
func detect(b []byte) (dbFormat, error) {
	switch {
	case bytes.HasPrefix(b, []byte("SQLite format 3\x00")):
		return formatSQLite, nil
	case len(b) >= 4 && binary.LittleEndian.Uint32(b) == ndbHeaderMagic:
		return formatNDB, nil
	case len(b) >= 16 && (binary.LittleEndian.Uint32(b[12:]) == bdb.HashMagicNumber || binary.LittleEndian.Uint32(b[12:]) == bdb.HashMagicNumberBE):
		return formatBDB, nil
	}
	return 0, errNotRPMDB
}

// Header blob bounds, as rpm's own header.c checks them (hdrchkTags, headerMaxbytes).
const (
	maxHeaderTags  = 0xffff
	maxHeaderBytes = 256 << 20
)

// checkHeaderStart validates a header blob's index and data lengths (big-endian il, dl).
func checkHeaderStart(start []byte, blobLen int) error {
	if len(start) < 8 {
		return fmt.Errorf("package header of %d bytes", blobLen)
	}
	il := int32(binary.BigEndian.Uint32(start))
	dl := int32(binary.BigEndian.Uint32(start[4:]))
	if il < 1 || il > maxHeaderTags || dl < 0 || dl >= maxHeaderBytes {
		return fmt.Errorf("package header with %d tags and %d data bytes", il, dl)
	}
	if need := 8 + 16*int64(il) + int64(dl); need > int64(blobLen) {
		return fmt.Errorf("package header needs %d bytes, blob has %d", need, blobLen)
	}
	return nil
}

func checkBDB(b []byte) error {
	if len(b) < 512 {
		return errors.New("berkeley db: truncated metadata page")
	}
	meta, err := bdb.ParseHashMetadataPage(b[:512])
	if err != nil {
		return fmt.Errorf("berkeley db: %w", err)
	}
	ps := int64(meta.PageSize)
	switch ps {
	case 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536:
	default:
		return fmt.Errorf("berkeley db: page size %d", ps)
	}
	pages := int64(meta.LastPageNo) + 1
	if pages*ps > int64(len(b)) {
		return fmt.Errorf("berkeley db: %d pages of %d bytes in a %d-byte file", pages, ps, len(b))
	}
	page := func(n int64) []byte { return b[n*ps : (n+1)*ps] }
	// Each overflow page belongs to one package in a sound database, so the walks together
	// visit at most every page once; more means a cycle or shared chains.
	budget := pages
	for n := int64(0); n < pages; n++ {
		p := page(n)
		hp, err := bdb.ParseHashPage(p, meta.Swapped)
		if err != nil {
			return fmt.Errorf("berkeley db page %d: %w", n, err)
		}
		if hp.PageType != bdb.HashUnsortedPageType && hp.PageType != bdb.HashPageType {
			continue
		}
		if hp.NumEntries%2 != 0 {
			return fmt.Errorf("berkeley db page %d: odd entry count", n)
		}
		// uint16 arithmetic on purpose: it is what go-rpmdb computes.
		indexEnd := uint16(bdb.PageHeaderSize) + hp.NumEntries*bdb.HashIndexEntrySize
		if indexEnd < bdb.PageHeaderSize || int64(indexEnd) > ps {
			return fmt.Errorf("berkeley db page %d: index beyond page", n)
		}
		index := p[bdb.PageHeaderSize:indexEnd]
		for i := 2; i+2 <= len(index); i += 4 {
			off := binary.LittleEndian.Uint16(index[i:])
			if meta.Swapped {
				off = binary.BigEndian.Uint16(index[i:])
			}
			if int64(off) >= ps {
				return fmt.Errorf("berkeley db page %d: value offset %d beyond page", n, off)
			}
			if p[off] != bdb.HashOffIndexPageType {
				continue
			}
			if int64(off)+bdb.HashOffPageSize > ps || off > 0xffff-bdb.HashOffPageSize {
				return fmt.Errorf("berkeley db page %d: value entry beyond page", n)
			}
			entry, err := bdb.ParseHashOffPageEntry(p[off:off+bdb.HashOffPageSize], meta.Swapped)
			if err != nil {
				return fmt.Errorf("berkeley db page %d: %w", n, err)
			}
			var start []byte
			total := 0
			for cur := int64(entry.PageNo); cur != 0; {
				if budget == 0 {
					return errors.New("berkeley db: overflow page chains loop or overlap")
				}
				budget--
				if cur >= pages {
					return fmt.Errorf("berkeley db: overflow page %d beyond the last page", cur)
				}
				op := page(cur)
				oh, err := bdb.ParseHashPage(op, meta.Swapped)
				if err != nil {
					return fmt.Errorf("berkeley db page %d: %w", cur, err)
				}
				if oh.PageType != bdb.OverflowPageType {
					return fmt.Errorf("berkeley db page %d: expected an overflow page", cur)
				}
				data := op[bdb.PageHeaderSize:]
				if oh.NextPageNo == 0 {
					end := uint16(bdb.PageHeaderSize) + oh.FreeAreaOffset
					if end < bdb.PageHeaderSize || int64(end) > ps {
						return fmt.Errorf("berkeley db page %d: data beyond page", cur)
					}
					data = op[bdb.PageHeaderSize:end]
				}
				if len(start) < 8 {
					start = append(start, data[:min(len(data), 8-len(start))]...)
				}
				total += len(data)
				cur = int64(oh.NextPageNo)
			}
			if err := checkHeaderStart(start, total); err != nil {
				return fmt.Errorf("berkeley db page %d: %w", n, err)
			}
		}
	}
	return nil
}

const (
	ndbHeaderMagic = 'R' | 'p'<<8 | 'm'<<16 | 'P'<<24
	ndbSlotMagic   = 'S' | 'l'<<8 | 'o'<<16 | 't'<<24
	ndbBlobMagic   = 'B' | 'l'<<8 | 'b'<<16 | 'S'<<24
	ndbMaxSlotPage = 2048 // go-rpmdb's own limit
)

func checkNDB(b []byte) error {
	le := binary.LittleEndian
	if len(b) < 32 {
		return errors.New("ndb: truncated header")
	}
	if le.Uint32(b[4:]) != 0 {
		return fmt.Errorf("ndb: version %d", le.Uint32(b[4:]))
	}
	slotPages := int64(le.Uint32(b[12:]))
	if slotPages == 0 || slotPages > ndbMaxSlotPage {
		return fmt.Errorf("ndb: %d slot pages", slotPages)
	}
	end := slotPages * 4096
	if end > int64(len(b)) {
		return errors.New("ndb: truncated slot pages")
	}
	for off := int64(32); off+16 <= end; off += 16 {
		slot := b[off : off+16]
		if le.Uint32(slot) != ndbSlotMagic {
			// go-rpmdb would also print this to stdout.
			return fmt.Errorf("ndb: bad slot at offset %d", off)
		}
		pkgIndex := le.Uint32(slot[4:])
		if pkgIndex == 0 {
			continue
		}
		blk := int64(le.Uint32(slot[8:])) * 16
		if blk+16 > int64(len(b)) {
			return fmt.Errorf("ndb: package %d: blob beyond file", pkgIndex)
		}
		hdr := b[blk : blk+16]
		if le.Uint32(hdr) != ndbBlobMagic || le.Uint32(hdr[4:]) != pkgIndex {
			return fmt.Errorf("ndb: package %d: bad blob header", pkgIndex)
		}
		blobLen := int64(le.Uint32(hdr[12:]))
		if blk+16+blobLen > int64(len(b)) {
			return fmt.Errorf("ndb: package %d: blob beyond file", pkgIndex)
		}
		if err := checkHeaderStart(b[blk+16:blk+16+blobLen], int(blobLen)); err != nil {
			return fmt.Errorf("ndb: package %d: %w", pkgIndex, err)
		}
	}
	return nil
}

// checkSQLite reads the blobs the way go-rpmdb will (SELECT blob FROM Packages) and checks each
// header start. The SQLite engine itself copes with corrupt files.
func checkSQLite(ctx context.Context, file string) error {
	db, err := sql.Open("sqlite", "file:"+file+"?mode=ro")
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	defer db.Close()
	// A view or virtual table named Packages could make go-rpmdb's query (which has no
	// deadline) run forever; rpm itself only creates a plain table.
	var schema string
	err = db.QueryRowContext(ctx, "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'Packages'").Scan(&schema)
	if err != nil {
		return fmt.Errorf("sqlite: no Packages table: %w", err)
	}
	if !strings.HasPrefix(strings.ToUpper(schema), "CREATE TABLE") {
		return errors.New("sqlite: Packages is not a plain table")
	}
	rows, err := db.QueryContext(ctx, "SELECT hnum, substr(CAST(blob AS BLOB), 1, 8), length(CAST(blob AS BLOB)) FROM Packages")
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var hnum int64
		var start []byte
		var n int
		if err := rows.Scan(&hnum, &start, &n); err != nil {
			return fmt.Errorf("sqlite: %w", err)
		}
		if err := checkHeaderStart(start, n); err != nil {
			return fmt.Errorf("sqlite: package %d: %w", hnum, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	return nil
}
