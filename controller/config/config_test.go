package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	c, err := Parse(strings.NewReader("listen: 127.0.0.1:9000\ngrace: 250ms\ndata_dir: /tmp/x\nbound_headroom: 0.1\nwatch_coalesce: 0s\nupcall_holdoff: 5ms\nmax_batch: 8\nrealtime_priority: 5\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9000" || time.Duration(c.Grace) != 250*time.Millisecond || c.Driver != "memory" || c.BoundHeadroom != 0.1 || c.WatchCoalesce != 0 || time.Duration(c.UpcallHoldoff) != 5*time.Millisecond || c.MaxBatch != 8 || c.RealtimePriority != 5 {
		t.Fatalf("config = %+v", c)
	}
	if c, err := Parse(strings.NewReader("")); err != nil || !reflect.DeepEqual(c, Defaults()) {
		t.Fatalf("empty file: %+v, %v", c, err)
	}
	for in, want := range map[string]string{
		"listn: 1":                                    "listn",
		"grace: soon":                                 "grace",
		"grace: -1s":                                  "grace",
		"bound_headroom: 10":                          "bound_headroom",
		"bound_headroom: -0.1":                        "bound_headroom",
		"watch_coalesce: 1s":                          "watch_coalesce",
		"watch_coalesce: -1ms":                        "watch_coalesce",
		"upcall_holdoff: 1s":                          "upcall_holdoff",
		"upcall_holdoff: -1ms":                        "upcall_holdoff",
		"max_batch: -1":                               "max_batch",
		"realtime_priority: 100":                      "realtime_priority",
		"realtime_priority: -1":                       "realtime_priority",
		"listen: 0.0.0.0:7700":                        "loopback",
		"listen: nonsense":                            "listen",
		"driver: p4":                                  "driver",
		"driver: openflow\nopenflow_listen: x":        "openflow_listen",
		"log_level: loud":                             "log_level",
		"gc_percent: 10":                              "gc_percent",
		"gc_percent: off":                             "gc_percent",
		"data_dir: ''":                                "data_dir",
		"listen: [1, 2]":                              "listen",
		"listen: 0.0.0.0:7700\ninsecure: 3":           "insecure",
		"tls_cert: a.pem":                             "tls_key",
		"quotas: {default: {max_tunels: 1}}":          "max_tunels",
		"quotas: {services: {fd: {max_tunnels: -1}}}": "quotas.services.fd.max_tunnels",
		"quotas: {services: [1]}":                     "services",
		"client_ca: ca.pem":                           "client_ca",
		"listen: 'unix:'":                             "names no socket file",
		"pprof: true\nmetrics_addr: ''":               "pprof",
		"driver: openflow\nopenflow_burst_slack: 2s":  "openflow_burst_slack",
	} {
		if _, err := Parse(strings.NewReader(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want it to name %q", in, err, want)
		}
	}
	q, err := Parse(strings.NewReader("quotas:\n  default: {max_tunnels: 100}\n  services:\n    fd: {max_tunnels: 3, max_rate_bps: 1000000}\n"))
	if err != nil || q.Quotas.Default.MaxTunnels != 100 || q.Quotas.Services["fd"] != (Quota{MaxTunnels: 3, MaxRateBps: 1_000_000}) {
		t.Fatalf("quotas: %+v, %v", q.Quotas, err)
	}
	if _, err := Parse(strings.NewReader("listen: 0.0.0.0:7700\ninsecure: true")); err != nil {
		t.Errorf("insecure non-loopback refused: %v", err)
	}
	// The meter slack: Open vSwitch's by default, none when set to 0.
	if d := Defaults().OpenFlowBurstSlack; time.Duration(d) != 2*time.Millisecond {
		t.Errorf("default openflow_burst_slack %v", time.Duration(d))
	}
	if c, err := Parse(strings.NewReader("driver: openflow\nopenflow_burst_slack: 0s")); err != nil || c.OpenFlowBurstSlack != 0 {
		t.Errorf("openflow_burst_slack 0s: %v, %v", time.Duration(c.OpenFlowBurstSlack), err)
	}
	// A Unix socket is local: plain text without insecure.
	for _, l := range []string{"unix:/run/xlane/api.sock", "unix:///run/xlane/api.sock"} {
		c, err := Parse(strings.NewReader("listen: " + l))
		if err != nil {
			t.Errorf("%s refused: %v", l, err)
			continue
		}
		if p, ok := UnixSocket(c.Listen); !ok || p != "/run/xlane/api.sock" {
			t.Errorf("%s: socket %q %v", l, p, ok)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("listen: 127.0.0.1:9000\ngrace: 250ms\n")
	f.Add("driver: memory\nlog_level: debug\n")
	f.Add("realtime_priority: 1\ngc_percent: 400\nmax_batch: 16\n")
	f.Add("driver: p4runtime\np4runtime: {election_id: 2, role: r, switches: {s1: {addr: '127.0.0.1:9559', device_id: 1}}}\n")
	f.Fuzz(func(t *testing.T, in string) {
		c, err := Parse(strings.NewReader(in))
		if err == nil {
			if verr := c.Validate(); verr != nil {
				t.Fatalf("Parse accepted a config Validate rejects: %v", verr)
			}
		}
	})
}

func TestParseP4Runtime(t *testing.T) {
	c, err := Parse(strings.NewReader(`driver: p4runtime
p4runtime:
  election_id: 7
  role: xlane
  burst_slack: 500us
  switches:
    leaf0: {addr: "10.0.0.1:9559", device_id: 3}
    leaf1: {addr: "10.0.0.2:9559"}
`))
	if err != nil {
		t.Fatal(err)
	}
	p := c.P4Runtime
	if p.ElectionID != 7 || p.Role != "xlane" || p.BurstSlack != Duration(500*time.Microsecond) || len(p.Switches) != 2 || p.Switches["leaf0"] != (Target{Addr: "10.0.0.1:9559", DeviceID: 3}) {
		t.Errorf("p4runtime = %+v", p)
	}
	if _, err := Parse(strings.NewReader("driver: p4runtime\np4runtime: {election_id: 1, burst_slack: -1ms, switches: {s1: {addr: 'h:1'}}}\n")); err == nil || !strings.Contains(err.Error(), "p4runtime.burst_slack") {
		t.Errorf("a negative burst_slack: %v, want an error naming p4runtime.burst_slack", err)
	}
}
