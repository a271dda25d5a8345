package l2tp

import (
	"encoding/binary"
	"testing"
)

func avp(attr uint16, hidden bool, val ...byte) []byte {
	b := make([]byte, 6, 6+len(val))
	w := uint16(0x8000) | uint16(6+len(val))
	if hidden {
		w |= 0x4000
	}
	binary.BigEndian.PutUint16(b, w)
	binary.BigEndian.PutUint16(b[4:], attr)
	return append(b, val...)
}

// control builds a control message: T, L, S set, version 2.
func control(tunnel uint16, avps ...[]byte) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint16(b, 0xc802)
	binary.BigEndian.PutUint16(b[4:], tunnel)
	for _, a := range avps {
		b = append(b, a...)
	}
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	return b
}

func TestControlMessages(t *testing.T) {
	sccrq := control(0, avp(AttrMessageType, false, 0, SCCRQ), avp(2, false, 1, 0), avp(AttrAssignedTunnelID, false, 0x12, 0x34))
	h, err := ParseHeader(sccrq)
	if err != nil || !h.Control || h.TunnelID != 0 || h.Len != 12 || h.TunnelOffset != 4 {
		t.Fatalf("header %+v %v", h, err)
	}
	ci, err := ParseControl(sccrq, h)
	if err != nil || ci.MessageType != SCCRQ || !ci.HasAssigned || ci.AssignedTunnelID != 0x1234 {
		t.Fatalf("control %+v %v", ci, err)
	}

	hidden := control(0, avp(AttrMessageType, false, 0, SCCRQ), avp(AttrAssignedTunnelID, true, 9, 9))
	h, _ = ParseHeader(hidden)
	if _, err := ParseControl(hidden, h); err != ErrHidden {
		t.Fatalf("hidden: %v", err)
	}
	zlb := control(77)
	h, _ = ParseHeader(zlb)
	if ci, err := ParseControl(zlb, h); err != nil || ci.MessageType != 0 || h.TunnelID != 77 {
		t.Fatalf("zlb: %+v %v", ci, err)
	}
	bad := control(0, avp(AttrAssignedTunnelID, false, 1, 2))
	h, _ = ParseHeader(bad)
	if _, err := ParseControl(bad, h); err != ErrAVP {
		t.Fatalf("message type not first: %v", err)
	}
}

func TestDataHeader(t *testing.T) {
	// Data message, no L, S, O bits: flags, tunnel, session, PPP.
	b := []byte{0x00, 0x02, 0x00, 0x05, 0x00, 0x07, 0xff, 0x03}
	h, err := ParseHeader(b)
	if err != nil || h.Control || h.TunnelID != 5 || h.SessionID != 7 || h.Len != 6 {
		t.Fatalf("%+v %v", h, err)
	}
	if _, err := ParseHeader([]byte{0x00, 0x03, 0, 0, 0, 0}); err != ErrVersion {
		t.Fatalf("version 3: %v", err)
	}
}

func FuzzL2TP(f *testing.F) {
	f.Add(control(0, avp(AttrMessageType, false, 0, SCCRQ), avp(AttrAssignedTunnelID, false, 0x12, 0x34)))
	f.Add([]byte{0x00, 0x02, 0x00, 0x05, 0x00, 0x07})
	f.Add([]byte{0x02, 0x02, 0x00, 0x05, 0x00, 0x07, 0xff, 0xff}) // offset size past the end
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			return
		}
		if h.Len > len(b) || h.TunnelOffset+2 > len(b) {
			t.Fatalf("header %+v past %d bytes", h, len(b))
		}
		if h.Control {
			_, _ = ParseControl(b, h)
		}
	})
}
