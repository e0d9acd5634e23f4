package server

import (
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/xlane/xlane/controller/api/v1"

	"github.com/xlane/xlane/controller/tunnels"
)

// appendWatchResponse appends a WatchResponse carrying us: the bytes
// proto.Marshal writes for upcallPB's messages, without building them.
// A watch response goes out for every commit that changes a service's
// tunnels, and its six small messages per upcall (and their collection)
// were a fifth of the controller's allocations.
func appendWatchResponse(b []byte, us []tunnels.Upcall) []byte {
	for i := range us {
		u := &us[i]
		b = protowire.AppendTag(b, 1, protowire.BytesType) // WatchResponse.upcalls
		if u.Kind == tunnels.BandwidthTerminated {
			n := uintField(u.TunnelID) + uintField(uint64(u.Reason))
			b = protowire.AppendVarint(b, uint64(1+protowire.SizeVarint(uint64(n))+n))
			b = protowire.AppendTag(b, 2, protowire.BytesType) // Upcall.terminated
			b = protowire.AppendVarint(b, uint64(n))
			b = appendUint(b, 1, u.TunnelID)
			b = appendUint(b, 2, uint64(u.Reason))
			continue
		}
		res, grace := resourcesSize(&u.Resources), timestampSize(u.GraceUntil)
		n := 1 + protowire.SizeVarint(uint64(res)) + res + uintField(uint64(u.Reason)) +
			1 + protowire.SizeVarint(uint64(grace)) + grace
		b = protowire.AppendVarint(b, uint64(1+protowire.SizeVarint(uint64(n))+n))
		b = protowire.AppendTag(b, 1, protowire.BytesType) // Upcall.changed
		b = protowire.AppendVarint(b, uint64(n))
		b = protowire.AppendTag(b, 1, protowire.BytesType) // BandwidthChanged.resources
		b = protowire.AppendVarint(b, uint64(res))
		b = appendResources(b, &u.Resources)
		b = appendUint(b, 2, uint64(u.Reason))
		b = appendTimestamp(b, 3, u.GraceUntil, grace)
	}
	return b
}

// uintField is the size of a varint field with value v (proto3: absent
// when zero); every field number here takes a one-byte tag.
func uintField(v uint64) int {
	if v == 0 {
		return 0
	}
	return 1 + protowire.SizeVarint(v)
}

func appendUint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// The fields of pb.Resources as toPB fills them: sizes are uint32, the
// bounds int64 (a negative one is ten bytes, as protobuf writes it).
func resourcesSize(r *tunnels.Resources) int {
	n := uintField(r.TunnelID) + uintField(uint64(uint32(r.LoadsizeBytes))) + uintField(uint64(uint32(r.PeriodUs))) +
		uintField(uint64(r.MinLatencyNs)) + uintField(uint64(r.MaxJitterNs))
	if !r.NotBefore.IsZero() {
		ts := timestampSize(r.NotBefore)
		n += 1 + protowire.SizeVarint(uint64(ts)) + ts
	}
	return n
}

func appendResources(b []byte, r *tunnels.Resources) []byte {
	b = appendUint(b, 1, r.TunnelID)
	b = appendUint(b, 2, uint64(uint32(r.LoadsizeBytes)))
	b = appendUint(b, 3, uint64(uint32(r.PeriodUs)))
	b = appendUint(b, 4, uint64(r.MinLatencyNs))
	b = appendUint(b, 5, uint64(r.MaxJitterNs))
	if !r.NotBefore.IsZero() {
		b = appendTimestamp(b, 6, r.NotBefore, timestampSize(r.NotBefore))
	}
	return b
}

// A google.protobuf.Timestamp as timestamppb.New makes it.
func timestampSize(t time.Time) int {
	return uintField(uint64(t.Unix())) + uintField(uint64(int64(int32(t.Nanosecond()))))
}

func appendTimestamp(b []byte, num protowire.Number, t time.Time, size int) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size))
	b = appendUint(b, 1, uint64(t.Unix()))
	return appendUint(b, 2, uint64(int64(int32(t.Nanosecond()))))
}

// UpcallPB is an upcall as the API's message: what appendWatchResponse
// encodes and ParseWatchResponse decodes (the CLI prints it as JSON).
func UpcallPB(u tunnels.Upcall) *pb.Upcall {
	reason := pb.Reason(u.Reason)
	if u.Kind == tunnels.BandwidthTerminated {
		return &pb.Upcall{Kind: &pb.Upcall_Terminated{Terminated: &pb.BandwidthTerminated{TunnelId: u.TunnelID, Reason: reason}}}
	}
	return &pb.Upcall{Kind: &pb.Upcall_Changed{Changed: &pb.BandwidthChanged{
		Resources: toPB(u.Resources), Reason: reason, GraceUntil: timestamppb.New(u.GraceUntil),
	}}}
}
