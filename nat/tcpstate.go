package nat

import (
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
	flagReplied // any packet seen in the reply direction
)

// track advances a flow's state for a packet in direction dir and sets its
// deadline. It also clamps the MSS of SYNs when configured.
func (e *Engine) track(now Time, id int32, f *conntrack.Flow, dir conntrack.Dir, ip packet.IPv4) DropReason {
	if dir == conntrack.Reply {
		f.Flags |= flagReplied
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
		e.tcpStep(f, dir, fl)
		e.ct.SetDeadline(id, int64(now+e.tcpTimeout(f.State)))
		return DropNone
	default:
		e.ct.SetDeadline(id, int64(now+e.timeoutFor(ip.Protocol())))
	}
	return DropNone
}

func (e *Engine) tcpTimeout(s uint8) Time {
	switch s {
	case tcpEstablished:
		return e.timeouts.tcpEst
	case tcpClosed:
		return e.timeouts.tcpClosed
	}
	return e.timeouts.tcpTrans
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
	case tcpClosed:
		if fl&packet.TCPSyn != 0 && fl&packet.TCPAck == 0 && dir == conntrack.Original {
			// A new connection reusing the tuple after a reset.
			f.State = tcpSynSent
			f.Flags = 0
		}
		return
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
