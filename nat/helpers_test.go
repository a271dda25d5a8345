package nat_test

// Tests and benchmarks of the engine with the VPN passthrough helpers
// registered (alg/ipsec, alg/pptp, alg/l2tp): the fast path's hooks, and
// the fuzzer reaching the helpers' paths. An external test package, as
// the helpers import nat.

import (
	"encoding/binary"
	"errors"
	"maps"
	"net/netip"
	"testing"

	"passgate/alg/ipsec"
	"passgate/alg/l2tp"
	"passgate/alg/pptp"
	. "passgate/alg/vpntest"
	. "passgate/nat"
	"passgate/packet"
	. "passgate/packet/pkttest"
)

// The tunnels passed through take the fast path too once both ends have
// spoken: ESP by its SPI, PPTP's GRE with its key translated back to the
// LAN client's call id on the way in.
func TestFastPathTunnels(t *testing.T) {
	e := NewEngine(t, nil)
	Pass(t, e, 0, LAN, ESP("192.168.50.10", "203.0.113.10", 0x1000, "a"), WAN)
	Pass(t, e, Sec, WAN, ESP("203.0.113.10", "203.0.113.1", 0x2000, "b"), LAN)
	c := &PPTPClient{T: t, E: e, Host: "192.168.50.11", Port: 40000, CSeq: 100, SSeq: 900}
	c.Connect()
	// Another client holds call id 0x0100 with the server, so this one's
	// is translated.
	other := &PPTPClient{T: t, E: e, Host: "192.168.50.12", Port: 40001, CSeq: 100, SSeq: 900}
	other.Connect()
	other.Out(Sec, PPTPMsg(pptp.OutgoingCallRequest, 0x0100, 0, 0), packet.TCPAck)
	o := c.Out(Sec, PPTPMsg(pptp.OutgoingCallRequest, 0x0100, 0, 0), packet.TCPAck)
	outside := binary.BigEndian.Uint16(TCPPayload(o)[12:])
	if outside == 0x0100 {
		t.Fatal("the test needs a translated call id")
	}
	c.In(Sec, PPTPMsg(pptp.OutgoingCallReply, 0x0700, outside, 1), packet.TCPAck)
	Pass(t, e, Sec, LAN, GRE(c.Host, "203.0.113.10", 0x0700, "first"), WAN)
	Pass(t, e, Sec, WAN, GRE("203.0.113.10", "203.0.113.1", outside, "first back"), LAN)

	var cnt Counters
	take := func(from Iface, b []byte) []byte {
		t.Helper()
		v, ok := e.FastPath(2*Sec, from, b, &cnt)
		if !ok || v.Action != Forward {
			t.Fatalf("declined: %+v %v", v, ok)
		}
		return b
	}
	IPv4(t, take(LAN, ESP("192.168.50.10", "203.0.113.10", 0x1000, "a2")), Src("203.0.113.1"), Dst("203.0.113.10"))
	IPv4(t, take(WAN, ESP("203.0.113.10", "203.0.113.1", 0x2000, "b2")), Dst("192.168.50.10"))
	g := take(LAN, GRE(c.Host, "203.0.113.10", 0x0700, "ppp"))
	IPv4(t, g, Src("203.0.113.1"))
	if GREKey(g) != 0x0700 {
		t.Fatalf("outbound GRE key %#04x", GREKey(g))
	}
	r := take(WAN, GRE("203.0.113.10", "203.0.113.1", outside, "ppp back"))
	IPv4(t, r, Dst(c.Host))
	if GREKey(r) != 0x0100 {
		t.Fatalf("inbound GRE key %#04x, want the client's 0x0100", GREKey(r))
	}
	e.Flush(&cnt)
	if cnt.Packets != [2]uint64{2, 2} {
		t.Fatalf("counted %+v", cnt.Packets)
	}
	// An SPI not yet bound still needs Process.
	if _, ok := e.FastPath(2*Sec, WAN, ESP("203.0.113.10", "203.0.113.1", 0x3000, "?"), &cnt); ok {
		t.Fatal("an unknown SPI took the fast path")
	}
}

// BenchmarkESP is raw ESP both ways on a learned SPI pair.
func BenchmarkESP(b *testing.B) {
	e := NewEngine(b, nil)
	out := ESP("192.168.50.10", "203.0.113.10", 0x1000, "0123456789abcdef")
	in := ESP("203.0.113.10", "203.0.113.1", 0x2000, "0123456789abcdef")
	po, pi := append([]byte(nil), out...), append([]byte(nil), in...)
	e.Process(0, LAN, po)
	e.Process(0, WAN, pi)
	benchPair(b, e, out, in, po, pi)
}

// BenchmarkGRE is a PPTP call's GRE both ways, the key translated inbound.
func BenchmarkGRE(b *testing.B) {
	e := NewEngine(b, nil)
	c := &PPTPClient{E: e, Host: "192.168.50.10", Port: 40000, CSeq: 1, SSeq: 1}
	c.ConnectQuiet()
	out := GRE("192.168.50.10", "203.0.113.10", 0x0700, "0123456789abcdef")
	in := GRE("203.0.113.10", "203.0.113.1", 0x0100, "0123456789abcdef")
	po, pi := append([]byte(nil), out...), append([]byte(nil), in...)
	benchPair(b, e, out, in, po, pi)
}

func benchPair(b *testing.B, e *Engine, out, in, po, pi []byte) {
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		copy(po, out)
		if v := e.Process(Time(i), LAN, po); v.Action != Forward {
			b.Fatal(v)
		}
		copy(pi, in)
		if v := e.Process(Time(i), WAN, pi); v.Action != Forward {
			b.Fatal(v)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(2*b.N), "ns/pkt")
}

// FuzzProcess hands the engine arbitrary packets from either side, after
// some real flows exist, so the fuzzer reaches the translation, ICMP error
// and fragment paths. Nothing may panic; whatever is forwarded or emitted
// must be a well-formed IPv4 packet with a right header checksum.
func FuzzProcess(f *testing.F) {
	seeds := [][]byte{
		UDP("192.168.50.10:5000", "203.0.113.10:53", []byte("q")),
		UDP("203.0.113.10:53", "203.0.113.1:5000", []byte("a")),
		TCP("192.168.50.10:4000", "203.0.113.10:80", packet.TCPSyn, 1, 0, []byte{2, 4, 5, 0xb4}, nil),
		Echo("192.168.50.10", "203.0.113.10", false, 1, 1, nil),
		Echo("203.0.113.10", "203.0.113.1", false, 1, 1, nil),
		ICMP("203.0.113.10", "203.0.113.1", 3, 3, 0, UDP("203.0.113.1:5000", "203.0.113.10:53", nil)[:28]),
		UDP("192.168.50.10:5000", "203.0.113.10:53", make([]byte, 40), TTL(1)),
	}
	seeds = append(seeds,
		ESP("192.168.50.10", "203.0.113.10", 0x1000, "x"),
		ESP("203.0.113.10", "203.0.113.1", 0x2000, "y"),
		GRE("203.0.113.10", "203.0.113.1", 0x0100, "z"),
		UDP("192.168.50.10:500", "203.0.113.10:500", IKEMsg(0xaaaa, 0, false, 60)),
		UDP("203.0.113.10:500", "203.0.113.1:500", IKEMsg(0xaaaa, 1, true, 60)),
		UDP("192.168.50.10:1701", "203.0.113.10:1701", L2TPSCCRQ(5, false)),
		UDP("203.0.113.10:1701", "203.0.113.1:1701", L2TPTo(5)),
		TCP("192.168.50.10:40000", "203.0.113.10:1723", packet.TCPSyn, 1, 0, nil, nil),
	)
	for _, s := range seeds {
		f.Add(byte(0), s)
		f.Add(byte(1), s)
	}
	big := UDP("192.168.50.11:500", "203.0.113.10:500", make([]byte, 3000), ID(9))
	for _, fr := range Fragment(big, 1000) {
		f.Add(byte(0), fr)
	}
	f.Fuzz(func(t *testing.T, side byte, b []byte) {
		e := NewEngine(t, func(c *Config) {
			c.WANMTU = 1000
			c.PortForwards = []PortForward{{Proto: 6, OutsideLo: 80, OutsideHi: 80, Host: netip.MustParseAddr("192.168.50.10"), InsidePort: 80}}
		})
		e.Process(0, LAN, UDP("192.168.50.10:5000", "203.0.113.10:53", nil))
		e.Process(0, LAN, TCP("192.168.50.10:4000", "203.0.113.10:80", packet.TCPSyn, 1, 0, nil, nil))
		e.Process(0, LAN, Echo("192.168.50.10", "203.0.113.10", false, 1, 1, nil))
		e.Process(0, LAN, ESP("192.168.50.10", "203.0.113.10", 0x1000, "x"))
		e.Process(0, LAN, UDP("192.168.50.10:500", "203.0.113.10:500", IKEMsg(0xaaaa, 0, false, 60)))
		e.Process(0, LAN, UDP("192.168.50.10:1701", "203.0.113.10:1701", L2TPSCCRQ(5, false)))
		c := &PPTPClient{T: nil, E: e, Host: "192.168.50.11", Port: 40000, CSeq: 1, SSeq: 1}
		c.ConnectQuiet()
		e.ResetEmitted()
		p := append([]byte(nil), b...)
		v := e.Process(Sec, Iface(side&1), p)
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

// walkCounts counts flows by protocol and VPN sessions by walking the
// table (Flows), as Stats did before it kept counters: IPsec's sessions
// are its tunnels, the pairs of LAN host and server among its flows.
func walkCounts(e *Engine, now Time) (byProto, vpn map[string]int) {
	byProto, vpn = map[string]int{}, map[string]int{}
	tunnels := map[[2]netip.Addr]bool{}
	e.Flows(now, func(fi FlowInfo) bool {
		if fi.State == "expected" {
			return true
		}
		byProto[fi.Proto]++
		switch {
		case fi.VPN == "ipsec":
			if k := [2]netip.Addr{fi.Inside.Addr(), fi.Remote.Addr()}; !tunnels[k] {
				tunnels[k] = true
				vpn[fi.VPN]++
			}
		case fi.VPN != "" && fi.Proto != "gre":
			vpn[fi.VPN]++
		}
		return true
	})
	return byProto, vpn
}

// Stats' counts, kept as flows come and go, equal a walk of the table
// while flows of every kind are made, switched off and expire.
func TestStatsCountsMatchWalk(t *testing.T) {
	e := NewEngine(t, nil)
	check := func(when string, now Time) {
		t.Helper()
		s := e.Stats()
		wp, wv := walkCounts(e, now)
		vpn := map[string]int{}
		for k, v := range s.VPNSessions {
			if v != 0 {
				vpn[k] = v
			}
		}
		if !maps.Equal(s.FlowsByProto, wp) || !maps.Equal(vpn, wv) {
			t.Fatalf("%s: Stats %v %v, walk %v %v", when, s.FlowsByProto, s.VPNSessions, wp, wv)
		}
	}
	check("empty", 0)
	c := &PPTPClient{T: t, E: e, Host: "192.168.50.10", Port: 43000, CSeq: 1, SSeq: 1}
	c.Connect()
	Pass(t, e, 0, LAN, ESP("192.168.50.11", "203.0.113.10", 0x1000, "a"), WAN)
	Pass(t, e, 0, LAN, UDP("192.168.50.12:500", "203.0.113.10:500", IKEMsg(1, 0, false, 40)), WAN)
	Pass(t, e, 0, LAN, UDP("192.168.50.12:1701", "203.0.113.10:1701", L2TPSCCRQ(5, false)), WAN)
	Pass(t, e, 0, LAN, UDP("192.168.50.12:4500", "203.0.113.20:4500", []byte("natt")), WAN)
	// One tunnel more of flows: .12's IKE with .10 floated to NAT-T, a
	// second ESP SA of .11's with .10.
	Pass(t, e, 0, LAN, UDP("192.168.50.12:4500", "203.0.113.10:4500", []byte("natt")), WAN)
	Pass(t, e, 0, LAN, ESP("192.168.50.11", "203.0.113.10", 0x2000, "b"), WAN)
	for i := range 20 {
		Pass(t, e, 0, LAN, UDP("192.168.50.13:"+Itoa(2000+uint16(i)), "203.0.113.10:53", []byte("q")), WAN)
	}
	Pass(t, e, 0, LAN, TCP("192.168.50.13:40000", "203.0.113.10:80", packet.TCPSyn, 1, 0, nil, nil), WAN)
	check("after opening", 0)
	s := e.Stats()
	if s.VPNSessions["pptp"] != 1 || s.VPNSessions["ipsec"] != 3 || s.VPNSessions["l2tp"] != 1 || s.FlowsByProto["udp"] != 24 || s.FlowsByProto["esp"] != 2 {
		t.Fatalf("counts %v %v", s.FlowsByProto, s.VPNSessions)
	}
	cfg := LabConfig()
	cfg.Helpers = map[string]Switch{"pptp": Off}
	if err := e.Reconfigure(cfg, Sec); err != nil {
		t.Fatal(err)
	}
	check("after PPTP off", Sec)
	e.Expire(3600 * Sec)
	check("after expiry", 3600*Sec)
	if s := e.Stats(); s.Flows != 0 || len(s.FlowsByProto) != 0 || s.VPNSessions["ipsec"] != 0 {
		t.Fatalf("after expiry %+v", s)
	}
}

// notIKE is a datagram no IKE reader takes (byte 17 is no IKE version).
var notIKE = []byte("NOT-IKE/lan-proto: a game's or a custom VPN's datagram")

// TestNonIKEOnPort500GetsAMapping: two LAN hosts send something that is no
// IKE from port 500 to one server's port 500; each gets its own outside
// port, counted and logged, and each gets its answer.
func TestNonIKEOnPort500GetsAMapping(t *testing.T) {
	e := NewEngine(t, nil)
	ports := map[string]uint16{}
	for i, h := range []string{"192.168.50.10", "192.168.50.11"} {
		out := Pass(t, e, Time(i)*2*Sec, LAN, UDP(h+":500", "203.0.113.10:500", notIKE), WAN)
		IPv4(t, out, Src("203.0.113.1"), Dst("203.0.113.10:500"), L4Payload(notIKE))
		p := packet.UDP(packet.IPv4(out).Payload()).SrcPort()
		if p == 500 {
			t.Fatalf("%s's non-IKE datagram took the shared port 500", h)
		}
		ports[h] = p
	}
	if ports["192.168.50.10"] == ports["192.168.50.11"] {
		t.Fatalf("both hosts on outside port %d", ports["192.168.50.10"])
	}
	for _, h := range []string{"192.168.50.11", "192.168.50.10"} {
		pub := "203.0.113.1:" + Itoa(ports[h])
		in := Pass(t, e, 3*Sec, WAN, UDP("203.0.113.10:500", pub, []byte("answer for "+h)), LAN)
		IPv4(t, in, Src("203.0.113.10:500"), Dst(h+":500"), L4Payload([]byte("answer for "+h)))
	}
	if s := e.Stats(); s.IKEFallback != 2 {
		t.Fatalf("IKEFallback %d, want 2", s.IKEFallback)
	}
	evs, _ := e.Events(0)
	n := 0
	for _, ev := range evs {
		if ev.Kind == ipsec.EventIKEFallback {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("%d ike_fallback events, want 2: %+v", n, evs)
	}
	// IKE from port 500 still shares the port.
	ike := Pass(t, e, 4*Sec, LAN, UDP("192.168.50.12:500", "203.0.113.10:500", IKEMsg(0xaaaa, 0, false, 60)), WAN)
	IPv4(t, ike, Src("203.0.113.1:500"))
}

// TestNonIKEReplyOnSharedPort: a datagram on the shared port 500 that is
// no IKE reaches the one LAN host talking IKE with its sender; with two
// such hosts it cannot be told and is dropped.
func TestNonIKEReplyOnSharedPort(t *testing.T) {
	e := NewEngine(t, nil)
	Pass(t, e, 0, LAN, UDP("192.168.50.10:500", "203.0.113.10:500", IKEMsg(0xaaaa, 0, false, 60)), WAN)
	in := Pass(t, e, Sec, WAN, UDP("203.0.113.10:500", "203.0.113.1:500", notIKE), LAN)
	IPv4(t, in, Src("203.0.113.10:500"), Dst("192.168.50.10:500"), L4Payload(notIKE))
	if s := e.Stats(); s.SharedToOnlyHost != 1 {
		t.Fatalf("SharedToOnlyHost %d, want 1", s.SharedToOnlyHost)
	}
	Pass(t, e, 0, LAN, UDP("192.168.50.11:500", "203.0.113.10:500", IKEMsg(0xbbbb, 0, false, 60)), WAN)
	Dropped(t, e, 2*Sec, WAN, UDP("203.0.113.10:500", "203.0.113.1:500", notIKE), DropMalformed)
}

// TestL2TPSharedPortOnlyHost: on the shared port 1701, what names no
// tunnel a LAN host announced (a tunnel the server starts, with id 0, or
// a datagram that is no L2TP) reaches the one LAN host talking L2TP with
// that server; with two it is dropped as before; the count follows the
// flows as they end.
func TestL2TPSharedPortOnlyHost(t *testing.T) {
	e := NewEngine(t, nil)
	Pass(t, e, 0, LAN, UDP("192.168.50.10:1701", "203.0.113.10:1701", L2TPSCCRQ(5, false)), WAN)
	for _, b := range [][]byte{L2TPTo(0), L2TPTo(77), notIKE} {
		in := Pass(t, e, Sec, WAN, UDP("203.0.113.10:1701", "203.0.113.1:1701", b), LAN)
		IPv4(t, in, Src("203.0.113.10:1701"), Dst("192.168.50.10:1701"), L4Payload(b))
	}
	if s := e.Stats(); s.SharedToOnlyHost != 3 {
		t.Fatalf("SharedToOnlyHost %d, want 3", s.SharedToOnlyHost)
	}
	Pass(t, e, 2*Sec, LAN, UDP("192.168.50.11:1701", "203.0.113.10:1701", L2TPSCCRQ(6, false)), WAN)
	Dropped(t, e, 2*Sec, WAN, UDP("203.0.113.10:1701", "203.0.113.1:1701", L2TPTo(77)), l2tp.DropL2TPUnknownTunnel)
	Dropped(t, e, 2*Sec, WAN, UDP("203.0.113.10:1701", "203.0.113.1:1701", notIKE[:4]), DropMalformed)
	// .10's flow ends (its last packet at 1 s), .11's lives on: .11 is
	// the only one again.
	udp := Time(DefaultTimeouts.UDP)
	e.Expire(udp + 1500*Time(1e6))
	in := Pass(t, e, udp+1600*Time(1e6), WAN, UDP("203.0.113.10:1701", "203.0.113.1:1701", L2TPTo(0)), LAN)
	IPv4(t, in, Dst("192.168.50.11:1701"))
}

// The shared IKE port belongs to IPsec passthrough: no dynamic forward
// takes it (from dynfwd_test.go's table, which has no helpers).
func TestDynamicForwardRefusesSharedIKEPort(t *testing.T) {
	e := NewEngine(t, nil)
	d := DynamicForward{Proto: 17, Outside: 500, Host: netip.MustParseAddr("192.168.50.11"), Inside: 500}
	if err := e.AddDynamicForward(d); !errors.Is(err, ErrForwardReserved) {
		t.Errorf("ike: %v, want %v", err, ErrForwardReserved)
	}
}

// TestSharedPortOnlyHostNeedsItsServer (held): the only-host rule on the
// shared ports 500 and 1701 delivers only what comes from the address and
// port the host talks to: another WAN host, or the server from another
// port, reaches nobody with non-IKE, an unknown SPI, or an L2TP tunnel
// nobody announced; and a host's non-IKE fallback mapping filters as any
// other (address-dependent by default).
func TestSharedPortOnlyHostNeedsItsServer(t *testing.T) {
	e := NewEngine(t, nil)
	Pass(t, e, 0, LAN, UDP("192.168.50.10:500", "203.0.113.10:500", IKEMsg(0xaaaa, 0, false, 60)), WAN)
	Pass(t, e, 0, LAN, UDP("192.168.50.10:1701", "203.0.113.10:1701", L2TPSCCRQ(5, false)), WAN)
	for _, src := range []string{"203.0.113.66:500", "203.0.113.10:4500", "203.0.113.10:501"} {
		v := e.Process(Sec, WAN, UDP(src, "203.0.113.1:500", notIKE))
		if v.Action != Drop {
			t.Fatalf("non-IKE from %s on 500: %+v", src, v)
		}
		if v := e.Process(Sec, WAN, UDP(src, "203.0.113.1:500", IKEMsg(0xcccc, 0, false, 60))); v.Action != Drop {
			t.Fatalf("IKE with an unknown SPI from %s: %+v", src, v)
		}
	}
	for _, src := range []string{"203.0.113.66:1701", "203.0.113.10:1702"} {
		if v := e.Process(Sec, WAN, UDP(src, "203.0.113.1:1701", L2TPTo(0))); v.Action != Drop {
			t.Fatalf("L2TP from %s: %+v", src, v)
		}
	}
	out := Pass(t, e, Sec, LAN, UDP("192.168.50.11:500", "203.0.113.20:500", notIKE), WAN)
	pub := "203.0.113.1:" + Itoa(packet.UDP(packet.IPv4(out).Payload()).SrcPort())
	if v := e.Process(2*Sec, WAN, UDP("203.0.113.66:500", pub, notIKE)); v.Action != Drop {
		t.Fatalf("another WAN host to the fallback mapping: %+v", v)
	}
}
