package nat

import (
	"testing"

	"passgate/packet"
	. "passgate/packet/pkttest"
)

// TestPortSeed: when a LAN port cannot be kept, the outside port chosen
// depends on Config.PortSeed: the same for the same seed (replays), not
// for another (RFC 7857 section 9: not predictable across starts).
func TestPortSeed(t *testing.T) {
	moved := func(seed uint64) uint16 {
		e := newEngine(t, func(c *Config) { c.PortSeed = seed })
		pass(t, e, 0, LAN, UDP("192.168.50.10:5000", "203.0.113.10:9", nil), WAN)
		b := pass(t, e, 0, LAN, UDP("192.168.50.11:5000", "203.0.113.10:9", nil), WAN)
		return packet.UDP(packet.IPv4(b).Payload()).SrcPort()
	}
	if a, b := moved(0), moved(0); a != b {
		t.Fatalf("the fixed seed gave %d then %d", a, b)
	}
	seen := map[uint16]bool{}
	for _, seed := range []uint64{0, 1, 0xdeadbeef, 0x0123456789abcdef} {
		seen[moved(seed)] = true
	}
	if len(seen) < 3 {
		t.Fatalf("four seeds chose only %d distinct ports", len(seen))
	}
}
