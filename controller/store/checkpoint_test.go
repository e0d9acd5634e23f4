package store

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/xlane/xlane/controller/tunnels"
)

// copyDir copies the store's files: what a crash at this moment leaves.
func copyDir(t *testing.T, dir string) string {
	t.Helper()
	out := t.TempDir()
	for _, name := range []string{"xlane.db", "xlane.wal"} {
		in, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(f, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		f.Close()
	}
	return out
}

// saveUpTo saves tunnels from..to (two ops each), failing the test if a
// Save does not return within 10 s (it waited for a checkpoint).
func saveUpTo(t *testing.T, s *Store, from, to uint64) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		for id := from; id <= to; id++ {
			if err := s.Save(tunnels.Writes{Put: []tunnels.StoredTunnel{tun(id, "fd")}}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("saves %d..%d did not return while a checkpoint was held up", from, to)
	}
}

func wantIDs(t *testing.T, s *Store, n uint64, when string) {
	t.Helper()
	got := ids(t, s)
	if uint64(len(got)) != n || (n > 0 && got[n-1] != n) {
		t.Fatalf("%s: %d tunnels (last %v), want 1..%d", when, len(got), got[len(got)-1:], n)
	}
}

// Saves go on while a checkpoint commits; afterwards the log holds only
// what they appended, and a crash at any point loses nothing.
func TestSavesGoOnDuringACheckpoint(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	stages := map[string]chan chan struct{}{"commit": make(chan chan struct{}), "cut": make(chan chan struct{})}
	s.ckHook = func(stage string) { // hands the test a gate and waits at it
		gate := make(chan struct{})
		stages[stage] <- gate
		<-gate
	}
	gate := func(stage string) chan struct{} {
		select {
		case g := <-stages[stage]:
			return g
		case <-time.After(10 * time.Second):
			t.Fatalf("no background checkpoint reached its %s", stage)
			return nil
		}
	}
	const first = checkpointOps / 2 // two ops a Save: this one starts it
	saveUpTo(t, s, 1, first)
	commit := gate("commit")
	if s.ck == nil || s.ck.n != checkpointOps {
		t.Fatalf("no checkpoint of %d ops under way", checkpointOps)
	}
	saveUpTo(t, s, first+1, first+100) // not held up
	wantIDs(t, reopen(t, copyDir(t, dir)), first+100, "crash before the checkpoint's commit")

	close(commit)
	cut := gate("cut") // committed; s.mu held until the gate opens
	wantIDs(t, reopen(t, copyDir(t, dir)), first+100, "crash after the commit, before the log was cut")
	close(cut)
	settled(s)
	if len(s.pending) != 200 {
		t.Fatalf("%d ops pending after the checkpoint, want the 200 saved during it", len(s.pending))
	}
	data, err := os.ReadFile(filepath.Join(dir, "xlane.wal"))
	if err != nil {
		t.Fatal(err)
	}
	records, end, err := parseWAL(data)
	if err != nil || end != len(data) || len(records) != 100 || int64(len(data)) != s.wal.size {
		t.Fatalf("log after the cut: %d records, %d of %d bytes parsed (%v), size recorded %d; want the 100 saved during it",
			len(records), end, len(data), err, s.wal.size)
	}
	s.ckHook = nil
	saveUpTo(t, s, first+101, first+110) // appended to the new log
	crash(t, s)
	wantIDs(t, reopen(t, dir), first+110, "crash after the checkpoint")
}

// A checkpoint whose commit fails leaves everything pending and logged;
// the next one (here Close's) puts it in the database.
func TestFailedCheckpointKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.ckHook = func(stage string) {
		if stage == "commit" {
			s.db.Close() // its commit fails: the database is closed
		}
	}
	saveUpTo(t, s, 1, checkpointOps/2)
	settled(s)
	if len(s.pending) != checkpointOps || s.ckAt != 2*checkpointOps {
		t.Fatalf("after a failed checkpoint: %d pending (want %d), next at %d (want %d)", len(s.pending), checkpointOps, s.ckAt, 2*checkpointOps)
	}
	s.wal.close()
	wantIDs(t, reopen(t, dir), checkpointOps/2, "reopened after a failed checkpoint")
}
