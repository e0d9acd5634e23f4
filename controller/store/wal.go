package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// The write-ahead log makes a Save durable with one append and one
// fdatasync; bbolt gets the logged writes in batches (a checkpoint), after
// which the log is emptied. A bbolt commit of its own per Save cost about
// twice the CPU and wall time (two fdatasyncs, five page writes, and the
// materialized B+tree nodes the garbage collector then had to chase), the
// way etcd keeps its raft log apart from its bbolt backend.
//
// File: the magic, then records of
//
//	length:4 (payload bytes, little endian)  crc:4 (CRC-32C of the payload)  payload
//
// and a payload is a sequence of ops: kind:1, key length:4, key,
// value length:4, value. A crash can leave a torn last record: it was
// never acknowledged, and is cut off when the log is opened.
const walMagic = "XLWAL001"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// op kinds: what a Save does to the database, key by key.
const (
	opPutTunnel byte = iota + 1
	opDeleteTunnel
	opPutService
	opPutGroup
	opDeleteGroup
	opNextID
)

type op struct {
	kind     byte
	key, val []byte
}

// errCorruptWAL: a record in the middle of the log does not check out.
var errCorruptWAL = errors.New("write-ahead log corrupt")

type wal struct {
	f    *os.File
	path string
	size int64
	buf  []byte // the record being written, reused
}

// openWAL opens (or creates) the log and returns the ops of its complete
// records, cutting off a torn tail.
func openWAL(dir string) (*wal, [][]op, error) {
	path := filepath.Join(dir, "xlane.wal")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", path, err)
	}
	w := &wal{f: f, path: path}
	data, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) == 0 {
		if err := w.create(dir); err != nil {
			f.Close()
			return nil, nil, err
		}
		return w, nil, nil
	}
	if len(data) < len(walMagic) || string(data[:len(walMagic)]) != walMagic {
		f.Close()
		return nil, nil, fmt.Errorf("%s: not an X-Lane write-ahead log (%d bytes)", path, len(data))
	}
	records, end, err := parseWAL(data)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	w.size = int64(end)
	if end < len(data) { // a torn last record: never acknowledged
		if err := w.truncate(int64(end)); err != nil {
			f.Close()
			return nil, nil, err
		}
	}
	return w, records, nil
}

// create writes the magic into a new log and makes the file's name durable.
func (w *wal) create(dir string) error {
	if _, err := w.f.Write([]byte(walMagic)); err != nil {
		return fmt.Errorf("write %s: %w", w.path, err)
	}
	if err := unix.Fsync(int(w.f.Fd())); err != nil {
		return fmt.Errorf("sync %s: %w", w.path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := unix.Fsync(int(d.Fd())); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	w.size = int64(len(walMagic))
	return nil
}

// parseWAL returns the ops of each complete record and where the last one
// ends. A record cut short by the end of the file is a torn write; one
// that fails its CRC is too when only zeros follow it (a file extended
// before its data landed); otherwise the log is corrupt and nothing is
// guessed.
func parseWAL(data []byte) ([][]op, int, error) {
	var records [][]op
	off := len(walMagic)
	for off < len(data) {
		rest := data[off:]
		if len(rest) < 8 {
			return records, off, nil // a header cut short: torn
		}
		n := int(binary.LittleEndian.Uint32(rest))
		if n > len(rest)-8 {
			return records, off, nil // a record cut short: torn
		}
		payload := rest[8 : 8+n]
		if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(rest[4:]) {
			if allZero(rest[8+n:]) {
				return records, off, nil
			}
			return nil, 0, fmt.Errorf("%w: the record at byte %d fails its CRC", errCorruptWAL, off)
		}
		ops, err := decodeOps(payload)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: the record at byte %d: %w", errCorruptWAL, off, err)
		}
		records = append(records, ops)
		off += 8 + n
	}
	return records, off, nil
}

func allZero(b []byte) bool { return len(bytes.TrimLeft(b, "\x00")) == 0 }

func decodeOps(p []byte) ([]op, error) {
	var ops []op
	for len(p) > 0 {
		if len(p) < 5 {
			return nil, errors.New("an op cut short")
		}
		o := op{kind: p[0]}
		if o.kind < opPutTunnel || o.kind > opNextID {
			return nil, fmt.Errorf("unknown op %d", o.kind)
		}
		var ok bool
		if o.key, p, ok = field(p[1:]); !ok {
			return nil, errors.New("an op's key cut short")
		}
		if o.val, p, ok = field(p); !ok {
			return nil, errors.New("an op's value cut short")
		}
		ops = append(ops, o)
	}
	return ops, nil
}

// field reads a length-prefixed field; the result aliases p.
func field(p []byte) (f, rest []byte, ok bool) {
	if len(p) < 4 {
		return nil, nil, false
	}
	n := binary.LittleEndian.Uint32(p)
	if uint64(n) > uint64(len(p)-4) {
		return nil, nil, false
	}
	return p[4 : 4+n : 4+n], p[4+n:], true
}

// append writes one record with ops and waits until it is on disk. On a
// failed write the log is cut back to where it was, so that a later
// record never follows a torn one; when even that fails, or the sync
// fails (what reached the disk is then unknown), the error is fatal for
// the log.
func (w *wal) append(ops []op) (fatal bool, err error) {
	b := append(w.buf[:0], 0, 0, 0, 0, 0, 0, 0, 0)
	for _, o := range ops {
		b = append(b, o.kind)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(o.key)))
		b = append(b, o.key...)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(o.val)))
		b = append(b, o.val...)
	}
	binary.LittleEndian.PutUint32(b, uint32(len(b)-8))
	binary.LittleEndian.PutUint32(b[4:], crc32.Checksum(b[8:], castagnoli))
	w.buf = b
	if _, err := w.f.Write(b); err != nil { // err names the file
		if terr := w.f.Truncate(w.size); terr != nil {
			return true, fmt.Errorf("appending to the log: %w; cutting it back: %w", err, terr)
		}
		return false, fmt.Errorf("appending to the log: %w", err)
	}
	if err := unix.Fdatasync(int(w.f.Fd())); err != nil {
		return true, fmt.Errorf("sync %s: %w", w.path, err)
	}
	w.size += int64(len(b))
	return false, nil
}

// truncate cuts the log to size bytes, durably.
func (w *wal) truncate(size int64) error {
	if err := w.f.Truncate(size); err != nil {
		return fmt.Errorf("truncate %s: %w", w.path, err)
	}
	if err := unix.Fdatasync(int(w.f.Fd())); err != nil {
		return fmt.Errorf("sync %s: %w", w.path, err)
	}
	w.size = size
	return nil
}

// reset empties the log after its records reached the database.
func (w *wal) reset() error { return w.truncate(int64(len(walMagic))) }

func (w *wal) close() error { return w.f.Close() }
