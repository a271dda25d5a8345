package nat

import (
	"passgate/conntrack"
	"passgate/packet"
)

// OffloadDir is one direction of an offloaded flow: a packet arriving on
// In as Src:SrcPort > Dst:DstPort leaves by Out as NewSrc:NewSrcPort >
// NewDst:NewDstPort, to the neighbour NextHop.
type OffloadDir struct {
	In, Out                Iface
	Src, Dst               [4]byte
	SrcPort, DstPort       uint16
	NewSrc, NewDst         [4]byte
	NewSrcPort, NewDstPort uint16
	NextHop                [4]byte
	// Seq is the engine's view of this direction of a TCP flow as it is
	// offloaded (Seen if it has one), with the span the data plane may
	// learn from: it records a later segment only if its acknowledgement
	// is within Span of the last one's, as the engine learns (RFC 5961
	// 5), so that a blind attacker cannot set the edges an RST is then
	// judged by (OffloadResync) with one segment of its own.
	Seq OffloadSeq
}

// OffloadFlow is a flow whose packets the data plane may forward without
// the engine (Offloadable), identified by ID and Gen as long as it lives.
type OffloadFlow struct {
	ID    int32
	Gen   uint32
	Proto uint8
	Dir   [2]OffloadDir // Original, Reply
}

// Offloadable calls fn for every flow the data plane may forward without
// the engine, until fn returns false: an established TCP flow or a UDP
// flow seen both ways, with no application helper, not a hairpin, both of
// whose directions have a next hop. What it takes is what FastPath takes
// of TCP and UDP, less what must stay with the engine packet by packet
// (the data plane keeps TCP segments with SYN, FIN, RST or without ACK,
// fragments, IP options, TTL 1 and frames over the MTU for the engine).
// Not for the packet path.
func (e *Engine) Offloadable(now Time, fn func(*OffloadFlow) bool) {
	var of OffloadFlow
	e.ct.Range(func(id int32, f *conntrack.Flow) bool {
		if !e.offloadOK(now, f) || !e.offloadFlow(id, f, &of) {
			return true
		}
		return fn(&of)
	})
}

// offCand is a flow queued for OffloadNew.
type offCand struct {
	id  int32
	gen uint32
}

// offloadMaybe queues flow id for OffloadNew if a packet may have made it
// offloadable: a TCP flow established, a UDP flow answered, not offloaded
// already. Process calls it for each packet a flow's state took; the
// queue holds a flow once (flagOffQueued).
func (e *Engine) offloadMaybe(id int32, f *conntrack.Flow) {
	if f.Flags&(flagOffQueued|flagOffloaded) != 0 {
		return
	}
	switch f.Orig.Proto {
	case packet.ProtoTCP:
		if f.State != tcpEstablished {
			return
		}
	case packet.ProtoUDP:
		if f.Flags&flagReplied == 0 {
			return
		}
	default:
		return
	}
	f.Flags |= flagOffQueued
	e.offQ = append(e.offQ, offCand{id, f.Gen})
}

// OffloadNew calls fn for each flow that became offloadable since the
// last call, as Offloadable does for every flow, but the work follows
// the flows Process made established or answered since (and those
// OffloadAgain gave back), not the size of the table: the data plane
// calls it at every sync, as often as every few milliseconds while the
// slow path is busy. A flow fn returns false for (its next hop not yet
// resolved, the map full) is kept for the next call; one that is not
// offloadable any more is dropped, to be queued again by its next packet
// through Process. After Reconfigure the next call walks every flow. fn
// must not call OffloadAgain. Not for the packet path.
func (e *Engine) OffloadNew(now Time, fn func(*OffloadFlow) bool) {
	of := &e.offFlow
	if e.offScan {
		e.offScan = false
		e.ct.Range(func(id int32, f *conntrack.Flow) bool {
			if f.Flags&flagOffQueued == 0 && e.offloadOK(now, f) && e.offloadFlow(id, f, of) && !fn(of) {
				f.Flags |= flagOffQueued
				e.offQ = append(e.offQ, offCand{id, f.Gen})
			}
			return true
		})
	}
	keep := e.offQ[:0]
	for _, c := range e.offQ {
		if !e.ct.Live(c.id, c.gen) {
			continue // ended; its slot may hold another flow now
		}
		f := e.ct.Get(c.id)
		if e.offloadOK(now, f) && e.offloadFlow(c.id, f, of) && !fn(of) {
			keep = append(keep, c)
			continue
		}
		f.Flags &^= flagOffQueued
	}
	clear(e.offQ[len(keep):])
	e.offQ = keep
}

// OffloadAgain gives flow id of generation gen back to OffloadNew: the
// data plane withdrew it for a reason of its own (its next hop's MAC or
// the way out's MTU changed) while the engine still offers it.
func (e *Engine) OffloadAgain(id int32, gen uint32) {
	if !e.ct.Live(id, gen) {
		return
	}
	if f := e.ct.Get(id); f.Flags&flagOffQueued == 0 {
		f.Flags |= flagOffQueued
		e.offQ = append(e.offQ, offCand{id, gen})
	}
}

// StillOffloadable reports whether flow id of generation gen is still one
// Offloadable would give: the data plane stops forwarding it by itself
// otherwise (it ended, a FIN or RST came, it expired, ...).
func (e *Engine) StillOffloadable(now Time, id int32, gen uint32) bool {
	if !e.ct.Live(id, gen) {
		return false
	}
	var of OffloadFlow
	f := e.ct.Get(id)
	return e.offloadOK(now, f) && e.offloadFlow(id, f, &of)
}

// OffloadCredit gives flow id of generation gen the packets and bytes the
// data plane forwarded for it in each direction since the last credit, and
// moves its deadline as those packets would have. It reports whether the
// flow was still there.
func (e *Engine) OffloadCredit(now Time, id int32, gen uint32, packets, bytes [2]uint64) bool {
	if !e.ct.Live(id, gen) {
		return false
	}
	f := e.ct.Get(id)
	for d := range packets {
		f.Packets[d] += packets[d]
		f.Bytes[d] += bytes[d]
	}
	if packets[0]+packets[1] == 0 {
		return true
	}
	timeout := e.timeouts.udp
	if f.Orig.Proto == packet.ProtoTCP {
		timeout = e.tcpTimeout(f.State)
	}
	if d := int64(now + timeout); d > e.ct.Deadline(id) {
		e.ct.SetDeadline(id, d)
	}
	return true
}

// OffloadStarted tells the engine that the data plane now forwards flow id
// of generation gen by itself: the packets it sees of the flow from then on
// are not all of them, so a TCP flow's sequence numbers judge nothing any
// more (an RST or FIN is taken as it comes).
func (e *Engine) OffloadStarted(id int32, gen uint32) {
	if e.ct.Live(id, gen) {
		e.ct.Get(id).Flags |= flagOffloaded
	}
}

func (e *Engine) offloadOK(now Time, f *conntrack.Flow) bool {
	switch {
	case f.Helper != 0, f.Flags&flagHeld != 0, f.Flags&flagReplied == 0,
		f.Origin == originHairpin, f.Deadline <= int64(now):
		return false
	}
	switch f.Orig.Proto {
	case packet.ProtoTCP:
		return f.State == tcpEstablished
	case packet.ProtoUDP:
		return f.Packets[conntrack.Original] != 0 && f.Packets[conntrack.Reply] != 0
	}
	return false
}

func (e *Engine) offloadFlow(id int32, f *conntrack.Flow, of *OffloadFlow) bool {
	*of = OffloadFlow{ID: id, Gen: f.Gen, Proto: f.Orig.Proto}
	for d, in := range [2]*conntrack.Tuple{&f.Orig, &f.Xlate} {
		nsrc, ndst, nsid, ndid, out := translation(f, conntrack.Dir(d))
		nh, ok := e.nextHop(out, ndst)
		if !ok {
			return false
		}
		of.Dir[d] = OffloadDir{In: Iface(in.Side), Out: out, Src: in.Src, Dst: in.Dst, SrcPort: in.SrcID, DstPort: in.DstID,
			NewSrc: nsrc, NewDst: ndst, NewSrcPort: nsid, NewDstPort: ndid, NextHop: nh}
		if f.Orig.Proto != packet.ProtoTCP {
			continue
		}
		if me := &e.ct.Seq(id)[d]; me.Seen == seqNext|seqAck {
			// ackNear's bound for the largest window this side can
			// advertise. The window as a segment carries it (rounded
			// up: a SYN's is not scaled): the data plane records the
			// field unscaled.
			shift := winShift(e.ct.Seq(id), conntrack.Dir(d))
			win := uint32(0xffff) << shift
			field := uint32((uint64(me.Win) + 1<<shift - 1) >> shift)
			of.Dir[d].Seq = OffloadSeq{Next: me.Next, Ack: me.Ack, Win: field, Seen: true,
				Span: uint32(min(2*uint64(max(win, minWindow)), 1<<31-1))}
		}
	}
	return true
}

// OffloadSeq is what the data plane saw last of one direction of an
// offloaded TCP flow: where its last segment ended, that segment's
// acknowledgement and window as the segment carried it (unscaled: the
// engine scales it by the scales the SYNs agreed, OffloadResync). Seen
// is false if it forwarded none in that direction.
type OffloadSeq struct {
	Next, Ack, Win uint32
	Seen           bool
	// Span (OffloadDir.Seq only): how far from Ack a later segment's
	// acknowledgement may be for the data plane to record it.
	Span uint32
}

// OffloadResync gives offloaded TCP flow id of generation gen the
// sequence edges the data plane saw, and has the engine judge the flow's
// next segment by them, as if it had seen every one: the data plane calls
// it before handing the engine an RST, FIN or SYN of the flow, so that a
// blind RST or FIN is no more taken from an offloaded flow than from
// another. OffloadStarted, once that segment is processed, makes the
// flow's sequence numbers unseen again. It reports whether the flow was
// an offloaded TCP flow.
func (e *Engine) OffloadResync(id int32, gen uint32, seqs [2]OffloadSeq) bool {
	if !e.ct.Live(id, gen) {
		return false
	}
	f := e.ct.Get(id)
	if f.Orig.Proto != packet.ProtoTCP || f.Flags&flagOffloaded == 0 {
		return false
	}
	sq := e.ct.Seq(id)
	var shift [2]uint8
	for d := range seqs {
		shift[d] = winShift(sq, conntrack.Dir(d))
	}
	for d, s := range seqs {
		if s.Seen {
			// The scale the SYNs agreed stays: the window is scaled by
			// it, as seqAdvance scales a segment's.
			sq[d] = conntrack.Seq{Next: s.Next, Ack: s.Ack, Win: s.Win << (shift[d] & 31),
				Scale: sq[d].Scale, Seen: seqNext | seqAck}
		}
	}
	f.Flags &^= flagOffloaded
	return true
}
