// Package pptp follows the PPTP control connection (RFC 2637) as a NAT in
// the middle sees it, one TCP direction at a time, and reads the enhanced
// GRE header (RFC 2637 section 4.1) of the calls it sets up.
//
// The control stream is parsed incrementally: messages may share a
// segment, and a message, even a call-id field, may be split across
// segments. Call ids are translated in place without changing any length,
// and a translated id keeps the high byte of the original, so a field split
// after its first byte is still rewritten: only its last byte ever changes,
// and that byte is always in the segment that completes the field.
// Retransmitted bytes get the rewrites they got the first time. It never
// allocates. Helper (passthrough.go) is PPTP passthrough, the nat helper
// built on them.
package pptp

import (
	"encoding/binary"
	"errors"
)

// Port is the PPTP control port.
const Port = 1723

// Control message types.
const (
	StartCtrlConnRequest = 1
	StartCtrlConnReply   = 2
	StopCtrlConnRequest  = 3
	StopCtrlConnReply    = 4
	EchoRequest          = 5
	EchoReply            = 6
	OutgoingCallRequest  = 7
	OutgoingCallReply    = 8
	IncomingCallRequest  = 9
	IncomingCallReply    = 10
	IncomingCallConnect  = 11
	CallClearRequest     = 12
	CallDisconnectNotify = 13
	WANErrorNotify       = 14
	SetLinkInfo          = 15
)

// MagicCookie marks every control message.
const MagicCookie = 0x1A2B3C4D

// HeaderLen is how much of a message the tracker collects before calling
// Message: every field a NAT needs lies in it.
const HeaderLen = 20

// Offsets of call-id fields.
const (
	OffCallID     = 12
	OffPeerCallID = 14
)

// Role is the end of a control connection a LAN host is: the PNS (the
// client, which opened it) or the PAC (a server behind a port forward).
type Role uint8

// Roles.
const (
	PNS Role = iota
	PAC
)

// OwnCallIDField gives, per message type, the call-id field that carries
// the sender's own call id when r sends it: the call id the NAT translates
// on the way out.
func OwnCallIDField(r Role, msgType uint16) (off int, ok bool) {
	switch {
	case r == PNS && (msgType == OutgoingCallRequest || msgType == IncomingCallReply || msgType == CallClearRequest),
		r == PAC && (msgType == OutgoingCallReply || msgType == IncomingCallRequest || msgType == CallDisconnectNotify):
		return OffCallID, true
	}
	return 0, false
}

// PeerCallIDField gives, per message type, the field that carries r's
// call id (as translated) when the other end sends it: what the NAT
// translates back on the way in.
func PeerCallIDField(r Role, msgType uint16) (off int, ok bool) {
	switch r {
	case PNS: // from the PAC
		switch msgType {
		case OutgoingCallReply:
			return OffPeerCallID, true
		case IncomingCallConnect, WANErrorNotify:
			return OffCallID, true
		}
	case PAC: // from the PNS
		switch msgType {
		case IncomingCallReply:
			return OffPeerCallID, true
		case SetLinkInfo:
			return OffCallID, true
		}
	}
	return 0, false
}

// Handler decides rewrites and hears of messages.
type Handler interface {
	// Field is called when a call-id field that may need translating is
	// complete (val is its original value); it returns the value to put
	// there, which must have the same high byte.
	Field(msgType uint16, off int, val uint16) uint16
	// Message is called once per message with its first HeaderLen bytes
	// (fewer if the message is shorter), as they arrived.
	Message(msgType uint16, hdr []byte)
}

// Errors that stop a stream: the NAT then passes it through untouched and
// counts it.
var (
	ErrCookie  = errors.New("pptp: bad magic cookie")
	ErrLength  = errors.New("pptp: bad message length")
	ErrMsgType = errors.New("pptp: not a control message")
)

const rewriteLog = 16

// Stream is the parse state of one direction of a control connection.
type Stream struct {
	next   uint32 // sequence number of the next new byte
	synced bool
	broken error

	pos    int // position in the current message
	length int // the current message's length, once pos >= 2
	hdr    [HeaderLen]byte

	// The rewrites made, by sequence number of the changed byte, so a
	// retransmission is rewritten the same way.
	log  [rewriteLog]rewrite
	logN int
}

// Verdict of Feed for one segment.
type Verdict uint8

const (
	// Pass: forward the segment (Changed says whether it was rewritten).
	Pass Verdict = iota
	// Ahead: the segment starts beyond bytes not seen yet; drop it so the
	// sender retransmits in order, or the stream could not be followed.
	Ahead
)

// Start sets the sequence number of the first data byte (the SYN's
// sequence number plus one).
func (s *Stream) Start(seq uint32) {
	*s = Stream{next: seq, synced: true}
}

// Broken reports why the stream could not be followed, if it could not.
func (s *Stream) Broken() error { return s.broken }

// Feed processes the payload of one segment starting at sequence number
// seq, rewriting call ids in place through h. It reports whether it changed
// anything (the caller then fixes the TCP checksum).
func (s *Stream) Feed(seq uint32, p []byte, h Handler) (v Verdict, changed bool) {
	if len(p) == 0 {
		return Pass, false
	}
	if !s.synced {
		s.Start(seq)
	}
	if s.broken != nil {
		return Pass, false
	}
	d := int32(seq - s.next)
	if d > 0 {
		return Ahead, false
	}
	// Old bytes first: replay the rewrites they got.
	old := int(-d)
	if old > len(p) {
		old = len(p)
	}
	if old > 0 {
		for i := 0; i < s.logN; i++ {
			e := &s.log[i]
			if off := int32(e.seq - seq); off >= 0 && int(off) < old && p[off] != e.b {
				p[off] = e.b
				changed = true
			}
		}
	}
	for i := old; i < len(p); i++ {
		if s.step(seq+uint32(i), p, i, h) {
			changed = true
		}
		if s.broken != nil {
			break
		}
	}
	s.next = seq + uint32(len(p))
	return Pass, changed
}

// step consumes byte p[i] (sequence number sq) of the stream.
func (s *Stream) step(sq uint32, p []byte, i int, h Handler) (changed bool) {
	if s.pos < HeaderLen {
		s.hdr[s.pos] = p[i]
	}
	s.pos++
	switch s.pos {
	case 2:
		s.length = int(binary.BigEndian.Uint16(s.hdr[:]))
		if s.length < 16 || s.length > 1500 {
			s.broken = ErrLength
			return false
		}
	case 4:
		if binary.BigEndian.Uint16(s.hdr[2:]) != 1 {
			s.broken = ErrMsgType
			return false
		}
	case 8:
		if binary.BigEndian.Uint32(s.hdr[4:]) != MagicCookie {
			s.broken = ErrCookie
			return false
		}
	case OffCallID + 2, OffPeerCallID + 2:
		off := s.pos - 2
		typ := binary.BigEndian.Uint16(s.hdr[8:])
		if isCallIDField(typ, off) {
			val := binary.BigEndian.Uint16(s.hdr[off:])
			nv := h.Field(typ, off, val)
			if nv != val && nv>>8 == val>>8 {
				p[i] = byte(nv)
				s.remember(sq, byte(nv))
				changed = true
			}
		}
	}
	if s.pos == HeaderLen || s.pos == s.length && s.pos < HeaderLen {
		h.Message(binary.BigEndian.Uint16(s.hdr[8:]), s.hdr[:min(s.pos, HeaderLen)])
	}
	if s.pos == s.length {
		s.pos, s.length = 0, 0
	}
	return changed
}

// isCallIDField says whether off is a call-id field of message typ that a
// handler may translate (own call id going out or peer call id coming in,
// for either role; the handler knows its direction and role and leaves
// the others).
func isCallIDField(typ uint16, off int) bool {
	for _, r := range [2]Role{PNS, PAC} {
		if o, ok := OwnCallIDField(r, typ); ok && o == off {
			return true
		}
		if o, ok := PeerCallIDField(r, typ); ok && o == off {
			return true
		}
	}
	return false
}

type rewrite struct {
	seq uint32
	b   byte
}

func (s *Stream) remember(seq uint32, b byte) {
	if s.logN < rewriteLog {
		s.log[s.logN] = rewrite{seq, b}
		s.logN++
		return
	}
	copy(s.log[:], s.log[1:])
	s.log[rewriteLog-1] = rewrite{seq, b}
}

// GRE is a view over an enhanced GRE header (version 1).
type GRE []byte

// GRE protocol type of PPP.
const GREProtoPPP = 0x880B

var ErrGRE = errors.New("pptp: not enhanced GRE")

// ParseGRE checks for the enhanced GRE header PPTP uses: version 1,
// protocol PPP, key present, no checksum or routing, and enough bytes for
// the optional sequence and acknowledgement numbers it announces.
func ParseGRE(b []byte) (GRE, error) {
	if len(b) < 8 {
		return nil, ErrGRE
	}
	if b[1]&0x07 != 1 || binary.BigEndian.Uint16(b[2:]) != GREProtoPPP || b[0]&0x20 == 0 || b[0]&0xc0 != 0 {
		return nil, ErrGRE
	}
	n := 8
	if b[0]&0x10 != 0 {
		n += 4
	}
	if b[1]&0x80 != 0 {
		n += 4
	}
	if len(b) < n {
		return nil, ErrGRE
	}
	return GRE(b), nil
}

// CallID is the key: the call id of the receiving side.
func (g GRE) CallID() uint16 { return binary.BigEndian.Uint16(g[6:]) }

// SetCallID rewrites the key (GRE version 1 has no checksum).
func (g GRE) SetCallID(id uint16) { binary.BigEndian.PutUint16(g[6:], id) }
