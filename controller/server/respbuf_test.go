package server

import (
	"bytes"
	"testing"

	"google.golang.org/grpc/mem"

	"github.com/xlane/xlane/controller/tunnels"
)

// A watch response goes to gRPC as a pooled buffer (one above gRPC's
// pooling threshold, so that it is not copied), and freeing it hands the
// buffer back to the stream's pool for the next response.
func TestWatchResponseBufferGoesBackToThePool(t *testing.T) {
	b := newBatch()
	b.add(tunnels.Upcall{Kind: tunnels.BandwidthTerminated, TunnelID: 7, Reason: tunnels.ReasonBWUnused})
	pool := &responseBuffers{}
	r := &pooledResponse{pool: pool}
	b.encodeInto(r)
	want := append([]byte(nil), *r.buf...)
	data, err := Codec().Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) != 1 {
		t.Fatalf("%d buffers, want 1", len(data))
	}
	if _, copied := data[0].(mem.SliceBuffer); copied {
		t.Fatal("the response went out as a plain slice: its buffer is never reused")
	}
	if got := data.Materialize(); !bytes.Equal(got, want) {
		t.Fatalf("sent %x, encoded %x", got, want)
	}
	given := r.buf
	data.Free()
	if g := pool.Get(3); g != given && !raceEnabled { // the race detector's pools drop some at random
		t.Fatal("a freed response's buffer did not come back from the pool")
	} else if len(*g) != 3 || cap(*g) < minResponseBuffer {
		t.Fatalf("Get(3): len %d cap %d", len(*g), cap(*g))
	}
}
