package server

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// vtMessage is a message with generated marshalling code
// (controller_vtproto.pb.go, protoc-gen-go-vtproto): straight-line code
// per field instead of protobuf-go's table walk.
type vtMessage interface {
	SizeVT() int
	MarshalToSizedBufferVT([]byte) (int, error)
	UnmarshalVT([]byte) error
}

// codec is gRPC's protobuf codec with the API's generated marshalling:
// a watch response goes out and is read back on every upcall, and
// protobuf-go's reflection-driven code was a quarter of the load
// generator's CPU and a tenth of the controller's. The wire format is
// the same ("proto"): other clients and servers are unaffected. Watch
// responses arrive already encoded (upcallwire.go) in buffers gRPC gives
// back once written (respbuf.go), and go out as they are.
type codec struct{}

// Codec is the API's codec; the server and the Go client force it.
func Codec() encoding.CodecV2 { return codec{} }

func (codec) Name() string { return "proto" }

func (codec) Marshal(v any) (mem.BufferSlice, error) {
	if r, ok := v.(*pooledResponse); ok {
		return mem.BufferSlice{mem.NewBuffer(r.buf, r.pool)}, nil
	}
	vt, ok := v.(vtMessage)
	if !ok {
		m, ok := v.(proto.Message)
		if !ok {
			return nil, fmt.Errorf("codec: cannot marshal %T: not a protobuf message", v)
		}
		b, err := proto.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("codec: marshal %T: %w", v, err)
		}
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	size := vt.SizeVT()
	if mem.IsBelowBufferPoolingThreshold(size) {
		b := make([]byte, size)
		if _, err := vt.MarshalToSizedBufferVT(b); err != nil {
			return nil, fmt.Errorf("codec: marshal %T: %w", v, err)
		}
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	pool := mem.DefaultBufferPool()
	b := pool.Get(size)
	if _, err := vt.MarshalToSizedBufferVT((*b)[:size]); err != nil {
		pool.Put(b)
		return nil, fmt.Errorf("codec: marshal %T: %w", v, err)
	}
	return mem.BufferSlice{mem.NewBuffer(b, pool)}, nil
}

func (codec) Unmarshal(data mem.BufferSlice, v any) error {
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	if wb, ok := v.(*WatchBatch); ok {
		clear(wb.Upcalls) // no times kept alive by the reused memory
		var err error
		if wb.Upcalls, err = ParseWatchResponse(buf.ReadOnlyData(), wb.Upcalls[:0]); err != nil {
			return fmt.Errorf("codec: %w", err)
		}
		return nil
	}
	if vt, ok := v.(vtMessage); ok {
		// The generated code merges into the message: start from empty, as
		// proto.Unmarshal does.
		if r, ok := v.(interface{ Reset() }); ok {
			r.Reset()
		}
		if err := vt.UnmarshalVT(buf.ReadOnlyData()); err != nil {
			return fmt.Errorf("codec: unmarshal %T: %w", v, err)
		}
		return nil
	}
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("codec: cannot unmarshal into %T: not a protobuf message", v)
	}
	if err := proto.Unmarshal(buf.ReadOnlyData(), m); err != nil {
		return fmt.Errorf("codec: unmarshal %T: %w", v, err)
	}
	return nil
}
