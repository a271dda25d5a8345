// Package tftp is passgate's TFTP helper (RFC 1350). A TFTP server answers
// a read or write request from a port of its own, not from port 69, so the
// answer matches no flow the request made; under address-and-port-
// dependent filtering it would be dropped. On each request from a LAN host
// the helper expects a UDP flow from the server's address, from any port,
// to the client's public mapping, leading to the client's own endpoint.
// Nothing in the payload is rewritten.
package tftp

import (
	"bytes"

	"passgate/alg/internal/ascii"
	"passgate/nat"
	"passgate/packet"
)

// Port is the TFTP server port.
const Port = 69

// Opcodes (RFC 1350 section 5, RFC 2347 OACK).
const (
	OpRRQ   = 1
	OpWRQ   = 2
	OpDATA  = 3
	OpACK   = 4
	OpERROR = 5
	OpOACK  = 6
)

// Helper is the TFTP helper. Register one with nat.Engine.RegisterHelpers.
type Helper struct{}

func (*Helper) Name() string    { return "tftp" }
func (*Helper) DefaultOn() bool { return true }
func (*Helper) Wants(proto uint8, port uint16) bool {
	return proto == packet.ProtoUDP && port == Port
}

// Inspect expects the server's answer to a request from the LAN. Other
// packets on port 69 pass untouched; a request it cannot read is counted.
func (h *Helper) Inspect(p *nat.HelperPacket) {
	if !p.FromLAN {
		return // the server's packets on port 69: errors, nothing to expect
	}
	if len(p.Payload) < 2 || p.Payload[0] != 0 {
		p.Unparsed()
		return
	}
	switch op := p.Payload[1]; op {
	case OpRRQ, OpWRQ:
		if _, ok := ParseRequest(p.Payload); !ok {
			p.Unparsed()
			return
		}
		// The server answers from a new port to the client's endpoint
		// (RFC 1350 section 4): expect it from any port of its address.
		// A retransmitted request replaces the expectation.
		p.Expect(nat.Expect{Proto: packet.ProtoUDP, Remote: p.Remote.Addr(), Inside: p.Inside})
	case OpDATA, OpACK, OpERROR, OpOACK:
		// A transfer's packets sent to port 69 itself: nothing to do.
	default:
		p.Unparsed()
	}
}

// Request is a parsed read or write request. Filename and Mode alias the
// packet.
type Request struct {
	Op       uint16
	Filename []byte
	Mode     []byte
}

// ParseRequest reads an RRQ or WRQ: opcode, filename, NUL, mode, NUL,
// then RFC 2347 options (name NUL value NUL pairs), which are not checked
// beyond being NUL-terminated. The mode must be netascii, octet or mail
// (any case), the filename non-empty.
func ParseRequest(b []byte) (Request, bool) {
	if len(b) < 2 || b[0] != 0 || (b[1] != OpRRQ && b[1] != OpWRQ) {
		return Request{}, false
	}
	r := Request{Op: uint16(b[1])}
	rest := b[2:]
	i := bytes.IndexByte(rest, 0)
	if i <= 0 {
		return Request{}, false
	}
	r.Filename, rest = rest[:i], rest[i+1:]
	i = bytes.IndexByte(rest, 0)
	if i <= 0 {
		return Request{}, false
	}
	r.Mode, rest = rest[:i], rest[i+1:]
	if !ascii.EqualFold(r.Mode, "netascii") && !ascii.EqualFold(r.Mode, "octet") && !ascii.EqualFold(r.Mode, "mail") {
		return Request{}, false
	}
	if len(rest) > 0 && rest[len(rest)-1] != 0 {
		return Request{}, false // options must end with a NUL
	}
	return r, true
}
