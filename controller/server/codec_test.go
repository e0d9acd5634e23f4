package server_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/xlane/xlane/controller/api/v1"
	"github.com/xlane/xlane/controller/server"
)

// codecSamples are the API's messages with every kind of field set.
func codecSamples() []proto.Message {
	at := timestamppb.New(time.Unix(1_700_000_000, 123_456_789))
	res := &pb.Resources{TunnelId: 7, Loadsize: 900, Period: 1000, MinLatency: 5130, MaxJitter: -1, NotBefore: at}
	req := &pb.Request{Loadsize: 64, Period: 100, Receiver: &pb.Endpoint{Ip: "239.1.2.3", Port: 7000}, Sublane: 1, Sender: "10.0.0.1"}
	return []proto.Message{
		&pb.RequestBandwidthRequest{Request: req},
		&pb.ChangeBandwidthRequest{TunnelId: 9, Request: req},
		&pb.ReleaseBandwidthRequest{TunnelId: 1<<63 + 5},
		&pb.GroupRequest{Group: &pb.Endpoint{Ip: "239.0.0.1", Port: 1}, Member: "10.0.0.4"},
		res,
		&pb.ListTunnelsResponse{Tunnels: []*pb.Resources{res, {TunnelId: 8}}},
		&pb.WatchResponse{Upcalls: []*pb.Upcall{
			{Kind: &pb.Upcall_Changed{Changed: &pb.BandwidthChanged{Resources: res, Reason: pb.Reason_REASON_BW_UNUSED, GraceUntil: at}}},
			{Kind: &pb.Upcall_Terminated{Terminated: &pb.BandwidthTerminated{TunnelId: 3, Reason: pb.Reason_REASON_BW_EXCEEDED}}},
			{},
		}},
		&pb.Service{Name: "raft", Registered: at, Tunnels: 3, RateBps: 1e9, Watching: 2, MaxTunnels: 10, MaxRateBps: 2e9},
		&pb.Topology{Nodes: []*pb.Node{{Name: "h1", Kind: "host", Ipv4: "10.0.0.1"}},
			Links:    []*pb.Link{{From: "h1", To: "s1", BandwidthBps: 1e10, QueueBytes: 1 << 20, MinLatencyNs: 100, MaxJitterNs: 50}},
			Sublanes: 2, MaxExpressShare: 0.5},
		&pb.WatchRequest{},
		at, // no generated code of ours: the fallback path
	}
}

// The codec's bytes are protobuf's, both ways.
func TestCodecMatchesProtobuf(t *testing.T) {
	c := server.Codec()
	for _, m := range codecSamples() {
		out, err := c.Marshal(m)
		if err != nil {
			t.Fatalf("marshal %T: %v", m, err)
		}
		got := m.ProtoReflect().New().Interface()
		if err := proto.Unmarshal(out.Materialize(), got); err != nil || !proto.Equal(got, m) {
			t.Fatalf("%T: codec bytes read by protobuf: %v (err %v), want %v", m, got, err, m)
		}
		std, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		into := m.ProtoReflect().New().Interface()
		if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(std)}, into); err != nil || !proto.Equal(into, m) {
			t.Fatalf("%T: protobuf bytes read by the codec: %v (err %v), want %v", m, into, err, m)
		}
	}
	if _, err := c.Marshal(struct{}{}); err == nil || !strings.Contains(err.Error(), "not a protobuf message") {
		t.Fatalf("marshal of a non-message: %v", err)
	}
	if err := c.Unmarshal(nil, new(int)); err == nil {
		t.Fatal("unmarshal into a non-message succeeded")
	}
}

// A message read twice into the same value holds only the second.
func TestCodecUnmarshalResets(t *testing.T) {
	c := server.Codec()
	first, _ := proto.Marshal(&pb.Request{Loadsize: 64, Sender: "10.0.0.1", Receiver: &pb.Endpoint{Ip: "10.0.0.2"}})
	second, _ := proto.Marshal(&pb.Request{Period: 5})
	var r pb.Request
	for _, b := range [][]byte{first, second} {
		if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, &r); err != nil {
			t.Fatal(err)
		}
	}
	if !proto.Equal(&r, &pb.Request{Period: 5}) {
		t.Fatalf("got %v, want only the second message", &r)
	}
}

// discardUnknown drops the unknown fields of m and the messages in it.
func discardUnknown(m protoreflect.Message) {
	m.SetUnknown(nil)
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := range v.List().Len() {
				discardUnknown(v.List().Get(i).Message())
			}
		case fd.Message() != nil && !fd.IsMap():
			discardUnknown(v.Message())
		}
		return true
	})
}

// FuzzCodecUnmarshal reads arbitrary bytes as the messages that arrive
// off the wire with the codec and with protobuf: both refuse, or both
// read the same message. Two differences are allowed: protobuf refuses a
// string field that is not UTF-8, the generated code keeps its bytes (the
// server parses every string of a request as an address, so such a
// request is refused there, naming the field); and a known field with
// the wrong wire type is an unknown field to protobuf, an error to the
// generated code (no client of the API sends one); and malformed bytes in
// an unknown field (a group ended under another field number) make
// protobuf refuse the message, while the generated code skips them as the
// unknown field they are.
func FuzzCodecUnmarshal(f *testing.F) {
	for i, m := range codecSamples() {
		b, _ := proto.Marshal(m)
		f.Add(byte(i), b)
	}
	f.Add(byte(0), []byte{0x0a, 0x05, 0x22, 0x03, 0xff, 0xfe, 0xfd})
	f.Add(byte(0), []byte{0x0a, 0x05, 0x2a, 0x03, 0xff, 0xfe, 0xfd})
	f.Add(byte(6), []byte{0x0a, 0x80})
	c := server.Codec()
	f.Fuzz(func(t *testing.T, kind byte, b []byte) {
		samples := codecSamples()
		proto0 := samples[int(kind)%len(samples)]
		viaCodec := proto0.ProtoReflect().New().Interface()
		viaProto := proto0.ProtoReflect().New().Interface()
		errC := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, viaCodec)
		errP := proto.Unmarshal(b, viaProto)
		switch {
		case errC != nil && errP != nil:
		case errC == nil && errP == nil:
			// Unknown fields are kept as bytes, which may differ in form
			// (a tag's varint not in its shortest form); compare what they
			// mean to the API.
			discardUnknown(viaCodec.ProtoReflect())
			discardUnknown(viaProto.ProtoReflect())
			if !proto.Equal(viaCodec, viaProto) {
				t.Fatalf("%T from %x: codec %v, protobuf %v", proto0, b, viaCodec, viaProto)
			}
		case errC == nil && strings.Contains(errP.Error(), "UTF-8"):
		case errP == nil && strings.Contains(errC.Error(), "wrong wireType"):
		case errC == nil && strings.Contains(errP.Error(), "invalid wire-format"):
		default:
			t.Fatalf("%T from %x: codec error %v, protobuf error %v", proto0, b, errC, errP)
		}
	})
}
