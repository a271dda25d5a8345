package nat

import (
	"net/netip"
	"testing"

	"passgate/packet"
	"passgate/packet/pkttest"
)

// FuzzProcess hands the engine arbitrary packets from either side, after
// some real flows exist, so the fuzzer reaches the translation, ICMP error
// and fragment paths. Nothing may panic; whatever is forwarded or emitted
// must be a well-formed IPv4 packet with a right header checksum.
func FuzzProcess(f *testing.F) {
	seeds := [][]byte{
		pkttest.UDP("192.168.50.10:5000", "203.0.113.10:53", []byte("q")),
		pkttest.UDP("203.0.113.10:53", "203.0.113.1:5000", []byte("a")),
		pkttest.TCP("192.168.50.10:4000", "203.0.113.10:80", packet.TCPSyn, 1, 0, []byte{2, 4, 5, 0xb4}, nil),
		pkttest.Echo("192.168.50.10", "203.0.113.10", false, 1, 1, nil),
		pkttest.Echo("203.0.113.10", "203.0.113.1", false, 1, 1, nil),
		pkttest.ICMP("203.0.113.10", "203.0.113.1", 3, 3, 0, pkttest.UDP("203.0.113.1:5000", "203.0.113.10:53", nil)[:28]),
		pkttest.UDP("192.168.50.10:5000", "203.0.113.10:53", make([]byte, 40), pkttest.TTL(1)),
	}
	seeds = append(seeds,
		espPkt("192.168.50.10", "203.0.113.10", 0x1000, "x"),
		espPkt("203.0.113.10", "203.0.113.1", 0x2000, "y"),
		grePkt("203.0.113.10", "203.0.113.1", 0x0100, "z"),
		pkttest.UDP("192.168.50.10:500", "203.0.113.10:500", ikeMsg(0xaaaa, 0, false, 60)),
		pkttest.UDP("203.0.113.10:500", "203.0.113.1:500", ikeMsg(0xaaaa, 1, true, 60)),
		pkttest.UDP("192.168.50.10:1701", "203.0.113.10:1701", l2tpSCCRQ(5, false)),
		pkttest.UDP("203.0.113.10:1701", "203.0.113.1:1701", l2tpTo(5)),
		pkttest.TCP("192.168.50.10:40000", "203.0.113.10:1723", packet.TCPSyn, 1, 0, nil, nil),
	)
	for _, s := range seeds {
		f.Add(byte(0), s)
		f.Add(byte(1), s)
	}
	big := pkttest.UDP("192.168.50.11:500", "203.0.113.10:500", make([]byte, 3000), pkttest.ID(9))
	for _, fr := range pkttest.Fragment(big, 1000) {
		f.Add(byte(0), fr)
	}
	f.Fuzz(func(t *testing.T, side byte, b []byte) {
		e := newEngine(t, func(c *Config) {
			c.WANMTU = 1000
			c.PortForwards = []PortForward{{Proto: 6, OutsideLo: 80, OutsideHi: 80, Host: netip.MustParseAddr("192.168.50.10"), InsidePort: 80}}
		})
		e.Process(0, LAN, pkttest.UDP("192.168.50.10:5000", "203.0.113.10:53", nil))
		e.Process(0, LAN, pkttest.TCP("192.168.50.10:4000", "203.0.113.10:80", packet.TCPSyn, 1, 0, nil, nil))
		e.Process(0, LAN, pkttest.Echo("192.168.50.10", "203.0.113.10", false, 1, 1, nil))
		e.Process(0, LAN, espPkt("192.168.50.10", "203.0.113.10", 0x1000, "x"))
		e.Process(0, LAN, pkttest.UDP("192.168.50.10:500", "203.0.113.10:500", ikeMsg(0xaaaa, 0, false, 60)))
		e.Process(0, LAN, pkttest.UDP("192.168.50.10:1701", "203.0.113.10:1701", l2tpSCCRQ(5, false)))
		c := &pptpClient{t: nil, e: e, host: "192.168.50.11", port: 40000, cseq: 1, sseq: 1}
		c.connectQuiet()
		e.ResetEmitted()
		p := append([]byte(nil), b...)
		v := e.Process(sec, Iface(side&1), p)
		if v.Action == Forward {
			ip, err := packet.ParseIPv4(p)
			if err != nil || !ip.ValidChecksum() {
				t.Fatalf("forwarded a bad packet: %v", err)
			}
		}
		for _, em := range e.Emitted() {
			ip, err := packet.ParseIPv4(em.Frame[EtherHeadroom:])
			if err != nil || !ip.ValidChecksum() {
				t.Fatalf("emitted a bad packet: %v", err)
			}
		}
		e.Expire(1 << 50)
		if s := e.Stats(); s.Flows != 0 || s.Mappings != 0 {
			t.Fatalf("state left after expiry: %d flows %d mappings", s.Flows, s.Mappings)
		}
	})
}
