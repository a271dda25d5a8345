package packet

import "encoding/binary"

// UDPHeaderLen and TCPMinHeader are the fixed header sizes.
const (
	UDPHeaderLen = 8
	TCPMinHeader = 20
	ICMPHeader   = 8
)

// UDP is a view over a UDP header and payload.
type UDP []byte

// ParseUDP checks that b holds a UDP header.
func ParseUDP(b []byte) (UDP, error) {
	if len(b) < UDPHeaderLen {
		return nil, ErrTruncated
	}
	return UDP(b), nil
}

func (u UDP) SrcPort() uint16  { return binary.BigEndian.Uint16(u[0:]) }
func (u UDP) DstPort() uint16  { return binary.BigEndian.Uint16(u[2:]) }
func (u UDP) Length() uint16   { return binary.BigEndian.Uint16(u[4:]) }
func (u UDP) Checksum() uint16 { return binary.BigEndian.Uint16(u[6:]) }
func (u UDP) Payload() []byte  { return u[UDPHeaderLen:] }

// SetSrcPort rewrites the source port and, unless the checksum is zero
// (none: RFC 768), updates it.
func (u UDP) SetSrcPort(p uint16) {
	u.update(u.SrcPort(), p)
	binary.BigEndian.PutUint16(u[0:], p)
}

// SetDstPort rewrites the destination port, keeping a zero checksum zero.
func (u UDP) SetDstPort(p uint16) {
	u.update(u.DstPort(), p)
	binary.BigEndian.PutUint16(u[2:], p)
}

// UpdateAddr accounts in the checksum for an address of the pseudo-header
// changing from old to new.
func (u UDP) UpdateAddr(old, new [4]byte) {
	if c := u.Checksum(); c != 0 {
		binary.BigEndian.PutUint16(u[6:], udpNonZero(Update32(c, old, new)))
	}
}

func (u UDP) update(old, new uint16) {
	if c := u.Checksum(); c != 0 {
		binary.BigEndian.PutUint16(u[6:], udpNonZero(Update16(c, old, new)))
	}
}

// udpNonZero maps a computed zero to 0xffff: in UDP a zero field means "no
// checksum" (RFC 768), so a real sum of zero is sent as its other form.
func udpNonZero(c uint16) uint16 {
	if c == 0 {
		return 0xffff
	}
	return c
}

// TCP is a view over a TCP header and payload.
type TCP []byte

// TCP flags.
const (
	TCPFin = 0x01
	TCPSyn = 0x02
	TCPRst = 0x04
	TCPPsh = 0x08
	TCPAck = 0x10
)

// ParseTCP checks that b holds a TCP header with its options.
func ParseTCP(b []byte) (TCP, error) {
	if len(b) < TCPMinHeader {
		return nil, ErrTruncated
	}
	off := int(b[12]>>4) * 4
	if off < TCPMinHeader || off > len(b) {
		return nil, ErrHeaderLen
	}
	return TCP(b), nil
}

func (t TCP) SrcPort() uint16  { return binary.BigEndian.Uint16(t[0:]) }
func (t TCP) DstPort() uint16  { return binary.BigEndian.Uint16(t[2:]) }
func (t TCP) Seq() uint32      { return binary.BigEndian.Uint32(t[4:]) }
func (t TCP) Ack() uint32      { return binary.BigEndian.Uint32(t[8:]) }
func (t TCP) HeaderLen() int   { return int(t[12]>>4) * 4 }
func (t TCP) Flags() uint8     { return t[13] }
func (t TCP) Checksum() uint16 { return binary.BigEndian.Uint16(t[16:]) }
func (t TCP) Options() []byte  { return t[TCPMinHeader:t.HeaderLen()] }
func (t TCP) Payload() []byte  { return t[t.HeaderLen():] }

func (t TCP) setChecksum(c uint16) { binary.BigEndian.PutUint16(t[16:], c) }

func (t TCP) SetSrcPort(p uint16) {
	t.setChecksum(Update16(t.Checksum(), t.SrcPort(), p))
	binary.BigEndian.PutUint16(t[0:], p)
}

func (t TCP) SetDstPort(p uint16) {
	t.setChecksum(Update16(t.Checksum(), t.DstPort(), p))
	binary.BigEndian.PutUint16(t[2:], p)
}

// UpdateAddr accounts for a pseudo-header address change.
func (t TCP) UpdateAddr(old, new [4]byte) { t.setChecksum(Update32(t.Checksum(), old, new)) }

// option finds the first option of kind in t's options and returns its
// offset in t and its length, or ok=false. Malformed options end the walk
// without error: the caller forwards what it cannot read unchanged.
func (t TCP) option(kind uint8) (off, length int, ok bool) {
	opts := t.Options()
	for i := 0; i < len(opts); {
		switch opts[i] {
		case 0: // end of options
			return 0, 0, false
		case 1: // no-op
			i++
			continue
		}
		if i+1 >= len(opts) {
			return 0, 0, false
		}
		l := int(opts[i+1])
		if l < 2 || i+l > len(opts) {
			return 0, 0, false
		}
		if opts[i] == kind {
			return TCPMinHeader + i, l, true
		}
		i += l
	}
	return 0, 0, false
}

// MSS returns the MSS option value and its offset in t, or ok=false.
func (t TCP) MSS() (mss uint16, off int, ok bool) {
	o, l, ok := t.option(2)
	if !ok || l != 4 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint16(t[o+2:]), o + 2, true
}

// WScale returns the window scale option's shift count (RFC 7323), or
// ok=false.
func (t TCP) WScale() (shift uint8, ok bool) {
	o, l, ok := t.option(3)
	if !ok || l != 3 {
		return 0, false
	}
	return t[o+2], true
}

// Window is the advertised window field (unscaled).
func (t TCP) Window() uint16 { return binary.BigEndian.Uint16(t[14:]) }

// SACK returns the offset in t of the SACK option's first block (RFC
// 2018: blocks of two 32-bit edges, left then right) and the number of
// blocks; n is 0 if there is no well-formed SACK option.
func (t TCP) SACK() (off, n int) {
	o, l, ok := t.option(5)
	if !ok || l < 10 || (l-2)%8 != 0 {
		return 0, 0
	}
	return o + 2, (l - 2) / 8
}

// SetUint32 writes a 32-bit field at off (an option's, such as a SACK
// edge, on any alignment) and updates the checksum.
func (t TCP) SetUint32(off int, v uint32) {
	// Sum the 16-bit words of the segment that cover the field, before and
	// after: after a single NOP a field starts on an odd offset.
	lo, hi := off&^1, (off+5)&^1
	before := ^Fold(Sum(t[lo:hi], 0))
	binary.BigEndian.PutUint32(t[off:], v)
	t.setChecksum(Update16(t.Checksum(), before, ^Fold(Sum(t[lo:hi], 0))))
}

// ClampMSS lowers the MSS option to max if it is larger, updating the
// checksum. It reports whether it changed anything.
func (t TCP) ClampMSS(max uint16) bool {
	mss, off, ok := t.MSS()
	if !ok || mss <= max {
		return false
	}
	// Update16 works on 16-bit words aligned to the start of the segment;
	// after a single NOP the value straddles two of them.
	if off&1 == 0 {
		old := binary.BigEndian.Uint16(t[off:])
		binary.BigEndian.PutUint16(t[off:], max)
		t.setChecksum(Update16(t.Checksum(), old, max))
		return true
	}
	w0, w1 := off-1, off+1
	old0, old1 := binary.BigEndian.Uint16(t[w0:]), binary.BigEndian.Uint16(t[w1:])
	binary.BigEndian.PutUint16(t[off:], max)
	c := Update16(t.Checksum(), old0, binary.BigEndian.Uint16(t[w0:]))
	c = Update16(c, old1, binary.BigEndian.Uint16(t[w1:]))
	t.setChecksum(c)
	return true
}

// ICMP is a view over an ICMP message.
type ICMP []byte

// ICMP types passgate handles.
const (
	ICMPEchoReply      = 0
	ICMPUnreachable    = 3
	ICMPRedirect       = 5
	ICMPEcho           = 8
	ICMPTimeExceeded   = 11
	ICMPParamProblem   = 12
	ICMPTimestamp      = 13
	ICMPTimestampReply = 14

	// ICMPFragNeeded is the code of Unreachable used by path MTU discovery.
	ICMPFragNeeded = 4
)

// ParseICMP checks that b holds an ICMP header.
func ParseICMP(b []byte) (ICMP, error) {
	if len(b) < ICMPHeader {
		return nil, ErrTruncated
	}
	return ICMP(b), nil
}

func (c ICMP) Type() uint8      { return c[0] }
func (c ICMP) Code() uint8      { return c[1] }
func (c ICMP) Checksum() uint16 { return binary.BigEndian.Uint16(c[2:]) }

// ID is the query identifier of echo and timestamp messages.
func (c ICMP) ID() uint16 { return binary.BigEndian.Uint16(c[4:]) }

// Payload is what follows the 8-byte header: for errors, the embedded
// original datagram.
func (c ICMP) Payload() []byte { return c[ICMPHeader:] }

func (c ICMP) setChecksum(v uint16) { binary.BigEndian.PutUint16(c[2:], v) }

// SetID rewrites the query identifier and updates the checksum.
func (c ICMP) SetID(id uint16) {
	c.setChecksum(Update16(c.Checksum(), c.ID(), id))
	binary.BigEndian.PutUint16(c[4:], id)
}

// IsQuery reports whether the type is a query carrying an identifier.
func (c ICMP) IsQuery() bool {
	switch c.Type() {
	case ICMPEcho, ICMPEchoReply, ICMPTimestamp, ICMPTimestampReply:
		return true
	}
	return false
}

// IsError reports whether the type is an error that embeds a datagram.
func (c ICMP) IsError() bool {
	switch c.Type() {
	case ICMPUnreachable, ICMPTimeExceeded, ICMPParamProblem, 4 /* source quench */, ICMPRedirect:
		return true
	}
	return false
}

// ComputeChecksum rewrites the checksum over the whole message.
func (c ICMP) ComputeChecksum() {
	c[2], c[3] = 0, 0
	c.setChecksum(Checksum(c))
}

// AdjustChecksum folds a change of one 16-bit word somewhere in the message
// (for example inside the embedded datagram) into the checksum. Words are
// counted from the start of the ICMP message, so the caller passes values
// aligned to even offsets from it.
func (c ICMP) AdjustChecksum(old, new uint16) { c.setChecksum(Update16(c.Checksum(), old, new)) }

// AdjustChecksum32 folds a change of a 32-bit word (an address).
func (c ICMP) AdjustChecksum32(old, new [4]byte) { c.setChecksum(Update32(c.Checksum(), old, new)) }
