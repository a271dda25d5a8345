package pptp_test

// The engine's VPN passthrough tests, moved here from nat with the code
// (nat/vpn_test.go): what crosses the NAT with the helper registered.

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"passgate/alg/pptp"
	. "passgate/alg/vpntest"
	. "passgate/nat"
	"passgate/packet"
	. "passgate/packet/pkttest"
)

func TestPPTPTwoClientsSameCallID(t *testing.T) {
	e := NewEngine(t, nil)
	clients := []*PPTPClient{
		{T: t, E: e, Host: "192.168.50.10", Port: 40000, CSeq: 100, SSeq: 900},
		{T: t, E: e, Host: "192.168.50.11", Port: 40000, CSeq: 100, SSeq: 900},
	}
	var outside [2]uint16
	for i, c := range clients {
		c.Connect()
		// Both clients use call id 0x0100.
		o := c.Out(Sec, PPTPMsg(pptp.OutgoingCallRequest, 0x0100, 0, 0), packet.TCPAck)
		IPv4(t, o)
		outside[i] = binary.BigEndian.Uint16(TCPPayload(o)[12:])
		if outside[i]>>8 != 0x01 {
			t.Fatalf("outside call id %#04x lost the high byte", outside[i])
		}
		// The server answers with its own call id and the outside one.
		in := c.In(Sec, PPTPMsg(pptp.OutgoingCallReply, uint16(0x700+i), outside[i], 1), packet.TCPAck)
		IPv4(t, in)
		if peer := binary.BigEndian.Uint16(TCPPayload(in)[14:]); peer != 0x0100 {
			t.Fatalf("peer call id back to the client %#04x, want 0x0100", peer)
		}
	}
	if outside[0] == outside[1] {
		t.Fatalf("both clients have outside call id %#04x", outside[0])
	}
	// GRE both ways for each.
	for i, c := range clients {
		g := Pass(t, e, 2*Sec, LAN, GRE(c.Host, "203.0.113.10", uint16(0x700+i), "ppp-out"), WAN)
		IPv4(t, g, Src("203.0.113.1"))
		if GREKey(g) != uint16(0x700+i) {
			t.Fatal("outbound GRE key changed")
		}
		r := Pass(t, e, 2*Sec, WAN, GRE("203.0.113.10", "203.0.113.1", outside[i], "ppp-in"), LAN)
		IPv4(t, r, Dst(c.Host))
		if GREKey(r) != 0x0100 {
			t.Fatalf("inbound GRE key %#04x, want the client's 0x0100", GREKey(r))
		}
	}
	var calls int
	e.Flows(2*Sec, func(fi FlowInfo) bool {
		if fi.Proto == "gre" && fi.CallIDInside == 0x0100 && fi.CallIDOutside != 0 {
			calls++
		}
		return true
	})
	if calls != 2 {
		t.Fatalf("flow table shows %d GRE calls", calls)
	}
	// The server disconnects client 0's call: its GRE goes.
	clients[0].In(3*Sec, PPTPMsg(pptp.CallDisconnectNotify, 0x700, 0, 0), packet.TCPAck)
	Dropped(t, e, 3*Sec, WAN, GRE("203.0.113.10", "203.0.113.1", outside[0], "late"), pptp.DropGRENoControl)
	Pass(t, e, 3*Sec, WAN, GRE("203.0.113.10", "203.0.113.1", outside[1], "still"), LAN)
	// GRE with no control connection never passes.
	Dropped(t, e, 3*Sec, LAN, GRE("192.168.50.12", "203.0.113.10", 0x55, "x"), pptp.DropGRENoControl)
}

func TestPPTPMessagesSplitAndShared(t *testing.T) {
	e := NewEngine(t, nil)
	c := &PPTPClient{T: t, E: e, Host: "192.168.50.10", Port: 41000, CSeq: 1, SSeq: 1}
	c.Connect()
	// Another client holds call id 0x0100 outside, so this one's moves.
	other := &PPTPClient{T: t, E: e, Host: "192.168.50.11", Port: 41000, CSeq: 1, SSeq: 1}
	other.Connect()
	other.Out(Sec, PPTPMsg(7, 0x0100, 0, 0), packet.TCPAck)
	// OCRQ split in the middle of the call id field.
	m := PPTPMsg(7, 0x0100, 0, 0)
	o1 := c.Out(Sec, m[:13], packet.TCPAck)
	o2 := c.Out(Sec, m[13:], packet.TCPAck)
	IPv4(t, o1)
	IPv4(t, o2)
	got := uint16(TCPPayload(o1)[12])<<8 | uint16(TCPPayload(o2)[0])
	if got == 0x0100 || got>>8 != 1 {
		t.Fatalf("split call id became %#04x", got)
	}
	// Echo reply and OCRP in one segment.

	echo := PPTPMsg(1, 0, 0, 0)
	binary.BigEndian.PutUint16(echo[8:], pptp.EchoReply)
	echo = echo[:20]
	binary.BigEndian.PutUint16(echo[0:], 20)
	two := append(echo, PPTPMsg(8, 0x0999, got, 1)...)
	in := c.In(Sec, two, packet.TCPAck)
	IPv4(t, in)
	if peer := binary.BigEndian.Uint16(TCPPayload(in)[20+14:]); peer != 0x0100 {
		t.Fatalf("peer call id %#04x", peer)
	}
	r := Pass(t, e, Sec, WAN, GRE("203.0.113.10", "203.0.113.1", got, "x"), LAN)
	IPv4(t, r, Dst("192.168.50.10"))
}

func TestPPTPOutOfOrderSegmentDropped(t *testing.T) {
	e := NewEngine(t, nil)
	c := &PPTPClient{T: t, E: e, Host: "192.168.50.10", Port: 42000, CSeq: 1, SSeq: 1}
	c.Connect()
	ahead := TCP(c.Host+":42000", "203.0.113.10:1723", packet.TCPAck, c.CSeq+100, c.SSeq, nil, PPTPMsg(7, 1, 0, 0))
	Dropped(t, e, Sec, LAN, ahead, pptp.DropPPTPOutOfOrder)
}

// A PPTP server (the PAC) on the LAN behind a port forward of TCP 1723:
// two remote clients, each with the same call id of its own, call it at
// once; the server's call ids are followed in its replies and the GRE of
// each call crosses both ways; a call the server ends takes its GRE along.
func TestPPTPServerBehindForward(t *testing.T) {
	e := NewEngine(t, func(c *Config) {
		c.PortForwards = []PortForward{{Name: "vpn", Proto: 6, OutsideLo: 1723, OutsideHi: 1723, Host: netip.MustParseAddr("192.168.50.10"), InsidePort: 1723}}
	})
	const server = "192.168.50.10"
	remotes := []string{"198.51.100.20", "198.51.100.21"}
	type conn struct{ cseq, sseq uint32 }
	conns := make([]conn, len(remotes))
	fromRemote := func(i int, now Time, payload []byte, flags uint8) []byte {
		c := &conns[i]
		b := TCP(remotes[i]+":40000", "203.0.113.1:1723", flags, c.cseq, c.sseq, nil, payload)
		c.cseq += uint32(len(payload))
		if flags&packet.TCPSyn != 0 {
			c.cseq++
		}
		return Pass(t, e, now, WAN, b, LAN)
	}
	fromServer := func(i int, now Time, payload []byte, flags uint8) []byte {
		c := &conns[i]
		b := TCP(server+":1723", remotes[i]+":40000", flags, c.sseq, c.cseq, nil, payload)
		c.sseq += uint32(len(payload))
		if flags&packet.TCPSyn != 0 {
			c.sseq++
		}
		return Pass(t, e, now, LAN, b, WAN)
	}
	for i := range remotes {
		conns[i] = conn{cseq: 100, sseq: 900}
		IPv4(t, fromRemote(i, 0, nil, packet.TCPSyn), Dst(server+":1723"))
		fromServer(i, 0, nil, packet.TCPSyn|packet.TCPAck)
		fromRemote(i, 0, PPTPMsg(pptp.StartCtrlConnRequest, 0, 0, 0), packet.TCPAck)
		fromServer(i, 0, PPTPMsg(pptp.StartCtrlConnReply, 0, 0, 1), packet.TCPAck)
		// Both clients call with their call id 0x4000; the server answers
		// each with a call id of its own.
		req := fromRemote(i, Sec, PPTPMsg(pptp.OutgoingCallRequest, 0x4000, 0, 0), packet.TCPAck)
		if id := binary.BigEndian.Uint16(TCPPayload(req)[12:]); id != 0x4000 {
			t.Fatalf("remote %d: the client's own call id changed to %#04x", i, id)
		}
		rep := fromServer(i, Sec, PPTPMsg(pptp.OutgoingCallReply, uint16(0x100+i), 0x4000, 1), packet.TCPAck)
		IPv4(t, rep, Src("203.0.113.1:1723"))
		if id, peer := binary.BigEndian.Uint16(TCPPayload(rep)[12:]), binary.BigEndian.Uint16(TCPPayload(rep)[14:]); id != uint16(0x100+i) || peer != 0x4000 {
			t.Fatalf("remote %d: reply call ids %#04x/%#04x, want %#04x/0x4000", i, id, peer, 0x100+i)
		}
	}
	for i, r := range remotes {
		in := Pass(t, e, 2*Sec, WAN, GRE(r, "203.0.113.1", uint16(0x100+i), "to-server"), LAN)
		IPv4(t, in, Src(r), Dst(server))
		if k := GREKey(in); k != uint16(0x100+i) {
			t.Fatalf("remote %d: GRE to the server has key %#04x, want %#04x", i, k, 0x100+i)
		}
		out := Pass(t, e, 2*Sec, LAN, GRE(server, r, 0x4000, "to-client"), WAN)
		IPv4(t, out, Src("203.0.113.1"), Dst(r))
		if k := GREKey(out); k != 0x4000 {
			t.Fatalf("remote %d: GRE to the client has key %#04x, want 0x4000", i, k)
		}
	}
	var calls int
	e.Flows(2*Sec, func(fi FlowInfo) bool {
		if fi.Proto == "gre" && fi.Inside.Addr().String() == server {
			calls++
		}
		return true
	})
	if calls != 2 {
		t.Fatalf("flow table shows %d GRE calls of the server, want 2", calls)
	}
	// The server ends remote 0's call: that GRE goes, the other stays.
	fromServer(0, 3*Sec, PPTPMsg(pptp.CallDisconnectNotify, 0x100, 0, 0), packet.TCPAck)
	Dropped(t, e, 3*Sec, WAN, GRE(remotes[0], "203.0.113.1", 0x100, "late"), pptp.DropGRENoControl)
	Pass(t, e, 3*Sec, WAN, GRE(remotes[1], "203.0.113.1", 0x101, "still"), LAN)
}

// TestPPTPControlSlotsNotHeldByFlood: the 256 control connections
// followed at once were taken by whoever came first and kept until their
// flow ended: 256 SYNs from the WAN to a forwarded PPTP server (one a
// second keeps them for the 4 min a half-open flow lives) left no slot
// for any LAN host's PPTP client. A new control connection now takes the
// slot of the oldest one never established.
func TestPPTPControlSlotsNotHeldByFlood(t *testing.T) {
	e := NewEngine(t, func(c *Config) {
		c.MaxFlows = 4096
		c.MaxFlowsPerRule = 1024
		c.PortForwards = []PortForward{{Name: "vpn", Proto: 6, OutsideLo: 1723, OutsideHi: 1723, Host: netip.MustParseAddr("192.168.50.10"), InsidePort: 1723}}
	})
	for i := 0; i < 300; i++ {
		src := "198.51.100." + Itoa(uint16(1+i%250)) + ":" + Itoa(uint16(20000+i))
		if v := e.Process(0, WAN, TCP(src, "203.0.113.1:1723", packet.TCPSyn, uint32(i), 0, nil, nil)); v.Action != Forward && i < 256 {
			t.Fatalf("flood SYN %d: %+v", i, v)
		}
	}
	syn := Pass(t, e, Sec, LAN, TCP("192.168.50.11:41000", "203.0.113.20:1723", packet.TCPSyn, 1, 0, nil, nil), WAN)
	IPv4(t, syn, Src("203.0.113.1:41000"), Dst("203.0.113.20:1723"))
}

// TestPPTPControlSlotsPerSource: one WAN address completing 300
// handshakes with a forwarded PPTP server held every control slot with
// established connections; now one source (a remote client's address, or
// a LAN client) holds at most a quarter of them.
func TestPPTPControlSlotsPerSource(t *testing.T) {
	e := NewEngine(t, func(c *Config) {
		c.MaxFlows = 4096
		c.MaxFlowsPerRule = 1024
		c.MaxFlowsPerHost = 1024
		c.PortForwards = []PortForward{{Name: "vpn", Proto: 6, OutsideLo: 1723, OutsideHi: 1723, Host: netip.MustParseAddr("192.168.50.10"), InsidePort: 1723}}
	})
	held := 0
	for i := 0; i < 300; i++ {
		src := "198.51.100.66:" + Itoa(uint16(20000+i))
		if v := e.Process(0, WAN, TCP(src, "203.0.113.1:1723", packet.TCPSyn, 1, 0, nil, nil)); v.Action != Forward {
			continue
		}
		Pass(t, e, 0, LAN, TCP("192.168.50.10:1723", src, packet.TCPSyn|packet.TCPAck, 9, 2, nil, nil), WAN)
		Pass(t, e, 0, WAN, TCP(src, "203.0.113.1:1723", packet.TCPAck, 2, 10, nil, nil), LAN)
		held++
	}
	if held > 64 {
		t.Fatalf("one WAN address holds %d control connections", held)
	}
	syn := Pass(t, e, Sec, LAN, TCP("192.168.50.11:41000", "203.0.113.20:1723", packet.TCPSyn, 1, 0, nil, nil), WAN)
	IPv4(t, syn, Src("203.0.113.1:41000"))
	Pass(t, e, Sec, WAN, TCP("198.51.100.67:30000", "203.0.113.1:1723", packet.TCPSyn, 1, 0, nil, nil), LAN)
}

// One LAN host opening 300 control connections holds no more than its
// share of the pool: its own oldest connections never established make
// room for its new ones, its call that is up stays, and another host's call
// still comes up with its call id translated.
func TestPPTPControlPoolShare(t *testing.T) {
	e := NewEngine(t, func(c *Config) { c.MaxFlows = 4096 }) // 1024 flows per host: the pool is the limit
	a := &PPTPClient{T: t, E: e, Host: "192.168.50.10", Port: 30000, CSeq: 1, SSeq: 1}
	a.Connect()
	o := a.Out(Sec, PPTPMsg(pptp.OutgoingCallRequest, 0x0100, 0, 0), packet.TCPAck)
	if id := binary.BigEndian.Uint16(TCPPayload(o)[12:]); id != 0x0100 {
		t.Fatalf("first client's call id %#04x outside, want its own", id)
	}
	a.In(Sec, PPTPMsg(pptp.OutgoingCallReply, 0x0700, 0x0100, 1), packet.TCPAck)
	for i := 0; i < 300; i++ {
		syn := TCP("192.168.50.10:"+Itoa(uint16(31000+i)), "203.0.113.10:1723", packet.TCPSyn, 7, 0, nil, nil)
		Pass(t, e, 2*Sec+Time(i), LAN, syn, WAN)
	}
	var conns int
	e.Flows(3*Sec, func(fi FlowInfo) bool {
		if fi.VPN == "pptp" && fi.Proto == "tcp" && fi.Inside.Addr().String() == "192.168.50.10" {
			conns++
		}
		return true
	})
	if conns != 64 {
		t.Fatalf("the host holds %d control connections, want its share of 64", conns)
	}
	b := &PPTPClient{T: t, E: e, Host: "192.168.50.11", Port: 40000, CSeq: 1, SSeq: 1}
	b.Connect()
	o = b.Out(4*Sec, PPTPMsg(pptp.OutgoingCallRequest, 0x0100, 0, 0), packet.TCPAck)
	out := binary.BigEndian.Uint16(TCPPayload(o)[12:])
	if out == 0x0100 || out>>8 != 0x01 {
		t.Fatalf("second client's call id 0x0100 is %#04x outside, want another with the same high byte", out)
	}
	in := b.In(4*Sec, PPTPMsg(pptp.OutgoingCallReply, 0x0701, out, 1), packet.TCPAck)
	if peer := binary.BigEndian.Uint16(TCPPayload(in)[14:]); peer != 0x0100 {
		t.Fatalf("peer call id back to the second client %#04x, want 0x0100", peer)
	}
	g := Pass(t, e, 5*Sec, WAN, GRE("203.0.113.10", "203.0.113.1", out, "ppp-in"), LAN)
	IPv4(t, g, Dst("192.168.50.11"))
	if GREKey(g) != 0x0100 {
		t.Fatalf("inbound GRE key %#04x, want the client's 0x0100", GREKey(g))
	}
	// The first host's call survived its own flood.
	g = Pass(t, e, 5*Sec, WAN, GRE("203.0.113.10", "203.0.113.1", 0x0100, "ppp-in"), LAN)
	IPv4(t, g, Dst("192.168.50.10"))
	if n := e.Stats().Drops[pptp.DropPPTPLimit] + e.Stats().Drops[pptp.DropPPTPHostShare]; n != 0 {
		t.Fatalf("%d control connections refused", n)
	}
}

// A host whose whole share is established (with calls up) is refused its
// next connection, counted, and nothing of its calls is ended for it.
func TestPPTPControlShareRefused(t *testing.T) {
	e := NewEngine(t, func(c *Config) { c.MaxFlows = 4096 })
	for i := 0; i < 64; i++ {
		c := &PPTPClient{T: t, E: e, Host: "192.168.50.10", Port: uint16(30000 + i), CSeq: 1, SSeq: 1}
		c.Connect()
		o := c.Out(Sec, PPTPMsg(pptp.OutgoingCallRequest, uint16(0x0100+i), 0, 0), packet.TCPAck)
		c.In(Sec, PPTPMsg(pptp.OutgoingCallReply, uint16(0x0700+i), binary.BigEndian.Uint16(TCPPayload(o)[12:]), 1), packet.TCPAck)
	}
	syn := TCP("192.168.50.10:31000", "203.0.113.10:1723", packet.TCPSyn, 7, 0, nil, nil)
	Dropped(t, e, 2*Sec, LAN, syn, pptp.DropPPTPHostShare)
	if n := e.Stats().Drops[pptp.DropPPTPHostShare]; n != 1 {
		t.Fatalf("pptp_control_host_share %d, want 1", n)
	}
	for i := 0; i < 64; i++ {
		g := Pass(t, e, 3*Sec, WAN, GRE("203.0.113.10", "203.0.113.1", uint16(0x0100+i), "ppp-in"), LAN)
		IPv4(t, g, Dst("192.168.50.10"))
	}
	// Another host is not refused.
	Pass(t, e, 3*Sec, LAN, TCP("192.168.50.11:31000", "203.0.113.10:1723", packet.TCPSyn, 7, 0, nil, nil), WAN)
}

// A host forging LAN source addresses still has one share of the pool:
// its MAC's.
func TestPPTPControlPoolShareMAC(t *testing.T) {
	e := NewEngine(t, func(c *Config) { c.MaxFlows = 4096 })
	mac := [6]byte{2, 0, 0, 0, 0, 0x66}
	for i := 0; i < 100; i++ {
		syn := TCP("192.168.50."+Itoa(uint16(100+i))+":31000", "203.0.113.10:1723", packet.TCPSyn, 7, 0, nil, nil)
		if v := e.ProcessFrom(Time(i), LAN, mac, syn); v.Action != Forward {
			t.Fatalf("SYN %d: %+v", i, v)
		}
	}
	var conns int
	e.Flows(Sec, func(fi FlowInfo) bool {
		if fi.VPN == "pptp" && fi.Proto == "tcp" {
			conns++
		}
		return true
	})
	if conns != 64 {
		t.Fatalf("one MAC holds %d control connections, want its share of 64", conns)
	}
	b := &PPTPClient{T: t, E: e, Host: "192.168.50.11", Port: 40000, CSeq: 1, SSeq: 1}
	b.Connect()
}

// A call's GRE flow, made while handling the server's Outgoing-Call-Reply
// (a WAN packet), is charged to the MAC of the client whose control
// connection it belongs to, not to the client's address with no MAC: with
// a share of 3, the control connection and the GRE flow leave the MAC room
// for one more answered flow, from whatever address it forges.
func TestPPTPCallChargedToClientMAC(t *testing.T) {
	e := NewEngine(t, func(c *Config) { c.MaxFlowsPerHost = 3 })
	mac := [6]byte{2, 0, 0, 0, 0, 0x77}
	cseq, sseq := uint32(100), uint32(900)
	var pub string
	out := func(flags uint8, payload []byte) []byte {
		b := TCP("192.168.50.10:40000", "203.0.113.10:1723", flags, cseq, sseq, nil, payload)
		if v := e.ProcessFrom(0, LAN, mac, b); v.Action != Forward {
			t.Fatalf("client segment: %+v (%v)", v, v.Reason)
		}
		cseq += uint32(len(payload))
		pub = "203.0.113.1:" + Itoa(packet.TCP(packet.IPv4(b).Payload()).SrcPort())
		return b
	}
	in := func(flags uint8, payload []byte) []byte {
		b := Pass(t, e, 0, WAN, TCP("203.0.113.10:1723", pub, flags, sseq, cseq, nil, payload), LAN)
		sseq += uint32(len(payload))
		return b
	}
	out(packet.TCPSyn, nil)
	cseq++
	in(packet.TCPSyn|packet.TCPAck, nil)
	sseq++
	out(packet.TCPAck, PPTPMsg(1, 0, 0, 0)) // Start-Control-Connection-Request
	in(packet.TCPAck, PPTPMsg(2, 0, 0, 1))  // its Reply
	o := out(packet.TCPAck, PPTPMsg(pptp.OutgoingCallRequest, 0x0100, 0, 0))
	outside := binary.BigEndian.Uint16(TCPPayload(o)[12:])
	in(packet.TCPAck, PPTPMsg(pptp.OutgoingCallReply, 0x0700, outside, 1))
	r := Pass(t, e, Sec, WAN, GRE("203.0.113.10", "203.0.113.1", outside, "ppp-in"), LAN)
	IPv4(t, r, Dst("192.168.50.10"))
	// The same MAC from a forged address: one answered flow fits, the
	// next is refused for the MAC's share.
	for i := 0; i < 2; i++ {
		q := UDP("192.168.50.99:"+Itoa(uint16(5000+i)), "203.0.113.20:53", []byte("q"))
		v := e.ProcessFrom(Sec, LAN, mac, q)
		if i == 1 {
			if v.Action != Drop || v.Reason != DropMACLimit {
				t.Fatalf("a fourth flow of the MAC: %+v (%v), want dropped for its share", v, v.Reason)
			}
			break
		}
		if v.Action != Forward {
			t.Fatalf("flow %d: %+v (%v)", i, v, v.Reason)
		}
		Pass(t, e, Sec, WAN, UDP("203.0.113.20:53", "203.0.113.1:"+Itoa(packet.UDP(packet.IPv4(q).Payload()).SrcPort()), []byte("a")), LAN)
	}
	Pass(t, e, Sec, LAN, GRE("192.168.50.10", "203.0.113.10", 0x0700, "ppp-out"), WAN)
}

// GRE with no call says who sent it. From the WAN it is to the router's
// own address: the event names no LAN host (not the WAN address in the
// admin page's LAN host column), and the sender as the peer; from the LAN
// the host is the sender.
func TestGREWithoutControlEventHosts(t *testing.T) {
	e := NewEngine(t, nil)
	Dropped(t, e, 0, WAN, GRE("203.0.113.10", "203.0.113.1", 0x55, "x"), pptp.DropGRENoControl)
	Dropped(t, e, 2*Sec, LAN, GRE("192.168.50.12", "203.0.113.10", 0x56, "x"), pptp.DropGRENoControl)
	evs, _ := e.Events(0)
	if len(evs) != 2 {
		t.Fatalf("events %+v", evs)
	}
	if ev := evs[0]; ev.Host != ([4]byte{}) || ev.Peer != [4]byte{203, 0, 113, 10} ||
		ev.Message() != "GRE from 203.0.113.10 to this router with call id 85 belongs to no PPTP call: dropped" {
		t.Errorf("WAN event %+v %q", ev, ev.Message())
	}
	if ev := evs[1]; ev.Host != [4]byte{192, 168, 50, 12} || ev.Peer != [4]byte{203, 0, 113, 10} ||
		ev.Message() != "GRE from 192.168.50.12 to 203.0.113.10 with call id 86 belongs to no PPTP call: dropped" {
		t.Errorf("LAN event %+v %q", ev, ev.Message())
	}
}
