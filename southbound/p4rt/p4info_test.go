package p4rt

import (
	"strings"
	"testing"

	p4config "github.com/p4lang/p4runtime/go/p4/config/v1"
	"google.golang.org/protobuf/encoding/prototext"

	p4switch "github.com/xlane/xlane/p4/switch"
)

// TestCommittedP4InfoHasEverythingTheDriverUses checks the compiled
// pipeline in p4/switch/build: every table, match field, action,
// parameter, meter and counter the driver writes exists with the bit
// width the driver encodes.
func TestCommittedP4InfoHasEverythingTheDriverUses(t *testing.T) {
	info := &p4config.P4Info{}
	if err := prototext.Unmarshal(p4switch.P4Info, info); err != nil {
		t.Fatal(err)
	}
	x, err := resolve(info)
	if err != nil {
		t.Fatal(err)
	}
	if x.meterSize < 1024 {
		t.Errorf("tunnel meter has %d cells", x.meterSize)
	}
	if !strings.Contains(string(p4switch.DeviceConfig), `"XlaneIngress.tunnel.tunnel_meter"`) {
		t.Error("the BMv2 JSON does not hold the pipeline the P4Info describes")
	}
}

// TestResolveNamesWhatIsMissing: a pipeline without an object, or with a
// different width, is refused with the name.
func TestResolveNamesWhatIsMissing(t *testing.T) {
	info := &p4config.P4Info{}
	if err := prototext.Unmarshal(p4switch.P4Info, info); err != nil {
		t.Fatal(err)
	}
	for _, a := range info.GetActions() {
		if a.GetPreamble().GetName() == actExpressMeter {
			a.Params[3].Bitwidth = 8
		}
	}
	if _, err := resolve(info); err == nil || !strings.Contains(err.Error(), "meter_idx") {
		t.Errorf("narrow meter_idx: %v", err)
	}
	info.Tables = info.Tables[1:]
	if _, err := resolve(info); err == nil || !strings.Contains(err.Error(), "no table") {
		t.Errorf("missing table: %v", err)
	}
}
