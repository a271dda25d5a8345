package nat

import (
	"bytes"
	"encoding/binary"
	"testing"

	"passgate/packet"
	. "passgate/packet/pkttest"
)

// withAE sets bits of the TCP header's byte 12 (after the data offset:
// three reserved bits and AE, 0x01) of the IPv4 packet b, keeping its TCP
// checksum right, and returns b.
func withAE(b []byte, bits byte) []byte {
	t := b[packet.IPv4(b).HeaderLen():]
	old := binary.BigEndian.Uint16(t[12:])
	t[12] |= bits
	binary.BigEndian.PutUint16(t[16:], packet.Update16(binary.BigEndian.Uint16(t[16:]), old, binary.BigEndian.Uint16(t[12:])))
	return b
}

// TestAccECN: an Accurate ECN (RFC 9768) connection, whose endpoints set
// AE on the SYN (AE, CWR, ECE), the SYN-ACK and many segments after, opens,
// carries data both ways on the slow and the fast path, and closes through
// the engine like any other, AE left as sent.
func TestAccECN(t *testing.T) {
	e := newEngine(t, nil)
	c, s, pub := "192.168.50.10:40010", "203.0.113.10:80", "203.0.113.1:40010"
	ae := func(b []byte) []byte { return withAE(b, 0x01) }
	check := func(out []byte, src, dst string, payload []byte) {
		t.Helper()
		IPv4(t, out, Src(src), Dst(dst), L4Payload(payload))
		if tcp := packet.TCP(packet.IPv4(out).Payload()); tcp[12]&0x0f != 0x01 {
			t.Fatalf("%s -> %s: byte 12 %#x, AE lost", src, dst, tcp[12])
		}
	}
	check(pass(t, e, 0, LAN, ae(TCP(c, s, packet.TCPSyn|0x40|0x80, 100, 0, nil, nil)), WAN), pub, s, nil)
	check(pass(t, e, 0, WAN, ae(TCP(s, pub, packet.TCPSyn|packet.TCPAck, 500, 101, nil, nil)), LAN), s, c, nil)
	check(pass(t, e, 0, LAN, ae(TCP(c, s, packet.TCPAck, 101, 501, nil, nil)), WAN), pub, s, nil)
	seq := uint32(501)
	for i := range 20 {
		data := bytes.Repeat([]byte{byte(i)}, 100)
		check(pass(t, e, sec, WAN, ae(TCP(s, pub, packet.TCPAck|packet.TCPPsh|0x40, seq, 101, nil, data)), LAN), s, c, data)
		seq += 100
		check(pass(t, e, sec, LAN, ae(TCP(c, s, packet.TCPAck|0x80, 101, seq, nil, nil)), WAN), pub, s, nil)
	}
	if st := flowState(e); st.State != "established" {
		t.Fatalf("after AccECN data: %+v", st)
	}
	// The server's reset at its edge, with AE, ends the flow.
	check(pass(t, e, 2*sec, WAN, ae(TCP(s, pub, packet.TCPRst, seq, 0, nil, nil)), LAN), s, c, nil)
	if st := flowState(e); st.State != "closed" {
		t.Fatalf("after the reset with AE at the edge: %+v", st)
	}
}
