package link

import (
	"net/netip"
	"testing"
	"time"

	"passgate/packet"
)

var (
	ourMAC  = packet.MAC{0x02, 0, 0, 0, 0, 0x01}
	hostMAC = packet.MAC{0x02, 0, 0, 0, 0, 0x10}
	ourIP   = [4]byte{192, 168, 50, 1}
	hostIP  = [4]byte{192, 168, 50, 10}
	host2IP = [4]byte{192, 168, 50, 11}
)

func newTable(t *testing.T) *Neighbours {
	t.Helper()
	n, err := NewNeighbours(NeighbourConfig{MAC: ourMAC, Addr: netip.MustParsePrefix("192.168.50.1/24")})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// sink is a batch whose flushes are recorded.
type sink struct {
	b       *Batch
	flushed [][]byte
}

func newSink() *sink {
	s := &sink{}
	s.b = NewBatch(16, 16, 1514, func(f [][]byte) {
		for _, fr := range f {
			s.flushed = append(s.flushed, append([]byte(nil), fr...))
		}
	})
	return s
}

// all returns flushed and queued frames, copied, and resets the batch.
func (s *sink) all() [][]byte {
	out := s.flushed
	for _, f := range s.b.Frames {
		out = append(out, append([]byte(nil), f...))
	}
	s.flushed = nil
	s.b.Reset()
	return out
}

func arpFrame(ethDst, ethSrc packet.MAC, op uint16, sha packet.MAC, spa [4]byte, tha packet.MAC, tpa [4]byte) packet.Ether {
	return packet.Ether(packet.BuildARP(make([]byte, packet.MinFrameLen), ethDst, ethSrc, op, sha, spa, tha, tpa))
}

// ipFrame is an Ethernet frame with a dummy IPv4 payload of n bytes whose
// header is not yet written.
func ipFrame(n int, fill byte) []byte {
	f := make([]byte, packet.EtherHeaderLen+n)
	for i := packet.EtherHeaderLen; i < len(f); i++ {
		f[i] = fill
	}
	return f
}

func TestAccept(t *testing.T) {
	n := newTable(t)
	cases := []struct {
		dst, src packet.MAC
		want     bool
	}{
		{ourMAC, hostMAC, true},
		{packet.Broadcast, hostMAC, true},
		{packet.MAC{0x02, 9, 9, 9, 9, 9}, hostMAC, false},                            // another host's unicast
		{packet.MAC{0x01, 0x00, 0x5e, 0, 0, 1}, hostMAC, false},                      // IPv4 multicast
		{packet.Broadcast, ourMAC, false},                                            // our own broadcast looped back
		{packet.MAC{0x33, 0x33, 0, 0, 0, 1}, hostMAC, false},                         // IPv6 multicast
		{ourMAC, packet.MAC{0x02, 0, 0, 0, 0, 0x99}, true},                           // any sender
		{packet.MAC{0x02, 0, 0, 0, 0, 0x02}, packet.MAC{0x02, 0, 0, 0, 0, 1}, false}, // ours as source
	}
	for i, c := range cases {
		f := make(packet.Ether, 60)
		f.SetHeader(c.dst, c.src, packet.EtherTypeIPv4)
		if got := n.Accept(f); got != c.want {
			t.Errorf("case %d (%v -> %v): Accept = %v, want %v", i, c.src, c.dst, got, c.want)
		}
	}
}

func TestAnswersRequestForUs(t *testing.T) {
	n := newTable(t)
	s := newSink()
	if !n.Input(0, arpFrame(packet.Broadcast, hostMAC, packet.ARPRequest, hostMAC, hostIP, packet.MAC{}, ourIP), s.b) {
		t.Fatal("Input rejected a request")
	}
	out := s.all()
	if len(out) != 1 {
		t.Fatalf("%d frames out, want 1 reply", len(out))
	}
	e := packet.Ether(out[0])
	if e.Dst() != hostMAC || e.Src() != ourMAC || e.Type() != packet.EtherTypeARP {
		t.Fatalf("reply header %v %v %#x", e.Dst(), e.Src(), e.Type())
	}
	a, ok := packet.ParseARP(e.Payload())
	if !ok || a.Op() != packet.ARPReply || a.SenderMAC() != ourMAC || a.SenderIP() != ourIP || a.TargetMAC() != hostMAC || a.TargetIP() != hostIP {
		t.Fatalf("bad reply % x", out[0])
	}
	// The requester was learned.
	if mac, ok := n.Lookup(hostIP); !ok || mac != hostMAC {
		t.Fatalf("Lookup = %v %v", mac, ok)
	}
	st := n.Stats()
	if st.RepliesSent != 1 || st.RequestsReceived != 1 || st.Learned != 1 || st.Resolved != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestIgnoresRequestForOthers(t *testing.T) {
	n := newTable(t)
	s := newSink()
	n.Input(0, arpFrame(packet.Broadcast, hostMAC, packet.ARPRequest, hostMAC, hostIP, packet.MAC{}, host2IP), s.b)
	if out := s.all(); len(out) != 0 {
		t.Fatalf("answered a request for another host: %d frames", len(out))
	}
	if _, ok := n.Lookup(hostIP); ok {
		t.Fatal("created an entry from a request not for us")
	}
}

func TestProbeAnswered(t *testing.T) {
	// RFC 5227 probe: sender IP 0.0.0.0. Answer, learn nothing.
	n := newTable(t)
	s := newSink()
	n.Input(0, arpFrame(packet.Broadcast, hostMAC, packet.ARPRequest, hostMAC, [4]byte{}, packet.MAC{}, ourIP), s.b)
	out := s.all()
	if len(out) != 1 {
		t.Fatalf("%d frames, want a reply", len(out))
	}
	if n.Stats().Entries != 0 {
		t.Fatal("learned from a probe")
	}
}

func TestResolveQueueRelease(t *testing.T) {
	n := newTable(t)
	s := newSink()
	now := time.Duration(0)
	f1 := ipFrame(40, 0xa1)
	if n.Output(now, hostIP, f1, s.b) {
		t.Fatal("unresolved Output reported the frame as added")
	}
	out := s.all()
	if len(out) != 1 {
		t.Fatalf("%d frames, want one ARP request", len(out))
	}
	e := packet.Ether(out[0])
	a, ok := packet.ParseARP(e.Payload())
	if e.Dst() != packet.Broadcast || e.Src() != ourMAC || !ok || a.Op() != packet.ARPRequest || a.TargetIP() != hostIP || a.SenderIP() != ourIP || a.SenderMAC() != ourMAC {
		t.Fatalf("bad request % x", out[0])
	}
	// The caller may reuse its frame at once: the queue holds a copy.
	f1[20] = 0
	// A second packet in the same second asks nothing more.
	n.Output(now+100*time.Millisecond, hostIP, ipFrame(40, 0xa2), s.b)
	if out := s.all(); len(out) != 0 {
		t.Fatalf("second packet sent %d frames", len(out))
	}
	if st := n.Stats(); st.Incomplete != 1 || st.Waiting != 2 || st.RequestsSent != 1 {
		t.Fatalf("stats %+v", st)
	}
	// The reply releases both, in order, with the right header.
	n.Input(now+200*time.Millisecond, arpFrame(ourMAC, hostMAC, packet.ARPReply, hostMAC, hostIP, ourMAC, ourIP), s.b)
	out = s.all()
	if len(out) != 2 {
		t.Fatalf("%d frames released, want 2", len(out))
	}
	for i, fill := range []byte{0xa1, 0xa2} {
		e := packet.Ether(out[i])
		if e.Dst() != hostMAC || e.Src() != ourMAC || e.Type() != packet.EtherTypeIPv4 || e.Payload()[6] != fill || len(e) != 54 {
			t.Fatalf("released frame %d: % x", i, out[i])
		}
	}
	st := n.Stats()
	if st.Waiting != 0 || st.Released != 2 || st.Resolved != 1 || st.Incomplete != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Now resolved: header written in place, frame added as is.
	f := ipFrame(40, 0xb0)
	if !n.Output(now+time.Second, hostIP, f, s.b) {
		t.Fatal("resolved Output did not add the frame")
	}
	if &s.b.Frames[0][0] != &f[0] {
		t.Fatal("resolved frame was copied")
	}
	if packet.Ether(f).Dst() != hostMAC || packet.Ether(f).Src() != ourMAC || packet.Ether(f).Type() != packet.EtherTypeIPv4 {
		t.Fatalf("header not written: % x", f[:14])
	}
	s.all()
}

func TestResolvedOutputAllocatesNothing(t *testing.T) {
	n := newTable(t)
	s := newSink()
	n.Input(0, arpFrame(ourMAC, hostMAC, packet.ARPReply, hostMAC, hostIP, ourMAC, ourIP), s.b)
	s.all()
	f := ipFrame(1000, 1)
	allocs := testing.AllocsPerRun(1000, func() {
		n.Output(time.Second, hostIP, f, s.b)
		if s.b.Len() > 8 {
			s.b.Reset()
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per resolved Output", allocs)
	}
	g := make(packet.Ether, 60)
	g.SetHeader(ourMAC, hostMAC, packet.EtherTypeIPv4)
	if a := testing.AllocsPerRun(1000, func() { n.Accept(g) }); a != 0 {
		t.Fatalf("%v allocations per Accept", a)
	}
}

func TestRetriesThenFail(t *testing.T) {
	n := newTable(t)
	s := newSink()
	n.Output(0, hostIP, ipFrame(40, 1), s.b)
	n.Output(0, hostIP, ipFrame(40, 2), s.b)
	requests := len(s.all())
	for ms := 250; ms <= 5000; ms += 250 {
		n.Poll(time.Duration(ms)*time.Millisecond, s.b)
		requests += len(s.all())
	}
	if requests != 3 {
		t.Fatalf("%d requests, want 3 (Retries)", requests)
	}
	st := n.Stats()
	if st.DropUnresolved != 2 || st.Waiting != 0 || st.Incomplete != 0 {
		t.Fatalf("after failure: %+v", st)
	}
	// Failed entry: packets drop at once, nothing is asked.
	failedAt := 3 * time.Second // third request at 2 s, given up one interval later
	n.Output(failedAt+time.Second, hostIP, ipFrame(40, 3), s.b)
	if len(s.all()) != 0 || n.Stats().DropUnresolved != 3 {
		t.Fatalf("failed entry: %+v", n.Stats())
	}
	// After FailedHold it asks again.
	n.Output(failedAt+3*time.Second, hostIP, ipFrame(40, 4), s.b)
	if out := s.all(); len(out) != 1 {
		t.Fatalf("after hold: %d frames, want a request", len(out))
	}
}

func TestFailWithoutPoll(t *testing.T) {
	n := newTable(t)
	s := newSink()
	for i := 0; i < 3; i++ {
		n.Output(time.Duration(i)*time.Second, hostIP, ipFrame(40, 1), s.b)
	}
	if got := len(s.all()); got != 3 {
		t.Fatalf("%d requests, want 3", got)
	}
	n.Output(3*time.Second, hostIP, ipFrame(40, 1), s.b)
	if got := len(s.all()); got != 0 {
		t.Fatalf("asked a fourth time")
	}
	if st := n.Stats(); st.DropUnresolved != 4 || st.Waiting != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestQueueBounds(t *testing.T) {
	n, err := NewNeighbours(NeighbourConfig{MAC: ourMAC, Addr: netip.MustParsePrefix("192.168.50.1/24"), QueueLen: 2, MaxQueued: 3, BufSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	s := newSink()
	for i := byte(1); i <= 3; i++ {
		n.Output(0, hostIP, ipFrame(40, i), s.b)
	}
	if st := n.Stats(); st.DropQueueFull != 1 || st.Waiting != 2 {
		t.Fatalf("per-hop bound: %+v", st)
	}
	n.Output(0, host2IP, ipFrame(40, 9), s.b)
	n.Output(0, host2IP, ipFrame(40, 9), s.b) // pool of 3 exhausted
	n.Output(0, host2IP, ipFrame(200, 9), s.b)
	if st := n.Stats(); st.DropPoolEmpty != 1 || st.DropTooBig != 1 || st.Waiting != 3 {
		t.Fatalf("pool bound: %+v", st)
	}
	s.all()
	// Oldest dropped: frames 2 and 3 remain.
	n.Input(0, arpFrame(ourMAC, hostMAC, packet.ARPReply, hostMAC, hostIP, ourMAC, ourIP), s.b)
	out := s.all()
	if len(out) != 2 || packet.Ether(out[0]).Payload()[0] != 2 || packet.Ether(out[1]).Payload()[0] != 3 {
		t.Fatalf("released %d frames", len(out))
	}
}

func TestStaleEntryReconfirmed(t *testing.T) {
	n := newTable(t)
	s := newSink()
	n.Input(0, arpFrame(ourMAC, hostMAC, packet.ARPReply, hostMAC, hostIP, ourMAC, ourIP), s.b)
	s.all()
	// Stale: still used, and a unicast request is sent, at most once a second.
	at := 61 * time.Second
	if !n.Output(at, hostIP, ipFrame(40, 1), s.b) {
		t.Fatal("stale entry not used")
	}
	n.Output(at+10*time.Millisecond, hostIP, ipFrame(40, 1), s.b)
	out := s.all()
	if len(out) != 3 {
		t.Fatalf("%d frames, want probe + 2 packets", len(out))
	}
	probe := packet.Ether(out[0])
	if probe.Type() != packet.EtherTypeARP || probe.Dst() != hostMAC {
		t.Fatalf("probe not unicast ARP: % x", out[0])
	}
	// The neighbour answers: fresh again, nothing more asked.
	n.Input(at+20*time.Millisecond, arpFrame(ourMAC, hostMAC, packet.ARPReply, hostMAC, hostIP, ourMAC, ourIP), s.b)
	n.Output(at+2*time.Second, hostIP, ipFrame(40, 1), s.b)
	if out := s.all(); len(out) != 1 {
		t.Fatalf("%d frames after reconfirmation, want 1", len(out))
	}
	// Never answering: after the probes it is resolved anew (broadcast, queued).
	later := at + 20*time.Millisecond + 64*time.Second
	if n.Output(later, hostIP, ipFrame(40, 1), s.b) {
		t.Fatal("silent neighbour still used")
	}
	out = s.all()
	if len(out) != 1 || packet.Ether(out[0]).Dst() != packet.Broadcast {
		t.Fatalf("want one broadcast request, got %d frames", len(out))
	}
}

func TestMACChangeLearned(t *testing.T) {
	n := newTable(t)
	s := newSink()
	n.Input(0, arpFrame(ourMAC, hostMAC, packet.ARPReply, hostMAC, hostIP, ourMAC, ourIP), s.b)
	other := packet.MAC{0x02, 0, 0, 0, 0, 0x77}
	// Gratuitous ARP from the new MAC updates an existing entry.
	n.Input(time.Second, arpFrame(packet.Broadcast, other, packet.ARPRequest, other, hostIP, packet.MAC{}, hostIP), s.b)
	if mac, _ := n.Lookup(hostIP); mac != other {
		t.Fatalf("MAC not updated: %v", mac)
	}
	// A gratuitous ARP for an unknown address creates nothing.
	n.Input(time.Second, arpFrame(packet.Broadcast, other, packet.ARPRequest, other, host2IP, packet.MAC{}, host2IP), s.b)
	if _, ok := n.Lookup(host2IP); ok {
		t.Fatal("learned from unsolicited gratuitous ARP")
	}
	s.all()
}

func TestBadNextHops(t *testing.T) {
	n := newTable(t)
	s := newSink()
	for _, nh := range [][4]byte{{}, ourIP, {10, 0, 0, 1}} {
		if n.Output(0, nh, ipFrame(40, 1), s.b) {
			t.Fatalf("sent to %v", nh)
		}
	}
	if out := s.all(); len(out) != 0 || n.Stats().DropBadNextHop != 3 {
		t.Fatalf("frames %d stats %+v", len(out), n.Stats())
	}
	// Replies from off-link or spoofed-as-us senders teach nothing.
	n.Input(0, arpFrame(ourMAC, hostMAC, packet.ARPReply, hostMAC, [4]byte{10, 0, 0, 1}, ourMAC, ourIP), s.b)
	n.Input(0, arpFrame(ourMAC, hostMAC, packet.ARPReply, hostMAC, ourIP, ourMAC, ourIP), s.b)
	if n.Stats().Entries != 0 {
		t.Fatal("learned a bad sender")
	}
}

func TestTableFull(t *testing.T) {
	n, _ := NewNeighbours(NeighbourConfig{MAC: ourMAC, Addr: netip.MustParsePrefix("192.168.50.1/24"), MaxEntries: 2})
	s := newSink()
	for i := byte(10); i < 13; i++ {
		n.Output(0, [4]byte{192, 168, 50, i}, ipFrame(40, 1), s.b)
	}
	if st := n.Stats(); st.DropTableFull != 1 || st.Entries != 2 {
		t.Fatalf("stats %+v", st)
	}
	s.all()
}

func TestExpire(t *testing.T) {
	n := newTable(t)
	s := newSink()
	n.Input(0, arpFrame(ourMAC, hostMAC, packet.ARPReply, hostMAC, hostIP, ourMAC, ourIP), s.b)
	n.Expire(119 * time.Second)
	if n.Stats().Entries != 1 {
		t.Fatal("expired too early")
	}
	n.Expire(120 * time.Second)
	if n.Stats().Entries != 0 {
		t.Fatal("idle entry kept")
	}
	s.all()
}

func TestBatchFlush(t *testing.T) {
	var sent [][]byte
	b := NewBatch(2, 2, 64, func(f [][]byte) {
		for _, x := range f {
			sent = append(sent, append([]byte(nil), x...))
		}
	})
	b.Add([]byte{1})
	b.Add([]byte{2})
	b.Add([]byte{3}) // flushes 1, 2
	if len(sent) != 2 || b.Len() != 1 {
		t.Fatalf("sent %d, queued %d", len(sent), b.Len())
	}
	x := b.Buffer(10)
	x[0] = 4
	b.Add(x)
	y := b.Buffer(10)
	y[0] = 5
	b.Add(y) // batch full: 3 and 4 flushed; scratch buffers stay taken
	z := b.Buffer(10)
	if &z[0] == &y[0] {
		t.Fatal("scratch buffer handed out twice")
	}
	z[0] = 6
	b.Add(z)
	if b.Buffer(65) != nil {
		t.Fatal("oversized buffer handed out")
	}
	b.Reset()
	if b.Len() != 0 || len(sent) != 5 || sent[4][0] != 5 {
		t.Fatalf("sent %v", sent)
	}
}

// A HopCache sends exactly as the table would: the neighbour's current
// MAC, a probe once the entry is stale, a fresh resolution once it is
// gone; and two next hops sharing a slot each get their own.
func TestHopCache(t *testing.T) {
	n := newTable(t)
	s := newSink()
	var c HopCache
	n.Input(0, arpFrame(ourMAC, hostMAC, packet.ARPReply, hostMAC, hostIP, ourMAC, ourIP), s.b)
	sameSlot := [4]byte{192, 168, 50, 26} // 26 & 15 == 10 & 15
	sameMAC := packet.MAC{0x02, 0, 0, 0, 0, 0x26}
	n.Input(0, arpFrame(ourMAC, sameMAC, packet.ARPReply, sameMAC, sameSlot, ourMAC, ourIP), s.b)
	s.all()
	send := func(at time.Duration, nh [4]byte) (bool, [][]byte) {
		t.Helper()
		ok := n.OutputCached(at, nh, ipFrame(40, 1), s.b, &c)
		return ok, s.all()
	}
	for i, nh := range [][4]byte{hostIP, hostIP, sameSlot, hostIP, sameSlot} {
		ok, out := send(time.Second+time.Duration(i)*time.Millisecond, nh)
		want := hostMAC
		if nh == sameSlot {
			want = sameMAC
		}
		if !ok || len(out) != 1 || packet.Ether(out[0]).Dst() != want || packet.Ether(out[0]).Src() != ourMAC {
			t.Fatalf("send %d to %v: ok %v, %d frames, dst %v; want %v", i, nh, ok, len(out), packet.Ether(out[0]).Dst(), want)
		}
	}
	send(1500*time.Millisecond, hostIP) // the slot holds hostIP again
	// The neighbour moves to another MAC (gratuitous ARP): used at once.
	other := packet.MAC{0x02, 0, 0, 0, 0, 0x77}
	n.Input(2*time.Second, arpFrame(packet.Broadcast, other, packet.ARPRequest, other, hostIP, packet.MAC{}, hostIP), s.b)
	s.all()
	if _, out := send(3*time.Second, hostIP); len(out) != 1 || packet.Ether(out[0]).Dst() != other {
		t.Fatalf("after the MAC change: %d frames to %v, want 1 to %v", len(out), packet.Ether(out[0]).Dst(), other)
	}
	// Stale (a ReachableTime after the last confirmation): still used, and
	// probed, as the table does without a cache.
	if ok, out := send(63*time.Second, hostIP); !ok || len(out) != 2 || packet.Ether(out[0]).Type() != packet.EtherTypeARP || packet.Ether(out[0]).Dst() != other {
		t.Fatalf("stale: ok %v, %d frames; want a unicast probe and the packet", ok, len(out))
	}
	// Forgotten (the other neighbour idle long enough): resolved anew,
	// not sent to the MAC the cache held.
	n.Expire(200 * time.Second)
	if ok, out := send(201*time.Second, sameSlot); ok || len(out) != 1 || packet.Ether(out[0]).Dst() != packet.Broadcast {
		t.Fatalf("after expiry: ok %v, %d frames; want the packet queued behind a broadcast request", ok, len(out))
	}
	n.Input(0, arpFrame(ourMAC, hostMAC, packet.ARPReply, hostMAC, hostIP, ourMAC, ourIP), s.b)
	s.all()
	f := ipFrame(40, 1)
	if a := testing.AllocsPerRun(1000, func() {
		n.OutputCached(time.Second, hostIP, f, s.b, &c)
		s.b.Reset()
	}); a != 0 {
		t.Fatalf("%v allocations per cached send", a)
	}
}

// TestUsedKeepsEntry: a neighbour the offloaded flows send to, every
// 200 ms (Used), with no packet through Output. Once stale (60 s) it is
// asked directly (a unicast request, sent by Poll) and, answering from
// the same MAC, stays resolved: 10 minutes on the entry is there with
// its MAC. Before, it was forgotten at 120 s, which withdrew and
// reinstalled every offloaded flow through it. One that stops answering
// is resolved anew (broadcast), as Output does.
func TestUsedKeepsEntry(t *testing.T) {
	n := newTable(t)
	s := newSink()
	n.Input(0, arpFrame(ourMAC, hostMAC, packet.ARPReply, hostMAC, hostIP, ourMAC, ourIP), s.b)
	s.all()
	probes := 0
	var at time.Duration
	for at = 200 * time.Millisecond; at <= 10*time.Minute; at += 200 * time.Millisecond {
		n.Used(at, hostIP)
		n.Poll(at, s.b)
		for _, f := range s.all() {
			e := packet.Ether(f)
			if e.Type() != packet.EtherTypeARP || e.Dst() != hostMAC {
				t.Fatalf("at %v: sent % x, want a unicast request", at, f)
			}
			probes++
			// The neighbour answers.
			n.Input(at+time.Millisecond, arpFrame(ourMAC, hostMAC, packet.ARPReply, hostMAC, hostIP, ourMAC, ourIP), s.b)
		}
		n.Expire(at)
	}
	if mac, ok := n.Lookup(hostIP); !ok || mac != hostMAC {
		t.Fatalf("after 10 min in use: %v %v, want %v", mac, ok, hostMAC)
	}
	// One request per reachable period: 600 s / 60 s.
	if probes < 9 || probes > 10 {
		t.Fatalf("%d requests, want 9 or 10", probes)
	}
	// Silent from here: unicast requests, then a broadcast resolution.
	gen := n.Gen()
	var unicast, broadcast int
	for end := at + 2*time.Minute; at < end; at += 200 * time.Millisecond {
		n.Used(at, hostIP)
		n.Poll(at, s.b)
		for _, f := range s.all() {
			if packet.Ether(f).Dst() == packet.Broadcast {
				broadcast++
			} else {
				unicast++
			}
		}
		n.Expire(at)
	}
	if _, ok := n.Lookup(hostIP); ok || n.Gen() == gen || unicast != 3 || broadcast != 3 {
		t.Fatalf("silent neighbour: resolved %v, gen moved %v, %d unicast and %d broadcast requests; want gone, moved, 3 and 3",
			ok, n.Gen() != gen, unicast, broadcast)
	}
	// Used on an entry it does not know creates none.
	before := n.Stats().Entries
	n.Used(at, host2IP)
	if got := n.Stats().Entries; got != before {
		t.Fatalf("entries %d, was %d", got, before)
	}
}
