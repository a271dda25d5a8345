package nat

import (
	"bytes"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"passgate/packet"
	. "passgate/packet/pkttest"
)

func testConfig() Config {
	return Config{
		LANAddr:    netip.MustParsePrefix("192.168.50.1/24"),
		WANAddr:    netip.MustParsePrefix("203.0.113.1/24"),
		WANGateway: netip.MustParseAddr("203.0.113.254"),
		MaxFlows:   1024,
	}
}

func newEngine(t testing.TB, mod func(*Config)) *Engine {
	t.Helper()
	cfg := testConfig()
	if mod != nil {
		mod(&cfg)
	}
	e, err := New(cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// pass runs a packet through and requires it to be forwarded out want.
func pass(t *testing.T, e *Engine, now Time, from Iface, b []byte, want Iface) []byte {
	t.Helper()
	v := e.Process(now, from, b)
	if v.Action != Forward {
		t.Fatalf("verdict %+v (reason %v), want forward", v, v.Reason)
	}
	if v.Out != want {
		t.Fatalf("out %v, want %v", v.Out, want)
	}
	return b
}

func dropped(t *testing.T, e *Engine, now Time, from Iface, b []byte, why DropReason) {
	t.Helper()
	v := e.Process(now, from, b)
	if v.Action != Drop || v.Reason != why {
		t.Fatalf("verdict %+v (reason %v), want drop %v", v, v.Reason, why)
	}
}

func TestUDPOutboundAndReply(t *testing.T) {
	e := newEngine(t, nil)
	out := pass(t, e, 0, LAN, UDP("192.168.50.10:5000", "203.0.113.10:53", []byte("query")), WAN)
	IPv4(t, out, Src("203.0.113.1:5000"), Dst("203.0.113.10:53"), TTLIs(63), L4Payload([]byte("query")))

	in := pass(t, e, sec, WAN, UDP("203.0.113.10:53", "203.0.113.1:5000", []byte("answer")), LAN)
	IPv4(t, in, Src("203.0.113.10:53"), Dst("192.168.50.10:5000"), L4Payload([]byte("answer")))
	if got := e.Stats().Flows; got != 1 {
		t.Fatalf("flows %d, want 1", got)
	}
}

func TestZeroUDPChecksumStaysZero(t *testing.T) {
	e := newEngine(t, nil)
	out := pass(t, e, 0, LAN, UDP("192.168.50.10:5000", "203.0.113.10:53", []byte("x"), ZeroUDPChecksum()), WAN)
	IPv4(t, out, Src("203.0.113.1:5000"), UDPChecksumZero())
}

func TestEndpointIndependentMapping(t *testing.T) {
	e := newEngine(t, nil)
	// Another host holds 5000 outside, so host .11's 5000 must move, and
	// both of .11's destinations must see the same outside port.
	pass(t, e, 0, LAN, UDP("192.168.50.10:5000", "203.0.113.10:9", nil), WAN)
	a := pass(t, e, 0, LAN, UDP("192.168.50.11:5000", "203.0.113.10:9", nil), WAN)
	b := pass(t, e, 0, LAN, UDP("192.168.50.11:5000", "203.0.113.20:9", nil), WAN)
	pa, pb := packet.UDP(packet.IPv4(a).Payload()).SrcPort(), packet.UDP(packet.IPv4(b).Payload()).SrcPort()
	if pa == 5000 || pa != pb {
		t.Fatalf("outside ports %d and %d: want equal and not 5000", pa, pb)
	}
	if pa%2 != 0 {
		t.Fatalf("outside port %d lost the even parity of 5000", pa)
	}
}

// RFC 4787 REQ-3: a LAN port below 1024 that cannot be kept moves to
// another port below 1024; one above stays above.
func TestPortRangeClass(t *testing.T) {
	e := newEngine(t, nil)
	srcPort := func(b []byte) uint16 { return packet.UDP(packet.IPv4(b).Payload()).SrcPort() }
	for _, tc := range []struct {
		port   uint16
		lo, hi uint16
	}{
		{123, 1, 1023},
		{40000, 1024, 65535},
	} {
		first := pass(t, e, 0, LAN, UDP("192.168.50.10:"+itoa(tc.port), "203.0.113.10:123", nil), WAN)
		if p := srcPort(first); p != tc.port {
			t.Fatalf("port %d not kept: %d", tc.port, p)
		}
		for host := 11; host < 14; host++ {
			out := pass(t, e, 0, LAN, UDP("192.168.50."+itoa(uint16(host))+":"+itoa(tc.port), "203.0.113.10:123", nil), WAN)
			p := srcPort(out)
			if p == tc.port || p < tc.lo || p > tc.hi || p%2 != tc.port%2 {
				t.Errorf("host .%d from %d: outside port %d, want another in %d-%d of the same parity", host, tc.port, p, tc.lo, tc.hi)
			}
		}
	}
}

func TestFiltering(t *testing.T) {
	for _, tc := range []struct {
		name                     string
		f                        Filtering
		sameAddrOtherPort, other bool
	}{
		{"endpoint-independent", EndpointIndependent, true, true},
		{"address-dependent", AddressDependent, true, false},
		{"address-and-port-dependent", AddressAndPortDependent, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, func(c *Config) { c.Filtering = tc.f })
			pass(t, e, 0, LAN, UDP("192.168.50.10:4000", "203.0.113.10:3478", nil), WAN)
			try := func(src string, want bool) {
				t.Helper()
				v := e.Process(sec, WAN, UDP(src, "203.0.113.1:4000", []byte("hi")))
				if (v.Action == Forward) != want {
					t.Fatalf("from %s: verdict %+v, want forwarded=%v", src, v, want)
				}
			}
			try("203.0.113.10:3479", tc.sameAddrOtherPort)
			try("203.0.113.20:3478", tc.other)
			try("203.0.113.10:3478", true)
		})
	}
}

func TestUnsolicitedInboundCreatesNoState(t *testing.T) {
	e := newEngine(t, nil)
	dropped(t, e, 0, WAN, UDP("203.0.113.10:1234", "203.0.113.1:7777", nil), DropUnsolicited)
	dropped(t, e, 0, WAN, TCP("203.0.113.10:1234", "203.0.113.1:22", packet.TCPSyn, 1, 0, nil, nil), DropUnsolicited)
	dropped(t, e, 0, WAN, Echo("203.0.113.10", "203.0.113.1", true, 77, 1, nil), DropUnsolicited)
	if s := e.Stats(); s.Flows != 0 || s.Mappings != 0 {
		t.Fatalf("state created: %+v", s)
	}
}

func TestTCPHandshakeStatesAndTimeouts(t *testing.T) {
	e := newEngine(t, nil)
	c, s := "192.168.50.10:40000", "203.0.113.10:80"
	pub := "203.0.113.1:40000"
	dropped(t, e, 0, LAN, TCP(c, s, packet.TCPAck, 1, 1, nil, nil), DropTCPInvalid)
	pass(t, e, 0, LAN, TCP(c, s, packet.TCPSyn, 100, 0, nil, nil), WAN)
	IPv4(t, pass(t, e, 0, WAN, TCP(s, pub, packet.TCPSyn|packet.TCPAck, 500, 101, nil, nil), LAN), Dst(c))
	pass(t, e, 0, LAN, TCP(c, s, packet.TCPAck, 101, 501, nil, nil), WAN)
	state := func() FlowInfo {
		var fi FlowInfo
		e.Flows(sec, func(f FlowInfo) bool { fi = f; return false })
		return fi
	}
	if st := state(); st.State != "established" || st.ExpiresSec < 7000 {
		t.Fatalf("after handshake: %+v", st)
	}
	data := pass(t, e, sec, WAN, TCP(s, pub, packet.TCPAck|packet.TCPPsh, 501, 101, nil, []byte("hello")), LAN)
	IPv4(t, data, Src(s), Dst(c), L4Payload([]byte("hello")))
	pass(t, e, 2*sec, LAN, TCP(c, s, packet.TCPFin|packet.TCPAck, 101, 506, nil, nil), WAN)
	if st := state(); st.State != "fin-wait" || st.ExpiresSec > 241 {
		t.Fatalf("after FIN: %+v", st)
	}
	pass(t, e, 2*sec, WAN, TCP(s, pub, packet.TCPRst, 506, 0, nil, nil), LAN)
	if st := state(); st.State != "closed" || st.ExpiresSec > 241 {
		t.Fatalf("after RST: %+v", st)
	}
	e.Expire(2*sec + Time(4*time.Minute))
	if n := e.Stats().Flows; n != 0 {
		t.Fatalf("flows after expiry: %d", n)
	}
}

func TestTCPSimultaneousOpen(t *testing.T) {
	e := newEngine(t, nil)
	c, s, pub := "192.168.50.10:5555", "203.0.113.10:6666", "203.0.113.1:5555"
	pass(t, e, 0, LAN, TCP(c, s, packet.TCPSyn, 1, 0, nil, nil), WAN)
	pass(t, e, 0, WAN, TCP(s, pub, packet.TCPSyn, 9, 0, nil, nil), LAN)
	pass(t, e, 0, LAN, TCP(c, s, packet.TCPSyn|packet.TCPAck, 1, 10, nil, nil), WAN)
	pass(t, e, 0, WAN, TCP(s, pub, packet.TCPAck, 10, 2, nil, nil), LAN)
	var st string
	e.Flows(0, func(f FlowInfo) bool { st = f.State; return false })
	if st != "established" {
		t.Fatalf("state %q after simultaneous open", st)
	}
}

func TestMSSClamp(t *testing.T) {
	e := newEngine(t, func(c *Config) { c.MSSClamp = 1400 })
	mss := []byte{1, 2, 4, 0x05, 0xb4} // NOP, then MSS 1460 at an odd offset
	out := pass(t, e, 0, LAN, TCP("192.168.50.10:1000", "203.0.113.10:80", packet.TCPSyn, 1, 0, mss, nil), WAN)
	IPv4(t, out)
	if got, _, ok := packet.TCP(packet.IPv4(out).Payload()).MSS(); !ok || got != 1400 {
		t.Fatalf("mss %d ok=%v, want 1400", got, ok)
	}
}

func TestICMPEchoIDMapping(t *testing.T) {
	e := newEngine(t, nil)
	// Two hosts using the same id get different outside ids.
	a := pass(t, e, 0, LAN, Echo("192.168.50.10", "203.0.113.10", false, 7, 1, []byte("a")), WAN)
	b := pass(t, e, 0, LAN, Echo("192.168.50.11", "203.0.113.10", false, 7, 1, []byte("b")), WAN)
	ida, idb := packet.ICMP(packet.IPv4(a).Payload()).ID(), packet.ICMP(packet.IPv4(b).Payload()).ID()
	IPv4(t, a, Src("203.0.113.1"))
	if ida == idb {
		t.Fatalf("both hosts got outside id %d", ida)
	}
	r := pass(t, e, 0, WAN, Echo("203.0.113.10", "203.0.113.1", true, idb, 1, []byte("b")), LAN)
	IPv4(t, r, Dst("192.168.50.11:7"), ICMPType(packet.ICMPEchoReply, 0))
}

func TestPingRouter(t *testing.T) {
	e := newEngine(t, nil)
	r := pass(t, e, 0, LAN, Echo("192.168.50.10", "192.168.50.1", false, 3, 1, []byte("p")), LAN)
	IPv4(t, r, Src("192.168.50.1"), Dst("192.168.50.10"), ICMPType(packet.ICMPEchoReply, 0))
	r = pass(t, e, 0, WAN, Echo("203.0.113.10", "203.0.113.1", false, 3, 1, []byte("p")), WAN)
	IPv4(t, r, Src("203.0.113.1"), Dst("203.0.113.10"), ICMPType(packet.ICMPEchoReply, 0))
	r = pass(t, e, 0, LAN, Echo("192.168.50.10", "203.0.113.1", false, 3, 1, []byte("p")), LAN)
	IPv4(t, r, Src("203.0.113.1"), Dst("192.168.50.10"))
	if e.Stats().Flows != 0 {
		t.Fatal("pinging the router made flows")
	}
}

func TestTTLExceededGenerated(t *testing.T) {
	e := newEngine(t, nil)
	orig := UDP("192.168.50.12:33434", "203.0.113.20:33434", make([]byte, 32), TTL(1))
	dropped(t, e, 0, LAN, orig, DropTTLExceeded)
	em := e.Emitted()
	if len(em) != 1 || em[0].Out != LAN || em[0].NextHop != [4]byte{192, 168, 50, 12} {
		t.Fatalf("emitted %+v", em)
	}
	IPv4(t, em[0].Frame[EtherHeadroom:], Src("192.168.50.1"), Dst("192.168.50.12"),
		ICMPType(packet.ICMPTimeExceeded, 0),
		Embedded(Src("192.168.50.12:33434"), Dst("203.0.113.20:33434")))
	if e.Stats().Flows != 0 {
		t.Fatal("expired packet made a flow")
	}
}

func TestInboundICMPErrorTranslated(t *testing.T) {
	e := newEngine(t, nil)
	out := pass(t, e, 0, LAN, UDP("192.168.50.10:33434", "203.0.113.20:33435", []byte("probe"), TTL(2)), WAN)
	quote := append([]byte(nil), out[:28]...)
	// The server says port unreachable, quoting what it got.
	errPkt := ICMP("203.0.113.20", "203.0.113.1", packet.ICMPUnreachable, 3, 0, quote)
	in := pass(t, e, sec, WAN, errPkt, LAN)
	IPv4(t, in, Src("203.0.113.20"), Dst("192.168.50.10"), ICMPType(packet.ICMPUnreachable, 3),
		Embedded(Src("192.168.50.10:33434"), Dst("203.0.113.20:33435")))
	// A router further on reports time exceeded: its own source stays.
	errPkt = ICMP("198.51.100.7", "203.0.113.1", packet.ICMPTimeExceeded, 0, 0, quote)
	in = pass(t, e, sec, WAN, errPkt, LAN)
	IPv4(t, in, Src("198.51.100.7"), Dst("192.168.50.10"), Embedded(Src("192.168.50.10:33434")))
	// An error about no flow goes nowhere.
	bogus := append([]byte(nil), quote...)
	bogus[21] ^= 0xff
	dropped(t, e, sec, WAN, ICMP("203.0.113.20", "203.0.113.1", 3, 3, 0, bogus), DropICMPNoFlow)
}

func TestOutboundICMPErrorTranslated(t *testing.T) {
	e := newEngine(t, func(c *Config) {
		c.PortForwards = []PortForward{{Proto: 17, OutsideLo: 6000, OutsideHi: 6000, Host: netip.MustParseAddr("192.168.50.10"), InsidePort: 7000}}
	})
	in := pass(t, e, 0, WAN, UDP("203.0.113.10:999", "203.0.113.1:6000", []byte("x")), LAN)
	IPv4(t, in, Dst("192.168.50.10:7000"))
	errPkt := ICMP("192.168.50.10", "203.0.113.10", 3, 3, 0, in[:28])
	out := pass(t, e, 0, LAN, errPkt, WAN)
	IPv4(t, out, Src("203.0.113.1"), Dst("203.0.113.10"),
		Embedded(Src("203.0.113.10:999"), Dst("203.0.113.1:6000")))
}

func TestFragNeeded(t *testing.T) {
	e := newEngine(t, func(c *Config) { c.WANMTU = 1400 })
	big := UDP("192.168.50.10:5000", "203.0.113.10:5000", make([]byte, 1450), DF())
	dropped(t, e, 0, LAN, big, DropFragNeeded)
	em := e.Emitted()
	if len(em) != 1 {
		t.Fatalf("emitted %d packets", len(em))
	}
	IPv4(t, em[0].Frame[EtherHeadroom:], Src("192.168.50.1"), Dst("192.168.50.10"),
		ICMPType(packet.ICMPUnreachable, packet.ICMPFragNeeded),
		func(t testing.TB, ip packet.IPv4) {
			if mtu := uint16(ip.Payload()[6])<<8 | uint16(ip.Payload()[7]); mtu != 1400 {
				t.Errorf("next-hop mtu %d", mtu)
			}
		})
}

func TestFragmentOnEgress(t *testing.T) {
	e := newEngine(t, func(c *Config) { c.WANMTU = 600 })
	payload := bytes.Repeat([]byte("0123456789"), 150)
	v := e.Process(0, LAN, UDP("192.168.50.10:5000", "203.0.113.10:5000", payload))
	if v.Action != Consumed {
		t.Fatalf("verdict %+v", v)
	}
	var whole []byte
	for i, em := range e.Emitted() {
		f := em.Frame[EtherHeadroom:]
		IPv4(t, f, Src("203.0.113.1"), Dst("203.0.113.10"))
		if len(f) > 600 {
			t.Fatalf("fragment %d is %d bytes", i, len(f))
		}
		whole = append(whole, packet.IPv4(f).Payload()...)
	}
	if !bytes.Equal(whole[8:], payload) {
		t.Fatal("fragments do not reassemble to the payload")
	}
}

func TestFragmentsInAndOutOfOrder(t *testing.T) {
	for _, order := range [][]int{{0, 1, 2}, {2, 1, 0}, {1, 0, 2}} {
		e := newEngine(t, nil)
		payload := bytes.Repeat([]byte{0xa5}, 2400) // port 500 is kept: no helper shares it here
		frags := Fragment(UDP("192.168.50.10:500", "203.0.113.10:500", payload, ID(77)), 1000)
		if len(frags) != 3 {
			t.Fatalf("%d fragments", len(frags))
		}
		var got [3][]byte
		for _, i := range order {
			v := e.Process(0, LAN, frags[i])
			switch v.Action {
			case Forward:
				got[i] = frags[i]
			case Consumed:
			default:
				t.Fatalf("order %v frag %d: %+v", order, i, v)
			}
			for _, em := range e.Emitted() {
				p := packet.IPv4(em.Frame[EtherHeadroom:])
				got[p.FragmentOffset()/976] = append([]byte(nil), p...)
			}
			e.ResetEmitted()
		}
		var whole []byte
		for i, f := range got {
			if f == nil {
				t.Fatalf("order %v: fragment %d never left", order, i)
			}
			IPv4(t, f, Src("203.0.113.1"), Dst("203.0.113.10"))
			whole = append(whole, packet.IPv4(f).Payload()...)
		}
		// The reassembled datagram's UDP checksum must verify.
		re := UDP("203.0.113.1:500", "203.0.113.10:500", payload)
		if !bytes.Equal(whole, packet.IPv4(re).Payload()) {
			t.Fatalf("order %v: reassembled transport differs from a fresh translation", order)
		}
	}
}

func TestPortForwardAndHairpin(t *testing.T) {
	e := newEngine(t, func(c *Config) {
		c.PortForwards = []PortForward{{Name: "web", Proto: 6, OutsideLo: 8080, OutsideHi: 8081, Host: netip.MustParseAddr("192.168.50.10"), InsidePort: 80}}
	})
	in := pass(t, e, 0, WAN, TCP("203.0.113.20:3333", "203.0.113.1:8081", packet.TCPSyn, 1, 0, nil, nil), LAN)
	IPv4(t, in, Src("203.0.113.20:3333"), Dst("192.168.50.10:81"))
	back := pass(t, e, 0, LAN, TCP("192.168.50.10:81", "203.0.113.20:3333", packet.TCPSyn|packet.TCPAck, 9, 2, nil, nil), WAN)
	IPv4(t, back, Src("203.0.113.1:8081"), Dst("203.0.113.20:3333"))

	// Hairpin: a LAN host reaches the forward through the public address
	// and sees the server answer from it; the server sees the client's
	// public mapping.
	h := pass(t, e, 0, LAN, TCP("192.168.50.12:4444", "203.0.113.1:8080", packet.TCPSyn, 1, 0, nil, nil), LAN)
	IPv4(t, h, Src("203.0.113.1:4444"), Dst("192.168.50.10:80"))
	hr := pass(t, e, 0, LAN, TCP("192.168.50.10:80", "203.0.113.1:4444", packet.TCPSyn|packet.TCPAck, 5, 2, nil, nil), LAN)
	IPv4(t, hr, Src("203.0.113.1:8080"), Dst("192.168.50.12:4444"))

	// Dynamic mappings never take a forwarded port.
	out := pass(t, e, 0, LAN, TCP("192.168.50.11:8080", "203.0.113.20:80", packet.TCPSyn, 1, 0, nil, nil), WAN)
	if p := packet.TCP(packet.IPv4(out).Payload()).SrcPort(); p == 8080 || p == 8081 {
		t.Fatalf("dynamic mapping took forwarded port %d", p)
	}
}

func TestDMZ(t *testing.T) {
	e := newEngine(t, func(c *Config) { c.DMZ = netip.MustParseAddr("192.168.50.12") })
	in := pass(t, e, 0, WAN, UDP("203.0.113.20:1", "203.0.113.1:9999", nil), LAN)
	IPv4(t, in, Dst("192.168.50.12:9999"))
}

func TestHostLimitAndTableFull(t *testing.T) {
	e := newEngine(t, func(c *Config) { c.MaxFlows = 32; c.MaxFlowsPerHost = 4 })
	for p := uint16(0); p < 4; p++ {
		out := pass(t, e, 0, LAN, UDP(netip.AddrPortFrom(netip.MustParseAddr("192.168.50.10"), 2000+p).String(), "203.0.113.10:1", nil), WAN)
		// Answered: no early drop may take it.
		ext := packet.UDP(packet.IPv4(out).Payload()).SrcPort()
		pass(t, e, 0, WAN, UDP("203.0.113.10:1", netip.AddrPortFrom(netip.MustParseAddr("203.0.113.1"), ext).String(), nil), LAN)
	}
	dropped(t, e, 0, LAN, UDP("192.168.50.10:3000", "203.0.113.10:1", nil), DropHostLimit)
	// Other hosts still get through: one host cannot starve the rest.
	pass(t, e, 0, LAN, UDP("192.168.50.11:3000", "203.0.113.10:1", nil), WAN)
}

func TestExpiryReleasesMappings(t *testing.T) {
	e := newEngine(t, func(c *Config) { c.Timeouts.UDP = 30 * time.Second })
	pass(t, e, 0, LAN, UDP("192.168.50.10:5000", "203.0.113.10:1", nil), WAN)
	pass(t, e, 20*sec, LAN, UDP("192.168.50.10:5000", "203.0.113.10:1", nil), WAN)
	e.Expire(40 * sec)
	if e.Stats().Flows != 1 {
		t.Fatal("a refreshed flow expired early")
	}
	e.Expire(51 * sec)
	if s := e.Stats(); s.Flows != 0 || s.Mappings != 0 {
		t.Fatalf("after timeout: %d flows, %d mappings", s.Flows, s.Mappings)
	}
	dropped(t, e, 52*sec, WAN, UDP("203.0.113.10:1", "203.0.113.1:5000", nil), DropUnsolicited)
}

func TestMalformedCountedAndDropped(t *testing.T) {
	e := newEngine(t, nil)
	good := UDP("192.168.50.10:5000", "203.0.113.10:1", []byte("x"))
	for name, b := range map[string][]byte{
		"empty":        nil,
		"short":        good[:10],
		"bad checksum": func() []byte { b := append([]byte(nil), good...); b[10] ^= 1; return b }(),
		"truncated udp": func() []byte {
			b := append([]byte(nil), good[:24]...)
			b[3] = 24
			packet.IPv4(b).ComputeChecksum()
			return b
		}(),
	} {
		if v := e.Process(0, LAN, b); v.Action != Drop || v.Reason != DropMalformed {
			t.Errorf("%s: %+v", name, v)
		}
	}
	if e.Stats().Drops[DropMalformed] != 4 {
		t.Fatalf("malformed drops %d", e.Stats().Drops[DropMalformed])
	}
}

func TestReconfigureKeepsFlows(t *testing.T) {
	e := newEngine(t, func(c *Config) {
		c.PortForwards = []PortForward{{Proto: 6, OutsideLo: 80, OutsideHi: 80, Host: netip.MustParseAddr("192.168.50.10"), InsidePort: 80}}
	})
	pass(t, e, 0, LAN, UDP("192.168.50.10:5000", "203.0.113.10:1", nil), WAN)
	pass(t, e, 0, WAN, TCP("203.0.113.20:3333", "203.0.113.1:80", packet.TCPSyn, 1, 0, nil, nil), LAN)
	cfg := testConfig()
	if err := e.Reconfigure(cfg, sec); err != nil {
		t.Fatal(err)
	}
	if n := e.Stats().Flows; n != 1 {
		t.Fatalf("flows after removing the forward: %d, want 1 (the UDP one)", n)
	}
	bad := cfg
	bad.PortForwards = []PortForward{{Proto: 6, OutsideLo: 0, Host: netip.MustParseAddr("10.0.0.1")}}
	if err := e.Reconfigure(bad, sec); err == nil {
		t.Fatal("bad configuration accepted")
	}
	pass(t, e, 2*sec, WAN, UDP("203.0.113.10:1", "203.0.113.1:5000", nil), LAN)
}

func TestNoRouteMakesNoState(t *testing.T) {
	e := newEngine(t, func(c *Config) { c.WANGateway = netip.Addr{} })
	dropped(t, e, 0, LAN, UDP("192.168.50.10:5000", "198.51.100.53:53", []byte("q")), DropNoRoute)
	if e.Stats().Flows != 0 {
		t.Fatal("an unroutable packet made a flow")
	}
	em := e.Emitted()
	if len(em) != 1 {
		t.Fatalf("emitted %d", len(em))
	}
	IPv4(t, em[0].Frame[EtherHeadroom:], Src("192.168.50.1"), Dst("192.168.50.10"), ICMPType(packet.ICMPUnreachable, 0),
		Embedded(Dst("198.51.100.53:53")))
	// On the WAN network itself no gateway is needed.
	pass(t, e, 0, LAN, UDP("192.168.50.10:5000", "203.0.113.10:53", nil), WAN)
}

func TestKernelTCPNotCountedAsDrop(t *testing.T) {
	e := newEngine(t, func(c *Config) { c.KernelTCP = []uint16{8080} })
	syn := TCP("192.168.50.10:40000", "192.168.50.1:8080", packet.TCPSyn, 1, 0, nil, nil)
	if v := e.Process(0, LAN, syn); v.Action != Consumed {
		t.Fatalf("admin SYN: %+v", v)
	}
	dropped(t, e, 0, LAN, TCP("192.168.50.10:40000", "192.168.50.1:22", packet.TCPSyn, 1, 0, nil, nil), DropToRouter)
	if n := e.Stats().Drops[DropToRouter]; n != 1 {
		t.Fatalf("to_router drops %d, want 1 (the port-22 SYN only)", n)
	}
}

func itoa(p uint16) string { return strconv.Itoa(int(p)) }

// TestLinkMTU: the WAN interface's MTU lowered to 1400 below the
// configured 1500 (ip link set ... mtu 1400 while running): a 1450-byte
// packet with DF is answered frag-needed with 1400, one without DF
// fragmented to it; back at 1500 (or unknown) the configured MTU holds.
func TestLinkMTU(t *testing.T) {
	e := newEngine(t, nil)
	big := func(df bool) []byte {
		if df {
			return UDP("192.168.50.10:5000", "203.0.113.10:5000", make([]byte, 1450), DF())
		}
		return UDP("192.168.50.10:5000", "203.0.113.10:5000", make([]byte, 1450))
	}
	pass(t, e, 0, LAN, big(true), WAN)
	e.SetLinkMTU(WAN, 1400)
	dropped(t, e, 0, LAN, big(true), DropFragNeeded)
	em := e.Emitted()
	if len(em) != 1 {
		t.Fatalf("emitted %d packets", len(em))
	}
	IPv4(t, em[0].Frame[EtherHeadroom:], Dst("192.168.50.10"), ICMPType(packet.ICMPUnreachable, packet.ICMPFragNeeded),
		func(t testing.TB, ip packet.IPv4) {
			if mtu := uint16(ip.Payload()[6])<<8 | uint16(ip.Payload()[7]); mtu != 1400 {
				t.Errorf("next-hop mtu %d, want 1400", mtu)
			}
		})
	if v := e.Process(0, LAN, big(false)); v.Action != Consumed {
		t.Fatalf("without DF: %+v, want fragments", v)
	}
	for i, em := range e.Emitted() {
		if n := len(em.Frame[EtherHeadroom:]); n > 1400 {
			t.Fatalf("fragment %d is %d bytes", i, n)
		}
	}
	// A LAN interface MTU above the configured one changes nothing.
	e.SetLinkMTU(LAN, 9000)
	e.SetLinkMTU(WAN, 1500)
	pass(t, e, 0, LAN, big(true), WAN)
	e.SetLinkMTU(WAN, 1400)
	e.SetLinkMTU(WAN, 0)
	pass(t, e, 0, LAN, big(true), WAN)
}
