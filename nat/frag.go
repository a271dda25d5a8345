package nat

import (
	"encoding/binary"

	"passgate/packet"
)

// Fragments. The first fragment carries the transport header, so it alone
// finds (or makes) the flow; it then leaves a note keyed by the datagram's
// (source, destination, protocol, IP id, side) saying how to rewrite the
// others, which only need their addresses changed. Later fragments that
// arrive before the first (RFC 4787 REQ-14 asks for out-of-order support)
// are held in a small fixed pool until it comes or the note expires.
// Every note lives the same fixed time, so notes expire in creation order
// and a FIFO is the whole expiry structure. One source holds at most
// heldPerSource of the buffers (a LAN frame's source is its MAC, so
// forged addresses do not multiply it), so one host cannot take them all;
// when they are all taken anyway (several sources, or WAN addresses, which
// anyone can forge), the oldest held fragments give way to new ones.

const (
	fragNotes     = 1024
	heldBufs      = 128
	heldPerNote   = 16
	heldPerSource = heldBufs / 4
	heldBufSize   = 2048
)

// fragSource names who sent a held fragment: a LAN MAC, or an address.
type fragSource struct {
	mac  bool
	addr [6]byte
}

type fragKey struct {
	src, dst [4]byte
	id       uint16
	proto    uint8
	side     uint8
}

type fragNote struct {
	key      fragKey
	known    bool
	nsrc     [4]byte
	ndst     [4]byte
	nid      uint16 // the datagram's ID after translation (ipid.go)
	out      Iface
	nh       [4]byte
	deadline Time
	held     [heldPerNote]int16
	nheld    int
}

type fragTable struct {
	notes    [fragNotes]fragNote
	index    map[fragKey]int16
	fifo     [fragNotes]int16 // note ids in creation order
	head, n  int
	held     [heldBufs][]byte
	heldLen  [heldBufs]int
	heldBy   [heldBufs]fragSource
	heldUsed [heldBufs]bool
	heldFree []int16
}

// release gives a held buffer back.
func (t *fragTable) release(h int16) {
	t.heldUsed[h] = false
	t.heldFree = append(t.heldFree, h)
}

// holding is how many buffers src holds.
func (t *fragTable) holding(src fragSource) int {
	n := 0
	for i := range t.heldBy {
		if t.heldUsed[i] && t.heldBy[i] == src {
			n++
		}
	}
	return n
}

func newFragTable() *fragTable {
	t := &fragTable{index: make(map[fragKey]int16, fragNotes)}
	t.heldFree = make([]int16, heldBufs)
	for i := range t.held {
		t.held[i] = make([]byte, heldBufSize)
		t.heldFree[i] = int16(heldBufs - 1 - i)
	}
	return t
}

func keyOf(ip packet.IPv4, side Iface) fragKey {
	return fragKey{src: ip.Src(), dst: ip.Dst(), id: ip.ID(), proto: ip.Protocol(), side: uint8(side)}
}

// note finds or makes the note for k, evicting the oldest when full.
func (t *fragTable) note(k fragKey, now, life Time) *fragNote {
	if i, ok := t.index[k]; ok {
		return &t.notes[i]
	}
	if t.n == fragNotes {
		t.evict(t.fifo[t.head])
	}
	// The slot at the FIFO's tail is free: notes leave from the head only.
	i := int16((t.head + t.n) % fragNotes)
	t.fifo[i] = i
	t.n++
	nt := &t.notes[i]
	*nt = fragNote{key: k, deadline: now + life}
	t.index[k] = i
	return nt
}

// evict removes the oldest note (which must be id) and frees what it held.
func (t *fragTable) evict(id int16) {
	nt := &t.notes[id]
	for _, h := range nt.held[:nt.nheld] {
		t.release(h)
	}
	delete(t.index, nt.key)
	*nt = fragNote{}
	t.head = (t.head + 1) % fragNotes
	t.n--
}

// dropOldestHeld frees the fragments held by the oldest note that holds
// any, other than k's, and returns how many it freed.
func (t *fragTable) dropOldestHeld(k fragKey) int {
	for i := 0; i < t.n; i++ {
		nt := &t.notes[t.fifo[(t.head+i)%fragNotes]]
		if nt.nheld == 0 || nt.key == k {
			continue
		}
		n := nt.nheld
		for _, h := range nt.held[:n] {
			t.release(h)
		}
		nt.nheld = 0
		return n
	}
	return 0
}

func (t *fragTable) expire(now Time, e *Engine) {
	for t.n > 0 {
		id := t.fifo[t.head]
		nt := &t.notes[id]
		if nt.deadline > now {
			return
		}
		if nt.nheld > 0 {
			e.stats.Drops[DropFragments] += uint64(nt.nheld)
		}
		t.evict(id)
	}
}

// firstFragment records how the datagram whose first fragment was just
// translated (addresses osrc, odst and ID oid as it arrived) is
// rewritten, and sends the fragments held for it.
func (e *Engine) firstFragment(now Time, from Iface, osrc, odst [4]byte, oid uint16, ip packet.IPv4, out Iface, nh [4]byte) {
	k := fragKey{src: osrc, dst: odst, id: oid, proto: ip.Protocol(), side: uint8(from)}
	nt := e.frags.note(k, now, e.timeouts.frag)
	nt.known = true
	nt.nsrc, nt.ndst, nt.nid, nt.out, nt.nh = ip.Src(), ip.Dst(), ip.ID(), out, nh
	for _, h := range nt.held[:nt.nheld] {
		b := e.frags.held[h][:e.frags.heldLen[h]]
		e.sendFragment(packet.IPv4(b), nt, true)
		e.frags.release(h)
	}
	nt.nheld = 0
}

// laterFragment handles a fragment with a non-zero offset.
func (e *Engine) laterFragment(now Time, from Iface, ip packet.IPv4) Verdict {
	if from == LAN && !e.lanNet.contains(ip.Src()) {
		return e.drop(DropSpoofedSource)
	}
	if from == WAN && ip.Dst() != e.wanAddr {
		return e.drop(DropMartian)
	}
	if ip.Protocol() == packet.ProtoTCP && ip.FragmentOffset() == 8 {
		// No sender fragments a TCP header there: such a fragment can
		// only overwrite the first one's flags and numbers on
		// reassembly (RFC 1858 section 4, RFC 3128).
		return e.drop(DropMalformed)
	}
	k := keyOf(ip, from)
	if i, ok := e.frags.index[k]; ok && e.frags.notes[i].known {
		nt := &e.frags.notes[i]
		if ip.TTL() <= 1 {
			return e.drop(DropTTLExceeded)
		}
		return e.sendFragment(ip, nt, false)
	}
	// Before its first fragment: hold a copy.
	a := ip.Src()
	src := fragSource{addr: [6]byte{a[0], a[1], a[2], a[3]}}
	if from == LAN && e.srcMAC != ([6]byte{}) {
		src = fragSource{mac: true, addr: e.srcMAC}
	}
	if len(ip) > heldBufSize || e.frags.holding(src) >= heldPerSource {
		return e.drop(DropFragments)
	}
	if len(e.frags.heldFree) == 0 {
		// Full: the oldest held fragments make room, so that sources
		// the WAN cannot tell apart from forged ones, holding fragments
		// that never complete, do not shut everyone out.
		n := e.frags.dropOldestHeld(k)
		if n == 0 {
			return e.drop(DropFragments)
		}
		e.stats.Drops[DropFragments] += uint64(n)
	}
	nt := e.frags.note(k, now, e.timeouts.frag)
	if nt.nheld == heldPerNote {
		return e.drop(DropFragments)
	}
	h := e.frags.heldFree[len(e.frags.heldFree)-1]
	e.frags.heldFree = e.frags.heldFree[:len(e.frags.heldFree)-1]
	copy(e.frags.held[h], ip)
	e.frags.heldLen[h] = len(ip)
	e.frags.heldBy[h] = src
	e.frags.heldUsed[h] = true
	nt.held[nt.nheld] = h
	nt.nheld++
	return Verdict{Action: Consumed}
}

// sendFragment rewrites a later fragment's addresses and ID. A held fragment
// (copy true) goes out as an emitted packet, since its buffer is the
// engine's; a fresh one is forwarded in place.
func (e *Engine) sendFragment(ip packet.IPv4, nt *fragNote, copied bool) Verdict {
	if ip.Src() != nt.nsrc {
		ip.SetSrc(nt.nsrc)
	}
	if ip.Dst() != nt.ndst {
		ip.SetDst(nt.ndst)
	}
	if ip.ID() != nt.nid {
		ip.SetID(nt.nid)
	}
	ip.DecTTL()
	if len(ip) > e.mtu[nt.out] {
		if ip.DontFragment() {
			return e.drop(DropFragNeeded)
		}
		e.fragmentOut(ip, nt.out, nt.nh)
		return Verdict{Action: Consumed}
	}
	if !copied {
		return Verdict{Action: Forward, Out: nt.out, NextHop: nt.nh}
	}
	buf := e.emitBuf(len(ip))
	if buf == nil {
		return e.drop(DropEmitFull)
	}
	copy(buf[EtherHeadroom:], ip)
	e.emit(nt.out, nt.nh, buf)
	return Verdict{Action: Consumed}
}

// fragmentOut splits a packet without DF that is larger than the egress
// MTU into fragments, emitted in order.
func (e *Engine) fragmentOut(ip packet.IPv4, out Iface, nh [4]byte) {
	hl := ip.HeaderLen()
	payload := ip.Payload()
	chunk := (e.mtu[out] - hl) &^ 7
	base := ip.FragmentOffset()
	lastMF := ip.MoreFragments()
	for off := 0; off < len(payload); off += chunk {
		end := off + chunk
		if end > len(payload) {
			end = len(payload)
		}
		buf := e.emitBuf(hl + end - off)
		if buf == nil {
			return
		}
		p := packet.IPv4(buf[EtherHeadroom:])
		copy(p, ip[:hl])
		copy(p[hl:], payload[off:end])
		binary.BigEndian.PutUint16(p[2:], uint16(hl+end-off))
		v := uint16((base+off)/8) & 0x1fff
		if end < len(payload) || lastMF {
			v |= 0x2000
		}
		binary.BigEndian.PutUint16(p[6:], v)
		p.ComputeChecksum()
		e.emit(out, nh, buf)
	}
}
