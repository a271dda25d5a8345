package pptp

// PPTP passthrough as a nat helper. The control connection (TCP 1723) is
// followed across segments with Stream, the LAN client's call id is
// translated to one unique per server (keeping its high byte), and each
// call's GRE flow is made when the call is set up and ends with it: from
// the client the GRE key is the server's call id, unchanged; from the
// server it is the outside call id, translated back to the client's on
// the way in (Translated, on the fast path too). A PPTP server on the LAN
// behind a port forward or the DMZ is followed the same way, as the PAC.

import (
	"encoding/binary"
	"fmt"

	"passgate/alg/internal/passthrough"
	"passgate/conntrack"
	"passgate/nat"
	"passgate/packet"
)

// Drop reasons and events of PPTP passthrough.
var (
	DropPPTPOff        = nat.NewRefusalReason("pptp_passthrough_off")
	DropGRENoControl   = nat.NewDropReason("gre_without_control")
	DropPPTPOutOfOrder = nat.NewDropReason("pptp_out_of_order")
	DropPPTPLimit      = nat.NewRefusalReason("pptp_control_limit")
	DropPPTPHostShare  = nat.NewRefusalReason("pptp_control_host_share")

	EventPPTPUnparsed = nat.NewEventKind("pptp_unparsed", func(ev nat.Event) string {
		return fmt.Sprintf("PPTP control connection from %s to %s could not be followed; its calls will not work", passthrough.Host(ev), passthrough.Peer(ev))
	})
	EventGRENoControl = nat.NewEventKind("gre_without_control", func(ev nat.Event) string {
		if ev.Host == ([4]byte{}) {
			return fmt.Sprintf("GRE from %s to this router with call id %d belongs to no PPTP call: dropped", passthrough.Peer(ev), ev.A)
		}
		return fmt.Sprintf("GRE from %s to %s with call id %d belongs to no PPTP call: dropped", passthrough.Host(ev), passthrough.Peer(ev), ev.A)
	})
	EventPPTPCall = nat.NewEventKind("pptp_call", func(ev nat.Event) string {
		return fmt.Sprintf("PPTP call from %s to %s: client call id %d is %d outside, server call id %d", passthrough.Host(ev), passthrough.Peer(ev), ev.A>>16, ev.A&0xffff, ev.B)
	})
	EventPPTPCallEnd = nat.NewEventKind("pptp_call_end", func(ev nat.Event) string {
		return fmt.Sprintf("PPTP call from %s to %s ended (outside call id %d)", passthrough.Host(ev), passthrough.Peer(ev), ev.A)
	})
)

const (
	connsMax     = 256          // control connections followed at once
	connsPerSrc  = connsMax / 4 // ... of one LAN client (and one LAN MAC), or one remote client of a LAN server
	callsPerConn = 8
	sideCall     = 0 // keys: (server, outside call id) -> conn<<8 | call
)

// Helper is PPTP passthrough. Register one per engine.
type Helper struct {
	env      *nat.HelperEnv
	conns    []conn
	unparsed uint64
}

var (
	_ nat.FlowMaker         = (*Helper)(nil)
	_ nat.Forwarder         = (*Helper)(nil)
	_ nat.ProtocolHelper    = (*Helper)(nil)
	_ nat.FastHelper        = (*Helper)(nil)
	_ nat.PassthroughHelper = (*Helper)(nil)
)

// conn is the state of one control connection: both directions of the
// stream and its calls. A fixed pool holds them, so a LAN full of PPTP
// clients costs a bounded amount and nothing is allocated per connection.
type conn struct {
	inUse  bool
	flow   int32
	gen    uint32
	host   [4]byte
	server [4]byte
	owner  conntrack.Owner // the control flow's LAN MAC, if any
	out    Stream
	in     Stream
	hOut   handler
	hIn    handler
	broken bool
	// role is the LAN host's end: the PNS of a connection it opened, or
	// the PAC of one that came in through a port forward (or the DMZ),
	// whose LAN side is then the flow's reply direction.
	role  Role
	calls [callsPerConn]call
}

// call is one call: the client's call id (inside), the one the server
// sees (outside, unique per server), the server's, and the GRE flow.
type call struct {
	inUse   bool
	up      bool
	inside  uint16
	outside uint16
	server  uint16
	gre     int32
	greGen  uint32
}

// handler implements Handler for one direction of a connection.
type handler struct {
	h   *Helper
	c   *conn
	out bool
	now nat.Time
}

// Name is the switch name.
func (*Helper) Name() string { return "pptp" }

// DefaultOn: on, as on home routers.
func (*Helper) DefaultOn() bool { return true }

// Attach takes the engine and makes the connection pool.
func (h *Helper) Attach(env *nat.HelperEnv) {
	h.env = env
	h.conns = make([]conn, connsMax)
	for i := range h.conns {
		c := &h.conns[i]
		c.hOut = handler{h: h, c: c, out: true}
		c.hIn = handler{h: h, c: c}
	}
}

// Ports is the control port.
func (*Helper) Ports() []nat.Port { return []nat.Port{{Proto: packet.ProtoTCP, Port: Port}} }

// Protocols is GRE.
func (*Helper) Protocols() []uint8 { return []uint8{packet.ProtoGRE} }

// Outbound refuses a control connection when switched off, and follows
// one a LAN client opens.
func (h *Helper) Outbound(now nat.Time, ip packet.IPv4, k conntrack.Tuple) (int32, conntrack.Dir, nat.DropReason, bool) {
	if passthrough.Blocked(h.env, now, passthrough.PPTP, k.Src, k.Dst) {
		return 0, 0, DropPPTPOff, true
	}
	id, dir, r := h.env.NewMapped(now, k)
	if r == nat.DropNone {
		if r = h.attach(id, PNS); r != nat.DropNone {
			h.env.Delete(id)
		}
	}
	return id, dir, r, true
}

// Inbound leaves TCP 1723 from the WAN to port forwards and mappings.
func (*Helper) Inbound(nat.Time, packet.IPv4, conntrack.Tuple) (int32, conntrack.Dir, nat.DropReason, bool) {
	return 0, 0, nat.DropNone, false
}

// Forwarded follows a control connection to a PPTP server on the LAN: its
// calls' GRE needs it followed as for a client's.
func (h *Helper) Forwarded(now nat.Time, id int32, f *conntrack.Flow, insidePort uint16) (bool, nat.DropReason) {
	if f.Orig.Proto != packet.ProtoTCP || insidePort != Port {
		return false, nat.DropNone
	}
	if r := h.attach(id, PAC); r != nat.DropNone {
		return false, r
	}
	return true, nat.DropNone
}

// attach gives a new control flow its state. role is the LAN host's: PNS
// for a flow from the LAN, PAC for one from the WAN to a server on the LAN.
// One source (a LAN client, and a LAN MAC address; or a remote client of a
// LAN server) holds at most a quarter of the pool: at its share, its own
// oldest connection never established gives up its slot (its flow ends),
// as early drop does for flows, else pptp_control_host_share refuses the
// new one. When the pool is full, the oldest connection never established
// of anyone's gives up its slot, else pptp_control_limit refuses. So SYNs
// that go unanswered, from the LAN or from the WAN to a forwarded server,
// cannot keep the pool, and one host cannot lock the others out of PPTP.
func (h *Helper) attach(id int32, role Role) nat.DropReason {
	f := h.env.Flow(id)
	host, peer := f.Orig.Src, f.Orig.Dst
	if role == PAC {
		host, peer = f.Reply.Src, f.Orig.Src
	}
	owner := f.Owner
	if role != PNS || owner.Kind != conntrack.OwnerMAC {
		owner = conntrack.Owner{} // a port forward's share is the engine's
	}
	src := func(c *conn) bool {
		return c.role == role && (role == PNS && c.host == host || role == PAC && c.server == peer)
	}
	mac := func(c *conn) bool { return owner.Kind != conntrack.OwnerNone && c.owner == owner }
	for _, share := range [2]func(*conn) bool{src, mac} {
		if h.count(share) >= connsPerSrc && !h.evictUnestablished(id, share) {
			return DropPPTPHostShare
		}
	}
	free := -1
	for i := range h.conns {
		if !h.conns[i].inUse {
			free = i
			break
		}
	}
	if free < 0 {
		if !h.evictUnestablished(id, func(*conn) bool { return true }) {
			return DropPPTPLimit
		}
		return h.attach(id, role) // a slot is free now
	}
	c := &h.conns[free]
	hOut, hIn := c.hOut, c.hIn
	*c = conn{inUse: true, flow: id, gen: f.Gen, host: host, server: peer, owner: owner, hOut: hOut, hIn: hIn, role: role}
	f.Helper = h.env.ID()
	h.env.SetData(f, uint64(free), 0)
	return nat.DropNone
}

// count is the number of connections in use that match accepts.
func (h *Helper) count(match func(*conn) bool) int {
	n := 0
	for i := range h.conns {
		if c := &h.conns[i]; c.inUse && match(c) {
			n++
		}
	}
	return n
}

// evictUnestablished ends the oldest connection that match accepts whose
// control flow has seen no reply (not flow id, the one being attached):
// its flow ends and Deleted frees its slot. False when there is none.
func (h *Helper) evictUnestablished(id int32, match func(*conn) bool) bool {
	var oldest int64
	victim := -1
	for i := range h.conns {
		c := &h.conns[i]
		if !c.inUse || c.flow == id || !h.env.Live(c.flow, c.gen) || !match(c) {
			continue
		}
		if created := h.env.Created(c.flow); !h.env.Flow(c.flow).Assured() && (victim < 0 || created < oldest) {
			oldest, victim = created, i
		}
	}
	if victim < 0 {
		return false
	}
	h.env.Delete(h.conns[victim].flow) // Deleted frees the slot
	return true
}

// FlowPacket follows the control stream of a segment and translates call
// ids in it. Segments beyond what the stream has seen are dropped so the
// sender repeats them in order: a call id in bytes not yet followed could
// not be translated.
func (h *Helper) FlowPacket(now nat.Time, id int32, f *conntrack.Flow, dir conntrack.Dir, ip packet.IPv4) nat.DropReason {
	if f.Orig.Proto != packet.ProtoTCP || ip.IsFragment() {
		return nat.DropNone
	}
	conn, _ := h.env.Data(f)
	c := &h.conns[conn]
	t := packet.TCP(ip.Payload())
	st, hd := &c.out, &c.hOut
	if (dir == conntrack.Reply) != (c.role == PAC) { // from the WAN
		st, hd = &c.in, &c.hIn
	}
	if t.Flags()&packet.TCPSyn != 0 {
		st.Start(t.Seq() + 1)
		return nat.DropNone
	}
	p := t.Payload()
	if len(p) == 0 {
		return nat.DropNone
	}
	hd.now = now
	v, changed := st.Feed(t.Seq(), p, hd)
	if v == Ahead {
		return DropPPTPOutOfOrder
	}
	if st.Broken() != nil && !c.broken {
		c.broken = true
		h.unparsed++
		h.env.Event(now, nat.Event{Kind: EventPPTPUnparsed, Host: c.host, Peer: c.server})
	}
	if changed {
		// The payload changed; the addresses and ports change next,
		// incrementally, on top of a right checksum.
		t[16], t[17] = 0, 0
		sum := packet.PseudoHeaderSum(ip.Src(), ip.Dst(), packet.ProtoTCP, len(t))
		binary.BigEndian.PutUint16(t[16:], packet.Fold(packet.Sum(t, sum)))
	}
	return nat.DropNone
}

func (hd *handler) Field(typ uint16, off int, val uint16) uint16 {
	c, h := hd.c, hd.h
	if hd.out {
		if o, ok := OwnCallIDField(c.role, typ); !ok || o != off {
			return val
		}
		if cl := c.callByInside(val); cl != nil {
			return cl.outside
		}
		if typ == CallClearRequest || typ == CallDisconnectNotify {
			return val // a call this connection never set up
		}
		cl := c.newCall()
		if cl == nil {
			return val
		}
		out, ok := h.allocCallID(c, val, cl)
		if !ok {
			*cl = call{}
			return val
		}
		cl.inUse, cl.inside, cl.outside = true, val, out
		return out
	}
	if o, ok := PeerCallIDField(c.role, typ); !ok || o != off {
		return val
	}
	if cl := c.callByOutside(val); cl != nil {
		return cl.inside
	}
	return val
}

func (hd *handler) Message(typ uint16, hdr []byte) {
	c, h := hd.c, hd.h
	if len(hdr) < 16 {
		return
	}
	id12 := binary.BigEndian.Uint16(hdr[12:])
	id14 := binary.BigEndian.Uint16(hdr[14:])
	switch {
	case typ == OutgoingCallReply || typ == IncomingCallReply:
		// The answer to a call request (from the PAC to an outgoing call,
		// from the PNS to an incoming one): hdr holds the sender's call id
		// and its peer's. From the LAN that is the LAN host's own (inside)
		// and the remote's; from the WAN the remote's and the outside id.
		var cl *call
		remote := id14
		if hd.out {
			cl = c.callByInside(id12)
		} else {
			cl, remote = c.callByOutside(id14), id12
		}
		if cl == nil {
			return
		}
		if len(hdr) >= 17 && hdr[16] == 1 { // result: connected
			cl.server = remote
			h.callUp(hd.now, c, cl)
		} else {
			h.callEnd(hd.now, c, cl)
		}
	case typ == CallDisconnectNotify: // the PAC ends a call
		for i := range c.calls {
			if cl := &c.calls[i]; cl.inUse && (hd.out && cl.inside == id12 || !hd.out && cl.server == id12) {
				h.callEnd(hd.now, c, cl)
			}
		}
	case typ == StopCtrlConnReply:
		for i := range c.calls {
			if c.calls[i].inUse {
				h.callEnd(hd.now, c, &c.calls[i])
			}
		}
	}
}

func (c *conn) newCall() *call {
	for i := range c.calls {
		if !c.calls[i].inUse {
			return &c.calls[i]
		}
	}
	return nil
}

func (c *conn) callByInside(id uint16) *call {
	for i := range c.calls {
		if cl := &c.calls[i]; cl.inUse && cl.inside == id {
			return cl
		}
	}
	return nil
}

func (c *conn) callByOutside(id uint16) *call {
	for i := range c.calls {
		if cl := &c.calls[i]; cl.inUse && cl.outside == id {
			return cl
		}
	}
	return nil
}

func (h *Helper) callKey(server [4]byte, outside uint16) conntrack.Tuple {
	return h.env.KeyOf(sideCall, server, uint64(outside))
}

// allocCallID picks the call id the server will see: the client's own
// when no other client of this server uses it, else another with the same
// high byte (so a field split across segments is still rewritten; see
// Stream). Call id 0 is never used.
func (h *Helper) allocCallID(c *conn, inside uint16, cl *call) (uint16, bool) {
	ci := uint32(h.index(c))<<8 | uint32(c.index(cl))
	// free says whether no client of the server holds id; put takes it,
	// and fails only when the host's share of the ids is used up, which no
	// other id would change (so it is tried, and counted, once).
	free := func(id uint16) bool {
		_, used := h.env.Key(h.callKey(c.server, id))
		return id != 0 && !used
	}
	put := func(id uint16) bool {
		return h.env.PutKeyOf(c.host, h.env.Flow(c.flow), h.callKey(c.server, id), ci)
	}
	if free(inside) {
		return inside, put(inside)
	}
	hi := inside & 0xff00
	start := h.env.Random()
	for i := uint16(0); i < 256; i++ {
		if id := hi | (start+i)&0xff; free(id) {
			return id, put(id)
		}
	}
	return 0, false
}

func (h *Helper) index(c *conn) int {
	for i := range h.conns {
		if &h.conns[i] == c {
			return i
		}
	}
	return -1
}

func (c *conn) index(cl *call) int {
	for i := range c.calls {
		if &c.calls[i] == cl {
			return i
		}
	}
	return -1
}

// callUp makes the call's GRE flow.
func (h *Helper) callUp(now nat.Time, c *conn, cl *call) {
	cl.up = true
	h.makeGRE(now, c, cl)
	h.env.Event(now, nat.Event{Kind: EventPPTPCall, Host: c.host, Peer: c.server, A: uint64(cl.inside)<<16 | uint64(cl.outside), B: uint64(cl.server)})
}

// makeGRE makes a call's GRE flow: from the client the key is the
// server's call id, unchanged; from the server it is the outside call id,
// translated back to the client's (Data) by Translated.
func (h *Helper) makeGRE(now nat.Time, c *conn, cl *call) (int32, bool) {
	orig := conntrack.Tuple{Src: c.host, Dst: c.server, DstID: cl.server, Proto: packet.ProtoGRE, Side: uint8(nat.LAN)}
	reply := conntrack.Tuple{Src: c.server, Dst: h.env.WANAddr(), DstID: cl.outside, Proto: packet.ProtoGRE, Side: uint8(nat.WAN)}
	id, f, r := h.env.NewFlow(now, orig, reply)
	if r != nat.DropNone {
		return 0, false
	}
	h.env.SetData(f, uint64(cl.inside), uint64(h.index(c))<<8|uint64(c.index(cl)))
	h.env.SetFast(f, true)
	// The call is up: its tunnel is established, whatever GRE has passed
	// yet, so no early drop takes it.
	h.env.Established(id)
	cl.gre, cl.greGen = id, f.Gen
	return id, true
}

// Packet handles PPTP's enhanced GRE: only calls a control connection set
// up pass.
func (h *Helper) Packet(now nat.Time, from nat.Iface, ip packet.IPv4) (int32, conntrack.Dir, nat.DropReason) {
	k, ok := h.FastKey(from, ip)
	if !ok {
		return 0, 0, nat.DropUnsupportedProto
	}
	if from == nat.LAN && passthrough.Blocked(h.env, now, passthrough.PPTP, ip.Src(), ip.Dst()) {
		return 0, 0, DropPPTPOff
	}
	id, dir, found := h.env.LookupLive(now, k)
	if !found {
		// A live call whose GRE flow timed out gets it back.
		if id, dir, found = h.revive(now, from, k); !found {
			// The event's host is a LAN host: from the WAN, with no call,
			// none is known (the packet is to the router's own address).
			ev := nat.Event{Kind: EventGRENoControl, Host: k.Src, Peer: k.Dst, A: uint64(k.DstID)}
			if from == nat.WAN {
				ev.Host, ev.Peer = [4]byte{}, k.Src
			}
			h.env.Event(now, ev)
			return 0, 0, DropGRENoControl
		}
	}
	return id, dir, nat.DropNone
}

// FastKey is a GRE packet's tuple: its key, the receiver's call id.
func (*Helper) FastKey(from nat.Iface, ip packet.IPv4) (conntrack.Tuple, bool) {
	g, err := ParseGRE(ip.Payload())
	if err != nil {
		return conntrack.Tuple{}, false
	}
	return conntrack.Tuple{Src: ip.Src(), Dst: ip.Dst(), DstID: g.CallID(), Proto: packet.ProtoGRE, Side: uint8(from)}, true
}

// Translated gives GRE from the server the LAN client's own call id.
func (h *Helper) Translated(f *conntrack.Flow, dir conntrack.Dir, ip packet.IPv4) {
	if dir == conntrack.Reply {
		if g, err := ParseGRE(ip.Payload()); err == nil {
			inside, _ := h.env.Data(f)
			g.SetCallID(uint16(inside))
		}
	}
}

// revive recreates the GRE flow of a call that is still up when its GRE
// flow timed out (an idle link whose LCP echoes were switched off).
func (h *Helper) revive(now nat.Time, from nat.Iface, k conntrack.Tuple) (int32, conntrack.Dir, bool) {
	var c *conn
	var cl *call
	if from == nat.WAN {
		v, ok := h.env.Key(h.callKey(k.Src, k.DstID))
		if !ok {
			return 0, 0, false
		}
		c = &h.conns[v>>8]
		cl = &c.calls[v&0xff]
	} else {
		for i := range h.conns {
			if p := &h.conns[i]; p.inUse && p.host == k.Src && p.server == k.Dst {
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
	id, ok := h.makeGRE(now, c, cl)
	dir := conntrack.Original
	if from == nat.WAN {
		dir = conntrack.Reply
	}
	return id, dir, ok
}

// callEnd ends a call: its GRE flow goes and its outside id is free.
func (h *Helper) callEnd(now nat.Time, c *conn, cl *call) {
	if cl.up {
		h.env.Event(now, nat.Event{Kind: EventPPTPCallEnd, Host: c.host, Peer: c.server, A: uint64(cl.outside)})
	}
	h.env.End(cl.gre, cl.greGen)
	h.env.DelKey(h.callKey(c.server, cl.outside))
	*cl = call{}
}

// Deleted ends every call of a control connection that is going, and
// forgets a GRE flow that expired: the call stays, and revive brings the
// flow back if the call carries data again.
func (h *Helper) Deleted(id int32, f *conntrack.Flow) {
	data, aux := h.env.Data(f)
	if f.Orig.Proto == packet.ProtoGRE {
		c := &h.conns[aux>>8]
		if cl := &c.calls[aux&0xff]; cl.inUse && cl.greGen == f.Gen && cl.server == f.Orig.DstID {
			cl.gre, cl.greGen = -1, 0
		}
		return
	}
	c := &h.conns[data]
	if !c.inUse || c.gen != f.Gen {
		return
	}
	for i := range c.calls {
		if c.calls[i].inUse {
			h.callEnd(h.env.Now(), c, &c.calls[i])
		}
	}
	c.inUse = false
}

// Owns: every PPTP flow is the helper's own.
func (*Helper) Owns(*conntrack.Flow) bool { return false }

// Session: a control connection is one; its calls' GRE flows are not.
func (*Helper) Session(f *conntrack.Flow) bool { return f.Orig.Proto != packet.ProtoGRE }

// Describe shows a GRE flow's call ids with bare addresses, and a control
// connection's last call.
func (h *Helper) Describe(f *conntrack.Flow, fi *nat.FlowInfo) {
	fi.VPN = "pptp"
	data, _ := h.env.Data(f)
	if f.Orig.Proto == packet.ProtoGRE {
		fi.Proto = "gre"
		fi.CallIDInside = uint16(data)
		fi.CallIDOutside = f.Reply.DstID
		fi.CallIDServer = f.Orig.DstID
		passthrough.BareAddrs(h.env, f, fi)
		return
	}
	c := &h.conns[data]
	for i := range c.calls {
		if cl := &c.calls[i]; cl.inUse {
			fi.CallIDInside, fi.CallIDOutside, fi.CallIDServer = cl.inside, cl.outside, cl.server
		}
	}
}

// AddStats adds the control connections that could not be followed.
func (h *Helper) AddStats(s *nat.Stats) { s.PPTPUnparsed = h.unparsed }
