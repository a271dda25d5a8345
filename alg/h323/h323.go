// Package h323 is passgate's H.323 helper. On the call signalling
// connection (TCP 1720: TPKT, RFC 1006, framing Q.931 messages whose
// User-user information element holds the H.225.0 H323-UserInformation
// in ASN.1 aligned PER) it reads, in what a LAN host sends, the
// h245Address of Setup, CallProceeding, Alerting, Connect, Facility and
// Progress and the fastStart OpenLogicalChannel elements' mediaChannel
// and mediaControlChannel; on the H.245 connection that h245Address leads
// to (an expected flow the helper claims) it reads OpenLogicalChannel and
// OpenLogicalChannelAck, and the same messages tunnelled in H.225.0 (the
// H323-UU-PDU's h245Control octet strings). Each unicast IPv4 address
// equal to the LAN host's own becomes its public address and a port the
// engine expects the peer on (TCP for H.245, UDP for media); other
// addresses are left alone. A call's pending expectations go with its
// ReleaseComplete.
//
// Progress (H.225.0 v3 on; gateways send it for early media) is an
// extension alternative of the message body, so an open type: the walk
// decodes it within its length, through the H.235 h245SecurityMode,
// tokens and cryptoTokens its root has before the fastStart. The other
// extension bodies (empty, status, statusInquiry, setupAcknowledge,
// notify) hold no address and are stepped over by their length.
//
// PER encodes an IPv4 address and port in a fixed six octets, so every
// rewrite is in place and no length changes: not those of the open types
// around an address (Progress's body, extension additions, fastStart's
// octet strings), nor the User-user element's, the TPKT's, or the TCP
// sequence.
//
// RAS (UDP 1719, a LAN endpoint talking to an outside gatekeeper): in a
// GatekeeperRequest or RegistrationRequest from the LAN host, a rasAddress
// equal to the host's RAS endpoint becomes the RAS flow's own public
// mapping, and a callSignalAddress equal to the host's address becomes its
// public address and a TCP port the engine expects the gatekeeper on
// (claimed, so the call signalling that comes in is walked like any
// other), for the registration's timeToLive (an hour if the RRQ names
// none). Each RRQ renews that expectation; it admits one connection, the
// next RRQ (a keep-alive) sets it up again. Calls that other endpoints
// open straight to the host (direct signalling) are not expected: that
// needs a port forward.
//
// The walk decodes only what lies before those fields; a message it cannot
// walk (a truncated TPKT, an unknown root alternative, a fragmented
// length) passes untouched and is counted. Not done: RAS messages other
// than GRQ and RRQ.
//
// The helper is off unless switched on (RFC 4787 REQ-10).
package h323

import (
	"encoding/binary"
	"net/netip"
	"time"

	"passgate/nat"
	"passgate/packet"
)

// Port is the H.225.0 call signalling port.
const Port = 1720

// RASPort is the H.225.0 RAS port (registration, admission, status).
const RASPort = 1719

// Registration lifetimes: an RRQ without timeToLive, and the most any
// registration holds its call signalling expectation.
const (
	defaultRegistration = time.Hour
	maxRegistration     = 2 * time.Hour
)

// maxH245 bounds the H.245 connections remembered.
const maxH245 = 4096

// Q.931 message types.
const (
	q931ReleaseComplete = 0x5a
)

// Helper is the H.323 helper. Register one with nat.Engine.RegisterHelpers;
// the engine calls it from one goroutine at a time.
type Helper struct {
	w   walker
	buf []byte
	// h245 maps the public port of an expected H.245 connection to the
	// call it belongs to, so its media expectations share the call's tag.
	h245 map[uint16]call
}

type call struct {
	flow nat.FlowRef // the call signalling connection
	tag  uint64
}

func (*Helper) Name() string    { return "h323" }
func (*Helper) DefaultOn() bool { return false }
func (*Helper) Wants(proto uint8, port uint16) bool {
	return proto == packet.ProtoTCP && port == Port || proto == packet.ProtoUDP && port == RASPort
}

// Ended forgets the H.245 connections of a call signalling connection that
// ended.
func (h *Helper) Ended(f nat.FlowRef) {
	for k, c := range h.h245 {
		if c.flow == f {
			delete(h.h245, k)
		}
	}
}

// callTag names a call's expectations: its signalling flow and Q.931 call
// reference (without the flag bit that says which side chose it).
func callTag(f nat.FlowRef, crv uint16) uint64 {
	return uint64(uint32(f.ID))<<32 | uint64(f.Gen&0xffff)<<16 | uint64(crv&0x7fff)
}

// Inspect walks each TPKT of the segment and rewrites the LAN host's
// addresses.
func (h *Helper) Inspect(p *nat.HelperPacket) {
	if p.Proto == packet.ProtoUDP {
		h.ras(p)
		return
	}
	if p.Proto != packet.ProtoTCP {
		return
	}
	pl := p.Payload
	signalling := p.Remote.Port() == Port || p.Inside.Port() == Port
	w := &h.w
	w.n = 0
	var released [4]uint16
	nrel := 0
	for off := 0; off < len(pl); {
		msg, ok := tpkt(pl[off:])
		if !ok {
			p.Unparsed()
			return
		}
		base := off + 4
		off += 4 + len(msg)
		if len(msg) == 0 {
			continue // keep-alive
		}
		if !signalling {
			r := reader{b: msg, base: base}
			if w.msc(&r) != nil {
				p.Unparsed()
				return
			}
			continue
		}
		mt, crv, uu, at, ok := q931(msg)
		if !ok {
			p.Unparsed()
			return
		}
		w.crv = crv
		if uu != nil {
			r := reader{b: uu, base: base + at}
			if w.uuie(&r) != nil {
				p.Unparsed()
				return
			}
		}
		if mt == q931ReleaseComplete && nrel < len(released) {
			released[nrel] = crv
			nrel++
		}
	}
	var c call
	if !signalling {
		c = h.h245[p.Outside.Port()]
	}
	for _, crv := range released[:nrel] {
		tag := callTag(p.Flow, crv)
		p.Forget(tag)
		for k, v := range h.h245 {
			if v.tag == tag {
				delete(h.h245, k)
			}
		}
	}
	if !p.FromLAN || w.n == 0 {
		return
	}
	h.rewrite(p, c, signalling)
}

// rewrite replaces the found addresses equal to the LAN host's.
func (h *Helper) rewrite(p *nat.HelperPacket, c call, signalling bool) {
	h.patch(p, func(f ref, inside netip.AddrPort) (uint16, bool) {
		tag := c.tag
		if signalling {
			tag = callTag(p.Flow, f.crv)
		}
		x := nat.Expect{Proto: packet.ProtoUDP, Remote: p.Remote.Addr(), Inside: inside, Tag: tag}
		if f.kind == kH245 {
			x.Proto, x.Claim = packet.ProtoTCP, true
		}
		ext, ok := p.Expect(x)
		if ok && f.kind == kH245 && (len(h.h245) < maxH245 || h.h245 == nil) {
			if h.h245 == nil {
				h.h245 = make(map[uint16]call)
			}
			h.h245[ext] = call{flow: p.Flow, tag: tag}
		}
		return ext, ok
	})
}

// patch gives each address the walk found that is the LAN host's (with a
// port) the public address and the port expect returns, if it returns
// one: in a copy of the payload, made at the first change.
func (h *Helper) patch(p *nat.HelperPacket, expect func(f ref, inside netip.AddrPort) (uint16, bool)) {
	pl := p.Payload
	pub := p.Outside.Addr().As4()
	changed := false
	for _, f := range h.w.refs[:h.w.n] {
		a := netip.AddrFrom4([4]byte(pl[f.at : f.at+4]))
		port := binary.BigEndian.Uint16(pl[f.at+4:])
		if a != p.Inside.Addr() || port == 0 {
			continue
		}
		ext, ok := expect(f, netip.AddrPortFrom(a, port))
		if !ok {
			continue
		}
		if !changed {
			h.buf = append(h.buf[:0], pl...)
			changed = true
		}
		copy(h.buf[f.at:], pub[:])
		binary.BigEndian.PutUint16(h.buf[f.at+4:], ext)
	}
	if changed {
		p.SetPayload(h.buf)
	}
}

// rasTag names the expectations of a RAS flow's registration.
func rasTag(f nat.FlowRef) uint64 {
	return 1<<63 | uint64(uint32(f.ID))<<32 | uint64(f.Gen)&0xffffffff
}

// ras walks a RAS message from the LAN host and rewrites its own
// addresses: a datagram is one message, not framed.
func (h *Helper) ras(p *nat.HelperPacket) {
	if !p.FromLAN {
		return // the gatekeeper's messages carry its addresses
	}
	w := &h.w
	w.n, w.ttl, w.crv = 0, 0, 0
	r := reader{b: p.Payload}
	if w.ras(&r) != nil {
		p.Unparsed()
		return
	}
	if w.n == 0 {
		return
	}
	life := defaultRegistration
	if w.ttl != 0 {
		life = min(time.Duration(w.ttl)*time.Second+30*time.Second, maxRegistration)
	}
	h.patch(p, func(f ref, inside netip.AddrPort) (uint16, bool) {
		if f.kind == kRAS && inside.Port() == p.Inside.Port() {
			return p.Outside.Port(), true // this flow's own mapping
		}
		x := nat.Expect{Proto: packet.ProtoTCP, Remote: p.Remote.Addr(), Inside: inside, Timeout: life, Tag: rasTag(p.Flow), Claim: true}
		if f.kind == kRAS { // RAS on another port of the host's
			x.Proto = packet.ProtoUDP
		}
		return p.Expect(x)
	})
}

// tpkt returns the message of the TPKT (RFC 1006) at the start of b; a
// packet cut by the segment end is not read (no reassembly).
func tpkt(b []byte) ([]byte, bool) {
	if len(b) < 4 || b[0] != 3 {
		return nil, false
	}
	n := int(binary.BigEndian.Uint16(b[2:]))
	if n < 4 || n > len(b) {
		return nil, false
	}
	return b[4:n], true
}

// q931 reads a Q.931 message (H.225.0 clause 7): its type, call reference
// value, and the H323-UserInformation in the User-user information
// element, with its offset in b (nil if there is none).
func q931(b []byte) (mt byte, crv uint16, uu []byte, at int, ok bool) {
	if len(b) < 3 || b[0] != 0x08 {
		return 0, 0, nil, 0, false
	}
	crl := int(b[1] & 0x0f)
	if crl > 2 || len(b) < 3+crl {
		return 0, 0, nil, 0, false
	}
	for _, v := range b[2 : 2+crl] {
		crv = crv<<8 | uint16(v)
	}
	mt = b[2+crl]
	for i := 3 + crl; i < len(b); {
		id := b[i]
		switch {
		case id&0x80 != 0: // single-octet element
			i++
		case id == 0x7e: // User-user: two length octets in H.225.0
			if i+3 > len(b) {
				return 0, 0, nil, 0, false
			}
			n := int(binary.BigEndian.Uint16(b[i+1:]))
			if n < 1 || i+3+n > len(b) {
				return 0, 0, nil, 0, false
			}
			if b[i+3] != 0x05 { // protocol discriminator: X.208/X.209 coded
				return 0, 0, nil, 0, false
			}
			uu, at = b[i+4:i+3+n], i+4
			i += 3 + n
		default:
			if i+2 > len(b) || i+2+int(b[i+1]) > len(b) {
				return 0, 0, nil, 0, false
			}
			i += 2 + int(b[i+1])
		}
	}
	return mt, crv, uu, at, true
}
