package nat

import (
	"encoding/binary"

	"passgate/alg/pptp"
	"passgate/conntrack"
	"passgate/packet"
)

// pptpConn is the state of one PPTP control connection: both directions of
// the stream and its calls. A fixed pool holds them, so a LAN full of PPTP
// clients costs a bounded amount and nothing is allocated per connection.
type pptpConn struct {
	inUse  bool
	flow   int32
	gen    uint32
	host   [4]byte
	server [4]byte
	out    pptp.Stream
	in     pptp.Stream
	hOut   pptpHandler
	hIn    pptpHandler
	broken bool
	// role is the LAN host's end: the PNS of a connection it opened, or
	// the PAC of one that came in through a port forward (or the DMZ),
	// whose LAN side is then the flow's reply direction.
	role  pptp.Role
	calls [pptpCallsPerConn]pptpCall
}

// pptpCall is one call: the client's call id (inside), the one the server
// sees (outside, unique per server), the server's, and the GRE flow.
type pptpCall struct {
	inUse   bool
	up      bool
	inside  uint16
	outside uint16
	server  uint16
	gre     int32
	greGen  uint32
}

// pptpHandler implements pptp.Handler for one direction of a connection.
type pptpHandler struct {
	e   *Engine
	c   *pptpConn
	out bool
	now Time
}

func (e *Engine) pptpInit() {
	e.pptp = make([]pptpConn, pptpConnsMax)
	for i := range e.pptp {
		c := &e.pptp[i]
		c.hOut = pptpHandler{e: e, c: c, out: true}
		c.hIn = pptpHandler{e: e, c: c}
	}
}

// pptpAttach gives a new control flow its state; false when the pool is
// used up. role is the LAN host's: PNS for a flow from the LAN, PAC for one
// from the WAN to a server on the LAN.
func (e *Engine) pptpAttach(id int32, role pptp.Role) bool {
	f := e.ct.Get(id)
	host, peer := f.Orig.Src, f.Orig.Dst
	if role == pptp.PAC {
		host, peer = f.Reply.Src, f.Orig.Src
	}
	for i := range e.pptp {
		c := &e.pptp[i]
		if c.inUse {
			continue
		}
		hOut, hIn := c.hOut, c.hIn
		*c = pptpConn{inUse: true, flow: id, gen: f.Gen, host: host, server: peer, hOut: hOut, hIn: hIn, role: role}
		f.Helper = helperPPTP
		f.Data = uint64(i)
		return true
	}
	return false
}

// pptpInspect follows the control stream of a segment and translates call
// ids in it. Segments beyond what the stream has seen are dropped so the
// sender repeats them in order: a call id in bytes not yet followed could
// not be translated.
func (e *Engine) pptpInspect(now Time, f *conntrack.Flow, dir conntrack.Dir, ip packet.IPv4) DropReason {
	if ip.IsFragment() {
		return DropNone
	}
	c := &e.pptp[f.Data]
	t := packet.TCP(ip.Payload())
	st, h := &c.out, &c.hOut
	if (dir == conntrack.Reply) != (c.role == pptp.PAC) { // from the WAN
		st, h = &c.in, &c.hIn
	}
	if t.Flags()&packet.TCPSyn != 0 {
		st.Start(t.Seq() + 1)
		return DropNone
	}
	p := t.Payload()
	if len(p) == 0 {
		return DropNone
	}
	h.now = now
	v, changed := st.Feed(t.Seq(), p, h)
	if len(e.doomed) > 0 {
		e.reap() // calls that ended take their GRE flows with them
	}
	if v == pptp.Ahead {
		return DropPPTPOutOfOrder
	}
	if st.Broken() != nil && !c.broken {
		c.broken = true
		e.stats.PPTPUnparsed++
		e.event(now, Event{Kind: EventPPTPUnparsed, Host: c.host, Peer: c.server})
	}
	if changed {
		// The payload changed; the addresses and ports change next,
		// incrementally, on top of a right checksum.
		t[16], t[17] = 0, 0
		sum := packet.PseudoHeaderSum(ip.Src(), ip.Dst(), packet.ProtoTCP, len(t))
		binary.BigEndian.PutUint16(t[16:], packet.Fold(packet.Sum(t, sum)))
	}
	return DropNone
}

func (h *pptpHandler) Field(typ uint16, off int, val uint16) uint16 {
	c, e := h.c, h.e
	if h.out {
		if o, ok := pptp.OwnCallIDField(c.role, typ); !ok || o != off {
			return val
		}
		if cl := c.callByInside(val); cl != nil {
			return cl.outside
		}
		if typ == pptp.CallClearRequest || typ == pptp.CallDisconnectNotify {
			return val // a call this connection never set up
		}
		cl := c.newCall()
		if cl == nil {
			return val
		}
		out, ok := e.pptpAllocCallID(c, val, cl)
		if !ok {
			*cl = pptpCall{}
			return val
		}
		cl.inUse, cl.inside, cl.outside = true, val, out
		return out
	}
	if o, ok := pptp.PeerCallIDField(c.role, typ); !ok || o != off {
		return val
	}
	if cl := c.callByOutside(val); cl != nil {
		return cl.inside
	}
	return val
}

func (h *pptpHandler) Message(typ uint16, hdr []byte) {
	c, e := h.c, h.e
	if len(hdr) < 16 {
		return
	}
	id12 := binary.BigEndian.Uint16(hdr[12:])
	id14 := binary.BigEndian.Uint16(hdr[14:])
	switch {
	case typ == pptp.OutgoingCallReply || typ == pptp.IncomingCallReply:
		// The answer to a call request (from the PAC to an outgoing call,
		// from the PNS to an incoming one): hdr holds the sender's call id
		// and its peer's. From the LAN that is the LAN host's own (inside)
		// and the remote's; from the WAN the remote's and the outside id.
		var cl *pptpCall
		remote := id14
		if h.out {
			cl = c.callByInside(id12)
		} else {
			cl, remote = c.callByOutside(id14), id12
		}
		if cl == nil {
			return
		}
		if len(hdr) >= 17 && hdr[16] == 1 { // result: connected
			cl.server = remote
			e.pptpCallUp(h.now, c, cl)
		} else {
			e.pptpCallEnd(h.now, c, cl)
		}
	case typ == pptp.CallDisconnectNotify: // the PAC ends a call
		for i := range c.calls {
			if cl := &c.calls[i]; cl.inUse && (h.out && cl.inside == id12 || !h.out && cl.server == id12) {
				e.pptpCallEnd(h.now, c, cl)
			}
		}
	case typ == pptp.StopCtrlConnReply:
		for i := range c.calls {
			if c.calls[i].inUse {
				e.pptpCallEnd(h.now, c, &c.calls[i])
			}
		}
	}
}

func (c *pptpConn) newCall() *pptpCall {
	for i := range c.calls {
		if !c.calls[i].inUse {
			return &c.calls[i]
		}
	}
	return nil
}

func (c *pptpConn) callByInside(id uint16) *pptpCall {
	for i := range c.calls {
		if cl := &c.calls[i]; cl.inUse && cl.inside == id {
			return cl
		}
	}
	return nil
}

func (c *pptpConn) callByOutside(id uint16) *pptpCall {
	for i := range c.calls {
		if cl := &c.calls[i]; cl.inUse && cl.outside == id {
			return cl
		}
	}
	return nil
}

func callKey(server [4]byte, outside uint16) conntrack.Tuple {
	return keyTuple(sidePPTPCall, server, [4]byte{}, outside, 0, packet.ProtoGRE)
}

// pptpAllocCallID picks the call id the server will see: the client's own
// when no other client of this server uses it, else another with the same
// high byte (so a field split across segments is still rewritten; see
// alg/pptp). Call id 0 is never used.
func (e *Engine) pptpAllocCallID(c *pptpConn, inside uint16, cl *pptpCall) (uint16, bool) {
	ci := uint32(c.index(e))<<8 | uint32(cl.index(c))
	try := func(id uint16) bool {
		if id == 0 {
			return false
		}
		if _, used := e.keys.Get(callKey(c.server, id)); used {
			return false
		}
		return e.putKey(callKey(c.server, id), ci)
	}
	if try(inside) {
		return inside, true
	}
	hi := inside & 0xff00
	start := uint16(e.maps.next())
	for i := uint16(0); i < 256; i++ {
		if id := hi | (start+i)&0xff; try(id) {
			return id, true
		}
	}
	return 0, false
}

func (c *pptpConn) index(e *Engine) int {
	for i := range e.pptp {
		if &e.pptp[i] == c {
			return i
		}
	}
	return -1
}

func (cl *pptpCall) index(c *pptpConn) int {
	for i := range c.calls {
		if &c.calls[i] == cl {
			return i
		}
	}
	return -1
}

// pptpCallUp makes the call's GRE flow: from the client the key is the
// server's call id, unchanged; from the server it is the outside call id,
// translated back to the client's.
func (e *Engine) pptpCallUp(now Time, c *pptpConn, cl *pptpCall) {
	cl.up = true
	e.pptpMakeGRE(now, c, cl)
	e.event(now, Event{Kind: EventPPTPCall, Host: c.host, Peer: c.server, A: uint64(cl.inside)<<16 | uint64(cl.outside), B: uint64(cl.server)})
}

func (e *Engine) pptpMakeGRE(now Time, c *pptpConn, cl *pptpCall) (int32, bool) {
	orig := conntrack.Tuple{Src: c.host, Dst: c.server, DstID: cl.server, Proto: packet.ProtoGRE, Side: uint8(LAN)}
	reply := conntrack.Tuple{Src: c.server, Dst: e.wanAddr, DstID: cl.outside, Proto: packet.ProtoGRE, Side: uint8(WAN)}
	id, err := e.ct.Insert(orig, reply, c.host, int64(now), int64(now+e.timeouts.udp))
	if err != nil {
		return 0, false
	}
	f := e.ct.Get(id)
	f.Helper = helperGRE
	f.Data = uint64(cl.inside)
	f.Aux = uint64(c.index(e))<<8 | uint64(cl.index(c))
	cl.gre, cl.greGen = id, f.Gen
	e.stats.Created++
	return id, true
}

// pptpRevive recreates the GRE flow of a call that is still up when its
// GRE flow timed out (an idle link whose LCP echoes were switched off).
func (e *Engine) pptpRevive(now Time, from Iface, k conntrack.Tuple) (int32, conntrack.Dir, bool) {
	var c *pptpConn
	var cl *pptpCall
	if from == WAN {
		v, ok := e.keys.Get(callKey(k.Src, k.DstID))
		if !ok {
			return 0, 0, false
		}
		c = &e.pptp[v>>8]
		cl = &c.calls[v&0xff]
	} else {
		for i := range e.pptp {
			if p := &e.pptp[i]; p.inUse && p.host == k.Src && p.server == k.Dst {
				for j := range p.calls {
					if q := &p.calls[j]; q.inUse && q.up && q.server == k.DstID {
						c, cl = p, q
					}
				}
			}
		}
	}
	if c == nil || !c.inUse || !cl.inUse || !cl.up {
		return 0, 0, false
	}
	id, ok := e.pptpMakeGRE(now, c, cl)
	dir := conntrack.Original
	if from == WAN {
		dir = conntrack.Reply
	}
	return id, dir, ok
}

// pptpCallEnd ends a call: its GRE flow goes and its outside id is free.
func (e *Engine) pptpCallEnd(now Time, c *pptpConn, cl *pptpCall) {
	if cl.up {
		e.event(now, Event{Kind: EventPPTPCallEnd, Host: c.host, Peer: c.server, A: uint64(cl.outside)})
	}
	if e.ct.Live(cl.gre, cl.greGen) {
		e.doom(cl.gre, cl.greGen)
	}
	e.keys.Del(callKey(c.server, cl.outside))
	*cl = pptpCall{}
}

// pptpDetach ends every call of a control connection that is going.
func (e *Engine) pptpDetach(f *conntrack.Flow) {
	c := &e.pptp[f.Data]
	if !c.inUse || c.gen != f.Gen {
		return
	}
	for i := range c.calls {
		if c.calls[i].inUse {
			e.pptpCallEnd(e.now, c, &c.calls[i])
		}
	}
	c.inUse = false
}

// pptpGREDeleted forgets a GRE flow that expired; the call stays, and
// pptpRevive brings the flow back if the call carries data again.
func (e *Engine) pptpGREDeleted(f *conntrack.Flow) {
	c := &e.pptp[f.Aux>>8]
	if cl := &c.calls[f.Aux&0xff]; cl.inUse && cl.greGen == f.Gen && cl.server == f.Orig.DstID {
		cl.gre, cl.greGen = -1, 0
	}
}
