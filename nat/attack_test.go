package nat

import (
	"fmt"
	"net/netip"
	"testing"

	"passgate/conntrack"
	"passgate/packet"
	. "passgate/packet/pkttest"
)

// Attacks on the RST guard (RFC 5961): a blind attacker must not be able
// to choose the edge passgate judges an RST by.

// TestRSTAfterForgedSYNACK: a WAN host that knows a connection's server
// and guesses its public port sends a SYN-ACK with a sequence number of
// its choosing, then an RST at that number plus one. The SYN-ACK of a
// synchronized connection teaches passgate nothing, so the RST is no
// exact one and the flow stays.
func TestRSTAfterForgedSYNACK(t *testing.T) {
	e := newEngine(t, nil)
	c, s := "192.168.50.10:40010", "203.0.113.10:80"
	pub := handshake(t, e, c, s)
	pass(t, e, sec, WAN, TCP(s, pub, packet.TCPSyn|packet.TCPAck, 0x10000000, 0x55, nil, nil), LAN)
	pass(t, e, sec, WAN, TCP(s, pub, packet.TCPRst, 0x10000001, 0, nil, nil), LAN)
	if st := flowState(e); st.State != "established" {
		t.Fatalf("a forged SYN-ACK then an RST at its edge: %+v", st)
	}
}

// TestRSTAfterForgedSYN: the same from the WAN client's side of a port
// forward (the flow's original direction): a bare SYN on an established
// connection resets no sequence state.
func TestRSTAfterForgedSYN(t *testing.T) {
	e := newEngine(t, func(c *Config) {
		c.PortForwards = []PortForward{{Proto: 6, OutsideLo: 2222, OutsideHi: 2222, Host: netip.MustParseAddr("192.168.50.12"), InsidePort: 22}}
	})
	cl, srv := "198.51.100.7:50000", "192.168.50.12:22"
	pass(t, e, 0, WAN, TCP(cl, "203.0.113.1:2222", packet.TCPSyn, 1000, 0, nil, nil), LAN)
	pass(t, e, 0, LAN, TCP(srv, cl, packet.TCPSyn|packet.TCPAck, 9000, 1001, nil, nil), WAN)
	pass(t, e, 0, WAN, TCP(cl, "203.0.113.1:2222", packet.TCPAck, 1001, 9001, nil, nil), LAN)
	if st := flowState(e); st.State != "established" {
		t.Fatalf("handshake: %+v", st)
	}
	pass(t, e, sec, WAN, TCP(cl, "203.0.113.1:2222", packet.TCPSyn, 0x20000000, 0, nil, nil), LAN)
	pass(t, e, sec, WAN, TCP(cl, "203.0.113.1:2222", packet.TCPRst, 0x20000001, 0, nil, nil), LAN)
	if st := flowState(e); st.State != "established" {
		t.Fatalf("a forged SYN then an RST at its edge: %+v", st)
	}
	// A LAN host forging the server's SYN-ACK does no better.
	pass(t, e, sec, LAN, TCP(srv, cl, packet.TCPSyn|packet.TCPAck, 0x30000000, 0x1234, nil, nil), WAN)
	pass(t, e, sec, LAN, TCP(srv, cl, packet.TCPRst, 0x30000001, 0, nil, nil), WAN)
	if st := flowState(e); st.State != "established" {
		t.Fatalf("a forged SYN-ACK from the LAN then an RST at its edge: %+v", st)
	}
}

// TestRSTAfterForgedSYNACKHandshake: during the handshake a forged
// SYN-ACK that does not acknowledge the SYN teaches nothing (the LAN host
// refuses it), nor one after the real one, so the real one sets the edge.
func TestRSTAfterForgedSYNACKHandshake(t *testing.T) {
	e := newEngine(t, nil)
	c, s := "192.168.50.10:40011", "203.0.113.10:80"
	pub := "203.0.113.1:40011"
	pass(t, e, 0, LAN, TCP(c, s, packet.TCPSyn, 100, 0, nil, nil), WAN)
	pass(t, e, 0, WAN, TCP(s, pub, packet.TCPSyn|packet.TCPAck, 0x40000000, 0x9999, nil, nil), LAN)
	pass(t, e, 0, WAN, TCP(s, pub, packet.TCPSyn|packet.TCPAck, 500, 101, nil, nil), LAN)
	// And after the real one, before the LAN host's ACK.
	pass(t, e, 0, WAN, TCP(s, pub, packet.TCPSyn|packet.TCPAck, 0x40000000, 101, nil, nil), LAN)
	pass(t, e, 0, LAN, TCP(c, s, packet.TCPAck, 101, 501, nil, nil), WAN)
	pass(t, e, sec, WAN, TCP(s, pub, packet.TCPRst, 0x40000001, 0, nil, nil), LAN)
	if st := flowState(e); st.State != "established" {
		t.Fatalf("an RST at a forged SYN-ACK's edge: %+v", st)
	}
	pass(t, e, sec, WAN, TCP(s, pub, packet.TCPRst, 501, 0, nil, nil), LAN)
	if st := flowState(e); st.State != "closed" {
		t.Fatalf("the real edge: %+v", st)
	}
}

// TestRSTAfterInWindowData: a blind attacker that lands a data segment in
// the window but cannot know the acknowledgement the server would send
// does not move the edge, through Process or the fast path: it would
// otherwise need one segment and one RST per two windows, no better than
// the in-window reset RFC 5961 is meant to stop.
func TestRSTAfterInWindowData(t *testing.T) {
	for _, fast := range []bool{false, true} {
		e := newEngine(t, nil)
		c, s := "192.168.50.10:40012", "203.0.113.10:80"
		pub := handshake(t, e, c, s)
		// Some real traffic first, so the server's acknowledgement is known.
		pass(t, e, sec, LAN, TCP(c, s, packet.TCPAck|packet.TCPPsh, 101, 501, nil, []byte("GET /")), WAN)
		pass(t, e, sec, WAN, TCP(s, pub, packet.TCPAck, 501, 106, nil, []byte("ok")), LAN)
		pass(t, e, sec, LAN, TCP(c, s, packet.TCPAck, 106, 503, nil, nil), WAN)
		// The attacker's guess: 40000 ahead of the edge, a random ACK.
		forged := TCP(s, pub, packet.TCPAck, 503+40000, 0x6b8b4567, nil, []byte("x"))
		if fast {
			var cnt Counters
			if _, ok := e.FastPath(2*sec, WAN, forged, &cnt); !ok {
				t.Fatal("fast path declined the forged segment")
			}
			e.Flush(&cnt)
		} else {
			pass(t, e, 2*sec, WAN, forged, LAN)
		}
		pass(t, e, 2*sec, WAN, TCP(s, pub, packet.TCPRst, 503+40001, 0, nil, nil), LAN)
		if st := flowState(e); st.State != "established" {
			t.Fatalf("fast %v: an RST at a forged segment's end: %+v", fast, st)
		}
		// The real edge still works.
		pass(t, e, 2*sec, WAN, TCP(s, pub, packet.TCPRst, 503, 0, nil, nil), LAN)
		if st := flowState(e); st.State != "closed" {
			t.Fatalf("fast %v: the real edge: %+v", fast, st)
		}
	}
}

// TestBlindFIN: one forged FIN used to move an established connection to
// fin-wait, cutting its timeout from 2 h 4 min to the transitory 4 min
// (an idle SSH session died 4 minutes later). Now a FIN must be at the
// edge with a plausible ACK to change the state; the real one does.
func TestBlindFIN(t *testing.T) {
	e := newEngine(t, nil)
	c, s := "192.168.50.10:40013", "203.0.113.10:22"
	pub := handshake(t, e, c, s)
	for _, fin := range [][]byte{
		TCP(s, pub, packet.TCPFin|packet.TCPAck, 0x7a3b9c01, 101, nil, nil), // far from the edge
		TCP(s, pub, packet.TCPFin|packet.TCPAck, 501, 0x6b8b4567, nil, nil), // at the edge, an ACK the server never sent
		TCP(s, pub, packet.TCPFin, 501, 0, nil, nil),                        // no ACK at all
	} {
		pass(t, e, sec, WAN, fin, LAN)
		if st := flowState(e); st.State != "established" || st.ExpiresSec < 7000 {
			t.Fatalf("after a forged FIN: %+v", st)
		}
	}
	if n := e.Stats().TCPStateIgnored; n != 3 {
		t.Fatalf("%d implausible FINs counted, want 3", n)
	}
	pass(t, e, 2*sec, WAN, TCP(s, pub, packet.TCPFin|packet.TCPAck, 501, 101, nil, nil), LAN)
	if st := flowState(e); st.State != "fin-wait" {
		t.Fatalf("after the server's FIN: %+v", st)
	}
}

// TestHeldFragmentsNotStarvedFromWAN: four WAN addresses (or one forging
// its source, which the WAN cannot stop) each sent later fragments that
// never complete, 32 apiece: the 128 buffers were full for the 30 s a
// note lives, and about 4 packets a second kept every host's
// out-of-order datagrams from crossing (RFC 4787 REQ-14). Now a full
// pool gives up its oldest held fragments for a new one, so the flood
// must outrun every datagram's own reordering.
func TestHeldFragmentsNotStarvedFromWAN(t *testing.T) {
	e := newEngine(t, nil)
	for i := 0; i < heldBufs; i++ {
		src := fmt.Sprintf("198.51.100.%d:9", 1+i/heldPerSource)
		frags := Fragment(UDP(src, "203.0.113.1:9", make([]byte, 1600), ID(uint16(i))), 1000)
		if v := e.Process(0, WAN, frags[1]); v.Action != Consumed {
			t.Fatalf("flood fragment %d: %+v", i, v)
		}
	}
	frags := Fragment(UDP("192.168.50.10:4000", "203.0.113.10:53", make([]byte, 1600), ID(5)), 1000)
	if v := e.Process(sec, LAN, frags[1]); v.Action != Consumed {
		t.Fatalf("a LAN host's later fragment, first: %+v", v)
	}
	pass(t, e, sec, LAN, frags[0], WAN)
	em := e.Emitted()
	if len(em) != 1 {
		t.Fatalf("%d held fragments sent after the first, want 1", len(em))
	}
	IPv4(t, em[0].Frame[EtherHeadroom:], Src("203.0.113.1"), Dst("203.0.113.10"))
}

// TestForgedVictimAddressKeepsVictimsShare: a LAN host forging another
// LAN host's address (on the prefix, so not dropped) with its own MAC,
// to a WAN host of its own that answers every datagram, filled the
// victim's whole share with answered flows no early drop takes: the
// victim could open nothing for as long as the flood went on. The share
// is per address and MAC now: the forger uses up one of its own.
func TestForgedVictimAddressKeepsVictimsShare(t *testing.T) {
	e := newEngine(t, func(c *Config) { c.MaxFlows = 64; c.MaxFlowsPerHost = 8 })
	evil, victim := [6]byte{2, 0, 0, 0, 0, 0xee}, [6]byte{2, 0, 0, 0, 0, 0x11}
	for i := 0; i < 8; i++ {
		src := fmt.Sprintf("192.168.50.10:%d", 7000+i)
		if v := e.ProcessFrom(0, LAN, evil, UDP(src, "198.51.100.66:53", nil)); v.Action != Forward {
			t.Fatalf("forged flow %d: %+v", i, v)
		}
		pass(t, e, 0, WAN, UDP("198.51.100.66:53", fmt.Sprintf("203.0.113.1:%d", 7000+i), nil), LAN)
	}
	for p := 0; p < 8; p++ {
		v := e.ProcessFrom(sec, LAN, victim, UDP(fmt.Sprintf("192.168.50.10:%d", 5000+p), "203.0.113.10:53", nil))
		if v.Action != Forward {
			t.Fatalf("the victim's own flow %d: %+v", p, v)
		}
	}
	// The forger is still bound by its MAC's share.
	if v := e.ProcessFrom(sec, LAN, evil, UDP("192.168.50.10:7100", "198.51.100.66:53", nil)); v.Reason != DropHostLimit && v.Reason != DropMACLimit {
		t.Fatalf("the forger past its share: %+v", v)
	}
}

// TestOutboundICMPErrorFromLANRouter: an ICMP error about an inbound
// packet from a LAN node other than its destination (a router in front
// of the host, or a LAN host forging one) left with its private source
// address (RFC 5508 REQ-5: the outer source is translated to the public
// address).
func TestOutboundICMPErrorFromLANRouter(t *testing.T) {
	e := newEngine(t, func(c *Config) {
		c.PortForwards = []PortForward{{Proto: 17, OutsideLo: 6000, OutsideHi: 6000, Host: netip.MustParseAddr("192.168.50.10"), InsidePort: 7000}}
	})
	in := pass(t, e, 0, WAN, UDP("203.0.113.10:999", "203.0.113.1:6000", []byte("x")), LAN)
	errPkt := ICMP("192.168.50.11", "203.0.113.10", packet.ICMPTimeExceeded, 0, 0, in[:28])
	out := pass(t, e, 0, LAN, errPkt, WAN)
	IPv4(t, out, Src("203.0.113.1"), Dst("203.0.113.10"), ICMPType(packet.ICMPTimeExceeded, 0),
		Embedded(Src("203.0.113.10:999"), Dst("203.0.113.1:6000")))
}

// TestTCPFragmentAtOffsetOne: a TCP fragment at offset 8 can only be
// there to overwrite the header's flags, acknowledgement and window in
// the first fragment (RFC 3128's overlapping attack): dropped, as RFC 1858
// advises, before the first or after it. A first fragment too short for
// the whole header (RFC 1858's tiny fragment) was dropped already.
func TestTCPFragmentAtOffsetOne(t *testing.T) {
	e := newEngine(t, nil)
	c, s := "192.168.50.10:40014", "203.0.113.10:80"
	pub := handshake(t, e, c, s)
	seg := TCP(s, pub, packet.TCPAck, 501, 101, nil, make([]byte, 40), ID(321))
	tiny := Fragment(seg, packet.IPv4MinHeader+8)
	if off := packet.IPv4(tiny[1]).FragmentOffset(); off != 8 {
		t.Fatalf("offset %d", off)
	}
	dropped(t, e, sec, WAN, tiny[0], DropMalformed) // 8 bytes of TCP header
	dropped(t, e, sec, WAN, tiny[1], DropMalformed)
	// After a whole first fragment too.
	first := Fragment(TCP(s, pub, packet.TCPAck, 501, 101, nil, make([]byte, 40), ID(322)), packet.IPv4MinHeader+32)[0]
	pass(t, e, sec, WAN, first, LAN)
	over := append([]byte(nil), tiny[1]...)
	setIPID(over, 322)
	dropped(t, e, sec, WAN, over, DropMalformed)
}

// setIPID sets an IPv4 packet's id and fixes its header checksum.
func setIPID(b []byte, id uint16) {
	ip := packet.IPv4(b)
	b[4], b[5] = byte(id>>8), byte(id)
	ip.ComputeChecksum()
}

// TestDynamicForwardsDoNotMultiplyShares: each forward has a share of its
// own, and a LAN host may open many (PCP, NAT-PMP, UPnP: 32 by default).
// One host opening ten, with a WAN accomplice whose connections it
// answered, filled the whole table with established flows no early drop
// takes, and no other host could open a flow. Inbound flows are charged
// to their LAN host's inbound share as well as to their rule's.
func TestDynamicForwardsDoNotMultiplyShares(t *testing.T) {
	e := newEngine(t, func(c *Config) { c.MaxFlows = 64; c.MaxFlowsPerHost = 8 })
	evil := netip.MustParseAddr("192.168.50.66")
	n := 0
	for f := 0; f < 10; f++ {
		out := uint16(41000 + f)
		if err := e.AddDynamicForward(DynamicForward{Proto: 17, Outside: out, Host: evil, Inside: out, By: "pcp"}); err != nil {
			t.Fatal(err)
		}
		for p := 0; p < 8; p++ {
			src := fmt.Sprintf("198.51.100.9:%d", 1000+f*8+p)
			if v := e.Process(0, WAN, UDP(src, fmt.Sprintf("203.0.113.1:%d", out), nil)); v.Action != Forward {
				continue
			}
			pass(t, e, 0, LAN, UDP(fmt.Sprintf("192.168.50.66:%d", out), src, nil), WAN)
			n++
		}
	}
	if n != 8 {
		t.Fatalf("%d answered inbound flows to one host, want its share 8", n)
	}
	pass(t, e, sec, LAN, UDP("192.168.50.10:5353", "203.0.113.10:53", nil), WAN)
}

// TestTupleReusedAfterFINs: a client that closed a connection with FINs
// and opens a new one from the same port within the transitory timeout
// (its TIME_WAIT is 60 s, passgate's is 4 min) got a flow stuck in
// "closing": every packet on the slow path and a 4 min idle timeout
// instead of 2 h 4 min, and no sequence state, so its reset could never
// end it. A bare SYN after both FINs starts the connection anew, as it
// does after a reset.
func TestTupleReusedAfterFINs(t *testing.T) {
	e := newEngine(t, nil)
	c, s := "192.168.50.10:40015", "203.0.113.10:80"
	pub := handshake(t, e, c, s)
	pass(t, e, sec, LAN, TCP(c, s, packet.TCPFin|packet.TCPAck, 101, 501, nil, nil), WAN)
	pass(t, e, sec, WAN, TCP(s, pub, packet.TCPFin|packet.TCPAck, 501, 102, nil, nil), LAN)
	pass(t, e, sec, LAN, TCP(c, s, packet.TCPAck, 102, 502, nil, nil), WAN)
	if st := flowState(e); st.State != "closing" {
		t.Fatalf("after both FINs: %+v", st)
	}
	pass(t, e, 70*sec, LAN, TCP(c, s, packet.TCPSyn, 90000, 0, nil, nil), WAN)
	pass(t, e, 70*sec, WAN, TCP(s, pub, packet.TCPSyn|packet.TCPAck, 70000, 90001, nil, nil), LAN)
	pass(t, e, 70*sec, LAN, TCP(c, s, packet.TCPAck, 90001, 70001, nil, nil), WAN)
	if st := flowState(e); st.State != "established" || st.ExpiresSec < 7000 {
		t.Fatalf("the new connection: %+v", st)
	}
	pass(t, e, 71*sec, WAN, TCP(s, pub, packet.TCPRst, 70001, 0, nil, nil), LAN)
	if st := flowState(e); st.State != "closed" {
		t.Fatalf("the new connection's reset: %+v", st)
	}
}

// TestHeldHairpinStaysHeldAfterReset: A's SYN to B's public TCP mapping is
// held (B's mapping has sent nothing to the public address). A then sent
// its own RST, closing the held flow, and a new SYN: the state machine's
// reopening cleared every flag, the hold too, and A's next SYN reached B's
// port through B's filter, which never admitted it.
func TestHeldHairpinStaysHeldAfterReset(t *testing.T) {
	for _, filt := range []Filtering{AddressDependent, AddressAndPortDependent} {
		t.Run(filt.testName(), func(t *testing.T) {
			e := newEngine(t, func(c *Config) { c.Filtering = filt })
			pass(t, e, 0, LAN, TCP(hpB, "203.0.113.10:80", packet.TCPSyn, 1, 0, nil, nil), WAN)
			dropped(t, e, sec, LAN, TCP(hpA, hpPubB, packet.TCPSyn, 100, 0, nil, nil), DropFiltered)
			dropped(t, e, sec, LAN, TCP(hpA, hpPubB, packet.TCPRst, 101, 0, nil, nil), DropFiltered)
			for i := 0; i < 3; i++ {
				dropped(t, e, sec, LAN, TCP(hpA, hpPubB, packet.TCPSyn, 100, 0, nil, nil), DropFiltered)
			}
		})
	}
}

// TestEarlyDropPastOthersUnansweredFlows: early drop looked only at the
// 64 oldest unanswered flows of the whole table for one of the full
// share's. 64 unanswered flows of any other host kept alive at the head
// (a device retrying a dead server does it; so can an attacker, with 64
// datagrams every 5 minutes) made every share's early drop fail: a SYN
// flood to a forwarded port then kept real clients out for good.
func TestEarlyDropPastOthersUnansweredFlows(t *testing.T) {
	e := newEngine(t, func(c *Config) {
		c.MaxFlows = 1024
		c.MaxFlowsPerHost = 64
		c.PortForwards = []PortForward{{Proto: 6, OutsideLo: 8080, OutsideHi: 8080, Host: netip.MustParseAddr("192.168.50.12"), InsidePort: 80}}
	})
	for i := 0; i < 64; i++ {
		pass(t, e, 0, LAN, UDP(fmt.Sprintf("192.168.50.30:%d", 2000+i), "203.0.113.99:123", nil), WAN)
	}
	for i := 0; i < 200; i++ {
		src := fmt.Sprintf("198.51.100.%d:%d", i%250+1, 1000+i)
		v := e.Process(sec, WAN, TCP(src, "203.0.113.1:8080", packet.TCPSyn, uint32(i), 0, nil, nil))
		if v.Action != Forward && i < 64 {
			t.Fatalf("flood SYN %d: %+v", i, v)
		}
	}
	syn := pass(t, e, 2*sec, WAN, TCP("203.0.113.77:5555", "203.0.113.1:8080", packet.TCPSyn, 77, 0, nil, nil), LAN)
	IPv4(t, syn, Dst("192.168.50.12:80"))
	// And a host whose own share is full of its unanswered flows still
	// makes room among them.
	for i := 0; i < 65; i++ {
		pass(t, e, 3*sec, LAN, UDP(fmt.Sprintf("192.168.50.40:%d", 3000+i), "203.0.113.98:53", nil), WAN)
	}
}

// TestSYNACKAnewDuringHandshake (held): a server that answers a
// retransmitted SYN with a new initial sequence number (SYN cookies whose
// counter moved) is not learnt from its second SYN-ACK, but the LAN
// host's ACK of it is never learnt either, so nothing bounds the server's
// edge and its first segment sets it: its own reset still closes the
// flow.
func TestSYNACKAnewDuringHandshake(t *testing.T) {
	e := newEngine(t, nil)
	c, s := "192.168.50.10:40016", "203.0.113.10:80"
	pub := "203.0.113.1:40016"
	pass(t, e, 0, LAN, TCP(c, s, packet.TCPSyn, 100, 0, nil, nil), WAN)
	pass(t, e, 0, WAN, TCP(s, pub, packet.TCPSyn|packet.TCPAck, 500, 101, nil, nil), LAN)
	pass(t, e, sec, LAN, TCP(c, s, packet.TCPSyn, 100, 0, nil, nil), WAN)
	pass(t, e, sec, WAN, TCP(s, pub, packet.TCPSyn|packet.TCPAck, 0x80000000, 101, nil, nil), LAN)
	pass(t, e, sec, LAN, TCP(c, s, packet.TCPAck, 101, 0x80000001, nil, nil), WAN)
	pass(t, e, 2*sec, WAN, TCP(s, pub, packet.TCPAck, 0x80000001, 101, nil, []byte("hi")), LAN)
	pass(t, e, 2*sec, WAN, TCP(s, pub, packet.TCPRst, 0x80000003, 0, nil, nil), LAN)
	if st := flowState(e); st.State != "closed" {
		t.Fatalf("the server's reset: %+v", st)
	}
}

// TestForgedMACPerPacket (held, within what is covered): a host forging
// a new source MAC and address for every datagram has no share that
// bounds it, but the table still does, and while its flows go unanswered
// early drop gives their room to a real host. (Answered by a WAN
// accomplice, they would hold the table: forging MACs is for switch port
// security to stop, as README says.)
func TestForgedMACPerPacket(t *testing.T) {
	e := newEngine(t, func(c *Config) { c.MaxFlows = 256; c.MaxFlowsPerHost = 64 })
	for i := 0; i < 2000; i++ {
		mac := [6]byte{2, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)}
		src := fmt.Sprintf("192.168.50.%d:%d", 20+i%200, 1000+i)
		if v := e.ProcessFrom(0, LAN, mac, UDP(src, "203.0.113.10:9", nil)); v.Action != Forward {
			t.Fatalf("flood datagram %d: %+v", i, v)
		}
	}
	if s := e.Stats(); s.Flows != 256 || s.EarlyDropTableFull != 2000-256 {
		t.Fatalf("%d flows, %d early drops for a full table", s.Flows, s.EarlyDropTableFull)
	}
	good := [6]byte{2, 0, 0, 0xaa, 0, 1}
	for p := 0; p < 64; p++ {
		out := e.ProcessFrom(sec, LAN, good, UDP(fmt.Sprintf("192.168.50.10:%d", 5000+p), "203.0.113.10:53", nil))
		if out.Action != Forward {
			t.Fatalf("a real host's flow %d: %+v", p, out)
		}
	}
}

// TestICMPErrorCannotEndFlow (held): a WAN host quoting another host's
// connection in an ICMP error (port unreachable, as a blind attacker who
// guessed the tuple would) gets it to the LAN host, whose TCP judges it,
// but the flow keeps its state and timeout (RFC 5508 REQ-6, RFC 5382
// REQ-10); quoting no flow gets nothing through.
func TestICMPErrorCannotEndFlow(t *testing.T) {
	e := newEngine(t, nil)
	c, s := "192.168.50.10:40017", "203.0.113.10:443"
	pub := handshake(t, e, c, s)
	quote := TCP(pub, s, packet.TCPAck, 501, 101, nil, nil)[:28]
	in := pass(t, e, sec, WAN, ICMP("198.51.100.1", "203.0.113.1", packet.ICMPUnreachable, 3, 0, quote), LAN)
	IPv4(t, in, Dst("192.168.50.10"), Embedded(Src(c), Dst(s)))
	if st := flowState(e); st.State != "established" || st.ExpiresSec < 7000 {
		t.Fatalf("after an ICMP error about it: %+v", st)
	}
	other := TCP("203.0.113.1:40018", s, packet.TCPAck, 1, 1, nil, nil)[:28]
	dropped(t, e, sec, WAN, ICMP("198.51.100.1", "203.0.113.1", packet.ICMPUnreachable, 3, 0, other), DropICMPNoFlow)
}

// TestDHCPNotCountedAsSpoofed: a booting host's DHCP discover (from
// 0.0.0.0 to the broadcast address) and other broadcasts were counted as
// LAN sources off the prefix, so lan_source_off_prefix rose with every
// device that joined and said nothing of forging. They are martians;
// only a real address off the prefix counts as forged.
func TestDHCPNotCountedAsSpoofed(t *testing.T) {
	e := newEngine(t, nil)
	dropped(t, e, 0, LAN, UDP("0.0.0.0:68", "255.255.255.255:67", make([]byte, 300)), DropMartian)
	dropped(t, e, 0, LAN, UDP("169.254.7.7:5353", "224.0.0.251:5353", nil), DropMartian)
	dropped(t, e, 0, LAN, UDP("10.9.9.9:1", "203.0.113.10:9", nil), DropSpoofedSource)
}

// TestAckFollowsGrownWindow: a receiver whose window grew within one run
// of segments acknowledges more than the window passgate last saw; its
// acknowledgement (and so its edge, which moves only with an ACK near
// it) must still follow, or its own reset and FIN would never count.
func TestAckFollowsGrownWindow(t *testing.T) {
	var s [2]conntrack.Seq
	s[conntrack.Original] = conntrack.Seq{Next: 1000, Ack: 5000, Win: 65535, Seen: seqNext | seqAck}
	s[conntrack.Reply] = conntrack.Seq{Next: 5000 + 100000, Ack: 1000, Win: 65535, Seen: seqNext | seqAck}
	if !seqAdvance(&s, conntrack.Original, 1000, 5000+100000, 65535, true, false, true) || s[conntrack.Original].Ack != 5000+100000 {
		t.Fatalf("an acknowledgement 1.5 windows on: %+v", s[conntrack.Original])
	}
	if !seqAdvance(&s, conntrack.Original, 1010, 5000+100000, 65535, true, false, true) || s[conntrack.Original].Next != 1010 {
		t.Fatalf("the edge after it: %+v", s[conntrack.Original])
	}
}

// TestInboundShareFollowsRuleLimit: a host's inbound share is as large as
// a rule's, so raising max_flows_per_rule for a busy server still works.
func TestInboundShareFollowsRuleLimit(t *testing.T) {
	e := newEngine(t, func(c *Config) {
		c.MaxFlows = 256
		c.MaxFlowsPerHost = 8
		c.MaxFlowsPerRule = 32
		c.PortForwards = []PortForward{{Proto: 17, OutsideLo: 9000, OutsideHi: 9000, Host: netip.MustParseAddr("192.168.50.12"), InsidePort: 9000}}
	})
	for i := 0; i < 32; i++ {
		src := fmt.Sprintf("198.51.100.7:%d", 1000+i)
		pass(t, e, 0, WAN, UDP(src, "203.0.113.1:9000", nil), LAN)
		pass(t, e, 0, LAN, UDP("192.168.50.12:9000", src, nil), WAN)
	}
}

// TestRSTAtForgedAck: a reset is exact at its sender's edge or at the
// acknowledgement its peer last sent (the reset a closed socket answers a
// segment with takes that segment's ACK). A forged segment whose ACK
// fell within two windows ahead of the peer's last (one guess in
// 2^32/2W, 1 in 32768 with 64 KB windows, better with scaled ones)
// moved that acknowledgement whatever its sequence number, through the
// fast path, Process and a FIN: an RST at the forged ACK, one more guess
// that costs nothing, was then exact, and the connection was closed for
// passgate (an idle timeout of 4 min, the first an early drop takes)
// while both endpoints kept it, the RST in their window. A segment now
// teaches only with its sequence number within two windows of the
// edge as well, so the attacker must guess both at once (RFC 5961 5).
func TestRSTAtForgedAck(t *testing.T) {
	for _, how := range []string{"process", "fast", "fin"} {
		e := newEngine(t, nil)
		c, s := "192.168.50.10:40014", "203.0.113.10:22"
		pub := handshake(t, e, c, s)
		pass(t, e, sec, LAN, TCP(c, s, packet.TCPAck|packet.TCPPsh, 101, 501, nil, []byte("SSH-2.0")), WAN)
		pass(t, e, sec, WAN, TCP(s, pub, packet.TCPAck|packet.TCPPsh, 501, 108, nil, []byte("SSH-2.0-x")), LAN)
		pass(t, e, sec, LAN, TCP(c, s, packet.TCPAck, 108, 510, nil, nil), WAN)
		// From a LAN host forging the client: the server's edge is 510;
		// the guess lands 30000 ahead, the sequence number anywhere.
		flags := uint8(packet.TCPAck)
		if how == "fin" {
			flags |= packet.TCPFin
		}
		forged := TCP(c, s, flags, 108+0xc0000000, 510+30000, nil, nil) // a quarter of the space behind
		if how == "fast" {
			// In a run behind one of the client's own, whose end the
			// run keeps.
			var cnt Counters
			for _, b := range [][]byte{TCP(c, s, packet.TCPAck, 108, 510, nil, nil), forged} {
				if _, ok := e.FastPath(2*sec, LAN, b, &cnt); !ok {
					t.Fatal("fast path declined a segment")
				}
			}
			e.Flush(&cnt)
		} else {
			pass(t, e, 2*sec, LAN, forged, WAN)
		}
		// And from the WAN, forging the server: an RST at that ACK.
		pass(t, e, 2*sec, WAN, TCP(s, pub, packet.TCPRst, 510+30000, 0, nil, nil), LAN)
		if st := flowState(e); st.State != "established" || st.ExpiresSec < 7000 {
			t.Fatalf("%s: an RST at a forged segment's ACK: %+v", how, st)
		}
		// The real ones still teach: the client's ACK of more data, and
		// the server's reset at it.
		pass(t, e, 3*sec, WAN, TCP(s, pub, packet.TCPAck|packet.TCPPsh, 510, 108, nil, []byte("more")), LAN)
		pass(t, e, 3*sec, LAN, TCP(c, s, packet.TCPAck, 108, 514, nil, nil), WAN)
		pass(t, e, 3*sec, WAN, TCP(s, pub, packet.TCPRst, 514, 0, nil, nil), LAN)
		if st := flowState(e); st.State != "closed" {
			t.Fatalf("%s: the server's own reset: %+v", how, st)
		}
	}
}

// TestForgedSYNWhileOpening: a LAN host forging a neighbour's address
// that knows the ports of a connection while it opens sends a SYN with
// another initial sequence number between the real SYN and the server's
// SYN-ACK. The SYN-ACK acknowledges the real SYN, not the forged one:
// passgate took the forged SYN's for the connection's, ignored the real
// SYN-ACK and left the connection, working end to end, opening (4 min
// idle timeout, early-droppable, never offloaded). Now the first SYN's is
// kept beside the last, a SYN-ACK acknowledging either is the answer, and
// the edges are the real ones (an RST at the server's edge is exact).
func TestForgedSYNWhileOpening(t *testing.T) {
	for _, forged := range []int{1, 3} {
		e := newEngine(t, nil)
		c, s := "192.168.50.10:40020", "203.0.113.10:80"
		pub := "203.0.113.1:40020"
		pass(t, e, 0, LAN, TCP(c, s, packet.TCPSyn, 100, 0, nil, nil), WAN)
		for i := range forged {
			pass(t, e, 0, LAN, TCP(c, s, packet.TCPSyn, 0x50000000+uint32(i)<<20, 0, nil, nil), WAN)
		}
		pass(t, e, 0, WAN, TCP(s, pub, packet.TCPSyn|packet.TCPAck, 500, 101, nil, nil), LAN)
		pass(t, e, 0, LAN, TCP(c, s, packet.TCPAck, 101, 501, nil, nil), WAN)
		if st := flowState(e); st.State != "established" || st.ExpiresSec < 7000 {
			t.Fatalf("%d forged SYNs: after the real handshake: %+v", forged, st)
		}
		// The edges are the real connection's: data moves them, an RST
		// at a forged SYN's edge is no exact one, the server's is.
		pass(t, e, sec, LAN, TCP(c, s, packet.TCPAck|packet.TCPPsh, 101, 501, nil, []byte("GET /")), WAN)
		pass(t, e, sec, WAN, TCP(s, pub, packet.TCPAck, 501, 106, nil, []byte("ok")), LAN)
		pass(t, e, sec, LAN, TCP(c, s, packet.TCPRst, 0x50000001, 0, nil, nil), WAN)
		if st := flowState(e); st.State != "established" {
			t.Fatalf("%d forged SYNs: an RST at the forged SYN's edge: %+v", forged, st)
		}
		pass(t, e, sec, WAN, TCP(s, pub, packet.TCPRst, 503, 0, nil, nil), LAN)
		if st := flowState(e); st.State != "closed" {
			t.Fatalf("%d forged SYNs: an RST at the server's edge: %+v", forged, st)
		}
	}
	// Nor does a forged segment other than a SYN while the connection
	// opens, alone (a sequence number ahead of the SYN's moved the edge
	// the SYN-ACK is judged by) or after a forged SYN (its ACK was taken
	// for the side's first, and the first SYN's end with it).
	for i, forged := range [][][]byte{
		{TCP("192.168.50.10:40023", "203.0.113.10:80", packet.TCPAck|packet.TCPPsh, 0x40000000, 0x1234, nil, []byte("x"))},
		{TCP("192.168.50.10:40023", "203.0.113.10:80", packet.TCPSyn, 0x50000000, 0, nil, nil),
			TCP("192.168.50.10:40023", "203.0.113.10:80", packet.TCPAck, 0x50000001, 0x1234, nil, nil)},
	} {
		e := newEngine(t, nil)
		c, s := "192.168.50.10:40023", "203.0.113.10:80"
		pass(t, e, 0, LAN, TCP(c, s, packet.TCPSyn, 100, 0, nil, nil), WAN)
		for _, f := range forged {
			pass(t, e, 0, LAN, f, WAN)
		}
		pass(t, e, 0, WAN, TCP(s, "203.0.113.1:40023", packet.TCPSyn|packet.TCPAck, 500, 101, nil, nil), LAN)
		pass(t, e, 0, LAN, TCP(c, s, packet.TCPAck, 101, 501, nil, nil), WAN)
		if st := flowState(e); st.State != "established" {
			t.Fatalf("forged segments %d while opening: after the real handshake: %+v", i, st)
		}
	}
	// A server refusing the real SYN (port closed) resets the flow
	// after a forged SYN too.
	e := newEngine(t, nil)
	c, s := "192.168.50.10:40021", "203.0.113.10:81"
	pass(t, e, 0, LAN, TCP(c, s, packet.TCPSyn, 100, 0, nil, nil), WAN)
	pass(t, e, 0, LAN, TCP(c, s, packet.TCPSyn, 0x50000000, 0, nil, nil), WAN)
	pass(t, e, 0, WAN, TCP(s, "203.0.113.1:40021", packet.TCPRst|packet.TCPAck, 0, 101, nil, nil), LAN)
	if st := flowState(e); st.State != "closed" {
		t.Fatalf("the server's RST to the real SYN: %+v", st)
	}
}

// TestFastOpenDataNotTaken: a TCP Fast Open SYN carries data (RFC 7413);
// a server that does not take it (no cookie yet, a stale one, or under
// load) acknowledges the SYN alone, and the client sends the data again
// after the handshake. passgate wanted the SYN-ACK to acknowledge the
// data too, ignored it and left the connection opening (4 min idle
// timeout, early-droppable, never offloaded). Now a SYN-ACK may
// acknowledge a data-carrying SYN with or without its data; an ACK
// anywhere in between is still ignored.
func TestFastOpenDataNotTaken(t *testing.T) {
	data := make([]byte, 100)
	for _, tc := range []struct {
		ack   uint32
		state string
	}{{101, "established"}, {201, "established"}, {150, "syn-sent"}} {
		e := newEngine(t, nil)
		c, s := "192.168.50.10:40022", "203.0.113.10:443"
		pub := "203.0.113.1:40022"
		pass(t, e, 0, LAN, TCP(c, s, packet.TCPSyn, 100, 0, nil, data), WAN)
		pass(t, e, 0, WAN, TCP(s, pub, packet.TCPSyn|packet.TCPAck, 500, tc.ack, nil, nil), LAN)
		pass(t, e, 0, LAN, TCP(c, s, packet.TCPAck, tc.ack, 501, nil, nil), WAN)
		if st := flowState(e); st.State != tc.state {
			t.Fatalf("SYN-ACK acknowledging %d: %+v, want %s", tc.ack, st, tc.state)
		}
		if tc.state != "established" {
			continue
		}
		// The data again, if it was not taken, and the edges are right: an
		// RST at the client's edge after it is exact.
		if tc.ack == 101 {
			pass(t, e, sec, LAN, TCP(c, s, packet.TCPAck|packet.TCPPsh, 101, 501, nil, data), WAN)
			pass(t, e, sec, WAN, TCP(s, pub, packet.TCPAck, 501, 201, nil, nil), LAN)
		}
		pass(t, e, sec, LAN, TCP(c, s, packet.TCPRst, 201, 0, nil, nil), WAN)
		if st := flowState(e); st.State != "closed" {
			t.Fatalf("SYN-ACK acknowledging %d: an RST at the client's edge: %+v", tc.ack, st)
		}
	}
}

// TestRuleLimitLoweredHolds: max_flows_per_rule lowered below the flows a
// forward holds (Reconfigure) bounds it from the next new flow on: each
// new flow from the WAN early-drops one of the rule's unanswered flows and
// is refused until the share is under its new limit. MakeRoom remembering
// the room it made let Insert make the flow anyway, so a flood kept the
// rule at its old limit for good (8 flows after 12 more, limit 2).
func TestRuleLimitLoweredHolds(t *testing.T) {
	e := newEngine(t, func(c *Config) {
		c.MaxFlows = 256
		c.MaxFlowsPerHost = 8
		c.MaxFlowsPerRule = 8
		c.PortForwards = []PortForward{{Proto: 17, OutsideLo: 9000, OutsideHi: 9000, Host: netip.MustParseAddr("192.168.50.12"), InsidePort: 9000}}
	})
	for i := range 8 {
		pass(t, e, 0, WAN, UDP(fmt.Sprintf("198.51.100.7:%d", 1000+i), "203.0.113.1:9000", nil), LAN)
	}
	cfg := e.cfg
	cfg.MaxFlowsPerRule = 2
	if err := e.Reconfigure(cfg, sec); err != nil {
		t.Fatal(err)
	}
	for i := 8; i < 20; i++ {
		e.Process(sec, WAN, UDP(fmt.Sprintf("198.51.100.7:%d", 1000+i), "203.0.113.1:9000", nil))
	}
	if n := e.ct.Len(); n > 2 {
		t.Fatalf("%d flows of a forward limited to 2 after 12 more", n)
	}
}
