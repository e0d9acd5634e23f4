// Package p4rttest is a P4Runtime server for tests: a real gRPC server,
// generic over any P4Info, that keeps table, meter, counter and
// packet-replication state, validates every write against the P4Info with
// the status codes the P4Runtime specification requires, and arbitrates
// between controllers by election id. It forwards no packets; tests set
// counters through its methods to play traffic.
package p4rttest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	p4v1 "github.com/p4lang/p4runtime/go/p4/v1"
	"google.golang.org/genproto/googleapis/rpc/code"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// APIVersion is what Capabilities reports.
const APIVersion = "1.4.0"

// Server is one P4Runtime device.
type Server struct {
	p4v1.UnimplementedP4RuntimeServer
	deviceID uint64

	mu       sync.Mutex
	schema   *schema
	config   *p4v1.ForwardingPipelineConfig
	state    *state
	streams  map[*stream]struct{}
	writes   int // successful updates, for tests
	failNext int // updates to reject with UNAVAILABLE, for tests
}

// stream is one controller's StreamChannel.
type stream struct {
	srv      p4v1.P4Runtime_StreamChannelServer
	role     string
	election uint128
	sendMu   sync.Mutex
}

type uint128 struct{ hi, lo uint64 }

func (a uint128) less(b uint128) bool { return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo) }

func u128(x *p4v1.Uint128) uint128 { return uint128{x.GetHigh(), x.GetLow()} }

// New returns a server for device deviceID with no pipeline yet.
func New(deviceID uint64) *Server {
	return &Server{deviceID: deviceID, streams: map[*stream]struct{}{}}
}

// Serve serves s on lis until the returned stop function is called.
func (s *Server) Serve(lis net.Listener) (stop func()) {
	g := grpc.NewServer()
	p4v1.RegisterP4RuntimeServer(g, s)
	done := make(chan struct{})
	go func() { defer close(done); _ = g.Serve(lis) }()
	return func() { g.Stop(); <-done }
}

// Capabilities implements P4Runtime.
func (s *Server) Capabilities(context.Context, *p4v1.CapabilitiesRequest) (*p4v1.CapabilitiesResponse, error) {
	return &p4v1.CapabilitiesResponse{P4RuntimeApiVersion: APIVersion}, nil
}

// primaryLocked is the primary controller's election id for role, if any.
func (s *Server) primaryLocked(role string) (uint128, bool) {
	var best uint128
	found := false
	for st := range s.streams {
		if st.role == role && (!found || best.less(st.election)) {
			best, found = st.election, true
		}
	}
	return best, found
}

// notifyLocked tells every controller of role who is primary now.
func (s *Server) notifyLocked(role string) {
	p, ok := s.primaryLocked(role)
	if !ok {
		return
	}
	for st := range s.streams {
		if st.role != role {
			continue
		}
		c := code.Code_ALREADY_EXISTS
		msg := "backup"
		if st.election == p {
			c, msg = code.Code_OK, "primary"
		}
		st.send(&p4v1.StreamMessageResponse{Update: &p4v1.StreamMessageResponse_Arbitration{Arbitration: &p4v1.MasterArbitrationUpdate{
			DeviceId: s.deviceID, Role: roleOf(role), ElectionId: &p4v1.Uint128{High: p.hi, Low: p.lo},
			Status: &rpcstatus.Status{Code: int32(c), Message: msg},
		}}})
	}
}

func roleOf(name string) *p4v1.Role {
	if name == "" {
		return nil
	}
	return &p4v1.Role{Name: name}
}

func (st *stream) send(m *p4v1.StreamMessageResponse) {
	st.sendMu.Lock()
	defer st.sendMu.Unlock()
	_ = st.srv.Send(m)
}

// StreamChannel implements P4Runtime: arbitration. The first message must
// be a MasterArbitrationUpdate for this device; a later one may change the
// election id. The highest election id of a role is its primary.
func (s *Server) StreamChannel(srv p4v1.P4Runtime_StreamChannelServer) error {
	var st *stream
	defer func() {
		if st != nil {
			s.mu.Lock()
			delete(s.streams, st)
			s.notifyLocked(st.role)
			s.mu.Unlock()
		}
	}()
	for {
		req, err := srv.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		arb := req.GetArbitration()
		if arb == nil {
			if st == nil {
				return status.Error(codes.FailedPrecondition, "the first stream message must be a master arbitration update")
			}
			continue // packet-out, digest acks: nothing to do here
		}
		if arb.GetDeviceId() != s.deviceID {
			return status.Errorf(codes.NotFound, "device %d: this server is device %d", arb.GetDeviceId(), s.deviceID)
		}
		if arb.GetElectionId() == nil {
			return status.Error(codes.InvalidArgument, "election_id is required")
		}
		role := arb.GetRole().GetName()
		e := u128(arb.GetElectionId())
		s.mu.Lock()
		for o := range s.streams {
			if o != st && o.role == role && o.election == e {
				s.mu.Unlock()
				return status.Errorf(codes.InvalidArgument, "election id %d:%d is in use by another controller", e.hi, e.lo)
			}
		}
		if st == nil {
			st = &stream{srv: srv}
			s.streams[st] = struct{}{}
		}
		old := st.role
		st.role, st.election = role, e
		if old != role {
			s.notifyLocked(old)
		}
		s.notifyLocked(role)
		s.mu.Unlock()
	}
}

// checkPrimary fails unless election is the primary's for role.
func (s *Server) checkPrimaryLocked(role string, election *p4v1.Uint128) error {
	p, ok := s.primaryLocked(role)
	if !ok || election == nil || u128(election) != p {
		return status.Error(codes.PermissionDenied, "not primary")
	}
	return nil
}

// SetForwardingPipelineConfig implements P4Runtime. VERIFY checks the
// P4Info; VERIFY_AND_SAVE and VERIFY_AND_COMMIT install it (committing
// wipes all entries, as a switch does); COMMIT applies a saved one.
func (s *Server) SetForwardingPipelineConfig(_ context.Context, req *p4v1.SetForwardingPipelineConfigRequest) (*p4v1.SetForwardingPipelineConfigResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.GetDeviceId() != s.deviceID {
		return nil, status.Errorf(codes.NotFound, "device %d unknown", req.GetDeviceId())
	}
	if err := s.checkPrimaryLocked(req.GetRole(), req.GetElectionId()); err != nil {
		return nil, err
	}
	switch req.GetAction() {
	case p4v1.SetForwardingPipelineConfigRequest_VERIFY, p4v1.SetForwardingPipelineConfigRequest_VERIFY_AND_SAVE,
		p4v1.SetForwardingPipelineConfigRequest_VERIFY_AND_COMMIT:
		cfg := req.GetConfig()
		if cfg.GetP4Info() == nil {
			return nil, status.Error(codes.InvalidArgument, "config.p4info is required")
		}
		sc, err := newSchema(cfg.GetP4Info())
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		if req.GetAction() == p4v1.SetForwardingPipelineConfigRequest_VERIFY {
			return &p4v1.SetForwardingPipelineConfigResponse{}, nil
		}
		s.schema, s.config, s.state = sc, cfg, newState()
	case p4v1.SetForwardingPipelineConfigRequest_COMMIT:
		if s.config == nil {
			return nil, status.Error(codes.FailedPrecondition, "no saved pipeline to commit")
		}
		s.state = newState()
	default:
		return nil, status.Errorf(codes.Unimplemented, "action %v", req.GetAction())
	}
	return &p4v1.SetForwardingPipelineConfigResponse{}, nil
}

// GetForwardingPipelineConfig implements P4Runtime.
func (s *Server) GetForwardingPipelineConfig(_ context.Context, req *p4v1.GetForwardingPipelineConfigRequest) (*p4v1.GetForwardingPipelineConfigResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.GetDeviceId() != s.deviceID {
		return nil, status.Errorf(codes.NotFound, "device %d unknown", req.GetDeviceId())
	}
	if s.config == nil {
		return nil, status.Error(codes.FailedPrecondition, "no forwarding pipeline config set for this device")
	}
	out := &p4v1.ForwardingPipelineConfig{Cookie: s.config.GetCookie()}
	switch req.GetResponseType() {
	case p4v1.GetForwardingPipelineConfigRequest_ALL:
		out.P4Info, out.P4DeviceConfig = s.config.GetP4Info(), s.config.GetP4DeviceConfig()
	case p4v1.GetForwardingPipelineConfigRequest_P4INFO_AND_COOKIE:
		out.P4Info = s.config.GetP4Info()
	case p4v1.GetForwardingPipelineConfigRequest_DEVICE_CONFIG_AND_COOKIE:
		out.P4DeviceConfig = s.config.GetP4DeviceConfig()
	}
	return &p4v1.GetForwardingPipelineConfigResponse{Config: out}, nil
}

// Updates returns how many updates the server has applied.
func (s *Server) Updates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}

// FailNext makes the next n updates fail with UNAVAILABLE (as a switch
// that runs out of a resource), for tests of partial failures.
func (s *Server) FailNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext = n
}

// Primary reports the current primary's election id for role.
func (s *Server) Primary(role string) (hi, lo uint64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.primaryLocked(role)
	return p.hi, p.lo, ok
}

func errorf(c codes.Code, format string, args ...any) *p4v1.Error {
	return &p4v1.Error{CanonicalCode: int32(c), Message: fmt.Sprintf(format, args...)}
}
