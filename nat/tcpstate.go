package nat

import (
	"sync/atomic"

	"passgate/conntrack"
	"passgate/packet"
)

// TCP states of a flow (conntrack.Flow.State), RFC 5382 terms: a
// connection is transitory until both SYNs are seen and again once a FIN or
// RST is, established in between.
const (
	tcpSynSent uint8 = iota + 1
	tcpSynRecv
	tcpEstablished
	tcpFinWait // one side has sent FIN
	tcpClosing // both sides have sent FIN
	tcpClosed  // RST seen
)

var tcpStateNames = [...]string{"", "syn-sent", "syn-recv", "established", "fin-wait", "closing", "closed"}

// Flow.Flags bits for TCP.
const (
	flagFinOrig uint16 = 1 << iota
	flagFinReply
	flagSynReply
	flagReplied   // any packet seen in the reply direction
	flagFast      // a helper's flow the fast path may take (HelperEnv.SetFast)
	flagTranslate // ... and whose packets its helper finishes (FastHelper.Translated)
	flagClassed   // its counting class is set (sessionClass)
	// flagOffloaded: the data plane forwarded the flow by itself
	// (OffloadStarted), so its sequence numbers went by unseen.
	flagOffloaded
	// flagOffQueued: the flow is in Engine.offQ (OffloadNew).
	flagOffQueued
)

// track advances a flow's state for a packet in direction dir and sets its
// deadline. It also clamps the MSS of SYNs when configured.
func (e *Engine) track(now Time, id int32, f *conntrack.Flow, dir conntrack.Dir, ip packet.IPv4) DropReason {
	if dir == conntrack.Reply {
		f.Flags |= flagReplied
	}
	if f.Packets[1-dir] != 0 && ip.Protocol() != packet.ProtoTCP {
		// Seen both ways: no early drop may take it (TCP: once
		// established, below).
		e.ct.Replied(id)
	}
	switch ip.Protocol() {
	case packet.ProtoTCP:
		if ip.IsFragment() && ip.FragmentOffset() != 0 {
			break
		}
		t := packet.TCP(ip.Payload())
		fl := t.Flags()
		if fl&packet.TCPSyn != 0 && e.cfg.MSSClamp != 0 {
			t.ClampMSS(e.cfg.MSSClamp)
		}
		if f.Flags&flagOffloaded != 0 {
			// The data plane forwarded the flow by itself: its sequence
			// numbers went by unseen, so nothing is judged by them any
			// more (as Linux's offloaded conntracks are liberal,
			// nf_flow_table). An RST ends the flow and a FIN closes it,
			// rather than being taken for a blind attacker's and keeping
			// a closed connection offloaded until it idles out.
			// The window scales the SYNs agreed stay (OffloadResync
			// scales the data plane's windows by them).
			sq := e.ct.Seq(id)
			*sq = [2]conntrack.Seq{{Scale: sq[0].Scale}, {Scale: sq[1].Scale}}
		}
		if fl&packet.TCPRst != 0 && f.State != tcpClosed {
			switch rstCheck(e.ct.Seq(id), dir, t) {
			case rstInWindow:
				// Passed on unchanged, the flow kept as it was (its
				// deadline too): the endpoint answers with a challenge
				// ACK (RFC 5961 3.2), and a real reset follows at the
				// edge if the peer meant it.
				e.stats.RSTInWindow++
				return DropNone
			case rstOutOfWindow:
				// Passed on unchanged too: every TCP ignores an RST
				// outside its window, so passing it costs nothing, and
				// passgate misjudging a window (a scale it did not see)
				// must never swallow a real reset.
				e.stats.RSTOutOfWindow++
				return DropNone
			}
		} else if !tcpLearn(e.ct.Seq(id), dir, f.State, t, tcpSegEnd(ip, t)) && fl&(packet.TCPSyn|packet.TCPFin) != 0 {
			// A SYN or FIN a blind attacker could have sent (not at
			// the edge, or acknowledging what the endpoint never
			// would): passed on for the endpoint to judge (it answers
			// a SYN with a challenge ACK, RFC 5961 4), the flow kept
			// as it was. It would otherwise set the edge an RST is
			// judged by, or cut the flow's timeout.
			e.stats.TCPStateIgnored++
			return DropNone
		}
		e.tcpStep(f, dir, fl)
		if f.State == tcpClosed || f.State == tcpClosing {
			// Reset, or both FINs seen (a FIN then a reset is reset):
			// the connection is over, kept only for a retransmission
			// or a lost reset, so among the first an early drop
			// takes, and the 4 min RFC 7857 2.2 keeps it for cost no
			// share a slot (conntrack Closed; nothing once it is
			// there). One FIN alone leaves it assured: the other side
			// may send for long.
			e.ct.Closed(id)
		} else if f.State >= tcpEstablished {
			// A half-open connection (a SYN answered by a SYN-ACK to a
			// forged source, say) stays one an early drop may take.
			e.ct.Replied(id)
		}
		e.ct.SetDeadline(id, int64(now+e.tcpTimeout(f.State)))
		return DropNone
	default:
		e.ct.SetDeadline(id, int64(now+e.timeoutFor(ip.Protocol())))
	}
	return DropNone
}

// tcpTimeout is the idle timeout of a flow in state s: RFC 7857 section
// 2.1's opening and closing phases apart, each 4 min by default.
func (e *Engine) tcpTimeout(s uint8) Time {
	switch s {
	case tcpEstablished:
		return e.timeouts.tcpEst
	case tcpFinWait, tcpClosing:
		return e.timeouts.tcpClose
	case tcpClosed:
		return e.timeouts.tcpClosed
	}
	return e.timeouts.tcpOpen // syn-sent, syn-recv
}

// tcpStep is the state machine. It is deliberately permissive about
// sequence numbers (a NAT in the middle sees retransmissions and losses
// the endpoints sort out) and strict about what opens and closes.
func (e *Engine) tcpStep(f *conntrack.Flow, dir conntrack.Dir, fl uint8) {
	if fl&packet.TCPRst != 0 {
		f.State = tcpClosed
		return
	}
	switch f.State {
	case 0:
		f.State = tcpSynSent
	case tcpSynSent:
		if dir == conntrack.Reply && fl&packet.TCPSyn != 0 {
			// SYN-ACK, or a SYN of a simultaneous open (RFC 5382 REQ-2).
			f.Flags |= flagSynReply
			f.State = tcpSynRecv
		}
	case tcpSynRecv:
		if dir == conntrack.Original && fl&packet.TCPAck != 0 && fl&packet.TCPSyn == 0 {
			f.State = tcpEstablished
		} else if dir == conntrack.Reply && fl&packet.TCPAck != 0 && fl&packet.TCPSyn == 0 && f.Flags&flagSynReply != 0 {
			// Simultaneous open completes from either side.
			f.State = tcpEstablished
		}
	case tcpClosed, tcpClosing:
		if fl&packet.TCPSyn != 0 && fl&packet.TCPAck == 0 && dir == conntrack.Original {
			// A new connection reusing the tuple after a reset, or
			// after both FINs (the client's TIME_WAIT is shorter than
			// the transitory timeout).
			f.State = tcpSynSent
			// The connection's flags only: a held hairpin stays held
			// (hairpin.go), a helper's flow keeps its fast path.
			f.Flags &^= flagFinOrig | flagFinReply | flagSynReply | flagReplied
			return
		}
		if f.State == tcpClosed {
			return
		}
	}
	if fl&packet.TCPFin != 0 {
		if dir == conntrack.Original {
			f.Flags |= flagFinOrig
		} else {
			f.Flags |= flagFinReply
		}
		if f.Flags&(flagFinOrig|flagFinReply) == flagFinOrig|flagFinReply {
			f.State = tcpClosing
		} else {
			f.State = tcpFinWait
		}
	}
}

// RSTs. passgate keeps, for each direction of a TCP flow, the sequence
// number after the last segment sent that way and the last acknowledgement
// and window sent that way (conntrack.Seq), so that only a reset at the
// edge of the receiver's window (RFC 5961 3.2) ends a flow: a blind
// attacker must guess the 32-bit number exactly, not just land in a
// window. What is learnt is bounded too: a segment moves its direction's
// edge, and an ACK its acknowledgement, only forward and by at most a
// window (seqAdvance).

const (
	rstExact = iota
	rstInWindow
	rstOutOfWindow
)

const (
	seqNext = 1 << iota // Seq.Next is known
	seqAck              // Seq.Ack and Seq.Win are
	// seqFirst: the original direction is opening (no ACK sent yet) and
	// Seq.Ack holds the end of the first SYN, another SYN's being Next
	// (synAnswers).
	seqFirst
)

// minWindow is the least window assumed of a side, so that zero windows
// and unseen scales do not make passgate stricter than the endpoints.
const minWindow = 65535

// tcpSegEnd is the sequence number after a segment: its data, and one each
// for SYN and FIN.
func tcpSegEnd(ip packet.IPv4, t packet.TCP) uint32 {
	n := len(ip.Payload()) - t.HeaderLen()
	if n < 0 {
		n = 0
	}
	end := t.Seq() + uint32(n)
	fl := t.Flags()
	if fl&packet.TCPSyn != 0 {
		end++
	}
	if fl&packet.TCPFin != 0 {
		end++
	}
	return end
}

// rstCheck judges a reset sent in direction d.
func rstCheck(s *[2]conntrack.Seq, d conntrack.Dir, t packet.TCP) int {
	me, peer := &s[d], &s[1-d]
	if me.Seen&seqNext == 0 {
		// This side sent nothing passgate saw: the answer to a SYN,
		// acceptable if it acknowledges it (RFC 9293 3.10.7.3).
		if peer.Seen&seqNext == 0 || t.Flags()&packet.TCPAck != 0 && synAnswers(peer, t.Ack()) {
			return rstExact
		}
		return rstOutOfWindow
	}
	seq := t.Seq()
	if seq == me.Next || peer.Seen&seqAck != 0 && seq == peer.Ack {
		return rstExact
	}
	base, win := me.Next, uint32(minWindow)
	if peer.Seen&seqAck != 0 {
		base, win = peer.Ack, max(peer.Win, minWindow)
	}
	if seq-base < win {
		return rstInWindow
	}
	return rstOutOfWindow
}

// tcpLearn takes what a segment other than an RST sent in direction d of
// a flow in state st says about its direction: a SYN that opens the
// connection sets where it starts and its window scale; any other segment
// moves the edge and acknowledgement (seqAdvance). It reports whether the
// segment is one the endpoint could have sent: a SYN of a synchronized
// connection, a SYN-ACK not acknowledging the SYN, or a segment whose
// acknowledgement is more than twice a window from this side's last
// teaches nothing, so that a blind attacker must guess the sequence
// number and the acknowledgement at once to move the edge (RFC 5961 5),
// and cannot set it with a SYN.
func tcpLearn(s *[2]conntrack.Seq, d conntrack.Dir, st uint8, t packet.TCP, end uint32) bool {
	fl := t.Flags()
	me, peer := &s[d], &s[1-d]
	if fl&packet.TCPSyn != 0 {
		var synData uint32
		switch {
		case d == conntrack.Original && fl&packet.TCPAck == 0 && (st == 0 || st == tcpSynSent || st == tcpClosed || st == tcpClosing):
			// A new connection (perhaps reusing the tuple after a
			// reset or both FINs), or its SYN again: forget the old.
			// While it opens, a SYN with another initial sequence
			// number may be a LAN host's forging its neighbour's
			// address (or the host's own, having restarted): the
			// first SYN's end is kept beside it, and the answer may
			// acknowledge either (synAnswers), as Linux's conntrack
			// takes a SYN-ACK acknowledging a SYN it ignored.
			first, keep := me.Next, st == tcpSynSent && me.Seen&seqNext != 0 && me.Seen&seqAck == 0 && end != me.Next
			if me.Seen&seqFirst != 0 {
				first = me.Ack
			}
			*s = [2]conntrack.Seq{}
			if keep && first != end {
				me.Ack, me.Seen = first, seqFirst
			}
			// What it carries (TCP Fast Open, RFC 7413), which the
			// server may take or leave (synAnswers).
			synData = end - t.Seq() - 1
		case me.Seen&seqNext == 0 && (fl&packet.TCPAck == 0 || peer.Seen&seqNext == 0 || synAnswers(peer, t.Ack())):
			// The answer to the SYN (acknowledging it exactly, the
			// first's or the last's: the edge is then the one it
			// acknowledges), or the other SYN of a simultaneous open.
			if peer.Seen&seqAck == 0 && (peer.Seen&seqFirst != 0 || peer.Win != 0) {
				if fl&packet.TCPAck != 0 {
					peer.Next = t.Ack()
				}
				peer.Ack, peer.Win, peer.Seen = 0, 0, peer.Seen&^seqFirst
			}
		case me.Seen&seqNext != 0 && end == me.Next:
			// The same SYN again (a SYN-ACK retransmitted): its ACK
			// may still teach.
			return seqAdvance(s, d, end, t.Ack(), t.Window(), fl&packet.TCPAck != 0, true, true)
		default:
			return false
		}
		me.Next = end
		me.Seen |= seqNext
		me.Scale = 0
		if sc, ok := t.WScale(); ok {
			me.Scale = min(sc, 14) + 1
		}
		seqAdvance(s, d, end, t.Ack(), t.Window(), fl&packet.TCPAck != 0, true, true)
		if synData != 0 {
			me.Win = synData // until its first ACK: unused, as Ack
		}
		return true
	}
	if st == tcpSynSent && d == conntrack.Original {
		// Opening, no answer yet: the side sends nothing but its SYN
		// (a Fast Open SYN carries its data), so another segment is
		// no endpoint's. One from a neighbour forging the host's
		// address moved the edge (or took the first acknowledgement,
		// and the first SYN's end with it) the real SYN-ACK is judged
		// by, leaving the connection opening (TestForgedSYNWhileOpening).
		return false
	}
	if me.Seen&peer.Seen&seqAck != 0 && !seqNear(end, me.Next, peer.Win) {
		// Far from the edge: an ACK near the last alone would move the
		// acknowledgement an RST is exact at (TestRSTAtForgedAck). As
		// for a run of the fast path (tcpRunStart), which seqAdvance
		// then trusts with this.
		return false
	}
	if !seqAdvance(s, d, end, t.Ack(), t.Window(), fl&packet.TCPAck != 0, false, true) {
		return false
	}
	if fl&packet.TCPFin != 0 && me.Seen&seqNext != 0 {
		// A FIN ends where the edge now is (it moved there, or was
		// there: a retransmission); one beyond it was not the
		// endpoint's.
		return end == atomic.LoadUint32(&me.Next)
	}
	return true
}

// winShift is how far direction d's window field is scaled: by its SYN's
// window scale if both SYNs had one (RFC 7323 2.2), else not at all.
func winShift(s *[2]conntrack.Seq, d conntrack.Dir) uint8 {
	if me, peer := &s[d&1], &s[(d^1)&1]; me.Scale != 0 && peer.Scale != 0 {
		return min(me.Scale-1, 14)
	}
	return 0
}

// synAnswers says whether ack acknowledges the SYN of the side whose
// sequence state is peer, one passgate saw: the last one's end, or the
// first one's while that side is opening (seqFirst), or the last one
// without the data it carried (Win while that side sent no ACK: a server
// need not take a Fast Open SYN's data, RFC 7413 section 4.2).
func synAnswers(peer *conntrack.Seq, ack uint32) bool {
	return ack == peer.Next || peer.Seen&seqFirst != 0 && ack == peer.Ack ||
		peer.Seen&seqAck == 0 && peer.Win != 0 && ack == peer.Next-peer.Win
}

// ackNear says whether ack is within twice a window (win, at least
// minWindow) of last, either way: one the side whose last acknowledgement
// was last could send (acknowledgements only move forward, by at most
// what the other side sent; twice leaves room for a window grown since,
// a run not yet flushed, and reordering).
func ackNear(ack, last, win uint32) bool {
	w := 2 * max(win, minWindow)
	return ack-last+w <= 2*w
}

// seqNear says whether a segment ending at end is within twice a window
// (win, the receiver's, at least minWindow) of the edge next, either way:
// one the side could send (ahead by at most the receiver's window; behind
// by what it may retransmit). A segment teaches (tcpLearn, a fast-path
// run) only if both its end and its acknowledgement are near, so that a
// blind attacker must guess both at once (RFC 5961 5): with the ACK alone
// it moved the acknowledgement an RST is exact at.
func seqNear(end, next, win uint32) bool {
	w := 2 * max(win, minWindow)
	return end-next+w <= 2*w
}

// store32 stores v at p: plainly under the engine's write lock (locked:
// no FastPath runs), atomically otherwise. An atomic store is a locked
// instruction on x86 (XCHG, a full fence, ~20 cycles): two of them were a
// third of an established TCP segment's time in Process.
func store32(p *uint32, v uint32, locked bool) {
	if locked {
		*p = v
	} else {
		atomic.StoreUint32(p, v)
	}
}

// seqAdvance moves direction d's state for a segment ending at end that
// acknowledged ack (if acked) and advertised win (unscaled; a SYN's never
// is scaled). Each number moves only forward and by at most what the
// window allows from its own last value: the edge by twice the window the
// other side last advertised (so a batch's worth of segments, or a window
// grown since, still counts), the acknowledgement by twice the window this
// side advertised (the same span ackNear accepts a segment's ACK in, so a
// segment that teaches also moves the acknowledgement, and a window grown
// within a run cannot leave it behind for good). Bounding each by its own last value, not by the other
// direction's, keeps them from holding each other back when the two
// directions are flushed out of order (FastPath's workers flush a run at
// the end of their batch). A blind attacker moving a number must land
// within a window of it, as RFC 5961 assumes of in-window data.
//
// FastPath's workers may run it for the two directions of one flow at
// once, so it reads and writes the numbers atomically (plainly when
// locked: under the engine's write lock); Seen and Scale change only
// under that lock.
func seqAdvance(s *[2]conntrack.Seq, d conntrack.Dir, end, ack uint32, win uint16, acked, syn, locked bool) bool {
	// d&1 and d^1: no bounds check (a Dir is 0 or 1).
	me, peer := &s[d&1], &s[(d^1)&1]
	if me.Seen&seqNext == 0 {
		return true
	}
	if me.Seen&seqAck != 0 && !syn && (!acked || !ackNear(ack, atomic.LoadUint32(&me.Ack), atomic.LoadUint32(&me.Win))) {
		// Not what this side could send: no ACK in a synchronized
		// connection, or one far from its last (RFC 5961 5).
		return false
	}
	if step := end - atomic.LoadUint32(&me.Next); int32(step) > 0 {
		if peer.Seen&seqAck == 0 || step <= 2*max(atomic.LoadUint32(&peer.Win), minWindow) {
			store32(&me.Next, end, locked)
		}
	}
	if !acked || me.Seen&seqAck == 0 && !locked {
		return true
	}
	if me.Seen&seqAck != 0 {
		if step := ack - atomic.LoadUint32(&me.Ack); int32(step) < 0 || step > 2*max(atomic.LoadUint32(&me.Win), minWindow) {
			return true // older than this side's last, or past what the other could send
		}
	} else if peer.Seen&seqNext != 0 && ack != atomic.LoadUint32(&peer.Next) {
		return true // the first ACK acknowledges the other side's SYN exactly
	}
	shift := uint8(0)
	if me.Scale != 0 && peer.Scale != 0 && !syn {
		shift = me.Scale - 1
	}
	store32(&me.Ack, ack, locked)
	// shift is at most 14 (Scale is kept at most 15): &31 spares the
	// check for a shift past the width.
	if w := uint32(win) << (shift & 31); atomic.LoadUint32(&me.Win) != w {
		store32(&me.Win, w, locked) // seldom changes: spare the store
	}
	if locked {
		me.Seen = me.Seen&^seqFirst | seqAck
	}
	return true
}
