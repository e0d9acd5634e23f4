package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"time"
)

// ControlPath is the agent's control socket for service.
func ControlPath(dir, service string) string { return filepath.Join(dir, service, "agent.sock") }

// LaneRequest asks the agent for a new lane carrying one application's
// messages.
type LaneRequest struct {
	Lane         string `json:"lane"`
	App          string `json:"app"`
	Channel      uint16 `json:"channel"`
	Sender       string `json:"sender"`   // this host's address
	Receiver     string `json:"receiver"` // ip:port of a host or a multicast group
	MessageBytes int    `json:"message_bytes"`
	PeriodUs     int64  `json:"period_us"`
	Sublane      int    `json:"sublane"`
}

// LaneReply is the agent's answer: the lane's resources, or why not.
type LaneReply struct {
	Tunnel        uint64 `json:"tunnel,omitempty"`
	PeriodUs      int64  `json:"period_us,omitempty"`
	LoadsizeBytes int64  `json:"loadsize_bytes,omitempty"`
	MinLatencyNs  int64  `json:"min_latency_ns,omitempty"`
	MaxJitterNs   int64  `json:"max_jitter_ns,omitempty"`
	Error         string `json:"error,omitempty"`
}

// RequestLane asks service's agent for a lane (it requests the tunnel from
// the controller); then OpenSender and OpenEvents attach to it.
func RequestLane(dir, service string, req LaneRequest) (LaneReply, error) {
	c, err := net.DialTimeout("unix", ControlPath(dir, service), 5*time.Second)
	if err != nil {
		return LaneReply{}, fmt.Errorf("app: the agent of %s: %w (is xlane-endhost running?)", service, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return LaneReply{}, fmt.Errorf("app: request: %w", err)
	}
	var r LaneReply
	if err := json.NewDecoder(c).Decode(&r); err != nil {
		return LaneReply{}, fmt.Errorf("app: reply: %w", err)
	}
	if r.Error != "" {
		return r, errors.New("app: lane " + req.Lane + ": " + r.Error)
	}
	return r, nil
}
