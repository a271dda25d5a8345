package nat

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"passgate/packet"
)

// TestRewritePortsSameAsRewrite: the fast path's fused rewrite leaves
// every byte as rewrite then DecTTL do, for TCP and UDP, with fields that
// change and fields that do not, and checksums at their edges (zero,
// 0xffff, a UDP checksum of zero meaning none).
func TestRewritePortsSameAsRewrite(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	pick16 := func() uint16 {
		switch r.IntN(4) {
		case 0:
			return 0
		case 1:
			return 0xffff
		}
		return uint16(r.Uint32())
	}
	for i := 0; i < 200000; i++ {
		udp := i%2 == 0
		n := 20 + 20 + r.IntN(8)
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		b[0] = 0x45
		b[8] = byte(2 + r.IntN(254)) // TTL above 1, as established requires
		b[9] = packet.ProtoTCP
		if udp {
			b[9] = packet.ProtoUDP
		}
		l4 := b[20:]
		off := 16
		if udp {
			off = 6
		}
		l4[off], l4[off+1] = byte(pick16()>>8), byte(pick16())
		if r.IntN(4) == 0 {
			l4[off], l4[off+1] = 0, 0
		}
		b[10], b[11] = byte(pick16()>>8), byte(pick16())
		ip := packet.IPv4(b)
		nsrc, ndst := ip.Src(), ip.Dst()
		if r.IntN(2) == 0 {
			nsrc = [4]byte{byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())}
		}
		if r.IntN(2) == 0 {
			ndst = [4]byte{byte(pick16() >> 8), byte(pick16()), byte(r.Uint32()), byte(r.Uint32())}
		}
		nsid, ndid := uint16(l4[0])<<8|uint16(l4[1]), uint16(l4[2])<<8|uint16(l4[3])
		if r.IntN(2) == 0 {
			nsid = pick16()
		}
		if r.IntN(2) == 0 {
			ndid = pick16()
		}
		want := append([]byte(nil), b...)
		rewrite(packet.IPv4(want), nsrc, ndst, nsid, ndid)
		packet.IPv4(want).DecTTL()
		rewritePorts(ip, udp, nsrc, ndst, nsid, ndid)
		if !bytes.Equal(b, want) {
			t.Fatalf("case %d (udp %v):\n got % x\nwant % x", i, udp, b, want)
		}
	}
}
