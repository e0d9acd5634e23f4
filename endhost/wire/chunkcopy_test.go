package wire

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// gather (assembly where d ≥ 16) against the plain loop and undoing
// scatter; scatter leaves the bytes outside a chunk's descriptor and data
// as they were.
func TestScatterGather(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, c := range []struct{ cl, d int }{{10, 5}, {20, 16}, {26, 22}, {36, 31}, {40, 31}} {
		for _, chunks := range []int{1, 2, 3, 7, 40} {
			src := make([]byte, chunks*c.d)
			for i := range src {
				src[i] = byte(r.Uint32())
			}
			got := bytes.Repeat([]byte{0xee}, chunks*c.cl)
			scatter(got, src, chunks, c.cl, c.d)
			for i := range chunks {
				ch := got[i*c.cl : (i+1)*c.cl]
				if ch[0] != byte(c.d) || !bytes.Equal(ch[1:1+c.d], src[i*c.d:(i+1)*c.d]) || !bytes.Equal(ch[1+c.d:], bytes.Repeat([]byte{0xee}, c.cl-1-c.d)) {
					t.Fatalf("scatter cl %d d %d ×%d: chunk %d %x", c.cl, c.d, chunks, i, ch)
				}
			}
			back, want := make([]byte, chunks*c.d), make([]byte, chunks*c.d)
			gather(back, got, chunks, c.cl, c.d)
			gatherGo(want, got, chunks, c.cl, c.d)
			if !bytes.Equal(back, src) || !bytes.Equal(want, src) {
				t.Fatalf("gather cl %d d %d ×%d: %x (plain loop %x), want %x", c.cl, c.d, chunks, back, want, src)
			}
		}
	}
}
