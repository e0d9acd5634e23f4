package openflow

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// OpenFlow 1.3 wire constants this driver uses.
const (
	version13 = 4
	headerLen = 8
	maxMsgLen = 0xffff

	typeHello            = 0
	typeError            = 1
	typeEchoRequest      = 2
	typeEchoReply        = 3
	typeFeaturesRequest  = 5
	typeFeaturesReply    = 6
	typeFlowMod          = 14
	typeGroupMod         = 15
	typeMultipartRequest = 18
	typeMultipartReply   = 19
	typeBarrierRequest   = 20
	typeBarrierReply     = 21
	typeMeterMod         = 29

	multipartFlow        = 1
	multipartGroupDesc   = 7
	multipartMeter       = 9
	multipartMeterConfig = 10
	multipartReplyMore   = 1
)

// msg is one OpenFlow message: header fields and the body after them.
type msg struct {
	Type uint8
	Xid  uint32
	Body []byte
}

// encode frames body (nil for none) as one OpenFlow 1.3 message.
func encode(typ uint8, xid uint32, body io.WriterTo) ([]byte, error) {
	var buf bytes.Buffer
	buf.Write(make([]byte, headerLen))
	if body != nil {
		if _, err := body.WriteTo(&buf); err != nil {
			return nil, fmt.Errorf("encode message type %d: %w", typ, err)
		}
	}
	b := buf.Bytes()
	if len(b) > maxMsgLen {
		return nil, fmt.Errorf("encode message type %d: %d bytes is above the OpenFlow limit", typ, len(b))
	}
	b[0], b[1] = version13, typ
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint32(b[4:], xid)
	return b, nil
}

// readMsg reads one message. A message of another OpenFlow version is an
// error only after the hello exchange (the caller decides).
func readMsg(r io.Reader) (msg, uint8, error) {
	var h [headerLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return msg{}, 0, err
	}
	n := int(binary.BigEndian.Uint16(h[2:]))
	if n < headerLen {
		return msg{}, h[0], fmt.Errorf("openflow: message length %d is shorter than its header", n)
	}
	body := make([]byte, n-headerLen)
	if _, err := io.ReadFull(r, body); err != nil {
		return msg{}, h[0], fmt.Errorf("openflow: reading a %d-byte message: %w", n, err)
	}
	return msg{Type: h[1], Xid: binary.BigEndian.Uint32(h[4:]), Body: body}, h[0], nil
}

// errTruncated reports a reply body shorter than its own lengths say.
var errTruncated = errors.New("truncated")

// OFError is an error message from a switch.
type OFError struct {
	Type, Code uint16
	Data       []byte // the start of the offending request
}

func (e *OFError) Error() string {
	name := errorTypes[e.Type]
	if name == "" {
		name = fmt.Sprintf("type %d", e.Type)
	}
	code := ""
	if codes, ok := errorCodes[e.Type]; ok && int(e.Code) < len(codes) {
		code = codes[e.Code]
	}
	if code == "" {
		code = fmt.Sprintf("code %d", e.Code)
	}
	req := ""
	if len(e.Data) >= 2 {
		req = fmt.Sprintf(" (request type %d)", e.Data[1])
		// A message added to a bundle: name the message inside.
		if e.Data[1] == typeExperimenter && len(e.Data) >= 26 &&
			binary.BigEndian.Uint32(e.Data[8:]) == onfExperimenter && binary.BigEndian.Uint32(e.Data[12:]) == onfBundleAdd {
			req = fmt.Sprintf(" (request type %d in a bundle)", e.Data[25])
		}
	}
	return fmt.Sprintf("openflow error %s/%s%s", name, code, req)
}

func decodeError(b []byte) (*OFError, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("error message: %w", errTruncated)
	}
	return &OFError{Type: binary.BigEndian.Uint16(b), Code: binary.BigEndian.Uint16(b[2:]), Data: b[4:]}, nil
}

var errorTypes = map[uint16]string{
	0: "HELLO_FAILED", 1: "BAD_REQUEST", 2: "BAD_ACTION", 3: "BAD_INSTRUCTION", 4: "BAD_MATCH",
	5: "FLOW_MOD_FAILED", 6: "GROUP_MOD_FAILED", 7: "PORT_MOD_FAILED", 8: "TABLE_MOD_FAILED",
	9: "QUEUE_OP_FAILED", 10: "SWITCH_CONFIG_FAILED", 11: "ROLE_REQUEST_FAILED", 12: "METER_MOD_FAILED",
	13: "TABLE_FEATURES_FAILED", 0xffff: "EXPERIMENTER",
}

var errorCodes = map[uint16][]string{
	1: {"BAD_VERSION", "BAD_TYPE", "BAD_MULTIPART", "BAD_EXPERIMENTER", "BAD_EXP_TYPE", "EPERM", "BAD_LEN",
		"BUFFER_EMPTY", "BUFFER_UNKNOWN", "BAD_TABLE_ID", "IS_SLAVE", "BAD_PORT", "BAD_PACKET", "MULTIPART_BUFFER_OVERFLOW"},
	2: {"BAD_TYPE", "BAD_LEN", "BAD_EXPERIMENTER", "BAD_EXP_TYPE", "BAD_OUT_PORT", "BAD_ARGUMENT", "EPERM",
		"TOO_MANY", "BAD_QUEUE", "BAD_OUT_GROUP", "MATCH_INCONSISTENT", "UNSUPPORTED_ORDER", "BAD_TAG",
		"BAD_SET_TYPE", "BAD_SET_LEN", "BAD_SET_ARGUMENT"},
	3: {"UNKNOWN_INST", "UNSUP_INST", "BAD_TABLE_ID", "UNSUP_METADATA", "UNSUP_METADATA_MASK",
		"BAD_EXPERIMENTER", "BAD_EXP_TYPE", "BAD_LEN", "EPERM"},
	4: {"BAD_TYPE", "BAD_LEN", "BAD_TAG", "BAD_DL_ADDR_MASK", "BAD_NW_ADDR_MASK", "BAD_WILDCARDS",
		"BAD_FIELD", "BAD_VALUE", "BAD_MASK", "BAD_PREREQ", "DUP_FIELD", "EPERM"},
	5: {"UNKNOWN", "TABLE_FULL", "BAD_TABLE_ID", "OVERLAP", "EPERM", "BAD_TIMEOUT", "BAD_COMMAND", "BAD_FLAGS"},
	6: {"GROUP_EXISTS", "INVALID_GROUP", "WEIGHT_UNSUPPORTED", "OUT_OF_GROUPS", "OUT_OF_BUCKETS",
		"CHAINING_UNSUPPORTED", "WATCH_UNSUPPORTED", "LOOP", "UNKNOWN_GROUP", "CHAINED_GROUP",
		"BAD_TYPE", "BAD_COMMAND", "BAD_BUCKET", "BAD_WATCH", "EPERM"},
	12: {"UNKNOWN", "METER_EXISTS", "INVALID_METER", "UNKNOWN_METER", "BAD_COMMAND", "BAD_FLAGS",
		"BAD_RATE", "BAD_BURST", "BAD_BAND", "BAD_BAND_VALUE", "OUT_OF_METERS", "OUT_OF_BANDS"},
}

// features is what the switch says in its features reply.
func decodeFeatures(b []byte) (dpid uint64, err error) {
	if len(b) < 8 {
		return 0, fmt.Errorf("features reply: %w", errTruncated)
	}
	return binary.BigEndian.Uint64(b), nil
}

// multipartBody splits a multipart reply into its type, flags and body.
func multipartBody(b []byte) (typ, flags uint16, body []byte, err error) {
	if len(b) < 8 {
		return 0, 0, nil, fmt.Errorf("multipart reply: %w", errTruncated)
	}
	return binary.BigEndian.Uint16(b), binary.BigEndian.Uint16(b[2:]), b[8:], nil
}
