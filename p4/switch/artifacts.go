// Package p4switch holds the compiled X-Lane switch pipeline (xlane.p4):
// the P4Info and the BMv2 JSON that `make p4` writes to build/ with p4c's
// BMv2 backend. They are committed, so the controller carries the
// pipeline it installs on P4Runtime switches.
package p4switch

import _ "embed"

// P4Info is the pipeline's P4Info in protobuf text format.
//
//go:embed build/xlane.p4info.txtpb
var P4Info []byte

// DeviceConfig is the pipeline for BMv2 (simple_switch_grpc).
//
//go:embed build/xlane.json
var DeviceConfig []byte
