package nat

import (
	"net/netip"
	"testing"

	"passgate/packet"
	. "passgate/packet/pkttest"
)

func offloadable(e *Engine, now Time) []OffloadFlow {
	var fl []OffloadFlow
	e.Offloadable(now, func(f *OffloadFlow) bool { fl = append(fl, *f); return true })
	return fl
}

func ap(a [4]byte, p uint16) string { return netip.AddrPortFrom(netip.AddrFrom4(a), p).String() }

// TestOffloadUDP: a UDP flow is offered once seen both ways, and each
// direction's entry says what Process does to that direction's packets.
func TestOffloadUDP(t *testing.T) {
	e := newEngine(t, nil)
	pass(t, e, 0, LAN, UDP("192.168.50.10:5000", "198.51.100.7:53", nil), WAN)
	if fl := offloadable(e, 0); len(fl) != 0 {
		t.Fatalf("offered before any reply: %+v", fl)
	}
	pass(t, e, 0, WAN, UDP("198.51.100.7:53", "203.0.113.1:5000", nil), LAN)
	fl := offloadable(e, 0)
	if len(fl) != 1 || fl[0].Proto != packet.ProtoUDP {
		t.Fatalf("offered %+v, want the one UDP flow", fl)
	}
	for d, pkt := range [2]struct {
		from Iface
		b    []byte
	}{{LAN, UDP("192.168.50.10:5000", "198.51.100.7:53", []byte("q"))}, {WAN, UDP("198.51.100.7:53", "203.0.113.1:5000", []byte("a"))}} {
		od := fl[0].Dir[d]
		in, _ := packet.ParseIPv4(pkt.b)
		if od.In != pkt.from || ap(od.Src, od.SrcPort) != ap(in.Src(), packet.UDP(in.Payload()).SrcPort()) ||
			ap(od.Dst, od.DstPort) != ap(in.Dst(), packet.UDP(in.Payload()).DstPort()) {
			t.Fatalf("dir %d: key %+v does not match the packet", d, od)
		}
		v := e.Process(0, pkt.from, pkt.b)
		if v.Action != Forward || v.Out != od.Out || v.NextHop != od.NextHop {
			t.Fatalf("dir %d: Process %+v, entry %+v", d, v, od)
		}
		IPv4(t, pkt.b, Src(ap(od.NewSrc, od.NewSrcPort)), Dst(ap(od.NewDst, od.NewDstPort)))
	}
	if fl[0].Dir[1].NewDst != [4]byte{192, 168, 50, 10} || fl[0].Dir[0].NewSrc != [4]byte{203, 0, 113, 1} || fl[0].Dir[0].NextHop != [4]byte{203, 0, 113, 254} {
		t.Fatalf("entry %+v", fl[0])
	}
}

// TestOffloadTCPAndCredit: a TCP flow is offered once established and
// withdrawn at its FIN; credit moves the deadline and adds the counts.
func TestOffloadTCPAndCredit(t *testing.T) {
	e := newEngine(t, nil)
	pass(t, e, 0, LAN, TCP("192.168.50.10:5000", "198.51.100.7:80", packet.TCPSyn, 100, 0, nil, nil), WAN)
	pass(t, e, 0, WAN, TCP("198.51.100.7:80", "203.0.113.1:5000", packet.TCPSyn|packet.TCPAck, 500, 101, nil, nil), LAN)
	if fl := offloadable(e, 0); len(fl) != 0 {
		t.Fatalf("offered before the handshake ended: %+v", fl)
	}
	pass(t, e, 0, LAN, TCP("192.168.50.10:5000", "198.51.100.7:80", packet.TCPAck, 101, 501, nil, nil), WAN)
	fl := offloadable(e, 0)
	if len(fl) != 1 {
		t.Fatalf("offered %d flows, want 1", len(fl))
	}
	// The engine's edges seed the data plane's record of them, with the
	// span it may learn from (no window scale: twice 64 KiB).
	for d, want := range [2][2]uint32{{101, 501}, {501, 101}} {
		if sq := fl[0].Dir[d].Seq; !sq.Seen || sq.Next != want[0] || sq.Ack != want[1] || sq.Span != 2*65535 {
			t.Fatalf("dir %d: seeded %+v, want next %d ack %d span %d", d, sq, want[0], want[1], 2*65535)
		}
	}
	id, gen := fl[0].ID, fl[0].Gen
	// Long past the established timeout, kept alive by credit alone.
	now := Time(0)
	for range 3 {
		now += e.timeouts.tcpEst - sec
		if !e.OffloadCredit(now, id, gen, [2]uint64{10, 20}, [2]uint64{1000, 2000}) {
			t.Fatal("flow gone")
		}
		e.Expire(now + sec/2)
	}
	if !e.StillOffloadable(now, id, gen) {
		t.Fatal("flow not offloadable any more")
	}
	f := e.ct.Get(id)
	if f.Packets != [2]uint64{32, 61} || f.Bytes[0] < 3000 || f.Bytes[1] < 6000 {
		t.Fatalf("counts %v %v", f.Packets, f.Bytes)
	}
	pass(t, e, now, LAN, TCP("192.168.50.10:5000", "198.51.100.7:80", packet.TCPFin|packet.TCPAck, 101, 501, nil, nil), WAN)
	if e.StillOffloadable(now, id, gen) || len(offloadable(e, now)) != 0 {
		t.Fatal("still offloadable after FIN")
	}
	// Without credit it expires; then credit finds nothing.
	e.Expire(now + e.timeouts.tcpEst + sec)
	if e.OffloadCredit(now, id, gen, [2]uint64{1, 1}, [2]uint64{1, 1}) || e.StillOffloadable(now, id, gen) {
		t.Fatal("credit to an ended flow")
	}
}

// establishedTCP is an engine with one TCP connection established from
// 192.168.50.10:5000 to 198.51.100.7:80 (client ISN 100, server 500), the
// flow offered for offload and, if offloaded, taken.
func establishedTCP(t *testing.T, offloaded bool) (*Engine, OffloadFlow) {
	t.Helper()
	e := newEngine(t, nil)
	pass(t, e, 0, LAN, TCP("192.168.50.10:5000", "198.51.100.7:80", packet.TCPSyn, 100, 0, nil, nil), WAN)
	pass(t, e, 0, WAN, TCP("198.51.100.7:80", "203.0.113.1:5000", packet.TCPSyn|packet.TCPAck, 500, 101, nil, nil), LAN)
	pass(t, e, 0, LAN, TCP("192.168.50.10:5000", "198.51.100.7:80", packet.TCPAck, 101, 501, nil, nil), WAN)
	fl := offloadable(e, 0)
	if len(fl) != 1 {
		t.Fatalf("offered %d flows", len(fl))
	}
	if offloaded {
		e.OffloadStarted(fl[0].ID, fl[0].Gen)
	}
	return e, fl[0]
}

// TestOffloadRST: the window of an offloaded flow went by unseen, so an
// RST ends it (and its offload) however far its sequence number is from
// what the engine last saw; a flow never offloaded keeps judging RSTs.
// TestOffloadTCPAndCredit's FIN, at the sequence number of the handshake,
// would pass either way; TestOffloadFINAfterTransfer's does not.
func TestOffloadRST(t *testing.T) {
	for _, offloaded := range []bool{false, true} {
		e, fl := establishedTCP(t, offloaded)
		// 100 MB later, all of it forwarded in XDP.
		pass(t, e, sec, WAN, TCP("198.51.100.7:80", "203.0.113.1:5000", packet.TCPRst, 501+100<<20, 0, nil, nil), LAN)
		if got := e.StillOffloadable(sec, fl.ID, fl.Gen); got == offloaded {
			t.Errorf("offloaded %v: still offloadable after the RST: %v", offloaded, got)
		}
	}
}

// TestOffloadFINAfterTransfer: after 100 MB went by in XDP, the FIN at the
// real edge closes the offloaded flow; the same FIN on a flow the engine
// saw all of is implausible there and changes nothing.
func TestOffloadFINAfterTransfer(t *testing.T) {
	for _, offloaded := range []bool{false, true} {
		e, fl := establishedTCP(t, offloaded)
		pass(t, e, sec, WAN, TCP("198.51.100.7:80", "203.0.113.1:5000", packet.TCPFin|packet.TCPAck, 501+100<<20, 101, nil, nil), LAN)
		if got := e.StillOffloadable(sec, fl.ID, fl.Gen); got == offloaded {
			t.Errorf("offloaded %v: still offloadable after the FIN: %v", offloaded, got)
		}
	}
}

// TestOffloadResyncScaledWindow: both SYNs with window scale 7, then
// 100 MB from the server forwarded by the data plane, which recorded the
// client's last window as its segments carry it (1000, 128000 bytes
// scaled). The engine judges RSTs by the scaled window: one 100000 bytes
// past the client's acknowledgement is in it (passed for a challenge ACK,
// the flow kept), one 200000 past is not. Before, the window was taken
// unscaled (at least 64 KiB) and the first was judged out of window. A
// resync from the entries as seeded gives the engine its own windows back.
func TestOffloadResyncScaledWindow(t *testing.T) {
	ws := []byte{1, 3, 3, 7} // NOP, window scale 7
	e := newEngine(t, nil)
	pass(t, e, 0, LAN, TCP("192.168.50.10:5000", "198.51.100.7:80", packet.TCPSyn, 100, 0, ws, nil), WAN)
	pass(t, e, 0, WAN, TCP("198.51.100.7:80", "203.0.113.1:5000", packet.TCPSyn|packet.TCPAck, 500, 101, ws, nil), LAN)
	pass(t, e, 0, LAN, TCP("192.168.50.10:5000", "198.51.100.7:80", packet.TCPAck, 101, 501, nil, nil), WAN)
	fl := offloadable(e, 0)
	if len(fl) != 1 {
		t.Fatalf("offered %d flows", len(fl))
	}
	id, gen := fl[0].ID, fl[0].Gen
	sq := e.ct.Seq(id)
	before := *sq
	// The client's window is its ACK's, scaled; the server's its
	// SYN-ACK's, not scaled (rounded up to a field's unit).
	for d, want := range [2]uint32{65535, 512} {
		if w := fl[0].Dir[d].Seq.Win; w != want {
			t.Fatalf("dir %d: seeded window %d, want the field's %d", d, w, want)
		}
	}
	e.OffloadStarted(id, gen)
	if !e.OffloadResync(id, gen, [2]OffloadSeq{fl[0].Dir[0].Seq, fl[0].Dir[1].Seq}) {
		t.Fatal("not resynced")
	}
	for d := range before {
		got, was := sq[d], before[d]
		if got.Win-was.Win >= 1<<7 {
			t.Fatalf("dir %d: window %d resynced from the seed, was %d", d, got.Win, was.Win)
		}
		if got.Win = was.Win; got != was {
			t.Fatalf("dir %d: resynced from the seed to %+v, was %+v", d, sq[d], was)
		}
	}
	const n = 100 << 20
	for _, c := range []struct {
		off     uint32
		in, out uint64
	}{{100000, 1, 0}, {200000, 1, 1}} {
		e.OffloadStarted(id, gen)
		// A segment the engine judges of the offloaded flow without a
		// resync (not FastPath's: no ACK) leaves the scales as the
		// SYNs agreed them.
		pass(t, e, sec, LAN, TCP("192.168.50.10:5000", "198.51.100.7:80", packet.TCPPsh, 101, 0, nil, []byte("x")), WAN)
		seqs := [2]OffloadSeq{
			{Next: 101, Ack: 501 + n, Win: 1000, Seen: true},
			{Next: 501 + n, Ack: 101, Win: 1000, Seen: true},
		}
		if !e.OffloadResync(id, gen, seqs) {
			t.Fatal("not resynced")
		}
		if w := sq[0].Win; w != 1000<<7 {
			t.Fatalf("client window %d after resync, want %d", w, 1000<<7)
		}
		pass(t, e, sec, WAN, TCP("198.51.100.7:80", "203.0.113.1:5000", packet.TCPRst, 501+n+c.off, 0, nil, nil), LAN)
		if st := e.Stats(); st.RSTInWindow != c.in || st.RSTOutOfWindow != c.out {
			t.Fatalf("RST %d past the acknowledgement: in window %d, out of window %d; want %d, %d",
				c.off, st.RSTInWindow, st.RSTOutOfWindow, c.in, c.out)
		}
		if !e.StillOffloadable(sec, id, gen) {
			t.Fatalf("RST %d past the acknowledgement ended the flow", c.off)
		}
	}
	// The RST at the edge ends it.
	e.OffloadStarted(id, gen)
	e.OffloadResync(id, gen, [2]OffloadSeq{{Next: 101, Ack: 501 + n, Win: 1000, Seen: true}, {Next: 501 + n, Ack: 101, Win: 1000, Seen: true}})
	pass(t, e, sec, WAN, TCP("198.51.100.7:80", "203.0.113.1:5000", packet.TCPRst, 501+n, 0, nil, nil), LAN)
	if e.StillOffloadable(sec, id, gen) {
		t.Fatal("the exact RST did not end the flow")
	}
}

// TestOffloadNew: OffloadNew gives a flow once Process made it
// offloadable (a UDP flow answered, a TCP flow established), again while
// the data plane refuses it (next hop not resolved) and never once taken,
// until OffloadAgain gives it back; after Reconfigure it finds every
// offloadable flow, queued or not.
func TestOffloadNew(t *testing.T) {
	e := newEngine(t, nil)
	got := func(take bool) []int32 {
		var ids []int32
		e.OffloadNew(0, func(f *OffloadFlow) bool { ids = append(ids, f.ID); return take })
		return ids
	}
	pass(t, e, 0, LAN, UDP("192.168.50.10:5000", "198.51.100.7:53", nil), WAN)
	if ids := got(true); len(ids) != 0 {
		t.Fatalf("offered before the answer: %v", ids)
	}
	pass(t, e, 0, WAN, UDP("198.51.100.7:53", "203.0.113.1:5000", nil), LAN)
	ids := got(false)
	if len(ids) != 1 {
		t.Fatalf("offered %v after the answer, want the flow", ids)
	}
	udp := ids[0]
	if again := got(true); len(again) != 1 || again[0] != udp {
		t.Fatalf("refused flow offered %v next time, want %d", again, udp)
	}
	pass(t, e, 0, LAN, UDP("192.168.50.10:5000", "198.51.100.7:53", nil), WAN)
	if ids := got(true); len(ids) != 0 {
		t.Fatalf("taken flow offered again: %v", ids)
	}
	e.OffloadAgain(udp, e.ct.Get(udp).Gen)
	e.OffloadAgain(udp, e.ct.Get(udp).Gen) // once in the queue
	if ids := got(true); len(ids) != 1 || ids[0] != udp {
		t.Fatalf("after OffloadAgain: %v, want %d once", ids, udp)
	}
	// TCP: offered at the handshake's last ACK, not before.
	pass(t, e, 0, LAN, TCP("192.168.50.10:5001", "198.51.100.7:80", packet.TCPSyn, 100, 0, nil, nil), WAN)
	pass(t, e, 0, WAN, TCP("198.51.100.7:80", "203.0.113.1:5001", packet.TCPSyn|packet.TCPAck, 500, 101, nil, nil), LAN)
	if ids := got(true); len(ids) != 0 {
		t.Fatalf("offered before established: %v", ids)
	}
	pass(t, e, 0, LAN, TCP("192.168.50.10:5001", "198.51.100.7:80", packet.TCPAck, 101, 501, nil, nil), WAN)
	if ids := got(true); len(ids) != 1 || ids[0] == udp {
		t.Fatalf("offered %v after the handshake, want the TCP flow", ids)
	}
	if err := e.Reconfigure(e.cfg, 0); err != nil {
		t.Fatal(err)
	}
	if ids := got(true); len(ids) != 2 {
		t.Fatalf("after Reconfigure: %v, want both flows", ids)
	}
	if ids := got(true); len(ids) != 0 {
		t.Fatalf("offered again: %v", ids)
	}
}
