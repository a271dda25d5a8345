package packet_test

import (
	"testing"

	"passgate/packet"
)

// FuzzParse feeds arbitrary bytes to every parser and accessor: none may
// panic, and a parsed view stays within its bytes.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		ip, err := packet.ParseIPv4(b)
		if err != nil {
			return
		}
		if ip.HeaderLen() > len(ip) || ip.TotalLen() != len(ip) {
			t.Fatalf("view out of bounds: hl %d total %d len %d", ip.HeaderLen(), ip.TotalLen(), len(ip))
		}
		_ = ip.ValidChecksum()
		_, _, _ = ip.Src(), ip.Dst(), ip.Options()
		_, _, _ = ip.IsFragment(), ip.FragmentOffset(), ip.MoreFragments()
		pl := ip.Payload()
		switch ip.Protocol() {
		case packet.ProtoTCP:
			if tc, err := packet.ParseTCP(pl); err == nil {
				_, _, _ = tc.MSS()
				_, _ = tc.WScale()
				_ = tc.Window()
				tc.ClampMSS(536)
				if off, n := tc.SACK(); n > 0 {
					if off+8*n > tc.HeaderLen() {
						t.Fatalf("SACK blocks %d at %d past the header (%d)", n, off, tc.HeaderLen())
					}
					tc.SetUint32(off+4, 7)
				}
				_ = tc.Payload()
				tc.SetSrcPort(1)
			}
		case packet.ProtoUDP:
			if u, err := packet.ParseUDP(pl); err == nil {
				u.SetDstPort(2)
				_ = u.Payload()
			}
		case packet.ProtoICMP:
			if c, err := packet.ParseICMP(pl); err == nil {
				_, _ = c.IsError(), c.IsQuery()
				c.SetID(3)
			}
		}
		ip.SetSrc([4]byte{1, 2, 3, 4})
		ip.DecTTL()
		if !ip.ValidChecksum() {
			// Only a header that was valid to begin with must stay valid.
			return
		}
	})
}

// FuzzEther feeds arbitrary frames to the Ethernet and ARP views: a view is
// made only over bytes that hold it, and its accessors stay within them.
func FuzzEther(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		e, ok := packet.ParseEther(b)
		if !ok {
			if len(b) >= packet.EtherHeaderLen {
				t.Fatal("rejected a frame with a full header")
			}
			return
		}
		_, _, _ = e.Dst(), e.Src(), e.Type()
		a, ok := packet.ParseARP(e.Payload())
		if !ok {
			return
		}
		if len(a) != packet.ARPLen || a.HardwareType() != 1 || a.ProtocolType() != packet.EtherTypeIPv4 {
			t.Fatalf("accepted ARP % x", a)
		}
		_, _, _, _, _ = a.Op(), a.SenderMAC(), a.SenderIP(), a.TargetMAC(), a.TargetIP()
		a.Set(a.Op(), a.TargetMAC(), a.TargetIP(), a.SenderMAC(), a.SenderIP())
		if _, ok := packet.ParseARP(a); !ok {
			t.Fatal("a rewritten ARP packet no longer parses")
		}
	})
}
