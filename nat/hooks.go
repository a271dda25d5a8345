package nat

// The engine's side of its helpers. Every protocol module, the VPN
// passthroughs as much as the application-level gateways, is a Helper
// (name and default) that implements the hooks it needs, NetBSD
// npf_alg style: match a flow when it is created, inspect and translate
// its packets, demultiplex inbound traffic on a shared port. The engine
// type-asserts the hooks once, in RegisterHelpers, and keeps them in
// tables indexed by the helper's id (conntrack.Flow.Helper), by IP
// protocol and by server port, so the packet path asks only the helper
// concerned and never a list.

import (
	"passgate/conntrack"
	"passgate/packet"
)

// Attacher is implemented by helpers that keep per-engine state or make
// flows of their own: Attach gives them the engine, once, at
// registration; a helper instance serves one engine.
type Attacher interface {
	Attach(env *HelperEnv)
}

// Port is a transport protocol and port.
type Port struct {
	Proto uint8
	Port  uint16
}

// FlowMaker is implemented by helpers that make the flows of a protocol
// themselves: a shared outside port every LAN host keeps (IKE on 500,
// L2TP on 1701), state attached when a control connection opens (PPTP),
// or a protocol switched off.
type FlowMaker interface {
	// Ports lists the TCP and UDP server ports whose new flows the helper
	// is asked about.
	Ports() []Port
	// Outbound is asked about a new flow from the LAN to one of Ports,
	// before the engine maps it. handled says whether it made the flow
	// (id, in direction dir) or refused it (r).
	Outbound(now Time, ip packet.IPv4, k conntrack.Tuple) (id int32, dir conntrack.Dir, r DropReason, handled bool)
	// Inbound is asked about a WAN packet to one of Ports on the public
	// address that no flow, port forward or expectation took, before
	// mappings and the DMZ: the demultiplexing of a shared port.
	Inbound(now Time, ip packet.IPv4, k conntrack.Tuple) (id int32, dir conntrack.Dir, r DropReason, handled bool)
}

// SharedPorter is implemented by helpers whose outside port every LAN
// host shares: while the helper is on, dynamic mappings never take it.
type SharedPorter interface {
	SharedPort() Port
}

// SharedReplier is a SharedPorter whose port a port forward may take too
// (a VPN server on the LAN behind UDP 500). The forward gets what comes in
// to the port, except what Places says answers a LAN host's flow on the
// shared port (a reply to its own IKE): that still goes to Inbound, so a
// forward never takes LAN clients' passthrough away. Places must have no
// side effects and agree with Inbound.
type SharedReplier interface {
	SharedPorter
	FlowMaker
	Places(ip packet.IPv4, k conntrack.Tuple) bool
}

// Forwarder is implemented by helpers that follow a connection a port
// forward or the DMZ sends to a server on the LAN (a PPTP server). It is
// asked first, before the payload helpers' Wants; claimed says the flow is
// its own now, r refuses it (the engine deletes it).
type Forwarder interface {
	Forwarded(now Time, id int32, f *conntrack.Flow, insidePort uint16) (claimed bool, r DropReason)
}

// ProtocolHelper owns IP protocols other than TCP, UDP and ICMP (ESP, AH,
// GRE): every packet of them that the fast path did not take goes to
// Packet, which returns the flow to forward it on or why it is dropped.
type ProtocolHelper interface {
	Protocols() []uint8
	Packet(now Time, from Iface, ip packet.IPv4) (id int32, dir conntrack.Dir, r DropReason)
}

// FastHelper lets the flows a helper marks with HelperEnv.SetFast take the
// fast path. Both methods run under FastPath's contract: several
// goroutines at once, under the data plane's read lock, so they read the
// engine and the flow and write nothing but the packet, and allocate
// nothing.
type FastHelper interface {
	// FastKey returns the lookup tuple of a packet of one of the helper's
	// Protocols (an ESP SPI, a GRE key), as Packet looks it up; ok false
	// sends the packet to Process.
	FastKey(from Iface, ip packet.IPv4) (k conntrack.Tuple, ok bool)
	// Translated finishes a packet after the engine rewrote its addresses
	// (the GRE key back to the LAN client's call id), on the fast path and
	// in Process alike; it is called for flows marked SetFast(f, true).
	Translated(f *conntrack.Flow, dir conntrack.Dir, ip packet.IPv4)
}

// FlowPacketHelper sees, in Process, each packet of its flows before it
// is translated (a PPTP control segment, an IKE message whose SPI it
// learns); a reason other than DropNone drops the packet.
type FlowPacketHelper interface {
	FlowPacket(now Time, id int32, f *conntrack.Flow, dir conntrack.Dir, ip packet.IPv4) DropReason
}

// FlowDeleter is told when one of its flows leaves the table, to release
// what the flow held (keys, calls).
type FlowDeleter interface {
	Deleted(id int32, f *conntrack.Flow)
}

// PassthroughHelper is implemented by the VPN passthroughs: their flows are
// sessions people count, and switching one off ends them.
type PassthroughHelper interface {
	// Owns says whether a flow no helper claimed belongs to the protocol
	// (NAT-T on UDP 4500 is ordinary UDP, but IPsec's).
	Owns(f *conntrack.Flow) bool
	// Session says whether a flow of the protocol counts in
	// Stats.VPNSessions (a PPTP call's GRE flow does not: its control
	// connection is the session).
	Session(f *conntrack.Flow) bool
}

// TunnelHelper is a PassthroughHelper whose session is a tunnel of several
// flows: IPsec's IKE SA on UDP 500, NAT-T on 4500 and raw ESP. Its
// Stats.VPNSessions count the pairs of LAN host and server among its
// session flows, not the flows, so two tunnels are 2 however many flows
// each has.
type TunnelHelper interface {
	PassthroughHelper
	// Tunnels marks the helper; it is never called.
	Tunnels()
}

// Describer fills the fields of FlowInfo that say what a flow of its
// protocol carries (SPIs, call ids, tunnel ids). It is called for the
// helper's flows and those it Owns.
type Describer interface {
	Describe(f *conntrack.Flow, fi *FlowInfo)
}

// StatsHelper adds its counters to Stats.
type StatsHelper interface {
	AddStats(s *Stats)
}

// HelperEnv is the engine as one helper sees it: its id and key space, the
// flow table, its switch, events. Its methods are for the control path
// (Process, Expire, under the data plane's write lock), never FastPath.
type HelperEnv struct {
	e   *Engine
	idx int
}

// ID is the conntrack.Flow.Helper value of the helper's flows.
func (v *HelperEnv) ID() uint8 { return uint8(v.idx + 1) }

// Side returns the helper's own key space n (0-7), a conntrack.Tuple.Side
// value no packet, mapping or other helper uses: for reply keys of flows
// the helper indexes itself, and the keys of Key and PutKey.
func (v *HelperEnv) Side(n uint8) uint8 { return sideHelpers + uint8(v.idx)*8 + n&7 }

// On says whether the helper is switched on.
func (v *HelperEnv) On() bool { return v.e.helperOn[v.idx] }

// WANAddr is the public address.
func (v *HelperEnv) WANAddr() [4]byte { return v.e.wanAddr }

// Now is the time of the call in progress (Process's or Expire's).
func (v *HelperEnv) Now() Time { return v.e.now }

// Flow returns a flow of the table.
func (v *HelperEnv) Flow(id int32) *conntrack.Flow { return v.e.ct.Get(id) }

// Data is the helper's data of flow f (zero until SetData): two words
// the table keeps apart from the flow, for the flows that have them.
func (v *HelperEnv) Data(f *conntrack.Flow) (data, aux uint64) { return v.e.ct.DataOf(f) }

// SetData sets the helper's data of flow f.
func (v *HelperEnv) SetData(f *conntrack.Flow, data, aux uint64) {
	v.e.ct.SetData(v.e.ct.ID(f), data, aux)
}

// Created is when flow id was made.
func (v *HelperEnv) Created(id int32) int64 { return v.e.ct.Created(id) }

// Live says whether flow id is still the incarnation gen.
func (v *HelperEnv) Live(id int32, gen uint32) bool { return v.e.ct.Live(id, gen) }

// Lookup finds a flow by tuple, as it is (a reply key of the helper's
// own, say).
func (v *HelperEnv) Lookup(k conntrack.Tuple) (int32, conntrack.Dir, bool) { return v.e.ct.Lookup(k) }

// LookupLive is Lookup treating a flow past its deadline as gone.
func (v *HelperEnv) LookupLive(now Time, k conntrack.Tuple) (int32, conntrack.Dir, bool) {
	return v.e.lookupLive(now, k)
}

// NewFlow makes a flow of the helper's with the UDP timeout (tunnels
// live as long), orig seen from the LAN host and reply its reply key.
// It is charged to the LAN frame's MAC, or, while the helper handles a
// packet from the WAN, to the owner of that packet's flow (a PPTP call's
// GRE flow made on the server's reply goes to the client's MAC). Room is
// made as for any new flow from the LAN host: where the host's share, its
// owner's or the table is full, the oldest flows that have seen no
// reply go first (early drop), never one that has, nor the flow whose
// packet the helper is handling. Xlate is reply; the caller sets it when
// reply is a key of its own.
func (v *HelperEnv) NewFlow(now Time, orig, reply conntrack.Tuple) (int32, *conntrack.Flow, DropReason) {
	e := v.e
	owner := e.helperOwner()
	if err := e.ct.MakeRoomKeeping(orig.Src, owner, e.busy); err != nil {
		return 0, nil, ownerRoomReason(owner, err)
	}
	id, err := e.ct.InsertOwned(orig, reply, orig.Src, owner, int64(now), int64(now+e.timeouts.udp))
	if err != nil {
		return 0, nil, ownerRoomReason(owner, err)
	}
	f := e.ct.Get(id)
	f.Helper = v.ID()
	e.stats.Created++
	return id, f, DropNone
}

// Established marks a flow as one no early drop may take, though it has
// seen no reply yet: a PPTP call's GRE flow, which the call's control
// connection set up.
func (v *HelperEnv) Established(id int32) { v.e.ct.Replied(id) }

// NewMapped makes an ordinary flow from the LAN, with the endpoint-
// independent mapping every other flow gets.
func (v *HelperEnv) NewMapped(now Time, k conntrack.Tuple) (int32, conntrack.Dir, DropReason) {
	if r := v.e.outboundRoom(k.Src); r != DropNone {
		return 0, 0, r
	}
	return v.e.newOutbound(now, k, originLAN)
}

// Rekey gives flow id a new reply key (an inbound SPI learned).
func (v *HelperEnv) Rekey(id int32, reply conntrack.Tuple) error { return v.e.ct.Rekey(id, reply) }

// SetFast lets a flow take the fast path (FastHelper), with Translated
// called for its packets when translate is set.
func (v *HelperEnv) SetFast(f *conntrack.Flow, translate bool) {
	f.Flags |= flagFast
	if translate {
		f.Flags |= flagTranslate
	}
}

// End ends a flow once the table is not being walked.
func (v *HelperEnv) End(id int32, gen uint32) {
	if v.e.ct.Live(id, gen) {
		v.e.doom(id, gen)
	}
}

// Delete removes a flow the helper just made and refuses.
func (v *HelperEnv) Delete(id int32) { v.e.ct.Delete(id) }

// Key reads one of the helper's keys (Side keys: SPIs, tunnel and call
// ids mapped to hosts or state).
func (v *HelperEnv) Key(k conntrack.Tuple) (uint32, bool) { return v.e.keys.Get(k) }

// PutKey sets a key if there is room (the keys are bounded by what the
// flow table can hold; a flood of ids cannot grow them): false, counted as
// helper_table_full, when there is not.
func (v *HelperEnv) PutKey(k conntrack.Tuple, val uint32) bool {
	e := v.e
	if _, ok := e.keys.Get(k); !ok && e.keys.Len() >= e.keysMax {
		e.stats.Drops[DropHelperFull]++
		return false
	}
	e.keys.Put(k, val)
	return true
}

// PutKeyOf sets a key LAN host host holds for flow f (an IKE SPI, an L2TP
// tunnel id, a PPTP call id, a server's count): besides the bound of
// PutKey, each host holds at most a quarter of the keys, so one host cannot
// take every id and lock the others out. When its share (or the index) is full, the host's own oldest flows
// of the helper that have seen no reply are ended to free theirs (never f,
// nor the flow whose packet is being handled); if that frees none, the key
// is refused, counted as helper_table_full.
func (v *HelperEnv) PutKeyOf(host [4]byte, f *conntrack.Flow, k conntrack.Tuple, val uint32) bool {
	e := v.e
	if _, ok := e.keys.Get(k); ok {
		e.keys.Put(k, val)
		return true
	}
	id := v.ID()
	busy := e.ct.Get(max(e.busy, 0))
	if e.busy < 0 {
		busy = nil
	}
	for tries := 0; e.keysPerHost[host] >= e.keysHostMax || e.keys.Len() >= e.keysMax; tries++ {
		if tries == keyEvictTries || !e.ct.EvictOldest(host, f.Owner, func(g *conntrack.Flow) bool {
			return g != f && g != busy && g.Helper == id
		}) {
			e.stats.Drops[DropHelperFull]++
			return false
		}
	}
	e.keys.Put(k, val)
	if err := e.keyHost.Add(k, be32(host)); err == nil {
		e.keysPerHost[host]++
	}
	return true
}

// helperKeysFirst is the helpers' key indexes' first room (keys and
// keyHost grow from it).
const helperKeysFirst = 1024

// keyEvictTries bounds the flows one PutKeyOf may end (each frees the
// keys it held, maybe none).
const keyEvictTries = 4

// DelKey removes a key (and its charge to a host, if PutKeyOf made it).
func (v *HelperEnv) DelKey(k conntrack.Tuple) {
	e := v.e
	e.keys.Del(k)
	if h, ok := e.keyHost.Get(k); ok {
		e.keyHost.Del(k)
		host := AddrOf(h)
		if n := e.keysPerHost[host] - 1; n > 0 {
			e.keysPerHost[host] = n
		} else {
			delete(e.keysPerHost, host)
		}
	}
}

// KeysOf is the number of keys charged to a LAN host (PutKeyOf).
func (v *HelperEnv) KeysOf(host [4]byte) int { return int(v.e.keysPerHost[host]) }

// Event records an event for people.
func (v *HelperEnv) Event(now Time, ev Event) { v.e.event(now, ev) }

// Random returns a number from the engine's port randomiser, for ids a
// helper picks.
func (v *HelperEnv) Random() uint16 { return uint16(v.e.maps.next()) }

// sideHelpers is the first Tuple.Side of the helpers' key spaces, apart
// from the real sides (0, 1) and the mapper's (0x10, 0x11).
const sideHelpers = 0x20

// maxHelpers keeps the helpers' key spaces within a byte.
const maxHelpers = (256 - sideHelpers) / 8

// helperHooks are one helper's hooks, asserted once.
type helperHooks struct {
	payload  PayloadHelper
	ended    HelperEnded
	maker    FlowMaker
	shared   SharedPorter
	replier  SharedReplier
	fwd      Forwarder
	proto    ProtocolHelper
	fast     FastHelper
	pkt      FlowPacketHelper
	deleted  FlowDeleter
	pass     PassthroughHelper
	describe Describer
	stats    StatsHelper
}

func hooksOf(h Helper) helperHooks {
	var k helperHooks
	k.payload, _ = h.(PayloadHelper)
	k.ended, _ = h.(HelperEnded)
	k.maker, _ = h.(FlowMaker)
	k.shared, _ = h.(SharedPorter)
	k.replier, _ = h.(SharedReplier)
	k.fwd, _ = h.(Forwarder)
	k.proto, _ = h.(ProtocolHelper)
	k.fast, _ = h.(FastHelper)
	k.pkt, _ = h.(FlowPacketHelper)
	k.deleted, _ = h.(FlowDeleter)
	k.pass, _ = h.(PassthroughHelper)
	k.describe, _ = h.(Describer)
	k.stats, _ = h.(StatsHelper)
	return k
}

// portHook routes new flows to a FlowMaker by server port.
type portHook struct {
	Port
	idx int
}

// owner returns the index of the helper a flow belongs to: its own, or a
// passthrough that Owns it; -1 for none.
func (e *Engine) owner(f *conntrack.Flow) int {
	if f.Helper != 0 {
		return int(f.Helper) - 1
	}
	for _, i := range e.passthroughs {
		if e.hooks[i].pass.Owns(f) {
			return i
		}
	}
	return -1
}

// sessionClass is a flow's counting class (conntrack.SetClass): its
// passthrough's when it is one of its sessions, else 0. Stats reads the
// sessions' counts from the table instead of walking it.
func (e *Engine) sessionClass(f *conntrack.Flow) uint8 {
	if i := e.owner(f); i >= 0 {
		if p := e.hooks[i].pass; p != nil && p.Session(f) {
			return e.passClass[i]
		}
	}
	return 0
}

// tunnelKey is the key in Engine.tunnels of a flow in counting class c: its
// LAN host and the remote end.
func tunnelKey(c uint8, f *conntrack.Flow) conntrack.Tuple {
	if f.Origin == originLAN {
		return conntrack.Tuple{Src: f.Orig.Src, Dst: f.Orig.Dst, Side: c}
	}
	return conntrack.Tuple{Src: f.Reply.Src, Dst: f.Orig.Src, Side: c}
}

// classify puts a flow in its counting class when it is first forwarded
// and, for a TunnelHelper's, counts its tunnel.
func (e *Engine) classify(id int32, f *conntrack.Flow) {
	c := e.sessionClass(f)
	e.ct.SetClass(id, c)
	f.Flags |= flagClassed
	if c == 0 || !e.classTunnels[c] {
		return
	}
	if n, found := e.tunnels.Upsert(tunnelKey(c, f)); n != nil {
		*n++
		if !found {
			e.tunnelCount[c]++
		}
	}
}

// unclassify forgets a leaving flow's share of its tunnel.
func (e *Engine) unclassify(f *conntrack.Flow) {
	c := f.Class()
	if c == 0 || !e.classTunnels[c] {
		return
	}
	k := tunnelKey(c, f)
	switch n, ok := e.tunnels.Get(k); {
	case !ok:
	case n > 1:
		e.tunnels.Put(k, n-1)
	default:
		e.tunnels.Del(k)
		e.tunnelCount[c]--
	}
}

// makerFor returns the FlowMaker asked about new flows to proto/port.
func (e *Engine) makerFor(proto uint8, port uint16) FlowMaker {
	for _, p := range e.makerPorts {
		if p.Port.Port == port && p.Proto == proto {
			return e.hooks[p.idx].maker
		}
	}
	return nil
}

// OpenedFromLAN says whether a flow began with a LAN host's packet to the
// outside (not a port forward, the DMZ, a mapping's filter or an
// expectation).
func (v *HelperEnv) OpenedFromLAN(f *conntrack.Flow) bool { return f.Origin == originLAN }

// KeyOf makes a key in the helper's key space n: an address and 64 bits
// of ids (an SPI, a tunnel or call id).
func (v *HelperEnv) KeyOf(n uint8, a [4]byte, x uint64) conntrack.Tuple {
	return conntrack.Tuple{Src: a, Dst: AddrOf(uint32(x >> 32)), SrcID: uint16(x >> 16), DstID: uint16(x), Side: v.Side(n)}
}

// AddrValue packs an address into a key's value.
func AddrValue(a [4]byte) uint32 { return be32(a) }

// AddrOf unpacks an address from a key's value.
func AddrOf(v uint32) [4]byte { return [4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }
