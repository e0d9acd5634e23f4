package store

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/controller/tunnels"
)

func tun(id uint64, owner string) tunnels.StoredTunnel {
	return tunnels.StoredTunnel{Owner: owner, Tunnel: te.Tunnel{ID: id, LoadsizeBytes: 100}}
}

// ids lists the stored tunnels' ids.
func ids(t *testing.T, s *Store) []uint64 {
	t.Helper()
	snap, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, st := range snap.Tunnels {
		out = append(out, st.Tunnel.ID)
	}
	slices.Sort(out)
	return out
}

// crash drops the store's files without a checkpoint, as a killed
// process leaves them.
func crash(t *testing.T, s *Store) {
	t.Helper()
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
}

func reopen(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Writes that were only logged come back after a crash, with the groups,
// registrations and id counter they carried; the log is empty afterwards.
func TestLoggedWritesSurviveACrash(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	g := netip.MustParseAddrPort("239.0.0.1:9000")
	writes := []tunnels.Writes{
		{Put: []tunnels.StoredTunnel{tun(1, "fd"), tun(2, "fd")}, Services: []tunnels.Service{{Name: "fd"}}},
		{Groups: map[netip.AddrPort][]netip.Addr{g: {netip.MustParseAddr("10.0.0.2")}}},
		{Delete: []uint64{1}, Put: []tunnels.StoredTunnel{tun(3, "raft")}},
	}
	for _, w := range writes {
		if err := s.Save(w); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.pending) == 0 {
		t.Fatal("nothing pending: the writes went to the database at once, the log is not tested")
	}
	crash(t, s)
	s = reopen(t, dir)
	if got := ids(t, s); !slices.Equal(got, []uint64{2, 3}) {
		t.Fatalf("tunnels after the crash: %v, want [2 3]", got)
	}
	snap, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if snap.NextID != 4 || len(snap.Services) != 1 || len(snap.Groups[g]) != 1 {
		t.Fatalf("after the crash: next id %d, services %+v, groups %v", snap.NextID, snap.Services, snap.Groups)
	}
	if st, err := os.Stat(filepath.Join(dir, "xlane.wal")); err != nil || st.Size() != int64(len(walMagic)) {
		t.Fatalf("log after the replay: %v, %v", st, err)
	}
}

// A record torn by the crash (never acknowledged) is cut off; the
// records before it are kept.
func TestTornLastRecordIsCutOff(t *testing.T) {
	for name, tail := range map[string]func(rec []byte) []byte{
		"short header":         func(rec []byte) []byte { return rec[:5] },
		"short payload":        func(rec []byte) []byte { return rec[:len(rec)-3] },
		"zeros after a header": func(rec []byte) []byte { return append(slices.Clone(rec[:8]), make([]byte, len(rec)-8)...) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Save(tunnels.Writes{Put: []tunnels.StoredTunnel{tun(1, "fd")}}); err != nil {
				t.Fatal(err)
			}
			rec := slices.Clone(s.wal.buf) // the record just written
			crash(t, s)
			appendFile(t, filepath.Join(dir, "xlane.wal"), tail(rec))
			s = reopen(t, dir)
			if got := ids(t, s); !slices.Equal(got, []uint64{1}) {
				t.Fatalf("tunnels: %v, want [1]", got)
			}
			// The log takes new records after the cut.
			if err := s.Save(tunnels.Writes{Put: []tunnels.StoredTunnel{tun(2, "fd")}}); err != nil {
				t.Fatal(err)
			}
			crash(t, s)
			if got := ids(t, reopen(t, dir)); !slices.Equal(got, []uint64{1, 2}) {
				t.Fatalf("tunnels after another crash: %v, want [1 2]", got)
			}
		})
	}
}

// A record in the middle that fails its CRC is corruption, not a torn
// write: opening fails and says where, instead of dropping what follows.
func TestCorruptRecordInTheMiddleIsRefused(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for id := uint64(1); id <= 2; id++ {
		if err := s.Save(tunnels.Writes{Put: []tunnels.StoredTunnel{tun(id, "fd")}}); err != nil {
			t.Fatal(err)
		}
	}
	crash(t, s)
	path := filepath.Join(dir, "xlane.wal")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(walMagic)+20] ^= 0x40 // inside the first record's payload
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir)
	if !errors.Is(err, errCorruptWAL) {
		t.Fatalf("opening a corrupt log: %v", err)
	}
	t.Log(err)
}

// A crash after a checkpoint's commit but before the log was emptied
// replays records the database has already: nothing changes.
func TestReplayOverACheckpointChangesNothing(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []tunnels.Writes{
		{Put: []tunnels.StoredTunnel{tun(1, "fd"), tun(2, "fd")}},
		{Delete: []uint64{2}},
		{Put: []tunnels.StoredTunnel{tun(2, "raft")}},
	} {
		if err := s.Save(w); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "xlane.wal")
	logged, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // the checkpoint
		t.Fatal(err)
	}
	if err := os.WriteFile(path, logged, 0o600); err != nil { // its reset undone
		t.Fatal(err)
	}
	s = reopen(t, dir)
	snap, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	owners := map[uint64]string{}
	for _, st := range snap.Tunnels {
		owners[st.Tunnel.ID] = st.Owner
	}
	if len(owners) != 2 || owners[1] != "fd" || owners[2] != "raft" || snap.NextID != 3 {
		t.Fatalf("after the replay: %v, next id %d", owners, snap.NextID)
	}
}

// Past checkpointOps logged ops the writes move into the database and the
// log starts over.
func TestCheckpointEmptiesTheLog(t *testing.T) {
	dir := t.TempDir()
	s := reopen(t, dir)
	for id := uint64(1); id <= checkpointOps; id++ { // two ops each (the tunnel, next_id)
		if err := s.Save(tunnels.Writes{Put: []tunnels.StoredTunnel{tun(id, "fd")}}); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.pending) >= checkpointOps || s.wal.size >= int64(checkpointOps)*100 {
		t.Fatalf("after %d ops: %d pending, log %d bytes", 2*checkpointOps, len(s.pending), s.wal.size)
	}
	crash(t, s)
	if got := ids(t, reopen(t, dir)); len(got) != checkpointOps || got[len(got)-1] != checkpointOps {
		t.Fatalf("%d tunnels after the crash, want %d", len(got), checkpointOps)
	}
}

// FuzzParseWAL: any log content is read without a panic, and what is
// returned lies within the file.
func FuzzParseWAL(f *testing.F) {
	rec := func(ops []op) []byte {
		d := f.TempDir()
		lw, _, err := openWAL(d)
		if err != nil {
			f.Fatal(err)
		}
		defer lw.close()
		if _, err := lw.append(ops); err != nil {
			f.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(d, "xlane.wal"))
		if err != nil {
			f.Fatal(err)
		}
		return data
	}
	f.Add(rec([]op{{kind: opPutTunnel, key: idKey(1), val: []byte(`{"a":1}`)}, {kind: opNextID, val: idKey(2)}}))
	f.Add(rec([]op{{kind: opDeleteGroup, key: []byte("239.0.0.1:9000")}}))
	f.Add([]byte(walMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		data = append([]byte(walMagic), data...)
		records, end, err := parseWAL(data)
		if err != nil {
			return
		}
		if end < len(walMagic) || end > len(data) {
			t.Fatalf("end %d outside the file of %d bytes", end, len(data))
		}
		for _, ops := range records {
			for _, o := range ops {
				if o.kind < opPutTunnel || o.kind > opNextID {
					t.Fatalf("op kind %d returned", o.kind)
				}
			}
		}
	})
}

func appendFile(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

// A full disk fails a Save with an error and leaves the log as it was:
// once there is room again, writes go on, and after a crash every Save
// that succeeded is back and none that failed. Needs root (a small tmpfs).
func TestFullDiskLosesNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=512k"); err != nil {
		t.Skipf("mounting a tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, 0) })
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Fill the rest of the file system.
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := f.Write(make([]byte, 4096)); err != nil {
			break
		}
	}
	f.Close()
	// Records of about 1 KB: the one that fails is cut off mid-page.
	big := tunnels.StoredTunnel{Owner: strings.Repeat("x", 1000), Tunnel: te.Tunnel{LoadsizeBytes: 100}}
	var saved []uint64
	var saveErr error
	for id := uint64(1); id < 1000 && saveErr == nil; id++ {
		big.Tunnel.ID = id
		if saveErr = s.Save(tunnels.Writes{Put: []tunnels.StoredTunnel{big}}); saveErr == nil {
			saved = append(saved, id)
		}
	}
	if !errors.Is(saveErr, unix.ENOSPC) {
		t.Fatalf("saving on a full disk: %v", saveErr)
	}
	t.Logf("%d saves fitted, then: %v", len(saved), saveErr)
	if st, err := os.Stat(filepath.Join(dir, "xlane.wal")); err != nil || st.Size() != s.wal.size {
		t.Fatalf("the log after the failed append: %v bytes, %v; want it cut back to %d", st.Size(), err, s.wal.size)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	next := saved[len(saved)-1] + 2 // the one that failed is not retried
	big.Tunnel.ID = next
	if err := s.Save(tunnels.Writes{Put: []tunnels.StoredTunnel{big}}); err != nil {
		t.Fatalf("saving with room again: %v", err)
	}
	saved = append(saved, next)
	crash(t, s)
	if got := ids(t, reopen(t, dir)); !slices.Equal(got, saved) {
		t.Fatalf("after the crash: %d tunnels %v…, want %d", len(got), got[:min(len(got), 5)], len(saved))
	}
}
