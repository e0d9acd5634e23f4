package server

import (
	"math/rand/v2"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/xlane/xlane/controller/api/v1"
	"github.com/xlane/xlane/controller/tunnels"
)

// reference is what protobuf's decoder makes of a response, converted as
// the client converted the API's messages before it read the wire itself
// (client.FromPB, AsTime): ParseWatchResponse must agree with it.
// (protobuf-go, not the generated decoder: that one also takes field
// numbers beyond protobuf's range, which no encoder writes.)
func reference(b []byte) ([]tunnels.Upcall, error) {
	var resp pb.WatchResponse
	if err := proto.Unmarshal(b, &resp); err != nil {
		return nil, err
	}
	var out []tunnels.Upcall
	for _, u := range resp.Upcalls {
		switch k := u.Kind.(type) {
		case *pb.Upcall_Changed:
			r := k.Changed.GetResources()
			x := tunnels.Upcall{Kind: tunnels.BandwidthChanged, TunnelID: r.GetTunnelId(), Reason: tunnels.Reason(k.Changed.GetReason()),
				Resources: tunnels.Resources{TunnelID: r.GetTunnelId(), LoadsizeBytes: int64(r.GetLoadsize()), PeriodUs: int64(r.GetPeriod()),
					MinLatencyNs: r.GetMinLatency(), MaxJitterNs: r.GetMaxJitter()}}
			if r.GetNotBefore() != nil {
				x.Resources.NotBefore = r.GetNotBefore().AsTime()
			}
			if k.Changed.GetGraceUntil() != nil {
				x.GraceUntil = k.Changed.GetGraceUntil().AsTime()
			}
			out = append(out, x)
		case *pb.Upcall_Terminated:
			out = append(out, tunnels.Upcall{Kind: tunnels.BandwidthTerminated, TunnelID: k.Terminated.GetTunnelId(), Reason: tunnels.Reason(k.Terminated.GetReason())})
		}
	}
	return out, nil
}

// checkParse compares ParseWatchResponse with protobuf's decoder on b:
// both accept it with the same upcalls, or both refuse it.
func checkParse(t *testing.T, b []byte) {
	t.Helper()
	want, werr := reference(b)
	got, err := ParseWatchResponse(b, nil)
	switch {
	case werr != nil && err == nil:
		t.Fatalf("%x: parsed %+v; protobuf refuses it: %v", b, got, werr)
	case werr == nil && err != nil:
		t.Fatalf("%x: %v; protobuf reads %+v", b, err, want)
	case err == nil && !reflect.DeepEqual(got, want):
		t.Fatalf("%x:\n got %+v\nwant %+v", b, got, want)
	}
}

// What the server writes reads back as protobuf reads it; appended to
// what the slice held.
func TestParseWatchResponseReadsWhatTheServerWrites(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	for range 2000 {
		us := make([]tunnels.Upcall, rng.IntN(6))
		for i := range us {
			us[i] = randomUpcall(rng)
		}
		checkParse(t, appendWatchResponse(nil, us))
	}
	held := []tunnels.Upcall{{TunnelID: 9}}
	got, err := ParseWatchResponse(appendWatchResponse(nil, []tunnels.Upcall{{Kind: tunnels.BandwidthTerminated, TunnelID: 4}}), held)
	if err != nil || len(got) != 2 || got[0].TunnelID != 9 || got[1].TunnelID != 4 || got[1].Kind != tunnels.BandwidthTerminated {
		t.Fatalf("got %+v, %v; want the held upcall and tunnel 4's termination", got, err)
	}
}

// Responses protobuf reads in ways the server never writes: fields given
// twice (merged), a kind switched, unknown fields and kinds, fields of
// the wrong wire type (unknown fields, to protobuf), and broken ones,
// each named in the error.
func TestParseWatchResponseOddAndBrokenInput(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":                   {},
		"unknown field":           {0x10, 0x05},
		"unknown kind":            {0x0a, 0x02, 0x18, 0x01},
		"empty upcall":            {0x0a, 0x00},
		"changed twice, merged":   {0x0a, 0x0a, 0x0a, 0x04, 0x0a, 0x02, 0x08, 0x07, 0x0a, 0x02, 0x10, 0x02},
		"changed then terminated": {0x0a, 0x08, 0x0a, 0x02, 0x10, 0x01, 0x12, 0x02, 0x08, 0x05},
		"negative bound":          append([]byte{0x0a, 0x0f, 0x0a, 0x0d, 0x0a, 0x0b, 0x28}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
		"truncated length":        {0x0a, 0x05, 0x0a},
		"upcall as varint":        {0x08, 0x01},
		"resources as varint":     {0x0a, 0x04, 0x0a, 0x02, 0x08, 0x01},
		"overlong varint":         {0x0a, 0x0d, 0x12, 0x0b, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"field number zero":       {0x02, 0x00},
	} {
		t.Run(name, func(t *testing.T) { checkParse(t, b) })
	}
	_, err := ParseWatchResponse([]byte{0x0a, 0x06, 0x0a, 0x04, 0x0a, 0x02, 0x08, 0x80}, nil)
	if err == nil || err.Error() != "watch response: upcall 0: changed: resources: tunnel_id: unexpected EOF" {
		t.Fatalf("a tunnel id cut short: %v", err)
	}
}

// FuzzParseWatchResponse: on any bytes the hand-written decoder agrees
// with protobuf's (same upcalls, or both refuse), and never panics.
func FuzzParseWatchResponse(f *testing.F) {
	rng := rand.New(rand.NewPCG(5, 5))
	for range 8 {
		us := make([]tunnels.Upcall, 1+rng.IntN(4))
		for i := range us {
			us[i] = randomUpcall(rng)
		}
		f.Add(appendWatchResponse(nil, us))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkParse(t, b) })
}

// BenchmarkWatchResponseDecode reads a five-upcall response (the size a
// saturated daemon sends) as the client did with the generated messages
// and as it does now; ns/upcall and allocs/op are the figures.
func BenchmarkWatchResponseDecode(b *testing.B) {
	rng := rand.New(rand.NewPCG(9, 9))
	us := make([]tunnels.Upcall, 5)
	for i := range us {
		us[i] = randomUpcall(rng)
		us[i].Kind = tunnels.BandwidthChanged
	}
	wire := appendWatchResponse(nil, us)
	report := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(us)), "ns/upcall")
	}
	b.Run("generated", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var resp pb.WatchResponse
			if err := resp.UnmarshalVT(wire); err != nil || len(resp.Upcalls) != len(us) {
				b.Fatal(err)
			}
		}
		report(b)
	})
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		var into []tunnels.Upcall
		for b.Loop() {
			var err error
			if into, err = ParseWatchResponse(wire, into[:0]); err != nil || len(into) != len(us) {
				b.Fatal(err)
			}
		}
		report(b)
	})
}
