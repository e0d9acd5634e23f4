package loadgen

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestTimelineBinsByCommitTime(t *testing.T) {
	const start = int64(1_000_000_000)
	at := func(ms int) int64 { return start + int64(ms)*int64(time.Millisecond) }
	ups := []upcall{
		{at: at(-1), delay: 99 * time.Millisecond}, // before timing: left out
		{at: at(0), delay: 1 * time.Millisecond},
		{at: at(10), delay: 3 * time.Millisecond},
		{at: at(49), delay: 2 * time.Millisecond},
		// nothing in 50–99 ms
		{at: at(120), delay: 7 * time.Millisecond},
		{at: at(151), delay: 99 * time.Millisecond}, // after the end: left out
	}
	got := timeline(ups, start, at(150), 50*time.Millisecond)
	want := []TimelineBin{
		{Start: 0, Committed: 3, P50: 2 * time.Millisecond, P99: 3 * time.Millisecond, Max: 3 * time.Millisecond},
		{Start: 50 * time.Millisecond},
		{Start: 100 * time.Millisecond, Committed: 1, P50: 7 * time.Millisecond, P99: 7 * time.Millisecond, Max: 7 * time.Millisecond},
		{Start: 150 * time.Millisecond},
	}
	if len(got) != len(want) {
		t.Fatalf("%d bins, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("bin %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if timeline(ups, at(10), at(0), time.Millisecond) != nil {
		t.Error("a window that ends before it starts has bins")
	}
}

func TestWriteTimelineWritesBothImages(t *testing.T) {
	base := filepath.Join(t.TempDir(), "tl")
	for _, r := range []Result{{}, {Timeline: []TimelineBin{{Start: 0}, {Start: TimelineWidth}}}} {
		if _, err := WriteTimeline(base, r); err == nil {
			t.Fatalf("no error for a run without upcalls: %+v", r)
		}
	}
	r := Result{PerSecond: 2000, Upcalls: 5, UpcallP99: 6 * time.Millisecond, Timeline: []TimelineBin{
		{Start: 0, Committed: 3, P50: time.Millisecond, P99: 5 * time.Millisecond, Max: 6 * time.Millisecond},
		{Start: TimelineWidth},
		{Start: 2 * TimelineWidth, Committed: 2, P50: 2 * time.Millisecond, P99: 3 * time.Millisecond, Max: 3 * time.Millisecond},
	}}
	files, err := WriteTimeline(base, r)
	if err != nil {
		t.Fatal(err)
	}
	magic := map[string][]byte{base + ".svg": []byte("<?xml"), base + ".png": []byte("\x89PNG")}
	if len(files) != len(magic) {
		t.Fatalf("wrote %v", files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, magic[f]) {
			t.Errorf("%s starts with %q", f, b[:min(len(b), 8)])
		}
	}
}
