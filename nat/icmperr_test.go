package nat

import (
	"testing"

	"passgate/packet"
	. "passgate/packet/pkttest"
)

// TestICMPErrorChecksums: an ICMP error whose own checksum or whose
// embedded IP header checksum fails is dropped (RFC 5508 REQ-3, 3a); a
// wrong embedded transport checksum is no reason (REQ-3c).
func TestICMPErrorChecksums(t *testing.T) {
	e := newEngine(t, nil)
	out := pass(t, e, 0, LAN, UDP("192.168.50.10:33434", "203.0.113.20:33435", []byte("probe")), WAN)
	quote := append([]byte(nil), out[:28]...)
	mk := func(corrupt func(b []byte)) []byte {
		b := ICMP("203.0.113.20", "203.0.113.1", packet.ICMPUnreachable, 3, 0, quote)
		corrupt(b[20:])
		return b
	}
	dropped(t, e, sec, WAN, mk(func(c []byte) { c[2] ^= 0xff }), DropMalformed)
	// The embedded header's checksum, with the ICMP checksum made right.
	dropped(t, e, sec, WAN, mk(func(c []byte) {
		c[8+10] ^= 0xff
		packet.ICMP(c).ComputeChecksum()
	}), DropMalformed)
	in := pass(t, e, sec, WAN, mk(func(c []byte) {
		c[8+20+6] ^= 0xff // the embedded UDP checksum
		packet.ICMP(c).ComputeChecksum()
	}), LAN)
	IPv4(t, in, Dst("192.168.50.10"), Embedded(Src("192.168.50.10:33434")))
}
