package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/xlane/xlane/endhost/app"
)

// serveControl serves applications' lane requests on the service's
// control socket (app.RequestLane) until ctx ends; stop removes it.
func (a *Agent) serveControl(ctx context.Context, wg *sync.WaitGroup) (stop func(), err error) {
	path := app.ControlPath(a.cfg.ShmDir, a.cfg.Service)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("agent: control socket: %w", err)
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("agent: control socket: %w", err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-ctx.Done()
		lis.Close()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := lis.Accept()
			if err != nil {
				return // closed
			}
			a.control(ctx, c)
		}
	}()
	return func() { lis.Close(); os.Remove(path) }, nil
}

// control answers one request on c.
func (a *Agent) control(ctx context.Context, c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	var req app.LaneRequest
	reply := app.LaneReply{}
	if err := json.NewDecoder(bufio.NewReader(c)).Decode(&req); err != nil {
		reply.Error = "bad request: " + err.Error()
	} else if err := a.addLane(ctx, req, &reply); err != nil {
		reply.Error = err.Error()
	}
	_ = json.NewEncoder(c).Encode(reply)
}

// addLane starts a lane an application asked for and hands its sender to
// the runner.
func (a *Agent) addLane(ctx context.Context, req app.LaneRequest, reply *app.LaneReply) error {
	l := Lane{Name: req.Lane, Sender: req.Sender, Receiver: req.Receiver, MessageBytes: req.MessageBytes,
		Period: time.Duration(req.PeriodUs) * time.Microsecond, Sublane: req.Sublane, Apps: []App{{Name: req.App, Channel: req.Channel}}}
	if err := a.cfg.checkLane("request", l); err != nil {
		return err
	}
	for _, x := range a.laneList() {
		if x.cfg.Name == l.Name {
			return fmt.Errorf("lane %q exists already", l.Name)
		}
	}
	res, snd, err := a.startLane(ctx, l)
	if err != nil {
		return err
	}
	select {
	case a.added <- snd:
	case <-ctx.Done():
		return ctx.Err()
	}
	*reply = app.LaneReply{Tunnel: res.TunnelID, PeriodUs: res.PeriodUs, LoadsizeBytes: res.LoadsizeBytes,
		MinLatencyNs: res.MinLatencyNs, MaxJitterNs: res.MaxJitterNs}
	a.log.Info("lane added for an application", "lane", l.Name, "app", req.App)
	return nil
}
