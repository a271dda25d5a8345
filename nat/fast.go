package nat

import (
	"encoding/binary"
	"math/bits"
	"sync/atomic"
	"unsafe"

	"passgate/conntrack"
	"passgate/packet"
)

// Counters are packets and bytes received per interface: what FastPath
// counts for its caller. They also hold back the counts of the flow the
// last packets belonged to (a batch is mostly runs of one flow), which
// reach the flow with the next flow's packet or Flush.
type Counters struct {
	Packets [2]uint64
	Bytes   [2]uint64
	run     flowRun
}

// flowRun is consecutive packets of one direction of one flow. For TCP
// it also holds back what the segments said of their direction's
// sequence numbers (the furthest end, the last ACK and window), which
// reach the flow with its counts. Only segments whose ACK is near the
// direction's last (ackNear, from ackLo over ackSpan) and whose end is
// near its edge (seqNear, from endLo over endSpan) count, so that a
// forged segment in a run of real ones moves nothing.
type flowRun struct {
	id             int32
	gen            uint32
	dir            conntrack.Dir
	tcp, learnt    bool // learnt: a segment's ACK was near
	win            uint16
	end, ack       uint32
	ackLo, ackSpan uint32
	endLo, endSpan uint32
	packets, bytes uint64
}

// Flush adds the counts c holds back to their flow. Call it before
// giving up the read lock FastPath ran under.
func (e *Engine) Flush(c *Counters) {
	if c.run.tcp {
		e.flushSeq(&c.run, true)
	}
	e.flushRun(&c.run, true)
}

// flushSeq hands what a TCP run learnt of its direction's sequence
// numbers to its flow (seqAdvance); flushRun, which empties the run, comes
// after. It is apart from flushRun so that flushRun stays small enough to
// be inlined into the paths every packet takes.
func (e *Engine) flushSeq(r *flowRun, shared bool) {
	if f := e.ct.Get(r.id); r.learnt && f.Gen == r.gen {
		seqAdvance(e.ct.Seq(r.id), r.dir, r.end, r.ack, r.win, true, false, !shared)
	}
}

// flushRun adds a run's counts to its flow and empties it: atomically
// under FastPath's read lock (the flow's other direction may be counted
// by another worker meanwhile), plainly for Process, which runs alone. A
// flow's counters are written once per run, not per packet, so two
// workers forwarding its two directions seldom pull its cache line from
// each other.
func (e *Engine) flushRun(r *flowRun, shared bool) {
	if r.packets != 0 {
		if f := e.ct.Get(r.id); f.Gen == r.gen {
			if shared {
				atomic.AddUint64(&f.Packets[r.dir], r.packets)
				atomic.AddUint64(&f.Bytes[r.dir], r.bytes)
			} else {
				f.Packets[r.dir] += r.packets
				f.Bytes[r.dir] += r.bytes
			}
		}
	}
	// Empty: no packets (the next packet starts a run of its own) and
	// nothing learnt to flush; the rest is set when a run starts.
	r.packets, r.tcp = 0, false
}

// FastPath forwards a packet of an established TCP or UDP flow, or of a
// helper's flow it marked for the fast path (an ESP or PPTP GRE tunnel
// passed through: FastHelper), that needs its translation and nothing
// else: no new state, no payload inspection, no fragment, no ICMP to
// send. It reports false, having changed nothing, for every other
// packet; give that one to Process.
//
// Unlike every other method, FastPath may run in several goroutines at
// once, as long as none of them, nor anyone else, calls another method
// meanwhile (a read lock for FastPath, the write lock for the rest). It
// reads the engine and writes only the packet, the caller's counters, and,
// atomically, the IP ID counters (ipid.go), the flow's packet and byte counts, its deadline and, for
// TCP, the sequence numbers of the packet's direction (Seq's Next, Ack and
// Win, moved as seqAdvance does: never Seen, Scale nor the state). So the
// data plane's workers forward the bulk of the traffic in parallel and
// serialise only what changes state. The flow's counts and sequence
// numbers reach it with Flush, which must come before the read lock is
// given up.
func (e *Engine) FastPath(now Time, from Iface, b []byte, c *Counters) (Verdict, bool) {
	ip, err := packet.ParseIPv4(b)
	if err != nil || !ip.ValidChecksum() {
		return Verdict{}, false
	}
	out, nh, ok, _ := e.established(now, from, ip, &c.run)
	if !ok {
		return Verdict{}, false
	}
	c.Packets[from]++
	c.Bytes[from] += uint64(len(ip))
	return forwardTo(out, nh, e.zero), true
}

// established is the fast path behind FastPath, and Process's first step
// too, so that every test of Process runs it. It takes a packet only when
// Process would have reached forward with it and done nothing there but
// count, extend the deadline and rewrite: a transit packet (the
// conditions below are Process's checks, all passed), of a live flow
// without a helper or one its helper marked fast (a tunnel's: ESP, GRE),
// not a held hairpin (hairpin.go), that changes no TCP connection state
// (an ACK-only segment of an established connection: it only moves the
// direction's sequence numbers, Seq's Next, Ack and Win), marks no first
// reply and fits the way out. Its counts and sequence numbers go to run;
// Process flushes them at once. missed says the packet is TCP or UDP and
// its flow is not in the table (Process then need not look it up again). A helper's protocol is keyed by its FastKey and finished
// by its Translated, both bound to FastPath's contract.
func (e *Engine) established(now Time, from Iface, ip packet.IPv4, run *flowRun) (out Iface, nh uint32, ok, missed bool) {
	// The header is read here once, its fields as words: ParseIPv4
	// checked that the header, options and all, is there.
	h := ip[:packet.IPv4MinHeader:packet.IPv4MinHeader]
	if binary.BigEndian.Uint16(h[6:])&0x3fff != 0 || h[8] <= 1 {
		return 0, 0, false, false // a fragment, or a TTL that ends here
	}
	proto := h[9]
	var fh FastHelper // the hooks of the helper owning another protocol
	if proto != packet.ProtoTCP && proto != packet.ProtoUDP {
		owner := e.protoOwner[proto]
		if fh = e.fast[owner]; fh == nil || from == LAN && !e.helperOn[owner-1] {
			return 0, 0, false, false
		}
	}
	src, dst := binary.BigEndian.Uint32(h[12:]), binary.BigEndian.Uint32(h[16:])
	if from == LAN {
		if !e.lanNet.has(src) || src == be32(e.lanAddr) || e.lanNet.edge32(src) ||
			e.lanNet.has(dst) || dst >= 224<<24 || dst>>24 == 127 || dst>>24 == 0 ||
			!e.hasGW && !e.wanNet.has(dst) {
			return 0, 0, false, false
		}
	} else if dst != be32(e.wanAddr) {
		return 0, 0, false, false
	}
	var k conntrack.Key
	var l4 []byte
	if fh == nil {
		if k, l4, ok = fastKey(ip, from); !ok {
			return 0, 0, false, false
		}
	} else {
		t, ok := fh.FastKey(from, ip)
		if !ok {
			return 0, 0, false, false
		}
		k = t.Key()
	}
	id, dir, ok := e.ct.LookupKey(k)
	if !ok {
		// Process need not look again (for TCP and UDP its tuple is
		// this key, and the table has not changed since).
		return 0, 0, false, fh == nil
	}
	f := e.ct.Get(id)
	if f.Flags&flagHeld != 0 || dir == conntrack.Reply && f.Flags&flagReplied == 0 {
		return 0, 0, false, false
	}
	if f.Helper != 0 && f.Flags&flagFast == 0 {
		// A helper's flow its helper must see (FlowPacket, Inspect).
		return 0, 0, false, false
	}
	timeout := e.timeouts.udp
	var tcp packet.TCP
	if proto == packet.ProtoTCP {
		tcp = packet.TCP(l4)
		// An established segment carries ACK; one without is no
		// segment of this connection's to learn from.
		if f.State != tcpEstablished || tcp.Flags()&(packet.TCPSyn|packet.TCPFin|packet.TCPRst|packet.TCPAck) != packet.TCPAck {
			return 0, 0, false, false
		}
		timeout = e.timeouts.tcpEst
	}
	src32, dst32, nsid, ndid, out := translation32(f, dir)
	nh, ok = e.nextHop32(out, dst32)
	if !ok || len(ip) > e.mtu[out] || e.ct.Deadline(id) <= int64(now) {
		return 0, 0, false, false
	}
	if run.packets == 0 || run.id != id || run.gen != f.Gen || run.dir != dir {
		// The deadline moves once per run: now is the batch's.
		// Process (run is its own) has the engine to itself.
		if run == &e.run && !e.ct.ExtendDeadlineLocked(id, int64(now+timeout)) ||
			run != &e.run && !e.ct.ExtendDeadline(id, int64(now+timeout)) {
			return 0, 0, false, false
		}
		if run.tcp {
			e.flushSeq(run, true)
		}
		e.flushRun(run, true)
		// What a run starts with (flowRun's other fields are set
		// before they are read: end and the span by tcpRunStart, ack
		// and win with learnt).
		run.id, run.gen, run.dir, run.packets, run.bytes = id, f.Gen, dir, 0, 0
		run.tcp, run.learnt = false, false
		if tcp != nil {
			seq := e.ct.Seq(id)
			e.tcpRunStart(run, &seq[dir&1], &seq[(dir^1)&1])
		}
	}
	if tcp != nil {
		// Before the rewrite, which changes nothing read here. The
		// header is there (checked above); one bounds check covers it.
		h := tcp[:packet.TCPMinHeader:packet.TCPMinHeader]
		end := binary.BigEndian.Uint32(h[4:]) + uint32(len(tcp)-int(h[12]>>4)*4)
		if ack := binary.BigEndian.Uint32(h[8:]); ack-run.ackLo <= run.ackSpan && end-run.endLo <= run.endSpan {
			if int32(end-run.end) > 0 {
				run.end = end
			}
			run.ack, run.win, run.learnt = ack, binary.BigEndian.Uint16(h[14:]), true
		}
	}
	run.packets++
	run.bytes += uint64(len(ip))
	if fh != nil || f.Flags&flagTranslate != 0 {
		rewrite(ip, AddrOf(src32), AddrOf(dst32), nsid, ndid)
		if f.Flags&flagTranslate != 0 {
			// A tunnel's data is translated like the rest, the GRE key
			// back to the LAN host's call id on the way in.
			e.fast[f.Helper].Translated(f, dir, ip)
		}
		ip.DecTTL()
	} else {
		rewritePorts32(ip, proto == packet.ProtoUDP, src32, dst32, nsid, ndid)
	}
	if h[6]&0x40 == 0 && src32 != src {
		// DF clear (a fragment did not come this way): an ID unique
		// toward the destination (ipid.go).
		setID32(ip, e.ids.next(dst32, proto))
	}
	return out, nh, true, false
}

// fastKey is tupleOf's tuple of a TCP or UDP packet, packed
// (conntrack.Key) from the header as it lies: the addresses in one load,
// the ports in another. ip's header must be there (ParseIPv4 checked it);
// ok is false for other protocols and for a transport header cut short.
func fastKey(ip packet.IPv4, from Iface) (k conntrack.Key, l4 []byte, ok bool) {
	h := ip[:packet.IPv4MinHeader:packet.IPv4MinHeader]
	proto := h[9]
	l4 = ip[int(h[0]&0x0f)*4:]
	switch proto {
	case packet.ProtoTCP:
		if len(l4) < packet.TCPMinHeader || int(l4[12]>>4)*4 < packet.TCPMinHeader || int(l4[12]>>4)*4 > len(l4) {
			return k, nil, false
		}
	case packet.ProtoUDP:
		if len(l4) < packet.UDPHeaderLen {
			return k, nil, false
		}
	default:
		return k, nil, false
	}
	k = conntrack.Key{
		A: binary.LittleEndian.Uint64(h[12:]),
		B: uint64(binary.BigEndian.Uint32(l4))<<16 | uint64(proto)<<8 | uint64(from),
	}
	return k, l4, true
}

// Warm readies the caches for a batch of packets that arrived on from
// and are about to go through FastPath or Process: for each TCP or UDP
// packet (pkts[i][off:], an IPv4 packet: off skips a link-layer header)
// it hashes the tuple and has the CPU fetch the index slot and then the
// lines of the flow the slot names (conntrack.Table.Warm: prefetches,
// the batch's misses in flight together, the flows' still arriving when
// Warm returns), so that each packet does not wait for its own misses
// when its turn comes (with a million flows a lookup misses the caches
// and the TLB). It changes nothing, skips what it cannot read, and may
// run under FastPath's read lock; its result means nothing.
//
//go:noinline
func (e *Engine) Warm(from Iface, pkts [][]byte, off int) uint64 {
	if e.ct.Len() < warmMinFlows {
		return 0 // the table is in the caches: the loads would only cost
	}
	var sink uint64
	var keys [conntrack.WarmBatch]conntrack.Key
	for len(pkts) > 0 {
		var n int
		n, pkts = warmKeys(&keys, from, pkts, off)
		sink ^= e.ct.Warm(keys[:n])
	}
	return sink
}

// warmKeys puts in keys the lookup keys of pkts's TCP and UDP packets (as
// Warm takes them) until keys is full, and returns how many and the
// packets it did not reach.
func warmKeys(keys *[conntrack.WarmBatch]conntrack.Key, from Iface, pkts [][]byte, off int) (int, [][]byte) {
	n := 0
	for i, b := range pkts {
		if len(b) >= off+packet.IPv4MinHeader && b[off]>>4 == 4 && off+int(b[off]&0x0f)*4 <= len(b) {
			if k, _, ok := fastKey(packet.IPv4(b[off:]), from); ok {
				keys[n] = k
				n++
			}
		}
		if n == len(keys) {
			return n, pkts[i+1:]
		}
	}
	return n, nil
}

// warmMinFlows is the fewest live flows Warm bothers with: fewer (their
// flows and index slots within a megabyte or two) stay in a core's caches,
// where Warm cost 5 ns a packet and saved nothing
// (BenchmarkEstablishedUDPLiveBatch, 1 k flows).
const warmMinFlows = 8192

// forwardTo is the verdict forwarding a packet out to the next hop nh
// (an address as an integer, be32). It writes the verdict's eight bytes
// in one store: built field by field, the first copy of it (its return)
// read them back in one load the CPU cannot forward from the narrower
// stores, a stall of some 15 cycles on every established packet
// (TestVerdictLayout keeps the offsets this relies on). zero is zero,
// from memory: a word whose top bytes the compiler knows are zero it
// stores in pieces, which stalls the same way.
func forwardTo(out Iface, nh uint32, zero uint64) (v Verdict) {
	w := uint64(Forward) | uint64(out)<<8 | uint64(bits.ReverseBytes32(nh))<<16 | zero
	binary.LittleEndian.PutUint64((*[8]byte)(unsafe.Pointer(&v))[:], w)
	return v
}

// tcpRunStart starts a TCP run from its direction's sequence state s and
// the other direction's, peer: the edge as it is, the acknowledgements
// near the last (ackNear) and the segment ends near the edge (seqNear);
// any of either until both directions' acknowledgements are known (a
// flushed run is judged again by seqAdvance).
func (e *Engine) tcpRunStart(r *flowRun, s, peer *conntrack.Seq) {
	r.tcp, r.end = true, atomic.LoadUint32(&s.Next)
	r.ackSpan, r.endSpan = ^uint32(0), ^uint32(0) // any x: x-lo <= span
	if s.Seen&peer.Seen&seqAck != 0 {
		w := 2 * max(atomic.LoadUint32(&s.Win), minWindow)
		r.ackLo, r.ackSpan = atomic.LoadUint32(&s.Ack)-w, 2*w
		w = 2 * max(atomic.LoadUint32(&peer.Win), minWindow)
		r.endLo, r.endSpan = r.end-w, 2*w
	}
}

// translation32 is translation with the addresses as integers (one
// load each, where [4]byte values go through memory).
func translation32(f *conntrack.Flow, dir conntrack.Dir) (src, dst uint32, sid, did uint16, out Iface) {
	r := &f.Orig
	if dir == conntrack.Original {
		r = &f.Xlate
	}
	return binary.BigEndian.Uint32(r.Dst[:]), binary.BigEndian.Uint32(r.Src[:]), r.DstID, r.SrcID, Iface(r.Side)
}

// rewritePorts is rewrite and DecTTL for a TCP or UDP packet whose header
// tupleOf checked, with each checksum updated once for all that changed
// (RFC 1624 eqn. 3 over the sum of the changes). Ones'-complement sums
// folded in full give the same bits whether the changes are added one by
// one or at once, so the packet leaves exactly as rewrite and DecTTL
// would leave it: a UDP checksum of zero (none) stays zero, a computed
// zero goes out as 0xffff.
func rewritePorts(ip packet.IPv4, udp bool, nsrc, ndst [4]byte, nsid, ndid uint16) {
	rewritePorts32(ip, udp, be32(nsrc), be32(ndst), nsid, ndid)
}

// rewritePorts32 is rewritePorts with the addresses as integers (be32),
// which travel in registers where a [4]byte goes through memory.
func rewritePorts32(ip packet.IPv4, udp bool, nsrc, ndst uint32, nsid, ndid uint16) {
	h := ip[:packet.IPv4MinHeader:packet.IPv4MinHeader]
	l4 := ip.Payload()
	off := 16 // TCP's checksum
	if udp {
		off = 6
	}
	l4 = l4[: off+2 : off+2]
	osrc, odst := binary.BigEndian.Uint32(h[12:]), binary.BigEndian.Uint32(h[16:])
	var addrs uint32 // the addresses' change, covered by both checksums
	if osrc != nsrc {
		addrs += csumChange32(osrc, nsrc)
		binary.BigEndian.PutUint32(h[12:], nsrc)
	}
	if odst != ndst {
		addrs += csumChange32(odst, ndst)
		binary.BigEndian.PutUint32(h[16:], ndst)
	}
	if c := binary.BigEndian.Uint16(l4[off:]); !udp || c != 0 {
		s := uint32(^c) + addrs
		if o := binary.BigEndian.Uint16(l4[0:]); o != nsid {
			s += uint32(^o) + uint32(nsid)
		}
		if o := binary.BigEndian.Uint16(l4[2:]); o != ndid {
			s += uint32(^o) + uint32(ndid)
		}
		c = csumFold(s)
		if udp && c == 0 {
			c = 0xffff
		}
		binary.BigEndian.PutUint16(l4[off:], c)
	}
	binary.BigEndian.PutUint16(l4[0:], nsid)
	binary.BigEndian.PutUint16(l4[2:], ndid)
	ttl := binary.BigEndian.Uint16(h[8:]) // TTL and protocol
	h[8]--
	s := uint32(^binary.BigEndian.Uint16(h[10:])) + addrs + uint32(^ttl) + uint32(ttl-0x100)
	binary.BigEndian.PutUint16(h[10:], csumFold(s))
}

// csumChange32 is what a 32-bit field changing from o to n adds to a
// checksum's sum.
func csumChange32(o, n uint32) uint32 {
	return uint32(^uint16(o>>16)) + uint32(^uint16(o)) + n>>16 + n&0xffff
}

// csumFold folds a sum of at most 2^20 in full and complements it.
func csumFold(s uint32) uint16 {
	s = s&0xffff + s>>16
	s = s&0xffff + s>>16
	return ^uint16(s)
}
