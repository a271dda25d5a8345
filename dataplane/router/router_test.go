package router

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"

	"passgate/dataplane/afpacket"
	"passgate/dataplane/link"
	"passgate/nat"
	"passgate/packet"
)

func udpPacket(payload []byte) []byte {
	ip := make([]byte, 20+8+len(payload))
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	ip[8] = 64
	ip[9] = 17
	copy(ip[12:], []byte{192, 168, 50, 10})
	copy(ip[16:], []byte{203, 0, 113, 10})
	binary.BigEndian.PutUint16(ip[20:], 40000)
	binary.BigEndian.PutUint16(ip[22:], 53)
	binary.BigEndian.PutUint16(ip[24:], uint16(8+len(payload)))
	copy(ip[28:], payload)
	return ip
}

// udpReply is a UDP/IPv4 packet from 203.0.113.10:53 to the WAN address
// 203.0.113.1:40000 (the answer to udpPacket once through the NAT), its
// IPv4 checksum set, its UDP checksum 0.
func udpReply(payload []byte) []byte {
	ip := udpPacket(payload)
	copy(ip[12:], []byte{203, 0, 113, 10})
	copy(ip[16:], []byte{203, 0, 113, 1})
	binary.BigEndian.PutUint16(ip[20:], 53)
	binary.BigEndian.PutUint16(ip[22:], 40000)
	binary.BigEndian.PutUint16(ip[10:], packet.Checksum(ip[:20]))
	return ip
}

func tcpPacket(payload []byte) []byte {
	ip := make([]byte, 20+20+len(payload))
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	ip[8] = 64
	ip[9] = 6
	copy(ip[12:], []byte{192, 168, 50, 10})
	copy(ip[16:], []byte{203, 0, 113, 10})
	binary.BigEndian.PutUint16(ip[20:], 40000)
	binary.BigEndian.PutUint16(ip[22:], 80)
	ip[32] = 5 << 4
	ip[33] = 0x18
	copy(ip[40:], payload)
	return ip
}

// l4Sum is the full checksum over pseudo-header and segment (0 when right).
func l4Valid(ip []byte) bool {
	seg := ip[20:]
	s := packet.PseudoHeaderSum([4]byte(ip[12:16]), [4]byte(ip[16:20]), ip[9], len(seg))
	return packet.Fold(packet.Sum(seg, s)) == 0
}

// partial puts the pseudo-header sum in the checksum field, as a sender
// relying on offload does.
func partial(ip []byte, off int) {
	seg := ip[20:]
	binary.BigEndian.PutUint16(seg[off:], ^packet.Fold(packet.PseudoHeaderSum([4]byte(ip[12:16]), [4]byte(ip[16:20]), ip[9], len(seg))))
}

func TestCompleteChecksum(t *testing.T) {
	for _, odd := range []bool{false, true} {
		payload := []byte("hello, world!!")
		if odd {
			payload = append(payload, '?')
		}
		u := udpPacket(payload)
		partial(u, 6)
		if l4Valid(u) {
			t.Fatal("partial checksum already valid")
		}
		if !completeChecksum(u) || !l4Valid(u) {
			t.Fatalf("UDP (odd=%v) checksum not completed: % x", odd, u)
		}
		tp := tcpPacket(payload)
		partial(tp, 16)
		if !completeChecksum(tp) || !l4Valid(tp) {
			t.Fatalf("TCP (odd=%v) checksum not completed", odd)
		}
	}
	// Trailing Ethernet padding beyond the IP total length is not summed.
	u := udpPacket([]byte("abc"))
	partial(u, 6)
	padded := append(u, 0xde, 0xad, 0xbe, 0xef)
	if !completeChecksum(padded) || !l4Valid(padded[:len(u)]) {
		t.Fatal("padding summed")
	}
	// Not touched: fragments, other protocols, truncated packets.
	frag := udpPacket([]byte("abc"))
	frag[6] = 0x20 // MF
	icmp := udpPacket([]byte("abc"))
	icmp[9] = 1
	short := udpPacket(nil)[:24]
	for name, p := range map[string][]byte{"fragment": frag, "icmp": icmp, "short": short, "empty": nil} {
		if completeChecksum(p) {
			t.Errorf("%s: completed", name)
		}
	}
}

func TestIPLen(t *testing.T) {
	u := udpPacket([]byte("abcd"))
	if ipLen(append(u, 0, 0, 0)) != len(u) {
		t.Fatal("padding kept")
	}
	binary.BigEndian.PutUint16(u[2:], 5000)
	if ipLen(u) != len(u) {
		t.Fatal("length past the frame trusted")
	}
}

func TestFenceScript(t *testing.T) {
	s := fenceScript(fenceNetdev, "passgate", [2]string{"lan0", "wan0"})
	for _, want := range []string{
		"add table netdev passgate\ndelete table netdev passgate\n",
		`hook ingress device "lan0"`, `hook ingress device "wan0"`,
		"meta protocol ip counter drop",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "arp") {
		t.Error("ARP must stay with the kernel")
	}
}

func TestFanoutIDs(t *testing.T) {
	ids := fanoutIDs()
	if ids[0] == 0 || ids[1] == 0 || ids[0] == ids[1] {
		t.Fatalf("ids %v", ids)
	}
}

// testRouter is a Router without sockets, for driving handle directly.
func testRouter(t testing.TB) (*Router, [2]*link.Batch) {
	cfg := nat.Config{
		LANAddr: netip.MustParsePrefix("192.168.50.1/24"),
		WANAddr: netip.MustParsePrefix("203.0.113.1/24"),
	}
	eng, err := nat.New(cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := &Router{eng: eng, opts: Options{NAT: cfg}}
	macs := [2]packet.MAC{{2, 0, 0, 0, 0, 1}, {2, 0, 0, 0, 0, 2}}
	for i, p := range []netip.Prefix{cfg.LANAddr, cfg.WANAddr} {
		r.nb[i], err = link.NewNeighbours(link.NeighbourConfig{MAC: macs[i], Addr: p})
		if err != nil {
			t.Fatal(err)
		}
	}
	var out [2]*link.Batch
	for i := range out {
		out[i] = link.NewBatch(128, 64, 1514+14, nil)
	}
	return r, out
}

// learn teaches the router's neighbour table on in a neighbour's MAC, as
// its ARP request for the router's address does, and drops the reply.
func learn(r *Router, out [2]*link.Batch, in nat.Iface, mac packet.MAC, ip [4]byte) {
	req := make([]byte, 60)
	self := r.opts.NAT.LANAddr.Addr().As4()
	if in == nat.WAN {
		self = r.opts.NAT.WANAddr.Addr().As4()
	}
	packet.BuildARP(req, packet.Broadcast, mac, packet.ARPRequest, mac, ip, packet.MAC{}, self)
	r.nb[in].Input(0, req, out[in])
	out[in].Reset()
}

func TestHotPathAllocatesNothing(t *testing.T) {
	r, out := testRouter(t)
	hostMAC := packet.MAC{2, 0, 0, 0, 0, 0x10}
	srvMAC := packet.MAC{2, 0, 0, 0, 0, 0x20}
	// The server's MAC is known (it asked for ours).
	learn(r, out, nat.WAN, srvMAC, [4]byte{203, 0, 113, 10})

	ip := udpPacket([]byte("payload"))
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], packet.Checksum(ip[:20]))
	partial(ip, 6)
	completeChecksum(ip)
	tmpl := make([]byte, 14+len(ip))
	packet.Ether(tmpl).SetHeader(r.nb[nat.LAN].MAC(), hostMAC, packet.EtherTypeIPv4)
	copy(tmpl[14:], ip)
	frame := make([]byte, len(tmpl))
	wk := &worker{in: nat.LAN}
	var c tally
	step := func() {
		copy(frame, tmpl)
		r.handle(1, wk, frame, 0, &out, &c)
		r.takeEmitted(1, &out, &c)
		out[nat.WAN].Reset()
	}
	step()
	if c.forwarded != 1 {
		t.Fatalf("not forwarded: %+v (engine drops %v)", c, r.eng.Stats().Drops)
	}
	if a := testing.AllocsPerRun(1000, step); a != 0 {
		t.Fatalf("%v allocations per forwarded frame", a)
	}
	if packet.Ether(frame).Dst() != srvMAC || packet.Ether(frame).Src() != r.nb[nat.WAN].MAC() {
		t.Fatalf("Ethernet header not rewritten: % x", frame[:14])
	}
	if !l4Valid(frame[14:]) {
		t.Fatal("translated checksum invalid")
	}
}

func BenchmarkHandleForward(b *testing.B) {
	r, out := testRouter(b)
	srvMAC := packet.MAC{2, 0, 0, 0, 0, 0x20}
	learn(r, out, nat.WAN, srvMAC, [4]byte{203, 0, 113, 10})
	ip := udpPacket(make([]byte, 18))
	binary.BigEndian.PutUint16(ip[10:], packet.Checksum(ip[:20]))
	tmpl := make([]byte, 14+len(ip))
	packet.Ether(tmpl).SetHeader(r.nb[nat.LAN].MAC(), packet.MAC{2, 0, 0, 0, 0, 0x10}, packet.EtherTypeIPv4)
	copy(tmpl[14:], ip)
	frame := make([]byte, len(tmpl))
	wk := &worker{in: nat.LAN}
	var c tally
	b.ReportAllocs()
	for b.Loop() {
		copy(frame, tmpl)
		r.handle(1, wk, frame, 0, &out, &c)
		if out[nat.WAN].Len() >= 64 {
			out[nat.WAN].Reset()
		}
	}
}

// Once a flow has its reply, its frames take the fast path (the engine's
// read lock): forwarded with the Ethernet header and checksums right,
// counted, and without allocating. A frame with a checksum left to
// offload that the fast path declines is completed once, not twice, on
// its way to handle.
func TestFastForward(t *testing.T) {
	r, out := testRouter(t)
	hostMAC := packet.MAC{2, 0, 0, 0, 0, 0x10}
	srvMAC := packet.MAC{2, 0, 0, 0, 0, 0x20}
	learn(r, out, nat.WAN, srvMAC, [4]byte{203, 0, 113, 10})
	frameOf := func(dst, src packet.MAC, ip []byte) []byte {
		f := make([]byte, 14+len(ip))
		packet.Ether(f).SetHeader(dst, src, packet.EtherTypeIPv4)
		copy(f[14:], ip)
		return f
	}
	lanWk, wanWk := &worker{in: nat.LAN}, &worker{in: nat.WAN}
	var c tally
	var nc nat.Counters

	// The first frame, with a partial checksum: declined (new flow), then
	// handled, and its checksum valid on the way out.
	ip := udpPacket([]byte("query"))
	binary.BigEndian.PutUint16(ip[10:], packet.Checksum(ip[:20]))
	partial(ip, 6)
	first := frameOf(r.nb[nat.LAN].MAC(), hostMAC, ip)
	flags := uint32(afpacket.StatusCsumNotReady)
	if r.fast(1, lanWk, first, &flags, &out, &c, &nc) {
		t.Fatal("a new flow took the fast path")
	}
	r.handle(1, lanWk, first, flags, &out, &c)
	if c.forwarded != 1 || c.csumCompleted != 1 || !l4Valid(first[14:]) {
		t.Fatalf("first frame: %+v, checksum valid %v", c, l4Valid(first[14:]))
	}
	out[nat.WAN].Reset()
	// The reply, through handle (it marks the flow replied).
	reply := udpReply([]byte("answer"))
	partial(reply, 6)
	completeChecksum(reply)
	learn(r, out, nat.LAN, hostMAC, [4]byte{192, 168, 50, 10})
	r.handle(1, wanWk, frameOf(r.nb[nat.WAN].MAC(), srvMAC, reply), 0, &out, &c)
	out[nat.LAN].Reset()

	// Now both ways take the fast path.
	tmpl := [2][]byte{
		frameOf(r.nb[nat.LAN].MAC(), hostMAC, func() []byte {
			p := udpPacket([]byte("more"))
			binary.BigEndian.PutUint16(p[10:], packet.Checksum(p[:20]))
			partial(p, 6)
			completeChecksum(p)
			return p
		}()),
		frameOf(r.nb[nat.WAN].MAC(), srvMAC, reply),
	}
	frame := make([]byte, 128)
	c, nc = tally{}, nat.Counters{}
	for i, wk := range []*worker{lanWk, wanWk} {
		f := frame[:copy(frame, tmpl[i])]
		var fl uint32
		if !r.fast(2, wk, f, &fl, &out, &c, &nc) {
			t.Fatalf("%v: established flow declined", wk.in)
		}
		o := 1 - wk.in
		if out[o].Len() != 1 || !l4Valid(f[14:]) || packet.Ether(f).Src() != r.nb[o].MAC() {
			t.Fatalf("%v: out %d frames, checksum valid %v, source MAC %v", wk.in, out[o].Len(), l4Valid(f[14:]), packet.Ether(f).Src())
		}
		out[o].Reset()
	}
	if c.forwarded != 2 || c.rxFrames != 2 || c.fastPath != 2 || nc.Packets != [2]uint64{1, 1} {
		t.Fatalf("counted %+v, engine counters %+v", c, nc)
	}
	step := func() {
		f := frame[:copy(frame, tmpl[0])]
		var fl uint32
		r.fast(3, lanWk, f, &fl, &out, &c, &nc)
		out[nat.WAN].Reset()
	}
	if a := testing.AllocsPerRun(1000, step); a != 0 {
		t.Fatalf("%v allocations per fast-path frame", a)
	}
}

// TestPartialChecksum: what AF_XDP hands over carries no checksum state, so
// a partial checksum is recognised by its value: the pseudo-header sum.
// A complete checksum is not, and where one happens to equal that value,
// completing it leaves it as it was.
func TestPartialChecksum(t *testing.T) {
	u := udpPacket([]byte("hello, world!!"))
	partial(u, 6)
	tp := tcpPacket([]byte("hello"))
	partial(tp, 16)
	for name, p := range map[string][]byte{"udp": u, "tcp": tp} {
		if !partialChecksum(p) {
			t.Errorf("%s: partial checksum not recognised", name)
		}
		completeChecksum(p)
		if !l4Valid(p) || partialChecksum(p) {
			t.Errorf("%s: completed checksum still looks partial or is wrong", name)
		}
	}
	zero := udpPacket([]byte("x"))
	frag := udpPacket([]byte("abc"))
	partial(frag, 6)
	frag[7] = 1 // fragment offset 8
	for name, p := range map[string][]byte{"udp without checksum": zero, "fragment": frag, "short": u[:27], "empty": nil} {
		if partialChecksum(p) {
			t.Errorf("%s: taken as partial", name)
		}
	}
	// A complete checksum equal to the pseudo-header sum: payload bytes
	// chosen so the segment sums to its complement.
	// With F = fold(P) in the field, the rest of the segment must sum to
	// ~(2P): pick the payload word X for it, R being the rest's sum.
	c := udpPacket([]byte{0, 0, 0, 0})
	c[26], c[27] = 0, 0
	p2 := 2 * packet.PseudoHeaderSum([4]byte(c[12:16]), [4]byte(c[16:20]), 17, len(c)-20)
	r := packet.Sum(c[20:], 0)
	binary.BigEndian.PutUint16(c[28:], ^packet.Fold(uint32(packet.Fold(p2))+uint32(packet.Fold(r))))
	partial(c, 6)
	want := binary.BigEndian.Uint16(c[26:])
	if !l4Valid(c) {
		t.Fatal("the constructed packet's checksum is not right")
	}
	if !partialChecksum(c) {
		t.Fatal("the constructed complete checksum should look partial")
	}
	completeChecksum(c)
	if got := binary.BigEndian.Uint16(c[26:]); got != want || !l4Valid(c) {
		t.Fatalf("completing a complete checksum changed it: %#04x, want %#04x", got, want)
	}
}

// TestInvalidSourceMACDropped: the engine charges a LAN frame's flows to
// its source MAC, and a zero MAC means "none known" there, so a host
// sending frames from 00:00:00:00:00:00 (or a multicast address, which no
// interface has) with forged LAN addresses had no MAC share at all.
// Such frames are dropped before the engine (IEEE 802: no station sends
// from them; a Linux bridge drops them too).
func TestInvalidSourceMACDropped(t *testing.T) {
	r, out := testRouter(t)
	srvMAC := packet.MAC{2, 0, 0, 0, 0, 0x20}
	learn(r, out, nat.WAN, srvMAC, [4]byte{203, 0, 113, 10})
	wk := &worker{in: nat.LAN}
	for _, src := range []packet.MAC{{}, {0x01, 0, 0x5e, 0, 0, 1}, {2, 0, 0, 0, 0, 0x10}} {
		var c tally
		ip := udpPacket([]byte("payload"))
		binary.BigEndian.PutUint16(ip[10:], packet.Checksum(ip[:20]))
		frame := make([]byte, 14+len(ip))
		packet.Ether(frame).SetHeader(r.nb[nat.LAN].MAC(), src, packet.EtherTypeIPv4)
		copy(frame[14:], ip)
		r.handle(1, wk, frame, 0, &out, &c)
		out[nat.WAN].Reset()
		if want := uint64(0); src[5] == 0x10 {
			want = 1
			if c.forwarded != want {
				t.Fatalf("a valid source MAC: forwarded %d", c.forwarded)
			}
		} else if c.forwarded != 0 || c.notForUs != 1 {
			t.Fatalf("source MAC %v: forwarded %d, not for us %d", src, c.forwarded, c.notForUs)
		}
	}
}
