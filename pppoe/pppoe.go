// Package pppoe is passgate's PPPoE relay (RFC 2516): typed views over
// PPPoE discovery and session frames, a walk over discovery tags, and a
// relay that lets PPPoE clients on the LAN dial access concentrators on the
// WAN through the router.
//
// Like the NAT engine, the relay is pure: the caller passes the clock, it
// makes no system calls and starts no goroutines, its tables are bounded,
// and relaying a frame allocates nothing. Views are named []byte: accessors
// read the wire format and setters write it back.
package pppoe

import (
	"encoding/binary"
	"errors"
)

// EtherTypes of PPPoE.
const (
	EtherTypeDiscovery uint16 = 0x8863
	EtherTypeSession   uint16 = 0x8864
)

// Codes of the PPPoE header. Session frames carry CodeSession.
const (
	CodeSession uint8 = 0x00
	CodePADO    uint8 = 0x07 // offer, AC to host
	CodePADI    uint8 = 0x09 // initiation, host to broadcast
	CodePADR    uint8 = 0x19 // request, host to AC
	CodePADS    uint8 = 0x65 // session-confirmation, AC to host
	CodePADT    uint8 = 0xa7 // terminate, either way
	CodePADM    uint8 = 0xd3 // message, AC to host (registered by RFC 4937; rp-pppoe sends them)
	CodePADN    uint8 = 0xd4 // network, AC to host (likewise)
)

// CodeName names a code ("PADI"), or formats it in hex.
func CodeName(c uint8) string {
	switch c {
	case CodeSession:
		return "session"
	case CodePADO:
		return "PADO"
	case CodePADI:
		return "PADI"
	case CodePADR:
		return "PADR"
	case CodePADS:
		return "PADS"
	case CodePADT:
		return "PADT"
	case CodePADM:
		return "PADM"
	case CodePADN:
		return "PADN"
	}
	const hex = "0123456789abcdef"
	return "code 0x" + string([]byte{hex[c>>4], hex[c&15]})
}

// Tag types (RFC 2516 appendix A, RFC 4638, RFC 5578).
const (
	TagEndOfList        uint16 = 0x0000
	TagServiceName      uint16 = 0x0101
	TagACName           uint16 = 0x0102
	TagHostUniq         uint16 = 0x0103
	TagACCookie         uint16 = 0x0104
	TagVendorSpecific   uint16 = 0x0105
	TagCredits          uint16 = 0x0106
	TagMetrics          uint16 = 0x0107
	TagSequenceNumber   uint16 = 0x0108
	TagCreditScale      uint16 = 0x0109
	TagRelaySessionID   uint16 = 0x0110
	TagPPPMaxPayload    uint16 = 0x0120
	TagServiceNameError uint16 = 0x0201
	TagACSystemError    uint16 = 0x0202
	TagGenericError     uint16 = 0x0203
)

// TagName names a tag type ("Relay-Session-Id"), or formats it in hex.
func TagName(t uint16) string {
	switch t {
	case TagEndOfList:
		return "End-Of-List"
	case TagServiceName:
		return "Service-Name"
	case TagACName:
		return "AC-Name"
	case TagHostUniq:
		return "Host-Uniq"
	case TagACCookie:
		return "AC-Cookie"
	case TagVendorSpecific:
		return "Vendor-Specific"
	case TagCredits:
		return "Credits"
	case TagMetrics:
		return "Metrics"
	case TagSequenceNumber:
		return "Sequence Number"
	case TagCreditScale:
		return "Credit Scale Factor"
	case TagRelaySessionID:
		return "Relay-Session-Id"
	case TagPPPMaxPayload:
		return "PPP-Max-Payload"
	case TagServiceNameError:
		return "Service-Name-Error"
	case TagACSystemError:
		return "AC-System-Error"
	case TagGenericError:
		return "Generic-Error"
	}
	const hex = "0123456789abcdef"
	return "tag 0x" + string([]byte{hex[t>>12], hex[t>>8&15], hex[t>>4&15], hex[t&15]})
}

// IsError reports whether t is one of the error tags.
func IsError(t uint16) bool {
	return t == TagServiceNameError || t == TagACSystemError || t == TagGenericError
}

// Sizes.
const (
	HeaderLen    = 6 // VER/TYPE, CODE, SESSION_ID, LENGTH
	TagHeaderLen = 4 // TAG_TYPE, TAG_LENGTH
	VerType      = 0x11
	// RelayIDLen is the length of the Relay-Session-Id values this relay
	// adds: the 12 octets RFC 2516 section 4 guarantees room for in every
	// PADI.
	RelayIDLen = 12
)

// Errors of Parse and the tag walk.
var (
	ErrShort     = errors.New("pppoe: shorter than the PPPoE header")
	ErrVersion   = errors.New("pppoe: version/type is not 1/1")
	ErrLength    = errors.New("pppoe: LENGTH runs past the frame")
	ErrTagHeader = errors.New("pppoe: truncated tag header")
	ErrTagLength = errors.New("pppoe: tag length runs past the payload")
)

// Packet is a view over a PPPoE packet: the 6-byte header and its payload
// (a discovery packet's tags, or a session packet's PPP frame).
type Packet []byte

// Parse checks the header of b (what follows the Ethernet header) and
// returns the packet cut to its LENGTH, so Ethernet padding is left out.
func Parse(b []byte) (Packet, error) {
	if len(b) < HeaderLen {
		return nil, ErrShort
	}
	if b[0] != VerType {
		return nil, ErrVersion
	}
	n := int(binary.BigEndian.Uint16(b[4:6]))
	if HeaderLen+n > len(b) {
		return nil, ErrLength
	}
	return Packet(b[:HeaderLen+n]), nil
}

// Code is the CODE field.
func (p Packet) Code() uint8 { return p[1] }

// SessionID is the SESSION_ID field.
func (p Packet) SessionID() uint16 { return binary.BigEndian.Uint16(p[2:4]) }

// Length is the LENGTH field: the payload's length.
func (p Packet) Length() int { return int(binary.BigEndian.Uint16(p[4:6])) }

// Payload is what follows the header, up to LENGTH.
func (p Packet) Payload() []byte { return p[HeaderLen:] }

// SetSessionID writes the SESSION_ID field.
func (p Packet) SetSessionID(id uint16) { binary.BigEndian.PutUint16(p[2:4], id) }

// SetHeader writes the whole header: version and type 1, code, session id,
// and LENGTH n.
func (p Packet) SetHeader(code uint8, sid uint16, n int) {
	_ = p[HeaderLen-1]
	p[0] = VerType
	p[1] = code
	binary.BigEndian.PutUint16(p[2:4], sid)
	binary.BigEndian.PutUint16(p[4:6], uint16(n))
}

// PPPProtocol is the PPP protocol number of a session packet (the first two
// payload bytes), 0 if the payload is shorter.
func (p Packet) PPPProtocol() uint16 {
	if len(p) < HeaderLen+2 {
		return 0
	}
	return binary.BigEndian.Uint16(p[HeaderLen:])
}

// Tag is one discovery tag; Value aliases the packet.
type Tag struct {
	Type  uint16
	Value []byte
}

// TagIter walks the tags of a discovery payload:
//
//	for it := pppoe.Tags(p.Payload()); it.Next(); {
//		t := it.Tag()
//	}
//	if err := it.Err(); err != nil { ... }
//
// The walk ends at the end of the payload or at End-Of-List (RFC 2516:
// what follows it is ignored). A tag that runs past the payload, or 1 to 3
// bytes left over, end it with an error.
type TagIter struct {
	b   []byte
	off int // start of the next tag
	cur Tag
	at  int // start of the current tag
	err error
	end bool
}

// Tags starts a walk over payload.
func Tags(payload []byte) TagIter { return TagIter{b: payload} }

// Next moves to the next tag and reports whether there is one.
func (it *TagIter) Next() bool {
	if it.end || it.err != nil {
		return false
	}
	rest := len(it.b) - it.off
	if rest == 0 {
		it.end = true
		return false
	}
	if rest < TagHeaderLen {
		it.err = ErrTagHeader
		return false
	}
	typ := binary.BigEndian.Uint16(it.b[it.off:])
	n := int(binary.BigEndian.Uint16(it.b[it.off+2:]))
	if typ == TagEndOfList {
		// RFC 2516: End-Of-List has length 0 and ends the list; tolerate
		// a non-zero length by ignoring everything from here on.
		it.end = true
		return false
	}
	if n > rest-TagHeaderLen {
		it.err = ErrTagLength
		return false
	}
	it.at = it.off
	v := it.b[it.off+TagHeaderLen : it.off+TagHeaderLen+n]
	it.cur = Tag{Type: typ, Value: v[:n:n]}
	it.off += TagHeaderLen + n
	return true
}

// Tag is the current tag.
func (it *TagIter) Tag() Tag { return it.cur }

// Raw is the current tag with its header, as it sits in the payload.
func (it *TagIter) Raw() []byte { return it.b[it.at:it.off] }

// Err is the error that ended the walk, if any.
func (it *TagIter) Err() error { return it.err }

// FindTag returns the value of the first tag of type typ.
func FindTag(payload []byte, typ uint16) (value []byte, ok bool, err error) {
	it := Tags(payload)
	for it.Next() {
		if t := it.Tag(); t.Type == typ {
			return t.Value, true, nil
		}
	}
	return nil, false, it.Err()
}

// CheckTags walks every tag and returns the error that stops the walk.
func CheckTags(payload []byte) error {
	it := Tags(payload)
	for it.Next() {
	}
	return it.Err()
}

// AppendTag appends a tag (header and value) to b.
func AppendTag(b []byte, typ uint16, value []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint16(b, uint16(len(value)))
	return append(b, value...)
}

// PutTag writes a tag at the start of b and returns its length; b must
// have room for TagHeaderLen+len(value) bytes.
func PutTag(b []byte, typ uint16, value []byte) int {
	binary.BigEndian.PutUint16(b[0:2], typ)
	binary.BigEndian.PutUint16(b[2:4], uint16(len(value)))
	return TagHeaderLen + copy(b[TagHeaderLen:], value)
}
