package server

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/xlane/xlane/controller/api/v1"
	"github.com/xlane/xlane/controller/tunnels"
)

// randomUpcall draws an upcall with each field zero, small, large or
// negative in turn, and times before and after 1970, with and without
// nanoseconds.
func randomUpcall(rng *rand.Rand) tunnels.Upcall {
	pick := func() int64 {
		switch rng.IntN(5) {
		case 0:
			return 0
		case 1:
			return rng.Int64N(200)
		case 2:
			return rng.Int64()
		case 3:
			return tunnels.Unbounded
		default:
			return -rng.Int64()
		}
	}
	when := func() time.Time {
		switch rng.IntN(4) {
		case 0:
			return time.Time{}
		case 1:
			return time.Unix(rng.Int64N(4e9), 0)
		case 2:
			return time.Unix(-rng.Int64N(4e9), rng.Int64N(1e9))
		default:
			return time.Unix(1_700_000_000+rng.Int64N(1e6), rng.Int64N(1e9))
		}
	}
	u := tunnels.Upcall{Kind: tunnels.BandwidthChanged, TunnelID: uint64(pick()), Reason: tunnels.Reason(rng.IntN(3)), GraceUntil: when()}
	if rng.IntN(4) == 0 {
		u.Kind = tunnels.BandwidthTerminated
		return u
	}
	u.Resources = tunnels.Resources{TunnelID: u.TunnelID, LoadsizeBytes: pick(), PeriodUs: pick(),
		MinLatencyNs: pick(), MaxJitterNs: pick(), NotBefore: when()}
	return u
}

// The hand-written encoding is byte for byte what protobuf writes for the
// messages UpcallPB builds.
func TestWatchResponseEncodingMatchesProtobuf(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for round := range 2000 {
		us := make([]tunnels.Upcall, rng.IntN(6))
		resp := &pb.WatchResponse{}
		for i := range us {
			us[i] = randomUpcall(rng)
			resp.Upcalls = append(resp.Upcalls, UpcallPB(us[i]))
		}
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendWatchResponse(nil, us); !bytes.Equal(got, want) {
			t.Fatalf("round %d, %+v:\n got %x\nwant %x", round, us, got, want)
		}
	}
}
