package wire

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// scatter and gather (assembly where d ≥ 16) against the plain loops, and
// gather undoing scatter; bytes outside a chunk's descriptor and data
// stay as they were.
func TestScatterGather(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, c := range []struct{ cl, d int }{{10, 5}, {20, 16}, {26, 22}, {36, 31}, {40, 31}} {
		for _, chunks := range []int{1, 2, 3, 7, 40} {
			src := make([]byte, chunks*c.d)
			for i := range src {
				src[i] = byte(r.Uint32())
			}
			got := bytes.Repeat([]byte{0xee}, chunks*c.cl)
			want := bytes.Repeat([]byte{0xee}, chunks*c.cl)
			scatter(got, src, chunks, c.cl, c.d)
			scatterGo(want, src, chunks, c.cl, c.d)
			if !bytes.Equal(got, want) {
				t.Fatalf("scatter cl %d d %d ×%d:\n%x\nwant\n%x", c.cl, c.d, chunks, got, want)
			}
			back := make([]byte, chunks*c.d)
			gather(back, got, chunks, c.cl, c.d)
			if !bytes.Equal(back, src) {
				t.Fatalf("gather cl %d d %d ×%d: %x, want %x", c.cl, c.d, chunks, back, src)
			}
		}
	}
}
