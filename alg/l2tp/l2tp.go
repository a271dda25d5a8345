// Package l2tp reads L2TPv2 headers and control-message AVPs (RFC 2661)
// as far as a NAT passing L2TP through needs them: the tunnel id that
// demultiplexes a shared outside port, and the Assigned Tunnel ID a peer
// announces in SCCRQ and SCCRP. It never allocates. Helper
// (passthrough.go) is L2TP passthrough, the nat helper built on them.
package l2tp

import (
	"encoding/binary"
	"errors"
)

// Port is the L2TP UDP port.
const Port = 1701

// Control message types (RFC 2661 section 3.2).
const (
	SCCRQ   = 1
	SCCRP   = 2
	SCCCN   = 3
	StopCCN = 4
	Hello   = 6
)

// AVP attribute types used here.
const (
	AttrMessageType      = 0
	AttrAssignedTunnelID = 9
)

var (
	ErrShort   = errors.New("l2tp: message too short")
	ErrVersion = errors.New("l2tp: not L2TP version 2")
	ErrAVP     = errors.New("l2tp: malformed AVP")
	ErrHidden  = errors.New("l2tp: hidden AVP")
	ErrLength  = errors.New("l2tp: length field exceeds the datagram")
)

// Header is a parsed L2TP header.
type Header struct {
	Control   bool
	TunnelID  uint16
	SessionID uint16
	// TunnelOffset is where the tunnel id sits in the message.
	TunnelOffset int
	// Len is the header length: the AVPs or the payload start here.
	Len int
	// Length is the message length when the L bit is set, else 0.
	Length int
}

// ParseHeader reads the header of an L2TPv2 message.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < 6 {
		return Header{}, ErrShort
	}
	flags := binary.BigEndian.Uint16(b)
	if flags&0x000f != 2 {
		return Header{}, ErrVersion
	}
	h := Header{Control: flags&0x8000 != 0}
	off := 2
	if flags&0x4000 != 0 { // L
		if len(b) < off+2 {
			return Header{}, ErrShort
		}
		h.Length = int(binary.BigEndian.Uint16(b[off:]))
		if h.Length > len(b) {
			return Header{}, ErrLength
		}
		off += 2
	}
	if len(b) < off+4 {
		return Header{}, ErrShort
	}
	h.TunnelOffset = off
	h.TunnelID = binary.BigEndian.Uint16(b[off:])
	h.SessionID = binary.BigEndian.Uint16(b[off+2:])
	off += 4
	if flags&0x0800 != 0 { // S
		off += 4
	}
	if flags&0x0200 != 0 { // O
		if len(b) < off+2 {
			return Header{}, ErrShort
		}
		off += 2 + int(binary.BigEndian.Uint16(b[off:]))
	}
	if off > len(b) {
		return Header{}, ErrShort
	}
	h.Len = off
	return h, nil
}

// ControlInfo is what a control message says about its tunnel.
type ControlInfo struct {
	MessageType uint16
	// AssignedTunnelID is set (HasAssigned) by SCCRQ and SCCRP.
	AssignedTunnelID uint16
	HasAssigned      bool
}

// ParseControl walks the AVPs of a control message (b is the whole
// message). A hidden Assigned Tunnel ID cannot be read: ErrHidden tells the
// caller to fall back to a port mapping. A zero-length control message (a
// ZLB acknowledgement) has no message type and returns MessageType 0.
func ParseControl(b []byte, h Header) (ControlInfo, error) {
	var ci ControlInfo
	end := len(b)
	if h.Length != 0 {
		end = h.Length
	}
	first := true
	for off := h.Len; off < end; {
		if end-off < 6 {
			return ci, ErrAVP
		}
		w := binary.BigEndian.Uint16(b[off:])
		l := int(w & 0x03ff)
		hidden := w&0x4000 != 0
		if l < 6 || off+l > end {
			return ci, ErrAVP
		}
		vendor := binary.BigEndian.Uint16(b[off+2:])
		attr := binary.BigEndian.Uint16(b[off+4:])
		val := b[off+6 : off+l]
		if vendor == 0 {
			switch attr {
			case AttrMessageType:
				if !first || hidden || len(val) != 2 {
					return ci, ErrAVP
				}
				ci.MessageType = binary.BigEndian.Uint16(val)
			case AttrAssignedTunnelID:
				if hidden {
					return ci, ErrHidden
				}
				if len(val) != 2 {
					return ci, ErrAVP
				}
				ci.AssignedTunnelID = binary.BigEndian.Uint16(val)
				ci.HasAssigned = true
			}
		}
		if first && (vendor != 0 || attr != AttrMessageType) {
			return ci, ErrAVP // the Message Type AVP must come first
		}
		first = false
		off += l
	}
	return ci, nil
}
