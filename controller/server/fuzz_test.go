package server_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/xlane/xlane/controller/api/v1"
	"github.com/xlane/xlane/controller/server"
	"github.com/xlane/xlane/controller/te/tetest"
	"github.com/xlane/xlane/controller/tunnels"
	"github.com/xlane/xlane/southbound/memory"
)

// FuzzRequestValidation feeds arbitrary requests to the API: every one is
// either admitted or refused with InvalidArgument or ResourceExhausted —
// never a panic, never an internal error.
func FuzzRequestValidation(f *testing.F) {
	f.Add(uint32(100), uint32(100), "10.0.0.2", uint32(7000), uint32(0), "10.0.0.1")
	f.Add(uint32(0), uint32(0), "239.1.1.1", uint32(0), uint32(9), "")
	f.Add(uint32(1000), uint32(10_000_000), "10.0.0.1", uint32(65536), uint32(1), "10.0.0.1")
	ctl, err := tunnels.New(context.Background(), tunnels.Config{Topology: tetest.TwoSwitch(f), Driver: memory.New("s1", "s2"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.Fatal(err)
	}
	defer ctl.Close()
	s := server.New(ctl)
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(server.ServiceKey, "fuzz"))
	f.Fuzz(func(t *testing.T, loadsize, period uint32, ip string, port, sublane uint32, sender string) {
		res, err := s.RequestBandwidth(ctx, &pb.RequestBandwidthRequest{Request: &pb.Request{
			Loadsize: loadsize, Period: period, Sublane: sublane, Sender: sender,
			Receiver: &pb.Endpoint{Ip: ip, Port: port},
		}})
		if err == nil {
			if _, err := s.ReleaseBandwidth(ctx, &pb.ReleaseBandwidthRequest{TunnelId: res.TunnelId}); err != nil {
				t.Fatalf("release %d: %v", res.TunnelId, err)
			}
			return
		}
		if c := status.Code(err); c != codes.InvalidArgument && c != codes.ResourceExhausted {
			t.Fatalf("code %v: %v", c, err)
		}
	})
}
