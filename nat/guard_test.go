package nat

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"

	"passgate/conntrack"
	"passgate/packet"
	. "passgate/packet/pkttest"
)

func extPort(b []byte) uint16 { return packet.UDP(packet.IPv4(b).Payload()).SrcPort() }

// TestEarlyDropUnreplied: a host at its share gets a new flow by losing its
// oldest unanswered one; answered ones stay.
func TestEarlyDropUnreplied(t *testing.T) {
	e := newEngine(t, func(c *Config) { c.MaxFlows = 32; c.MaxFlowsPerHost = 4 })
	var ext [5]uint16
	for p := 0; p < 4; p++ {
		ext[p] = extPort(pass(t, e, 0, LAN, UDP(fmt.Sprintf("192.168.50.10:%d", 2000+p), "203.0.113.10:1", nil), WAN))
	}
	// The second is answered; the first stays the oldest unanswered.
	pass(t, e, 0, WAN, UDP("203.0.113.10:1", fmt.Sprintf("203.0.113.1:%d", ext[1]), nil), LAN)
	pass(t, e, 1, LAN, UDP("192.168.50.10:3000", "203.0.113.10:1", nil), WAN)
	pass(t, e, 2, LAN, UDP("192.168.50.10:3001", "203.0.113.10:1", nil), WAN)
	s := e.Stats()
	if s.EarlyDropHostShare != 2 || s.Flows != 4 {
		t.Fatalf("early drops %d, flows %d; want 2, 4", s.EarlyDropHostShare, s.Flows)
	}
	dropped(t, e, 3, WAN, UDP("203.0.113.10:1", fmt.Sprintf("203.0.113.1:%d", ext[0]), nil), DropUnsolicited)
	dropped(t, e, 3, WAN, UDP("203.0.113.10:1", fmt.Sprintf("203.0.113.1:%d", ext[2]), nil), DropUnsolicited)
	pass(t, e, 3, WAN, UDP("203.0.113.10:1", fmt.Sprintf("203.0.113.1:%d", ext[1]), nil), LAN)
}

// TestForgedSourcesShareOneMAC: one MAC forging many LAN source addresses
// holds one share of the table; another host still opens flows, and a
// source off the LAN prefix is dropped as such.
func TestForgedSourcesShareOneMAC(t *testing.T) {
	e := newEngine(t, func(c *Config) { c.MaxFlows = 64; c.MaxFlowsPerHost = 8 })
	evil := [6]byte{2, 0, 0, 0, 0, 0xee}
	for i := 0; i < 500; i++ {
		src := fmt.Sprintf("192.168.50.%d:%d", 20+i%200, 1000+i)
		v := e.ProcessFrom(Time(i), LAN, evil, UDP(src, "203.0.113.10:9", nil))
		if v.Action != Forward {
			t.Fatalf("flood packet %d: %+v", i, v)
		}
	}
	if n := e.ct.OwnerFlows(conntrackMAC(evil)); n != 8 {
		t.Fatalf("forging MAC holds %d flows, want its share 8", n)
	}
	good := [6]byte{2, 0, 0, 0, 0, 0x11}
	for p := 0; p < 8; p++ {
		v := e.ProcessFrom(600, LAN, good, UDP(fmt.Sprintf("192.168.50.10:%d", 5000+p), "203.0.113.10:53", nil))
		if v.Action != Forward {
			t.Fatalf("other host's flow %d: %+v", p, v)
		}
	}
	if v := e.ProcessFrom(600, LAN, evil, UDP("10.9.9.9:1", "203.0.113.10:9", nil)); v.Reason != DropSpoofedSource {
		t.Fatalf("source off the LAN: %+v", v)
	}
	if s := e.Stats(); s.EarlyDropMACShare != 492 || s.Drops[DropSpoofedSource] != 1 {
		t.Fatalf("early drops of the MAC's share %d (want 492), off-prefix drops %d", s.EarlyDropMACShare, s.Drops[DropSpoofedSource])
	}
}

// TestForwardFloodOwnShare: a SYN flood to a forwarded port fills the
// rule's share, not the LAN host's: the host still connects out, and a
// real client still gets in (its SYN takes the oldest half-open's place).
func TestForwardFloodOwnShare(t *testing.T) {
	e := newEngine(t, func(c *Config) {
		c.MaxFlows = 64
		c.MaxFlowsPerHost = 8
		c.PortForwards = []PortForward{{Proto: 6, OutsideLo: 8080, OutsideHi: 8080, Host: netip.MustParseAddr("192.168.50.12"), InsidePort: 80}}
	})
	for i := 0; i < 300; i++ {
		src := fmt.Sprintf("198.51.100.%d:%d", i%250+1, 1000+i)
		pass(t, e, Time(i), WAN, TCP(src, "203.0.113.1:8080", packet.TCPSyn, uint32(i), 0, nil, nil), LAN)
		// The server answers (to a forged source): still half-open.
		pass(t, e, Time(i), LAN, TCP("192.168.50.12:80", src, packet.TCPSyn|packet.TCPAck, 7, uint32(i)+1, nil, nil), WAN)
	}
	if n := e.ct.HostFlows([4]byte{192, 168, 50, 12}); n != 0 {
		t.Fatalf("the flood charged %d flows to the LAN host", n)
	}
	for p := 0; p < 8; p++ {
		pass(t, e, 400, LAN, TCP(fmt.Sprintf("192.168.50.12:%d", 4000+p), "203.0.113.10:443", packet.TCPSyn, 1, 0, nil, nil), WAN)
	}
	syn := pass(t, e, 500, WAN, TCP("203.0.113.99:5555", "203.0.113.1:8080", packet.TCPSyn, 77, 0, nil, nil), LAN)
	IPv4(t, syn, Dst("192.168.50.12:80"))
	pass(t, e, 500, LAN, TCP("192.168.50.12:80", "203.0.113.99:5555", packet.TCPSyn|packet.TCPAck, 900, 78, nil, nil), WAN)
	if s := e.Stats(); s.EarlyDropRuleShare != 300+1-8 {
		t.Fatalf("early drops of the rule's share %d", s.EarlyDropRuleShare)
	}
}

// handshake opens c -> s through e and returns the public address.
func handshake(t *testing.T, e *Engine, c, s string) string {
	t.Helper()
	pass(t, e, 0, LAN, TCP(c, s, packet.TCPSyn, 100, 0, nil, nil), WAN)
	pub := "203.0.113.1:" + fmt.Sprint(netip.MustParseAddrPort(c).Port())
	pass(t, e, 0, WAN, TCP(s, pub, packet.TCPSyn|packet.TCPAck, 500, 101, nil, nil), LAN)
	pass(t, e, 0, LAN, TCP(c, s, packet.TCPAck, 101, 501, nil, nil), WAN)
	return pub
}

func flowState(e *Engine) FlowInfo {
	var fi FlowInfo
	e.Flows(sec, func(f FlowInfo) bool { fi = f; return false })
	return fi
}

// TestBlindRST: only an RST at the receiver's window edge ends a flow;
// others are passed on unchanged, counted, and leave the flow and its
// deadline as they were.
func TestBlindRST(t *testing.T) {
	e := newEngine(t, nil)
	c, s := "192.168.50.10:40000", "203.0.113.10:80"
	pub := handshake(t, e, c, s)
	pass(t, e, sec, WAN, TCP(s, pub, packet.TCPAck|packet.TCPPsh, 501, 101, nil, []byte("hello")), LAN)
	pass(t, e, sec, LAN, TCP(c, s, packet.TCPAck, 101, 506, nil, nil), WAN)
	for _, seq := range []uint32{0x7a3b9c01, 506 + 40000, 506 - 1} {
		rst := TCP(s, pub, packet.TCPRst, seq, 0, nil, nil)
		out := pass(t, e, 2*sec, WAN, rst, LAN)
		IPv4(t, out, Src(s), Dst(c))
		if got := packet.TCP(packet.IPv4(out).Payload()).Seq(); got != seq {
			t.Fatalf("RST's sequence number changed: %d, sent %d", got, seq)
		}
		if st := flowState(e); st.State != "established" || st.ExpiresSec < 7000 {
			t.Fatalf("after an RST with seq %d: %+v", seq, st)
		}
	}
	if st := e.Stats(); st.RSTOutOfWindow != 2 || st.RSTInWindow != 1 {
		t.Fatalf("out of window %d, in window %d; want 2, 1", st.RSTOutOfWindow, st.RSTInWindow)
	}
	// Data still flows both ways, and the real reset ends the flow.
	pass(t, e, 3*sec, LAN, TCP(c, s, packet.TCPAck|packet.TCPPsh, 101, 506, nil, []byte("more")), WAN)
	pass(t, e, 3*sec, WAN, TCP(s, pub, packet.TCPRst, 506, 0, nil, nil), LAN)
	if st := flowState(e); st.State != "closed" {
		t.Fatalf("after the exact RST: %+v", st)
	}
}

// TestRSTFollowsDataThroughFastPath: the window edge moves with segments
// that take the fast path, so the endpoint's own reset still closes.
func TestRSTFollowsDataThroughFastPath(t *testing.T) {
	e := newEngine(t, nil)
	c, s := "192.168.50.10:40001", "203.0.113.10:80"
	pub := handshake(t, e, c, s)
	seq := uint32(501)
	for i := 0; i < 50; i++ {
		pass(t, e, sec, WAN, TCP(s, pub, packet.TCPAck, seq, 101, nil, make([]byte, 1000)), LAN)
		seq += 1000
		pass(t, e, sec, LAN, TCP(c, s, packet.TCPAck, 101, seq, nil, nil), WAN)
	}
	// A forged segment far ahead moves nothing.
	pass(t, e, sec, WAN, TCP(s, pub, packet.TCPAck, seq+1<<30, 101, nil, make([]byte, 10)), LAN)
	pass(t, e, 2*sec, WAN, TCP(s, pub, packet.TCPRst, seq+1<<30+10, 0, nil, nil), LAN)
	if st := flowState(e); st.State != "established" {
		t.Fatalf("RST at a forged edge: %+v", st)
	}
	pass(t, e, 2*sec, WAN, TCP(s, pub, packet.TCPRst, seq, 0, nil, nil), LAN)
	if st := flowState(e); st.State != "closed" {
		t.Fatalf("RST at the edge after fast-path data: %+v", st)
	}
}

// TestRSTAnswersSYN: a reset answering a SYN must acknowledge it.
func TestRSTAnswersSYN(t *testing.T) {
	e := newEngine(t, nil)
	c, s := "192.168.50.10:40002", "203.0.113.10:81"
	pass(t, e, 0, LAN, TCP(c, s, packet.TCPSyn, 100, 0, nil, nil), WAN)
	pass(t, e, 0, WAN, TCP(s, "203.0.113.1:40002", packet.TCPRst|packet.TCPAck, 0, 55, nil, nil), LAN)
	if st := flowState(e); st.State != "syn-sent" {
		t.Fatalf("after a reset acknowledging nothing sent: %+v", st)
	}
	pass(t, e, 0, WAN, TCP(s, "203.0.113.1:40002", packet.TCPRst|packet.TCPAck, 0, 101, nil, nil), LAN)
	if st := flowState(e); st.State != "closed" {
		t.Fatalf("after the real refusal: %+v", st)
	}
}

func conntrackMAC(m [6]byte) conntrack.Owner { return conntrack.MACOwner(m) }

// TestFragmentBuffersShared: one source holds at most its share of the
// buffers for fragments that come before their first; another still gets
// one. On the LAN the source is the frame's MAC, whatever the address.
func TestFragmentBuffersShared(t *testing.T) {
	e := newEngine(t, nil)
	evil := [6]byte{2, 0, 0, 0, 0, 0xee}
	held := 0
	for i := 0; i < 60; i++ {
		frags := Fragment(UDP(fmt.Sprintf("192.168.50.%d:500", 20+i), "203.0.113.10:500", make([]byte, 1600), ID(uint16(i))), 1000)
		if v := e.ProcessFrom(0, LAN, evil, frags[1]); v.Action == Consumed {
			held++
		} else if v.Reason != DropFragments {
			t.Fatalf("fragment %d: %+v", i, v)
		}
	}
	if held != heldPerSource {
		t.Fatalf("one MAC held %d fragments, want its share %d", held, heldPerSource)
	}
	frags := Fragment(UDP("192.168.50.10:500", "203.0.113.10:500", make([]byte, 1600), ID(9)), 1000)
	if v := e.ProcessFrom(0, LAN, [6]byte{2, 0, 0, 0, 0, 0x11}, frags[1]); v.Action != Consumed {
		t.Fatalf("another host's fragment: %+v", v)
	}
	if v := e.ProcessFrom(0, LAN, [6]byte{2, 0, 0, 0, 0, 0x11}, frags[0]); v.Action != Forward {
		t.Fatalf("its first fragment: %+v", v)
	}
	if em := e.Emitted(); len(em) != 1 {
		t.Fatalf("%d held fragments sent after the first, want 1", len(em))
	}
}

// TestFastPathTCPSequenceConcurrent: workers forward one connection's two
// directions through FastPath at once (run under -race); the sequence
// state each direction learnt is the furthest its segments reached, and
// the endpoint's reset at that edge still closes the flow.
func TestFastPathTCPSequenceConcurrent(t *testing.T) {
	e := newEngine(t, nil)
	c, s := "192.168.50.10:40003", "203.0.113.10:80"
	pub := handshake(t, e, c, s)
	const rounds = 2000
	var wg sync.WaitGroup
	for d := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var cnt Counters
			for i := 1; i <= rounds; i++ {
				var b []byte
				if d == 0 {
					b = TCP(c, s, packet.TCPAck, 101, 501+uint32(i)*100, nil, nil)
				} else {
					b = TCP(s, pub, packet.TCPAck, 501+uint32(i-1)*100, 101, nil, make([]byte, 100))
				}
				if _, ok := e.FastPath(sec, Iface(d), b, &cnt); !ok {
					t.Errorf("direction %d segment %d declined", d, i)
					return
				}
				if i%16 == 0 {
					e.Flush(&cnt)
				}
			}
			e.Flush(&cnt)
		}()
	}
	wg.Wait()
	id, _, _ := e.ct.Lookup(conntrack.Tuple{Src: [4]byte{192, 168, 50, 10}, Dst: [4]byte{203, 0, 113, 10}, SrcID: 40003, DstID: 80, Proto: 6})
	if got := (*e.ct.Seq(id))[conntrack.Reply].Next; got != 501+rounds*100 {
		t.Fatalf("the server's edge is %d, want %d", got, 501+rounds*100)
	}
	pass(t, e, 2*sec, WAN, TCP(s, pub, packet.TCPRst, 501+rounds*100, 0, nil, nil), LAN)
	if st := flowState(e); st.State != "closed" {
		t.Fatalf("RST at the edge after concurrent fast-path data: %+v", st)
	}
}

// TestInboundThroughForgedMappingsShareOneMAC: under endpoint-independent
// filtering, a MAC forging 8 LAN addresses opens a mapping from each (its
// 8 outbound flows answered, so none is early-dropped), then 20 WAN hosts
// send to every mapping. The flows they make are charged to the MAC's
// inbound share (8, as a host's) too, not to each forged address's alone:
// 8 live, the rest of the 160 taking the oldest's place (early drops of
// the MAC's share), where before each address held 8 (64). Another host's
// mapping, from another MAC, still takes its inbound flows, and a mapping
// made without a MAC known is charged to its address as before.
func TestInboundThroughForgedMappingsShareOneMAC(t *testing.T) {
	e := newEngine(t, func(c *Config) { c.MaxFlows = 1024; c.MaxFlowsPerHost = 8; c.Filtering = EndpointIndependent })
	evil, good := [6]byte{2, 0, 0, 0, 0, 0xee}, [6]byte{2, 0, 0, 0, 0, 0x11}
	var ext [8]uint16
	for i := range ext {
		o := UDP(fmt.Sprintf("192.168.50.%d:4000", 100+i), "203.0.113.10:9", nil)
		if v := e.ProcessFrom(0, LAN, evil, o); v.Action != Forward {
			t.Fatalf("mapping %d: %+v", i, v)
		}
		ext[i] = extPort(o)
		pass(t, e, 0, WAN, UDP("203.0.113.10:9", fmt.Sprintf("203.0.113.1:%d", ext[i]), nil), LAN)
	}
	for r := 0; r < 20; r++ {
		for i := range ext {
			pass(t, e, Time(r+1), WAN, UDP(fmt.Sprintf("203.0.113.%d:7", 20+r), fmt.Sprintf("203.0.113.1:%d", ext[i]), nil), LAN)
		}
	}
	s := e.Stats()
	if n := e.ct.OwnerFlows(conntrack.MACInboundOwner(evil)); n != 8 || s.Flows != 16 || s.EarlyDropMACShare != 152 {
		t.Fatalf("the MAC's inbound share holds %d flows (want 8), %d flows in all (want 16), %d early drops of a MAC's share (want 152)", n, s.Flows, s.EarlyDropMACShare)
	}
	// Another host's mapping: its inbound flows are its own.
	o := UDP("192.168.50.10:5000", "203.0.113.10:9", nil)
	if v := e.ProcessFrom(30, LAN, good, o); v.Action != Forward {
		t.Fatalf("other host: %+v", v)
	}
	for r := 0; r < 5; r++ {
		pass(t, e, 30, WAN, UDP(fmt.Sprintf("203.0.113.%d:7", 60+r), fmt.Sprintf("203.0.113.1:%d", extPort(o)), nil), LAN)
	}
	if n := e.ct.OwnerFlows(conntrack.MACInboundOwner(good)); n != 5 {
		t.Fatalf("the other MAC's inbound share holds %d flows, want 5", n)
	}
	// No MAC known (Process): the address's inbound share alone.
	o = pass(t, e, 31, LAN, UDP("192.168.50.11:5000", "203.0.113.10:9", nil), WAN)
	for r := 0; r < 3; r++ {
		pass(t, e, 31, WAN, UDP(fmt.Sprintf("203.0.113.%d:7", 60+r), fmt.Sprintf("203.0.113.1:%d", extPort(o)), nil), LAN)
	}
	if n := e.ct.OwnerFlows(conntrack.InboundOwner); n != 3 {
		t.Fatalf("inbound flows charged to no MAC: %d, want 3", n)
	}
	// The MAC ids go with their mappings.
	e.Expire(Time(3600) * sec)
	if s := e.Stats(); s.Flows != 0 || len(e.maps.macs.ids) != 0 || len(e.maps.macs.free) != macIDs {
		t.Fatalf("after expiry: %d flows, %d MAC ids held, %d free", s.Flows, len(e.maps.macs.ids), len(e.maps.macs.free))
	}
}
