package lane

import (
	"path/filepath"
	"testing"

	"github.com/xlane/xlane/endhost/bridge"
)

// FuzzFrames feeds arbitrary frames to the packet-ring and AF_XDP frame
// parsers (what a bypass path takes off the wire): counted as bad or
// delivered, never a crash.
func FuzzFrames(f *testing.F) {
	f.Add(make([]byte, 60))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0x45, 0, 0, 40})
	r, err := bridge.Create(filepath.Join(f.TempDir(), "rx"), 64, 2048)
	if err != nil {
		f.Fatal(err)
	}
	defer r.Close()
	sinks := map[uint16]*bridge.Ring{1: r}
	f.Fuzz(func(t *testing.T, frame []byte) {
		rr := &RingReceiver{delivery: delivery{sinks: sinks}}
		rr.frame(frame, 1, 2, 3)
		xr := &XSKReceiver{delivery: delivery{sinks: sinks}}
		xr.frame(frame, 2, 3)
		buf := make([]byte, 2048)
		for {
			if _, _, ok := r.Pop(buf); !ok {
				break
			}
		}
	})
}
