package ipsec_test

// The engine's VPN passthrough tests, moved here from nat with the code
// (nat/vpn_test.go): what crosses the NAT with the helper registered.

import (
	"net/netip"
	"testing"
	"time"

	"passgate/alg/ipsec"
	. "passgate/alg/vpntest"
	. "passgate/nat"
	"passgate/packet"
	. "passgate/packet/pkttest"
)

func TestIKESharedPort500(t *testing.T) {
	e := NewEngine(t, nil)
	a := Pass(t, e, 0, LAN, UDP("192.168.50.10:500", "203.0.113.10:500", IKEMsg(0xaaaa, 0, false, 100)), WAN)
	b := Pass(t, e, 0, LAN, UDP("192.168.50.11:500", "203.0.113.10:500", IKEMsg(0xbbbb, 0, false, 100)), WAN)
	IPv4(t, a, Src("203.0.113.1:500"))
	IPv4(t, b, Src("203.0.113.1:500"))
	// Responses come back in the other order; each reaches its host.
	rb := Pass(t, e, Sec, WAN, UDP("203.0.113.10:500", "203.0.113.1:500", IKEMsg(0xbbbb, 0x22, true, 100)), LAN)
	IPv4(t, rb, Dst("192.168.50.11:500"))
	ra := Pass(t, e, Sec, WAN, UDP("203.0.113.10:500", "203.0.113.1:500", IKEMsg(0xaaaa, 0x11, true, 100)), LAN)
	IPv4(t, ra, Dst("192.168.50.10:500"))
	// A SPI nobody sent, with two candidates, is dropped and said.
	Dropped(t, e, Sec, WAN, UDP("203.0.113.10:500", "203.0.113.1:500", IKEMsg(0xcccc, 0, false, 100)), ipsec.DropIKEUnknownSPI)
	evs, _ := e.Events(0)
	if len(evs) == 0 || evs[len(evs)-1].Kind != ipsec.EventIKEUnknownSPI {
		t.Fatalf("events %+v", evs)
	}
	// Another app's port 500 never takes the shared port.
	o := Pass(t, e, 0, LAN, UDP("192.168.50.12:500", "203.0.113.20:9999", nil), WAN)
	if p := packet.UDP(packet.IPv4(o).Payload()).SrcPort(); p == 500 {
		t.Fatal("a non-IKE flow took outside port 500")
	}
	var spis []string
	e.Flows(Sec, func(fi FlowInfo) bool {
		if fi.VPN == "ipsec" && fi.Inside.Addr().String() == "192.168.50.10" {
			spis = fi.IKESPIs
		}
		return true
	})
	if len(spis) != 1 || spis[0] != "000000000000aaaa" {
		t.Fatalf("flow table shows IKE SPIs %v", spis)
	}
}

func TestIKEServerInitiatedSingleHost(t *testing.T) {
	e := NewEngine(t, nil)
	Pass(t, e, 0, LAN, UDP("192.168.50.10:500", "203.0.113.10:500", IKEMsg(0xaaaa, 0, false, 60)), WAN)
	// The server starts a new IKE SA (its own initiator SPI): the only
	// host talking IKE with it gets it.
	r := Pass(t, e, Sec, WAN, UDP("203.0.113.10:500", "203.0.113.1:500", IKEMsg(0x5e5e, 0, false, 60)), LAN)
	IPv4(t, r, Dst("192.168.50.10:500"))
}

func TestIKEFragmentedOutOfOrder(t *testing.T) {
	e := NewEngine(t, nil)
	Pass(t, e, 0, LAN, UDP("192.168.50.10:500", "203.0.113.10:500", IKEMsg(0xaaaa, 0, false, 60)), WAN)
	Pass(t, e, 0, LAN, UDP("192.168.50.11:500", "203.0.113.10:500", IKEMsg(0xbbbb, 0, false, 60)), WAN)
	// A response with certificates, in three fragments, last first.
	big := UDP("203.0.113.10:500", "203.0.113.1:500", IKEMsg(0xbbbb, 0x2, true, 2600), ID(4242))
	frags := Fragment(big, 1000)
	var out [][]byte
	for _, i := range []int{2, 1, 0} {
		v := e.Process(Sec, WAN, frags[i])
		if v.Action == Forward {
			out = append(out, frags[i])
		}
		for _, em := range e.Emitted() {
			out = append(out, append([]byte(nil), em.Frame[EtherHeadroom:]...))
		}
		e.ResetEmitted()
	}
	if len(out) != 3 {
		t.Fatalf("%d fragments left", len(out))
	}
	for _, f := range out {
		IPv4(t, f, Dst("192.168.50.11"))
	}
}

func TestNATTPort4500(t *testing.T) {
	e := NewEngine(t, nil)
	a := Pass(t, e, 0, LAN, UDP("192.168.50.10:4500", "203.0.113.10:4500", append([]byte{0, 0, 0, 0}, IKEMsg(1, 2, false, 60)...)), WAN)
	b := Pass(t, e, 0, LAN, UDP("192.168.50.11:4500", "203.0.113.10:4500", []byte{0xff}), WAN)
	pa := packet.UDP(packet.IPv4(a).Payload()).SrcPort()
	pb := packet.UDP(packet.IPv4(b).Payload()).SrcPort()
	if pa != 4500 || pb == 4500 {
		t.Fatalf("outside ports %d %d", pa, pb)
	}
	// ESP-in-UDP back to the second host on its mapping.
	esp := []byte{0xc0, 0, 0, 1, 0, 0, 0, 1, 1, 2, 3, 4}
	r := Pass(t, e, Sec, WAN, UDP("203.0.113.10:4500", "203.0.113.1:"+Itoa(pb), esp), LAN)
	IPv4(t, r, Dst("192.168.50.11:4500"), L4Payload(esp))
	// Keepalives every 20 s keep an idle tunnel for as long as it lives.
	for now := 20 * Sec; now < 30*Time(time.Minute); now += 20 * Sec {
		Pass(t, e, now, LAN, UDP("192.168.50.11:4500", "203.0.113.10:4500", []byte{0xff}), WAN)
		e.Expire(now)
	}
	Pass(t, e, 30*Time(time.Minute), WAN, UDP("203.0.113.10:4500", "203.0.113.1:"+Itoa(pb), esp), LAN)
}

func TestRawESPTwoHosts(t *testing.T) {
	e := NewEngine(t, nil)
	a := Pass(t, e, 0, LAN, ESP("192.168.50.10", "203.0.113.10", 0x1000, "a1"), WAN)
	IPv4(t, a, Src("203.0.113.1"), Dst("203.0.113.10"))
	if ESPSPI(a) != 0x1000 {
		t.Fatal("SPI changed on the way out")
	}
	ra := Pass(t, e, Sec, WAN, ESP("203.0.113.10", "203.0.113.1", 0x2000, "A1"), LAN)
	IPv4(t, ra, Dst("192.168.50.10"))
	Pass(t, e, 2*Sec, LAN, ESP("192.168.50.11", "203.0.113.10", 0x1001, "b1"), WAN)
	rb := Pass(t, e, 3*Sec, WAN, ESP("203.0.113.10", "203.0.113.1", 0x2001, "B1"), LAN)
	IPv4(t, rb, Dst("192.168.50.11"))
	// Learned SPIs keep going to their hosts, in any order.
	IPv4(t, Pass(t, e, 4*Sec, WAN, ESP("203.0.113.10", "203.0.113.1", 0x2000, "A2"), LAN), Dst("192.168.50.10"))
	IPv4(t, Pass(t, e, 4*Sec, WAN, ESP("203.0.113.10", "203.0.113.1", 0x2001, "B2"), LAN), Dst("192.168.50.11"))
	if e.Stats().ESPAmbiguous != 0 {
		t.Fatal("unambiguous binding counted as ambiguous")
	}
	var in, out []string
	e.Flows(4*Sec, func(fi FlowInfo) bool {
		if fi.Proto == "esp" {
			in, out = append(in, fi.ESPSPIIn), append(out, fi.ESPSPIOut)
		}
		return true
	})
	if len(in) != 2 {
		t.Fatalf("esp flows %v %v", in, out)
	}
	// An SPI no host is waiting for is dropped.
	Dropped(t, e, 5*Sec, WAN, ESP("203.0.113.10", "203.0.113.1", 0x3000, "?"), ipsec.DropESPUnknownSPI)
}

func TestRawESPAmbiguousIsSaid(t *testing.T) {
	e := NewEngine(t, nil)
	Pass(t, e, 0, LAN, ESP("192.168.50.10", "203.0.113.10", 0x1000, "a"), WAN)
	Pass(t, e, Sec, LAN, ESP("192.168.50.11", "203.0.113.10", 0x1001, "b"), WAN)
	r := Pass(t, e, 2*Sec, WAN, ESP("203.0.113.10", "203.0.113.1", 0x2000, "?"), LAN)
	IPv4(t, r, Dst("192.168.50.10")) // the oldest unanswered
	if e.Stats().ESPAmbiguous != 1 {
		t.Fatal("ambiguity not counted")
	}
	evs, _ := e.Events(0)
	if evs[len(evs)-1].Kind != ipsec.EventESPAmbiguous {
		t.Fatalf("events %+v", evs)
	}
	// The other host's SPI then binds without doubt.
	IPv4(t, Pass(t, e, 3*Sec, WAN, ESP("203.0.113.10", "203.0.113.1", 0x2001, "?"), LAN), Dst("192.168.50.11"))
	if e.Stats().ESPAmbiguous != 1 {
		t.Fatal("second binding counted as ambiguous")
	}
}

func TestAHDroppedAndSaid(t *testing.T) {
	e := NewEngine(t, nil)
	ah := ESP("192.168.50.10", "203.0.113.10", 0x1000, "ah")
	ah[9] = packet.ProtoAH
	packet.IPv4(ah).ComputeChecksum()
	Dropped(t, e, 0, LAN, ah, ipsec.DropAH)
	evs, _ := e.Events(0)
	if len(evs) != 1 || evs[0].Kind != ipsec.EventAHDropped {
		t.Fatalf("events %+v", evs)
	}
	if m := evs[0].Message(); evs[0].Host != [4]byte{192, 168, 50, 10} || evs[0].Peer != [4]byte{203, 0, 113, 10} ||
		m != "AH from 192.168.50.10 to 203.0.113.10 dropped: AH authenticates the IP addresses, so it cannot cross NAT; use ESP (with NAT-T)" {
		t.Fatalf("LAN AH event %+v %q", evs[0], m)
	}
	// AH from the WAN is to the router itself: the event's host (a LAN
	// host) is none, not the router's WAN address; the sender is the peer.
	in := ESP("203.0.113.10", "203.0.113.1", 0x1000, "ah")
	in[9] = packet.ProtoAH
	packet.IPv4(in).ComputeChecksum()
	Dropped(t, e, 2*Sec, WAN, in, ipsec.DropAH)
	evs, _ = e.Events(0)
	if m := evs[len(evs)-1].Message(); len(evs) != 2 || evs[1].Host != ([4]byte{}) || evs[1].Peer != [4]byte{203, 0, 113, 10} ||
		m != "AH from 203.0.113.10 to this router dropped: AH authenticates the IP addresses, so it cannot cross NAT; use ESP (with NAT-T)" {
		t.Fatalf("WAN AH event %+v %q", evs, m)
	}
}

// A tunnel's flows (ESP, GRE) live as long as UDP's after their last
// packet, not ICMP's minute: an IPsec tunnel idle for two minutes still
// takes the server's next packet to its host.
func TestTunnelFlowsKeepTheUDPTimeout(t *testing.T) {
	e := NewEngine(t, nil)
	Pass(t, e, 0, LAN, ESP("192.168.50.10", "203.0.113.10", 0x1000, "out"), WAN)
	Pass(t, e, Sec, WAN, ESP("203.0.113.10", "203.0.113.1", 0x2000, "in"), LAN)
	idle := Sec + 2*Time(time.Minute)
	if idle < Sec+Time(DefaultTimeouts.ICMP) || idle >= Sec+Time(DefaultTimeouts.UDP) {
		t.Fatalf("timeouts icmp %v udp %v: the test needs 2 min between them", Time(DefaultTimeouts.ICMP), Time(DefaultTimeouts.UDP))
	}
	e.Expire(idle)
	IPv4(t, Pass(t, e, idle, WAN, ESP("203.0.113.10", "203.0.113.1", 0x2000, "after"), LAN), Dst("192.168.50.10"))
	e.Expire(idle + Time(DefaultTimeouts.UDP) + Sec)
	Dropped(t, e, idle+Time(DefaultTimeouts.UDP)+Sec, WAN, ESP("203.0.113.10", "203.0.113.1", 0x2000, "gone"), ipsec.DropESPUnknownSPI)
}

// A LAN host at its flow limit with unanswered UDP still brings its VPN
// up: its IKE flow on the shared port 500 and its new ESP SA make room as
// any new flow does, by early drop of its own oldest unreplied flows, and
// its established ESP SA is never the one dropped.
func TestVPNAtHostLimitEarlyDrops(t *testing.T) {
	e := NewEngine(t, nil) // 1024 flows, 256 per host
	const host = "192.168.50.10"
	// An established SA: ESP out, the server's SPI back, both ways again.
	Pass(t, e, 0, LAN, ESP(host, "203.0.113.10", 0x1000, "out"), WAN)
	Pass(t, e, 0, WAN, ESP("203.0.113.10", "203.0.113.1", 0x2000, "in"), LAN)
	Pass(t, e, 0, LAN, ESP(host, "203.0.113.10", 0x1000, "out2"), WAN)
	// Its share filled with UDP nobody answers.
	for p := 0; p < 300; p++ {
		if v := e.Process(Sec, LAN, UDP(host+":"+Itoa(uint16(20000+p)), "198.51.100.7:53", []byte("q"))); v.Action != Forward {
			t.Fatalf("query %d: %v", p, v)
		}
	}
	if n := e.Stats().EarlyDropHostShare; n == 0 {
		t.Fatal("the host's share never filled")
	}
	before := e.Stats().EarlyDropHostShare
	ike := Pass(t, e, 2*Sec, LAN, UDP(host+":500", "203.0.113.20:500", IKEMsg(0xaaaa, 0, false, 100)), WAN)
	IPv4(t, ike, Src("203.0.113.1:500"), Dst("203.0.113.20:500"))
	esp := Pass(t, e, 2*Sec, LAN, ESP(host, "203.0.113.20", 0x3000, "new sa"), WAN)
	IPv4(t, esp, Src("203.0.113.1"))
	if got := ESPSPI(esp); got != 0x3000 {
		t.Fatalf("ESP SPI %#x out, want 0x3000", got)
	}
	if got := e.Stats().EarlyDropHostShare - before; got != 2 {
		t.Fatalf("%d of the host's unreplied flows dropped for IKE and ESP, want 2", got)
	}
	// The new SA binds and the old one still passes both ways.
	r := Pass(t, e, 3*Sec, WAN, ESP("203.0.113.20", "203.0.113.1", 0x4000, "new in"), LAN)
	IPv4(t, r, Dst(host))
	Pass(t, e, 3*Sec, LAN, ESP(host, "203.0.113.10", 0x1000, "old out"), WAN)
	r = Pass(t, e, 3*Sec, WAN, ESP("203.0.113.10", "203.0.113.1", 0x2000, "old in"), LAN)
	IPv4(t, r, Dst(host))
	if n := e.Stats().Drops[DropHostLimit]; n != 0 {
		t.Fatalf("%d refused at the host limit", n)
	}
}

// IPsec sessions are tunnels: a LAN host's IKE on 500, its NAT-T on 4500
// and its ESP SAs with one server are one, however many flows; two
// tunnels of six flows are 2 sessions. A tunnel counts until its last
// flow goes.
func TestSessionsAreTunnels(t *testing.T) {
	e := NewEngine(t, nil)
	for _, h := range []string{"192.168.50.10", "192.168.50.11"} {
		Pass(t, e, 0, LAN, UDP(h+":500", "203.0.113.10:500", IKEMsg(1, 0, false, 40)), WAN)
		Pass(t, e, 0, LAN, UDP(h+":4500", "203.0.113.10:4500", []byte{0xff}), WAN)
	}
	Pass(t, e, 0, LAN, ESP("192.168.50.10", "203.0.113.10", 0x1000, "a"), WAN)
	Pass(t, e, 0, LAN, ESP("192.168.50.11", "203.0.113.10", 0x1001, "b"), WAN)
	s := e.Stats()
	if s.Flows != 6 || s.VPNSessions["ipsec"] != 2 {
		t.Fatalf("%d flows, sessions %v: want 6 flows, 2 ipsec sessions", s.Flows, s.VPNSessions)
	}
	// The second host's tunnel with another server is a third.
	Pass(t, e, Sec, LAN, UDP("192.168.50.11:4500", "203.0.113.20:4500", []byte{0xff}), WAN)
	if n := e.Stats().VPNSessions["ipsec"]; n != 3 {
		t.Fatalf("ipsec sessions %d, want 3", n)
	}
	// Only the first host's NAT-T keeps going: its tunnel stays, the
	// others end with their flows.
	now := Sec
	for ; now < Sec+Time(DefaultTimeouts.UDP)+2*Time(time.Minute); now += 20 * Sec {
		Pass(t, e, now, LAN, UDP("192.168.50.10:4500", "203.0.113.10:4500", []byte{0xff}), WAN)
		e.Expire(now)
	}
	if s := e.Stats(); s.Flows != 1 || s.VPNSessions["ipsec"] != 1 {
		t.Fatalf("%d flows, sessions %v after the others idled out: want 1, 1", s.Flows, s.VPNSessions)
	}
	e.Expire(now + 3600*Sec)
	if n := e.Stats().VPNSessions["ipsec"]; n != 0 {
		t.Fatalf("ipsec sessions %d with no flow", n)
	}
}

// An IPsec server on the LAN behind port forwards of UDP 500 and 4500
// (192.168.50.20): IKE and NAT-T a remote client sends to the public
// address reach it, and its answers go back from ports 500 and 4500. LAN
// clients' own IPsec passthrough keeps working beside it: IKE answers
// from their servers on the shared port 500 still reach them (by
// initiator SPI, or as the one host talking IKE with the server), never
// the forward's host; their NAT-T gets an outside port of its own, 4500
// being the forward's.
func TestIPsecServerBehindForwards(t *testing.T) {
	server := netip.MustParseAddr("192.168.50.20")
	e := NewEngine(t, func(c *Config) {
		c.PortForwards = []PortForward{
			{Name: "ike", Proto: packet.ProtoUDP, OutsideLo: 500, OutsideHi: 500, Host: server, InsidePort: 500},
			{Name: "natt", Proto: packet.ProtoUDP, OutsideLo: 4500, OutsideHi: 4500, Host: server, InsidePort: 4500},
		}
	})
	// Two LAN clients' IKE with one server, a third's with another.
	for i, h := range []string{"192.168.50.10", "192.168.50.11"} {
		IPv4(t, Pass(t, e, 0, LAN, UDP(h+":500", "203.0.113.10:500", IKEMsg(uint64(0xa0+i), 0, false, 100)), WAN), Src("203.0.113.1:500"))
	}
	Pass(t, e, 0, LAN, UDP("192.168.50.12:500", "203.0.113.20:500", IKEMsg(0xc0, 0, false, 100)), WAN)
	// A remote client's IKE_SA_INIT to the public address: the server.
	r := Pass(t, e, Sec, WAN, UDP("198.51.100.7:500", "203.0.113.1:500", IKEMsg(0x77, 0, false, 100)), LAN)
	IPv4(t, r, Dst("192.168.50.20:500"), L4Payload(IKEMsg(0x77, 0, false, 100)))
	// The LAN clients' answers reach them, in any order.
	IPv4(t, Pass(t, e, Sec, WAN, UDP("203.0.113.10:500", "203.0.113.1:500", IKEMsg(0xa1, 0x11, true, 100)), LAN), Dst("192.168.50.11:500"))
	IPv4(t, Pass(t, e, Sec, WAN, UDP("203.0.113.10:500", "203.0.113.1:500", IKEMsg(0xa0, 0x10, true, 100)), LAN), Dst("192.168.50.10:500"))
	// An exchange the server 203.0.113.20 starts (a new SPI) goes to the
	// one LAN host talking IKE with it.
	IPv4(t, Pass(t, e, Sec, WAN, UDP("203.0.113.20:500", "203.0.113.1:500", IKEMsg(0xd0, 0, false, 100)), LAN), Dst("192.168.50.12:500"))
	// The LAN server answers its remote client from the public port 500.
	IPv4(t, Pass(t, e, 2*Sec, LAN, UDP("192.168.50.20:500", "198.51.100.7:500", IKEMsg(0x77, 0x78, true, 100)), WAN), Src("203.0.113.1:500"), Dst("198.51.100.7:500"))
	// What no LAN client's IKE explains goes to the forward: a new SPI
	// from the server two LAN hosts talk to (with no forward: dropped,
	// ike_unknown_spi), a second remote client.
	IPv4(t, Pass(t, e, 2*Sec, WAN, UDP("203.0.113.10:500", "203.0.113.1:500", IKEMsg(0xee, 0, false, 100)), LAN), Dst("192.168.50.20:500"))
	IPv4(t, Pass(t, e, 2*Sec, WAN, UDP("198.51.100.8:500", "203.0.113.1:500", IKEMsg(0x88, 0, false, 100)), LAN), Dst("192.168.50.20:500"))
	// NAT-T: a remote client's to the server; a LAN client's gets
	// another outside port, and its answers come back on it.
	IPv4(t, Pass(t, e, 3*Sec, WAN, UDP("198.51.100.7:4500", "203.0.113.1:4500", []byte{0, 0, 0, 0, 1}), LAN), Dst("192.168.50.20:4500"))
	o := Pass(t, e, 3*Sec, LAN, UDP("192.168.50.10:4500", "203.0.113.10:4500", []byte{0xff}), WAN)
	p := packet.UDP(packet.IPv4(o).Payload()).SrcPort()
	if p == 4500 {
		t.Fatal("a LAN client's NAT-T took the forwarded outside port 4500")
	}
	IPv4(t, Pass(t, e, 3*Sec, WAN, UDP("203.0.113.10:4500", "203.0.113.1:"+Itoa(p), []byte{0xff}), LAN), Dst("192.168.50.10:4500"))
}

// BenchmarkNewTunnel makes NAT-T flows to ever new servers, each a tunnel
// counted (TestSessionsAreTunnels), and lets them expire: counting
// tunnels allocates nothing.
func BenchmarkNewTunnel(b *testing.B) {
	e := NewEngine(b, func(c *Config) { c.MaxFlows = 1 << 16; c.MaxFlowsPerHost = 1 << 16 })
	tmpl := UDP("192.168.50.10:4500", "198.51.100.1:4500", []byte{0xff})
	p := append([]byte(nil), tmpl...)
	b.ReportAllocs()
	now := Time(0)
	for i := 0; b.Loop(); i++ {
		copy(p, tmpl)
		ip := packet.IPv4(p)
		dst := [4]byte{198, 51, byte((i >> 8) % 200), byte(i)}
		copy(ip[16:20], dst[:])
		ip.ComputeChecksum()
		if i%40000 == 39999 {
			now += Time(DefaultTimeouts.UDP) + Sec
			e.Expire(now)
		}
		if v := e.Process(now, LAN, p); v.Action != Forward {
			b.Fatalf("%d: %+v", i, v)
		}
	}
	if e.Stats().VPNSessions["ipsec"] == 0 {
		b.Fatal("no tunnel counted")
	}
}

// With IPsec passthrough off, a forward of UDP 500 still takes a remote
// client's IKE to the LAN server and its answers back, but an exchange a
// LAN host starts, the server's own included, is refused (what the admin
// note says).
func TestIPsecServerBehindForwardsOff(t *testing.T) {
	e := NewEngine(t, func(c *Config) {
		c.PortForwards = []PortForward{{Name: "ike", Proto: packet.ProtoUDP, OutsideLo: 500, OutsideHi: 500, Host: netip.MustParseAddr("192.168.50.20"), InsidePort: 500}}
		c.Helpers = map[string]Switch{"ipsec": Off}
	})
	IPv4(t, Pass(t, e, 0, WAN, UDP("198.51.100.7:500", "203.0.113.1:500", IKEMsg(0x77, 0, false, 100)), LAN), Dst("192.168.50.20:500"))
	IPv4(t, Pass(t, e, 0, LAN, UDP("192.168.50.20:500", "198.51.100.7:500", IKEMsg(0x77, 0x78, true, 100)), WAN), Src("203.0.113.1:500"))
	Dropped(t, e, 0, LAN, UDP("192.168.50.20:500", "198.51.100.8:500", IKEMsg(0x99, 0, false, 100)), ipsec.DropIPsecOff)
	Dropped(t, e, 0, LAN, UDP("192.168.50.10:500", "203.0.113.10:500", IKEMsg(0xa0, 0, false, 100)), ipsec.DropIPsecOff)
}
