// Package client is the Go client services use to talk to the X-Lane
// controller: request, change and release tunnels, join multicast groups,
// and receive upcalls, re-subscribing by itself when the controller
// restarts.
package client

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/xlane/xlane/controller/api/v1"
	"github.com/xlane/xlane/controller/server"
	"github.com/xlane/xlane/controller/tunnels"
)

// Client talks to one controller on behalf of one service.
type Client struct {
	conn    *grpc.ClientConn
	api     pb.ControllerClient
	service string
}

// Dial connects to the controller at target (host:port) as service. With
// no options the connection is plain text, for loopback.
func Dial(target, service string, opts ...grpc.DialOption) (*Client, error) {
	if service == "" {
		return nil, errors.New("client: a service name is required")
	}
	if len(opts) == 0 {
		opts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	// A fixed window: no bandwidth-delay pings (server.WindowSize says why).
	// The generated marshalling code (server.Codec says why).
	opts = append(opts[:len(opts):len(opts)], grpc.WithInitialWindowSize(server.WindowSize), grpc.WithInitialConnWindowSize(server.WindowSize),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(server.Codec())))
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("client: dial %s: %w", target, err)
	}
	return &Client{conn: conn, api: pb.NewControllerClient(conn), service: service}, nil
}

// subscribe opens a watch stream and waits until the server has the
// subscription (it sends headers then).
func (c *Client) subscribe(ctx context.Context) (grpc.ClientStream, error) {
	stream, err := c.conn.NewStream(c.ctx(ctx), &pb.Controller_ServiceDesc.Streams[0], pb.Controller_Watch_FullMethodName)
	if err != nil {
		return nil, err
	}
	if err := stream.SendMsg(&pb.WatchRequest{}); err != nil {
		return nil, err
	}
	if err := stream.CloseSend(); err != nil {
		return nil, err
	}
	if _, err := stream.Header(); err != nil {
		return nil, err
	}
	return stream, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

func (c *Client) ctx(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, server.ServiceKey, c.service)
}

func reqPB(r tunnels.Request) *pb.Request {
	return &pb.Request{
		Loadsize: uint32(r.LoadsizeBytes), Period: uint32(r.PeriodUs), Sublane: uint32(r.Sublane),
		Sender:   r.Sender.String(),
		Receiver: &pb.Endpoint{Ip: r.Receiver.Addr().String(), Port: uint32(r.Receiver.Port())},
	}
}

// FromPB converts resources from the wire.
func FromPB(r *pb.Resources) tunnels.Resources {
	out := tunnels.Resources{
		TunnelID: r.GetTunnelId(), LoadsizeBytes: int64(r.GetLoadsize()), PeriodUs: int64(r.GetPeriod()),
		MinLatencyNs: r.GetMinLatency(), MaxJitterNs: r.GetMaxJitter(),
	}
	if r.GetNotBefore() != nil {
		out.NotBefore = r.GetNotBefore().AsTime()
	}
	return out
}

// RequestBandwidth asks for a tunnel.
func (c *Client) RequestBandwidth(ctx context.Context, r tunnels.Request) (tunnels.Resources, error) {
	res, err := c.api.RequestBandwidth(c.ctx(ctx), &pb.RequestBandwidthRequest{Request: reqPB(r)})
	if err != nil {
		return tunnels.Resources{}, err
	}
	return FromPB(res), nil
}

// ChangeBandwidth replaces a tunnel's parameters.
func (c *Client) ChangeBandwidth(ctx context.Context, id uint64, r tunnels.Request) (tunnels.Resources, error) {
	res, err := c.api.ChangeBandwidth(c.ctx(ctx), &pb.ChangeBandwidthRequest{TunnelId: id, Request: reqPB(r)})
	if err != nil {
		return tunnels.Resources{}, err
	}
	return FromPB(res), nil
}

// ReleaseBandwidth frees a tunnel.
func (c *Client) ReleaseBandwidth(ctx context.Context, id uint64) error {
	_, err := c.api.ReleaseBandwidth(c.ctx(ctx), &pb.ReleaseBandwidthRequest{TunnelId: id})
	return err
}

// JoinGroup adds member to a multicast group.
func (c *Client) JoinGroup(ctx context.Context, group netip.AddrPort, member netip.Addr) error {
	_, err := c.api.JoinGroup(c.ctx(ctx), &pb.GroupRequest{Group: &pb.Endpoint{Ip: group.Addr().String(), Port: uint32(group.Port())}, Member: member.String()})
	return err
}

// LeaveGroup removes member from a multicast group.
func (c *Client) LeaveGroup(ctx context.Context, group netip.AddrPort, member netip.Addr) error {
	_, err := c.api.LeaveGroup(c.ctx(ctx), &pb.GroupRequest{Group: &pb.Endpoint{Ip: group.Addr().String(), Port: uint32(group.Port())}, Member: member.String()})
	return err
}

// ListTunnels lists the service's tunnels.
func (c *Client) ListTunnels(ctx context.Context) ([]tunnels.Resources, error) {
	res, err := c.api.ListTunnels(c.ctx(ctx), &pb.ListTunnelsRequest{})
	if err != nil {
		return nil, err
	}
	out := make([]tunnels.Resources, 0, len(res.Tunnels))
	for _, r := range res.Tunnels {
		out = append(out, FromPB(r))
	}
	return out, nil
}

// Service returns the calling service's registration, holdings and quota.
func (c *Client) Service(ctx context.Context) (*pb.Service, error) {
	return c.api.GetService(c.ctx(ctx), &pb.GetServiceRequest{})
}

// Topology returns the network the controller plans on.
func (c *Client) Topology(ctx context.Context) (*pb.Topology, error) {
	return c.api.GetTopology(c.ctx(ctx), &pb.GetTopologyRequest{})
}

// Watch calls fn with every upcall of the service until ctx ends. When the
// stream breaks (the controller restarted, or this watcher fell behind) it
// subscribes again with backoff. subscribed, if set, is called each time a
// subscription is live (first reports the first one): after a
// re-subscription a service lists its tunnels to catch up on what it
// missed. Responses are decoded straight into upcalls whose memory is
// reused (server.WatchBatch); fn gets each one by value.
func (c *Client) Watch(ctx context.Context, fn func(tunnels.Upcall), subscribed func(first bool)) error {
	backoff := 50 * time.Millisecond
	first := true
	var batch server.WatchBatch
	for {
		stream, err := c.subscribe(ctx)
		if err == nil {
			if subscribed != nil {
				subscribed(first)
			}
			first = false
			for {
				if err = stream.RecvMsg(&batch); err != nil {
					break
				}
				backoff = 50 * time.Millisecond
				for _, u := range batch.Upcalls {
					fn(u)
				}
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if s, ok := status.FromError(err); ok && (s.Code() == codes.Unauthenticated || s.Code() == codes.PermissionDenied) {
			return fmt.Errorf("client: watch: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
