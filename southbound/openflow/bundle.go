package openflow

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Bundles in OpenFlow 1.3 are the ONF extension 230 (the OpenFlow 1.4
// bundle messages inside experimenter messages), which Open vSwitch
// implements: the messages added to a bundle take effect together at
// commit, or not at all.
const (
	typeExperimenter = 4
	onfExperimenter  = 0x4F4E4600
	onfBundleControl = 2300
	onfBundleAdd     = 2301

	bundleOpenRequest   = 0
	bundleOpenReply     = 1
	bundleCommitRequest = 4
	bundleCommitReply   = 5
	bundleDiscardReq    = 6
	bundleDiscardReply  = 7
	bundleAtomic        = 1
	bundleOrdered       = 2
)

type bundleCtrl struct {
	id    uint32
	typ   uint16
	flags uint16
}

func (b bundleCtrl) WriteTo(w io.Writer) (int64, error) {
	var buf [16]byte
	binary.BigEndian.PutUint32(buf[0:], onfExperimenter)
	binary.BigEndian.PutUint32(buf[4:], onfBundleControl)
	binary.BigEndian.PutUint32(buf[8:], b.id)
	binary.BigEndian.PutUint16(buf[12:], b.typ)
	binary.BigEndian.PutUint16(buf[14:], b.flags)
	n, err := w.Write(buf[:])
	return int64(n), err
}

type bundleAdd struct {
	id    uint32
	flags uint16
	msg   []byte // a whole OpenFlow message
}

func (b bundleAdd) WriteTo(w io.Writer) (int64, error) {
	var hdr [16]byte
	binary.BigEndian.PutUint32(hdr[0:], onfExperimenter)
	binary.BigEndian.PutUint32(hdr[4:], onfBundleAdd)
	binary.BigEndian.PutUint32(hdr[8:], b.id)
	binary.BigEndian.PutUint16(hdr[14:], b.flags)
	out := append(hdr[:], b.msg...)
	if pad := (8 - (8+len(out))%8) % 8; pad > 0 { // the whole message ends 8-byte aligned
		out = append(out, make([]byte, pad)...)
	}
	n, err := w.Write(out)
	return int64(n), err
}

// decodeBundleReply checks a bundle control reply.
func decodeBundleReply(b []byte, want uint16) error {
	if len(b) < 16 || binary.BigEndian.Uint32(b) != onfExperimenter || binary.BigEndian.Uint32(b[4:]) != onfBundleControl {
		return fmt.Errorf("bundle reply: not an ONF bundle control message (%d bytes)", len(b))
	}
	if got := binary.BigEndian.Uint16(b[12:]); got != want {
		return fmt.Errorf("bundle reply: type %d, want %d", got, want)
	}
	return nil
}

// errNoBundles marks a switch that refused to open a bundle.
var errNoBundles = errors.New("switch does not support bundles")

// op is one modification message.
type op struct {
	typ  uint8
	body io.WriterTo
	what string
}

// sendAll sends ops without waiting, recording what each transaction is.
func (s *session) sendAll(ops []op, xids map[uint32]string) error {
	for _, o := range ops {
		xid, err := s.send(o.typ, o.body)
		if err != nil {
			return err
		}
		xids[xid] = o.what
	}
	return nil
}

// sequence sends ops one after the other and checks them with a barrier.
func (s *session) sequence(ctx context.Context, ops []op) error {
	xids := map[uint32]string{}
	if err := s.sendAll(ops, xids); err != nil {
		return err
	}
	if len(xids) == 0 {
		return nil
	}
	return s.barrier(ctx, xids)
}

// bundle applies pre as a plain sequence and then ops atomically, all of
// them or none, in two round trips: the sequence, the bundle's opening
// and its messages go out together and one barrier checks them all, then
// the commit. errNoBundles means the switch refused the bundle (pre was
// applied).
func (s *session) bundle(ctx context.Context, pre, ops []op) error {
	s.mu.Lock()
	s.bundleID++
	id := s.bundleID
	s.mu.Unlock()
	const flags = bundleAtomic | bundleOrdered
	xids := map[uint32]string{}
	if err := s.sendAll(pre, xids); err != nil {
		return err
	}
	openXid, err := s.send(typeExperimenter, bundleCtrl{id: id, typ: bundleOpenRequest, flags: flags})
	if err != nil {
		return err
	}
	xids[openXid] = "open bundle"
	adds := map[uint32]string{}
	for _, o := range ops {
		xid := s.nextXid()
		inner, err := encode(o.typ, xid, o.body)
		if err != nil {
			return err
		}
		outer, err := encode(typeExperimenter, xid, bundleAdd{id: id, flags: flags, msg: inner})
		if err != nil {
			return err
		}
		if err := s.write(outer); err != nil {
			return err
		}
		xids[xid], adds[xid] = o.what, o.what
	}
	failed, err := s.collect(ctx, xids)
	if err != nil {
		return err
	}
	if e, ok := failed[openXid]; ok {
		if e.Type == 1 || e.Type == 0xffff { // BAD_REQUEST, EXPERIMENTER: no bundles here
			var preErrs []error
			for xid, fe := range failed {
				if _, isAdd := adds[xid]; !isAdd && xid != openXid {
					preErrs = append(preErrs, fmt.Errorf("%s: %w", xids[xid], fe))
				}
			}
			if len(preErrs) > 0 {
				return errors.Join(preErrs...)
			}
			return fmt.Errorf("%w: %v", errNoBundles, e)
		}
	}
	if len(failed) > 0 {
		// A message the switch rejects while adding is left out of the
		// bundle, which stays open: discard it.
		if reply, derr := s.request(ctx, typeExperimenter, bundleCtrl{id: id, typ: bundleDiscardReq, flags: flags}); derr != nil {
			s.log.Warn("discarding a failed bundle", "err", derr)
		} else if derr := decodeBundleReply(reply, bundleDiscardReply); derr != nil {
			s.log.Warn("discarding a failed bundle", "err", derr)
		}
		var errs []error
		for xid, fe := range failed {
			errs = append(errs, fmt.Errorf("%s: %w", xids[xid], fe))
		}
		return errors.Join(errs...)
	}
	reply, err := s.request(ctx, typeExperimenter, bundleCtrl{id: id, typ: bundleCommitRequest, flags: flags})
	if err != nil {
		// The switch reports the failing message itself before the commit
		// fails: collect it.
		if berr := s.barrier(ctx, adds); berr != nil {
			return fmt.Errorf("bundle commit: %w", berr)
		}
		return fmt.Errorf("bundle commit: %w", err)
	}
	return decodeBundleReply(reply, bundleCommitReply)
}
