// Package server exposes controller/tunnels over gRPC (package
// xlane.controller.v1): it converts messages, identifies the calling
// service, and maps errors to status codes that name the bad field.
package server

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/xlane/xlane/controller/api/v1"
	"github.com/xlane/xlane/controller/tlsconf"
	"github.com/xlane/xlane/controller/tunnels"
)

// ServiceKey is the metadata key that names the calling service.
const ServiceKey = "xlane-service"

// Server implements pb.ControllerServer.
type Server struct {
	pb.UnimplementedControllerServer
	ctl      *tunnels.Controller
	coalesce time.Duration
	buffers  responseBuffers // the watch responses' (respbuf.go)
	sent     SentObserver
}

// Option configures a Server.
type Option func(*Server)

// WatchCoalesce holds a watch response that would follow the stream's
// previous one within d until d has passed, collecting what else comes
// meanwhile (Nagle's rule; 0: send at once). Under load a service's upcalls
// of consecutive commits then share a response, a system call on each side
// and a wake-up of each goroutine on the way.
func WatchCoalesce(d time.Duration) Option { return func(s *Server) { s.coalesce = d } }

// SentObserver learns, for every upcall of a TE change that a watch stream
// sends, how long it waited in the controller: from the change's commit
// until its response was handed to gRPC. What a service measures adds the
// transport and its own scheduling; this is the controller's share.
type SentObserver interface {
	UpcallSent(wait time.Duration)
}

// ObserveSent reports the upcalls' waits to o.
func ObserveSent(o SentObserver) Option { return func(s *Server) { s.sent = o } }

// New returns a server over ctl. Behind mutual TLS the service identity is
// the client certificate's subject; without it, the xlane-service
// metadata key.
func New(ctl *tunnels.Controller, opts ...Option) *Server {
	s := &Server{ctl: ctl}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Register adds the service to a gRPC server.
func (s *Server) Register(g *grpc.Server) { pb.RegisterControllerServer(g, s) }

// WindowSize is the HTTP/2 flow-control window the API's server and the
// Go client set. Setting it turns off gRPC's window sizing by bandwidth-
// delay estimate, which sends a ping whenever data arrives and none is
// out — on loopback, with small messages, a ping and its ack for every
// few requests or upcalls: with it set the daemon benchmark ran 8–13 %
// faster (the load generator spent a fifth less CPU). 1 MiB is what the
// estimate grows a window to at most; it is a credit, not a buffer.
const WindowSize = 1 << 20

// Options are the gRPC server options of the API (add credentials).
func Options() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.InitialWindowSize(WindowSize), grpc.InitialConnWindowSize(WindowSize),
		grpc.ForceServerCodecV2(Codec())}
}

// service returns the calling service's identity: the verified client
// certificate's subject when the connection has one (metadata cannot
// override it), else the metadata key.
func service(ctx context.Context) (string, error) {
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 {
			id, err := tlsconf.Identity(ti.State)
			if err != nil {
				return "", status.Errorf(codes.Unauthenticated, "client certificate: %v", err)
			}
			return id, nil
		}
	}
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(ServiceKey); len(v) == 1 && v[0] != "" {
		return v[0], nil
	}
	return "", status.Errorf(codes.Unauthenticated, "metadata %q: the calling service must name itself", ServiceKey)
}

// codeOf maps the controller's error kinds (tunnels.Kind) to gRPC codes.
var codeOf = map[string]codes.Code{
	"invalid_argument":   codes.InvalidArgument,
	"resource_exhausted": codes.ResourceExhausted,
	"not_found":          codes.NotFound,
	"permission_denied":  codes.PermissionDenied,
	"unavailable":        codes.Unavailable,
	"canceled":           codes.Canceled,
}

// code turns a controller error into a status with the same message.
func code(err error) error {
	if err == nil {
		return nil
	}
	c, ok := codeOf[tunnels.Kind(err)]
	if !ok {
		c = codes.Internal
	}
	if c == codes.Canceled && errors.Is(err, context.DeadlineExceeded) {
		c = codes.DeadlineExceeded
	}
	return status.Error(c, err.Error())
}

func invalid(field string, format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, "%s: %s", field, fmt.Sprintf(format, args...))
}

func parseAddr(field, s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Addr{}, invalid(field, "not an IPv4 address (got %q)", s)
	}
	return a, nil
}

func parseEndpoint(field string, e *pb.Endpoint) (netip.AddrPort, error) {
	if e == nil {
		return netip.AddrPort{}, invalid(field, "missing")
	}
	a, err := parseAddr(field+".ip", e.Ip)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if e.Port == 0 || e.Port > 65535 {
		return netip.AddrPort{}, invalid(field+".port", "must be between 1 and 65535 (got %d)", e.Port)
	}
	return netip.AddrPortFrom(a, uint16(e.Port)), nil
}

func parseRequest(r *pb.Request) (tunnels.Request, error) {
	if r == nil {
		return tunnels.Request{}, invalid("request", "missing")
	}
	sender, err := parseAddr("request.sender", r.Sender)
	if err != nil {
		return tunnels.Request{}, err
	}
	rcv, err := parseEndpoint("request.receiver", r.Receiver)
	if err != nil {
		return tunnels.Request{}, err
	}
	return tunnels.Request{
		Sender: sender, Receiver: rcv, LoadsizeBytes: int64(r.Loadsize),
		PeriodUs: int64(r.Period), Sublane: int(r.Sublane),
	}, nil
}

func toPB(r tunnels.Resources) *pb.Resources {
	out := &pb.Resources{
		TunnelId: r.TunnelID, Loadsize: uint32(r.LoadsizeBytes), Period: uint32(r.PeriodUs),
		MinLatency: r.MinLatencyNs, MaxJitter: r.MaxJitterNs,
	}
	if !r.NotBefore.IsZero() {
		out.NotBefore = timestamppb.New(r.NotBefore)
	}
	return out
}

// RequestBandwidth implements pb.ControllerServer.
func (s *Server) RequestBandwidth(ctx context.Context, in *pb.RequestBandwidthRequest) (*pb.Resources, error) {
	svc, err := service(ctx)
	if err != nil {
		return nil, err
	}
	req, err := parseRequest(in.GetRequest())
	if err != nil {
		return nil, err
	}
	res, err := s.ctl.Request(ctx, svc, req)
	if err != nil {
		return nil, code(err)
	}
	return toPB(res), nil
}

// ReleaseBandwidth implements pb.ControllerServer.
func (s *Server) ReleaseBandwidth(ctx context.Context, in *pb.ReleaseBandwidthRequest) (*pb.ReleaseBandwidthResponse, error) {
	svc, err := service(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.ctl.Release(ctx, svc, in.GetTunnelId()); err != nil {
		return nil, code(err)
	}
	return &pb.ReleaseBandwidthResponse{}, nil
}

// ChangeBandwidth implements pb.ControllerServer.
func (s *Server) ChangeBandwidth(ctx context.Context, in *pb.ChangeBandwidthRequest) (*pb.Resources, error) {
	svc, err := service(ctx)
	if err != nil {
		return nil, err
	}
	req, err := parseRequest(in.GetRequest())
	if err != nil {
		return nil, err
	}
	res, err := s.ctl.Change(ctx, svc, in.GetTunnelId(), req)
	if err != nil {
		return nil, code(err)
	}
	return toPB(res), nil
}

func (s *Server) group(ctx context.Context, in *pb.GroupRequest, join bool) (*pb.GroupResponse, error) {
	if _, err := service(ctx); err != nil {
		return nil, err
	}
	g, err := parseEndpoint("group", in.GetGroup())
	if err != nil {
		return nil, err
	}
	m, err := parseAddr("member", in.GetMember())
	if err != nil {
		return nil, err
	}
	if join {
		err = s.ctl.JoinGroup(ctx, g, m)
	} else {
		err = s.ctl.LeaveGroup(ctx, g, m)
	}
	if err != nil {
		return nil, code(err)
	}
	return &pb.GroupResponse{}, nil
}

// JoinGroup implements pb.ControllerServer.
func (s *Server) JoinGroup(ctx context.Context, in *pb.GroupRequest) (*pb.GroupResponse, error) {
	return s.group(ctx, in, true)
}

// LeaveGroup implements pb.ControllerServer.
func (s *Server) LeaveGroup(ctx context.Context, in *pb.GroupRequest) (*pb.GroupResponse, error) {
	return s.group(ctx, in, false)
}

// GetService implements pb.ControllerServer.
func (s *Server) GetService(ctx context.Context, _ *pb.GetServiceRequest) (*pb.Service, error) {
	svc, err := service(ctx)
	if err != nil {
		return nil, err
	}
	info, err := s.ctl.ServiceInfo(svc)
	if err != nil {
		return nil, code(err)
	}
	out := &pb.Service{Name: info.Name, Registered: timestamppb.New(info.Registered), Tunnels: uint32(info.Tunnels),
		RateBps: info.RateBps, Watching: uint32(info.Watching), MaxTunnels: uint32(info.Quota.MaxTunnels), MaxRateBps: info.Quota.MaxRateBps}
	if !info.LastSubscribed.IsZero() {
		out.LastSubscribed = timestamppb.New(info.LastSubscribed)
	}
	return out, nil
}

// ListTunnels implements pb.ControllerServer.
func (s *Server) ListTunnels(ctx context.Context, _ *pb.ListTunnelsRequest) (*pb.ListTunnelsResponse, error) {
	svc, err := service(ctx)
	if err != nil {
		return nil, err
	}
	out := &pb.ListTunnelsResponse{}
	for _, r := range s.ctl.Tunnels(svc) {
		out.Tunnels = append(out.Tunnels, toPB(r))
	}
	return out, nil
}

// GetTopology implements pb.ControllerServer.
func (s *Server) GetTopology(ctx context.Context, _ *pb.GetTopologyRequest) (*pb.Topology, error) {
	if _, err := service(ctx); err != nil {
		return nil, err
	}
	t := s.ctl.Topology()
	out := &pb.Topology{Sublanes: uint32(t.Sublanes), MaxExpressShare: t.MaxExpressShare}
	for _, n := range t.Nodes {
		pn := &pb.Node{Name: n.Name, Kind: string(n.Kind)}
		if n.IPv4.IsValid() {
			pn.Ipv4 = n.IPv4.String()
		}
		out.Nodes = append(out.Nodes, pn)
	}
	for _, l := range t.Spec.Links {
		out.Links = append(out.Links, &pb.Link{From: l.From, To: l.To, BandwidthBps: uint64(l.BandwidthBps),
			QueueBytes: uint64(l.QueueBytes), MinLatencyNs: l.MinLatencyNs, MaxJitterNs: l.MaxJitterNs})
	}
	return out, nil
}

// watchBatch caps how many upcalls one Watch response carries.
const watchBatch = 256

// Watch implements pb.ControllerServer. Upcalls that queued up while the
// previous response was being sent go out together in the next one, and
// with WatchCoalesce a response that would follow the previous one too
// soon waits out the window asleep, and then carries what came meanwhile
// (the subscription's buffer holds a thousand upcalls). Reading each
// upcall as it came woke the stream once an upcall, about forty times
// an admission.
func (s *Server) Watch(_ *pb.WatchRequest, stream grpc.ServerStreamingServer[pb.WatchResponse]) error {
	svc, err := service(stream.Context())
	if err != nil {
		return err
	}
	sub := s.ctl.Watch(svc)
	defer sub.Close()
	// Headers tell the client the subscription is live.
	if err := stream.SendHeader(metadata.Pairs("xlane-watch", "subscribed")); err != nil {
		return err
	}
	closed := func() error {
		if sub.Dropped() {
			return status.Error(codes.ResourceExhausted, "watch fell behind; subscribe again and list tunnels")
		}
		return status.Error(codes.Unavailable, "controller shutting down")
	}
	var (
		lastSend time.Time
		hold     *time.Timer // the coalescing window's, made at its first use
		b        = newBatch()
		resp     = &pooledResponse{pool: &s.buffers}
	)
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case u, ok := <-sub.C:
			if !ok {
				return closed()
			}
			b.reset()
			b.add(u)
			if wait := time.Until(lastSend.Add(s.coalesce)); wait > 0 {
				if hold == nil {
					hold = time.NewTimer(wait)
					defer hold.Stop()
				} else {
					hold.Reset(wait)
				}
				// Asleep until the window ends: what comes meanwhile waits
				// in the subscription's buffer (a thousand upcalls), and an
				// admission's holdoff waits for this stream to take it.
				select {
				case <-hold.C:
				case <-stream.Context().Done():
					return nil
				}
			}
		drain:
			for len(b.ups) < watchBatch {
				select {
				case u, ok := <-sub.C:
					if !ok {
						break drain
					}
					b.add(u)
				default:
					break drain
				}
			}
			if len(sub.C) == 0 {
				sub.Drained() // an admission may be waiting for the watchers
			}
			b.encodeInto(resp)
			if err := stream.SendMsg(resp); err != nil {
				return err
			}
			lastSend = time.Now()
			if s.sent != nil {
				b.observe(s.sent, lastSend)
			}
		}
	}
}

// batch is one watch response: everything ready goes in it, and a
// tunnel's bounds that TE changed again before the first change went out
// are sent once, as they are now (the later grace covers the earlier).
type batch struct {
	ups  []tunnels.Upcall
	teAt map[uint64]int // tunnel → index of its pending TE change
}

func newBatch() *batch { return &batch{teAt: map[uint64]int{}} }

// reset empties b for the stream's next response, keeping its memory (a
// new batch per response was a quarter of the controller's allocations
// at saturation). The encoded response is a copy: nothing sent refers to b.
func (b *batch) reset() {
	clear(b.ups)
	b.ups = b.ups[:0]
	clear(b.teAt)
}

// observe reports the waits of b's TE changes, sent at now: their
// resources count from the commit (NotBefore).
func (b *batch) observe(o SentObserver, now time.Time) {
	for i := range b.ups {
		u := &b.ups[i]
		if u.Kind == tunnels.BandwidthChanged && u.Reason == tunnels.ReasonTE && !u.Resources.NotBefore.IsZero() {
			o.UpcallSent(now.Sub(u.Resources.NotBefore))
		}
	}
}

func (b *batch) add(u tunnels.Upcall) {
	if u.Kind == tunnels.BandwidthChanged && u.Reason == tunnels.ReasonTE {
		if i, ok := b.teAt[u.TunnelID]; ok {
			b.ups[i] = u
			return
		}
		b.teAt[u.TunnelID] = len(b.ups)
	} else {
		delete(b.teAt, u.TunnelID) // never move a change across another upcall
	}
	b.ups = append(b.ups, u)
}
