package server

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/xlane/xlane/controller/api/v1"

	"github.com/xlane/xlane/controller/tunnels"
)

func TestBatchCoalescesTEChanges(t *testing.T) {
	te := func(id uint64, jitter int64) tunnels.Upcall {
		return tunnels.Upcall{Kind: tunnels.BandwidthChanged, Reason: tunnels.ReasonTE, TunnelID: id,
			Resources: tunnels.Resources{TunnelID: id, MaxJitterNs: jitter}, GraceUntil: time.Unix(jitter, 0)}
	}
	b := newBatch()
	b.add(te(1, 10))
	b.add(te(2, 20))
	b.add(te(1, 11)) // supersedes the first
	b.add(tunnels.Upcall{Kind: tunnels.BandwidthChanged, Reason: tunnels.ReasonBWExceeded, TunnelID: 2})
	b.add(te(2, 21)) // after another upcall of tunnel 2: kept apart
	var resp pb.WatchResponse
	r := &pooledResponse{pool: &responseBuffers{}}
	b.encodeInto(r)
	if err := proto.Unmarshal(*r.buf, &resp); err != nil {
		t.Fatal(err)
	}
	got := resp.GetUpcalls()
	if len(got) != 4 {
		t.Fatalf("%d upcalls, want 4: %v", len(got), got)
	}
	if j := got[0].GetChanged().GetResources().GetMaxJitter(); got[0].GetChanged().GetResources().GetTunnelId() != 1 || j != 11 {
		t.Errorf("first upcall %v, want tunnel 1 with its newest bounds", got[0])
	}
	if got[3].GetChanged().GetResources().GetMaxJitter() != 21 || got[1].GetChanged().GetResources().GetMaxJitter() != 20 {
		t.Errorf("tunnel 2's changes were merged across its BW_EXCEEDED upcall: %v", got)
	}
}
