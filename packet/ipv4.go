package packet

import (
	"encoding/binary"
	"errors"
)

// IP protocol numbers passgate looks at.
const (
	ProtoICMP = 1
	ProtoTCP  = 6
	ProtoUDP  = 17
	ProtoGRE  = 47
	ProtoESP  = 50
	ProtoAH   = 51
)

// IPv4MinHeader is the length of an IPv4 header without options.
const IPv4MinHeader = 20

// Parse errors. They are values, not formatted, so the packet path never
// allocates to report one.
var (
	ErrTruncated  = errors.New("packet: truncated")
	ErrVersion    = errors.New("packet: not IPv4")
	ErrHeaderLen  = errors.New("packet: bad IPv4 header length")
	ErrTotalLen   = errors.New("packet: bad IPv4 total length")
	ErrChecksum   = errors.New("packet: bad checksum")
	ErrBadOptions = errors.New("packet: bad TCP options")
)

// IPv4 is a view over an IPv4 packet (header, options, payload).
type IPv4 []byte

// ParseIPv4 checks that b holds a well-formed IPv4 header whose total length
// fits in b, and returns the view trimmed to the total length (link layers
// pad short frames). The header checksum is not checked; see ValidChecksum.
func ParseIPv4(b []byte) (IPv4, error) {
	if len(b) < IPv4MinHeader {
		return nil, ErrTruncated
	}
	if b[0]>>4 != 4 {
		return nil, ErrVersion
	}
	hl := int(b[0]&0x0f) * 4
	if hl < IPv4MinHeader || hl > len(b) {
		return nil, ErrHeaderLen
	}
	tl := int(binary.BigEndian.Uint16(b[2:]))
	if tl < hl || tl > len(b) {
		return nil, ErrTotalLen
	}
	return IPv4(b[:tl]), nil
}

func (p IPv4) HeaderLen() int     { return int(p[0]&0x0f) * 4 }
func (p IPv4) TotalLen() int      { return int(binary.BigEndian.Uint16(p[2:])) }
func (p IPv4) TOS() uint8         { return p[1] }
func (p IPv4) ID() uint16         { return binary.BigEndian.Uint16(p[4:]) }
func (p IPv4) TTL() uint8         { return p[8] }
func (p IPv4) Protocol() uint8    { return p[9] }
func (p IPv4) Checksum() uint16   { return binary.BigEndian.Uint16(p[10:]) }
func (p IPv4) Src() [4]byte       { return [4]byte(p[12:16]) }
func (p IPv4) Dst() [4]byte       { return [4]byte(p[16:20]) }
func (p IPv4) Options() []byte    { return p[IPv4MinHeader:p.HeaderLen()] }
func (p IPv4) Payload() []byte    { return p[p.HeaderLen():] }
func (p IPv4) DontFragment() bool { return p[6]&0x40 != 0 }
func (p IPv4) MoreFragments() bool {
	return p[6]&0x20 != 0
}

// FragmentOffset is the offset of this fragment's payload in bytes.
func (p IPv4) FragmentOffset() int { return int(binary.BigEndian.Uint16(p[6:])&0x1fff) * 8 }

// IsFragment is true for any fragment of a fragmented datagram, first included.
func (p IPv4) IsFragment() bool { return binary.BigEndian.Uint16(p[6:])&0x3fff != 0 }

// ValidChecksum reports whether the header checksum is right.
func (p IPv4) ValidChecksum() bool {
	if len(p) >= IPv4MinHeader && p[0]&0x0f == 5 {
		// No options, the usual case: five words summed at once, the
		// same answer as Sum's (the sums are congruent modulo 0xffff,
		// and zero only for a header of zeros).
		h := p[:IPv4MinHeader:IPv4MinHeader]
		acc := uint64(binary.BigEndian.Uint32(h[0:])) + uint64(binary.BigEndian.Uint32(h[4:])) +
			uint64(binary.BigEndian.Uint32(h[8:])) + uint64(binary.BigEndian.Uint32(h[12:])) +
			uint64(binary.BigEndian.Uint32(h[16:]))
		acc = acc&0xffffffff + acc>>32
		acc = acc&0xffff + acc>>16
		acc = acc&0xffff + acc>>16
		acc = acc&0xffff + acc>>16
		return acc == 0xffff
	}
	return Fold(Sum(p[:p.HeaderLen()], 0)) == 0
}

// ComputeChecksum rewrites the header checksum from scratch.
func (p IPv4) ComputeChecksum() {
	p[10], p[11] = 0, 0
	binary.BigEndian.PutUint16(p[10:], Checksum(p[:p.HeaderLen()]))
}

func (p IPv4) setChecksum(c uint16) { binary.BigEndian.PutUint16(p[10:], c) }

// SetSrc rewrites the source address and updates the header checksum. The
// caller updates the transport checksum, whose pseudo-header also covers it.
func (p IPv4) SetSrc(a [4]byte) {
	p.setChecksum(Update32(p.Checksum(), p.Src(), a))
	copy(p[12:16], a[:])
}

// SetDst rewrites the destination address and updates the header checksum.
func (p IPv4) SetDst(a [4]byte) {
	p.setChecksum(Update32(p.Checksum(), p.Dst(), a))
	copy(p[16:20], a[:])
}

// SetID rewrites the identification and updates the checksum.
func (p IPv4) SetID(id uint16) {
	old := binary.BigEndian.Uint16(p[4:])
	binary.BigEndian.PutUint16(p[4:], id)
	p.setChecksum(Update16(p.Checksum(), old, id))
}

// DecTTL decrements the TTL and updates the checksum (RFC 1624 example).
func (p IPv4) DecTTL() {
	old := binary.BigEndian.Uint16(p[8:])
	p[8]--
	p.setChecksum(Update16(p.Checksum(), old, binary.BigEndian.Uint16(p[8:])))
}

// SetTotalLen rewrites the total length and updates the checksum.
func (p IPv4) SetTotalLen(n int) {
	old := binary.BigEndian.Uint16(p[2:])
	binary.BigEndian.PutUint16(p[2:], uint16(n))
	p.setChecksum(Update16(p.Checksum(), old, uint16(n)))
}

// SetFragment rewrites the flags and fragment offset (offset in bytes,
// a multiple of 8) and updates the checksum.
func (p IPv4) SetFragment(df, mf bool, offset int) {
	old := binary.BigEndian.Uint16(p[6:])
	v := uint16(offset/8) & 0x1fff
	if df {
		v |= 0x4000
	}
	if mf {
		v |= 0x2000
	}
	binary.BigEndian.PutUint16(p[6:], v)
	p.setChecksum(Update16(p.Checksum(), old, v))
}

// InitIPv4 writes a 20-byte header without options into b and returns the
// view of b[:total]. The checksum is computed.
func InitIPv4(b []byte, total int, id uint16, ttl, proto uint8, src, dst [4]byte) IPv4 {
	p := IPv4(b[:total])
	p[0] = 0x45
	p[1] = 0
	binary.BigEndian.PutUint16(p[2:], uint16(total))
	binary.BigEndian.PutUint16(p[4:], id)
	p[6], p[7] = 0, 0
	p[8] = ttl
	p[9] = proto
	copy(p[12:16], src[:])
	copy(p[16:20], dst[:])
	p.ComputeChecksum()
	return p
}
