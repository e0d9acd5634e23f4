package p4rttest

import (
	"context"
	"testing"

	p4v1 "github.com/p4lang/p4runtime/go/p4/v1"
	"google.golang.org/protobuf/proto"
)

// FuzzWrite feeds arbitrary write requests (decoded from fuzzed bytes) to
// a primary's server: every one is answered, none crashes it, and a read
// afterwards still works.
func FuzzWrite(f *testing.F) {
	seed := &p4v1.WriteRequest{DeviceId: 1, ElectionId: &p4v1.Uint128{Low: 1}, Updates: []*p4v1.Update{
		upd(p4v1.Update_INSERT, route([]byte{1}, []byte{10, 0, 0, 0}, 8, []byte{1}, []byte{0, 7}))}}
	b, _ := proto.Marshal(seed)
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		req := &p4v1.WriteRequest{}
		if proto.Unmarshal(data, req) != nil {
			return
		}
		s := New(1)
		sc, err := newSchema(testInfo())
		if err != nil {
			t.Fatal(err)
		}
		s.schema, s.state = sc, newState()
		// A primary with election id 1, without a stream: as arbitration
		// would leave it.
		s.streams[&stream{election: uint128{0, 1}}] = struct{}{}
		req.DeviceId, req.ElectionId = 1, &p4v1.Uint128{Low: 1}
		_, _ = s.Write(context.Background(), req)
		for _, e := range []*p4v1.Entity{
			{Entity: &p4v1.Entity_TableEntry{TableEntry: &p4v1.TableEntry{}}},
			{Entity: &p4v1.Entity_MeterEntry{MeterEntry: &p4v1.MeterEntry{}}},
		} {
			if _, err := s.read(e); err != nil {
				t.Fatalf("read after a fuzzed write: %v", err)
			}
		}
	})
}
