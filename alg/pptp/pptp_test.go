package pptp

import (
	"bytes"
	"encoding/binary"
	"math/rand"
	"testing"
)

// msg builds a control message of the RFC 2637 length for its type, with
// the call id fields set.
func msg(typ uint16, callID, peer uint16) []byte {
	lengths := map[uint16]int{1: 156, 2: 156, 5: 16, 6: 20, 7: 168, 8: 32, 9: 220, 10: 24, 11: 28, 12: 16, 13: 148, 14: 40, 15: 24}
	b := make([]byte, lengths[typ])
	binary.BigEndian.PutUint16(b[0:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[2:], 1)
	binary.BigEndian.PutUint32(b[4:], MagicCookie)
	binary.BigEndian.PutUint16(b[8:], typ)
	binary.BigEndian.PutUint16(b[12:], callID)
	if len(b) >= 16 {
		binary.BigEndian.PutUint16(b[14:], peer)
	}
	return b
}

// xlate maps call ids by a table and records messages.
type xlate struct {
	m    map[uint16]uint16
	msgs []uint16
}

func (x *xlate) Field(typ uint16, off int, v uint16) uint16 {
	if n, ok := x.m[v]; ok {
		return n
	}
	return v
}
func (x *xlate) Message(typ uint16, hdr []byte) { x.msgs = append(x.msgs, typ) }

func TestRewriteAnySegmentation(t *testing.T) {
	// Client side: SCCRQ, OCRQ with call id 0x0102, Echo, CCRQ 0x0102.
	var stream []byte
	for _, m := range [][]byte{msg(1, 0, 0), msg(7, 0x0102, 0), msg(5, 0, 0), msg(12, 0x0102, 0)} {
		stream = append(stream, m...)
	}
	want := append([]byte(nil), stream...)
	binary.BigEndian.PutUint16(want[156+12:], 0x0177)
	binary.BigEndian.PutUint16(want[156+168+16+12:], 0x0177)
	r := rand.New(rand.NewSource(3))
	for trial := 0; trial < 300; trial++ {
		// Split the stream at random points, including inside the field.
		var s Stream
		s.Start(1000)
		x := &xlate{m: map[uint16]uint16{0x0102: 0x0177}}
		got := append([]byte(nil), stream...)
		for off := 0; off < len(got); {
			n := 1 + r.Intn(40)
			if trial == 0 {
				n = len(got) // one segment, several messages
			}
			end := min(off+n, len(got))
			if v, _ := s.Feed(1000+uint32(off), got[off:end], x); v != Pass {
				t.Fatalf("trial %d: verdict %v", trial, v)
			}
			off = end
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("trial %d: stream not rewritten as expected", trial)
		}
		if len(x.msgs) != 4 || x.msgs[1] != OutgoingCallRequest || x.msgs[3] != CallClearRequest {
			t.Fatalf("trial %d: messages %v", trial, x.msgs)
		}
	}
}

func TestRetransmissionAndAhead(t *testing.T) {
	var s Stream
	s.Start(0)
	x := &xlate{m: map[uint16]uint16{0x0102: 0x0177}}
	m := msg(7, 0x0102, 0)
	seg := append([]byte(nil), m[:20]...)
	s.Feed(0, seg, x)
	if binary.BigEndian.Uint16(seg[12:]) != 0x0177 {
		t.Fatal("not rewritten")
	}
	again := append([]byte(nil), m[:20]...)
	if _, changed := s.Feed(0, again, x); !changed || !bytes.Equal(again, seg) {
		t.Fatal("retransmission not rewritten the same way")
	}
	if v, _ := s.Feed(100, m[100:], x); v != Ahead {
		t.Fatal("a segment beyond the stream was not refused")
	}
	rest := append([]byte(nil), m[20:]...)
	if v, _ := s.Feed(20, rest, x); v != Pass || s.Broken() != nil {
		t.Fatal("in-order rest refused")
	}
}

func TestBrokenStream(t *testing.T) {
	var s Stream
	s.Start(0)
	bad := msg(1, 0, 0)
	bad[5] = 0
	s.Feed(0, bad, &xlate{})
	if s.Broken() != ErrCookie {
		t.Fatalf("broken: %v", s.Broken())
	}
}

func TestGRE(t *testing.T) {
	b := []byte{0x30, 0x81, 0x88, 0x0b, 0, 4, 0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4}
	g, err := ParseGRE(b)
	if err != nil || g.CallID() != 0x1234 {
		t.Fatalf("%v %x", err, g.CallID())
	}
	g.SetCallID(0x9999)
	if b[6] != 0x99 || b[7] != 0x99 {
		t.Fatal("call id not written")
	}
	for _, bad := range [][]byte{
		{0x30, 0x80, 0x88, 0x0b, 0, 4, 0x12, 0x34, 0, 0, 0, 1}, // version 0
		{0x30, 0x81, 0x08, 0x00, 0, 4, 0x12, 0x34, 0, 0, 0, 1}, // not PPP
		{0x30, 0x81, 0x88, 0x0b, 0, 4, 0x12, 0x34, 0, 0},       // seq announced, missing
	} {
		if _, err := ParseGRE(bad); err == nil {
			t.Errorf("accepted %x", bad)
		}
	}
}

func FuzzControlStream(f *testing.F) {
	f.Add(append(msg(7, 0x0102, 0), msg(8, 5, 0x0177)...), uint8(7))
	f.Add(msg(13, 5, 0), uint8(1))
	f.Fuzz(func(t *testing.T, b []byte, cut uint8) {
		var s Stream
		s.Start(0)
		x := &xlate{m: map[uint16]uint16{0x0102: 0x0177, 0x0177: 0x0102}}
		c := min(int(cut), len(b))
		s.Feed(0, b[:c], x)
		s.Feed(uint32(c), b[c:], x)
		s.Feed(0, b, x) // a retransmission of everything
	})
}

func FuzzGRE(f *testing.F) {
	f.Add([]byte{0x30, 0x81, 0x88, 0x0b, 0, 4, 0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if g, err := ParseGRE(b); err == nil {
			g.SetCallID(g.CallID() + 1)
		}
	})
}
