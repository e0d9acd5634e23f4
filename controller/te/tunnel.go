package te

import (
	"fmt"
	"io"
)

// Tunnel is an admitted tunnel tree and its guarantees (file format in
// docs/te.md). Every receiver gets each packet within
// [MinLatencyNs, MinLatencyNs+MaxJitterNs] of its emission, as long as the
// sender emits at most one packet of at most LoadsizeBytes per PeriodNs.
type Tunnel struct {
	ID                uint64      `json:"id"`
	Sender            string      `json:"sender"`
	Receivers         []string    `json:"receivers"`
	LoadsizeBytes     int64       `json:"loadsize_bytes"`
	Sublane           int         `json:"sublane"`
	Edges             [][2]string `json:"edges"`
	PeriodNs          int64       `json:"period_ns"`
	MinLatencyNs      int64       `json:"min_latency_ns"`
	MaxJitterNs       int64       `json:"max_jitter_ns"`
	RequestedPeriodNs int64       `json:"requested_period_ns,omitempty"`
}

// Resources are the parameters a service sees (List. 1).
type Resources struct {
	LoadsizeBytes int64
	PeriodNs      int64
	MinLatencyNs  int64
	MaxJitterNs   int64
}

// Resources extracts the service-visible parameters.
func (t Tunnel) Resources() Resources {
	return Resources{LoadsizeBytes: t.LoadsizeBytes, PeriodNs: t.PeriodNs, MinLatencyNs: t.MinLatencyNs, MaxJitterNs: t.MaxJitterNs}
}

// MaxLatencyNs is the latency upper bound.
func (t Tunnel) MaxLatencyNs() int64 { return t.MinLatencyNs + t.MaxJitterNs }

// Change reports one existing tunnel whose resources an operation changed.
type Change struct {
	ID       uint64
	Old, New Resources
	t        *tunnel // the engine's tunnel then (Engine.Current, Engine.TagOf)
}

// ParseTunnels decodes a JSON array of tunnels.
func ParseTunnels(r io.Reader) ([]Tunnel, error) {
	var ts []Tunnel
	if err := decodeStrict(r, &ts); err != nil {
		return nil, fmt.Errorf("tunnels: %w", err)
	}
	return ts, nil
}
