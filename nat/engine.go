// Package nat is passgate's engine: a pure function of (clock, interface,
// packet) that owns the flow table, the RFC 4787/5382/5508 mapping and
// filtering, port forwarding and the DMZ host, hairpinning, ICMP query and
// error translation, fragments, TTL and path MTU handling. Protocols the
// engine does not know itself (VPN passthrough, application-level
// gateways) are helpers in alg/, plugged in through the hooks of
// helper.go and hooks.go; the engine keeps no protocol's code.
//
// The engine makes no system calls, starts no goroutines and never reads a
// clock: the caller passes the time, so the lab, replays, fuzzers and
// benchmarks run the same code. It is not safe for concurrent use, but
// for FastPath, which forwards established flows and may run in several
// goroutines at once while nothing else runs (fast.go); the data plane
// serialises the rest through a lock. Nothing on the packet path
// allocates: the flow table, the mapper and the buffers for generated
// packets are sized when the engine is made.
package nat

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"

	"passgate/conntrack"
	"passgate/packet"
)

// Flow origins, for people reading the table.
const (
	originLAN uint8 = iota
	originMapping
	originForward
	originDMZ
	originHairpin
	originExpected
)

var originNames = [...]string{"lan", "wan-mapping", "port-forward", "dmz", "hairpin", "expected"}

// Engine is the NAT engine. Make one with New.
type Engine struct {
	cfg      Config
	lanAddr  [4]byte
	wanAddr  [4]byte
	lanNet   prefix4
	wanNet   prefix4
	gateway  [4]byte
	hasGW    bool
	mtu      [2]int // the configured MTUs, less the interfaces' (setMTU)
	linkMTU  [2]int // the interfaces' MTUs, 0 if not known (SetLinkMTU)
	timeouts struct {
		udp, tcpEst, tcpOpen, tcpClose, tcpClosed, icmp, frag Time
	}

	ct   *conntrack.Table
	maps *mapper
	// offQ holds the flows that may have become offloadable since the
	// last OffloadNew (a packet through Process left one established or
	// answered, OffloadAgain); offScan has the next OffloadNew walk the
	// whole table instead (after Reconfigure).
	offQ    []offCand
	offScan bool
	offFlow OffloadFlow // OffloadNew's, given to its fn
	fwd     []PortForward
	dyn     map[uint32]DynamicForward // dynfwd.go
	dmz     [4]byte
	frags   *fragTable

	emits    []Emit
	emitPool [][]byte
	emitUsed int

	ids        ipIDs        // IDs of the datagrams whose source it rewrites (ipid.go)
	icmpBucket bucket       // generated ICMP (icmpAllowed)
	prohib     prohibLimits // administratively prohibited errors (icmp.go)
	// errIDs gives the IP IDs of the ICMP errors the engine sends
	// (nextIPID).
	errIDs *rand.ChaCha8

	// keys indexes helpers' ids (HelperEnv.Key): IKE SPIs, L2TP tunnel
	// ids, PPTP call ids. It may hold keysMax (two a flow, as many as
	// every flow being a VPN tunnel could make) but grows to what it
	// holds (conntrack.NewGrowingIndex): most flows make none, and room
	// for two keys a flow was 80 bytes of every flow's memory.
	keys    *conntrack.Index
	keysMax int
	// doomed are flows to delete once the table is not being walked (a
	// flow's removal can end others: a PPTP control connection its GRE).
	doomed []doomedFlow
	now    Time
	srcMAC [6]byte // the LAN frame's source MAC (ProcessFrom), or zero
	// busy is the flow whose packet a helper is handling (FlowPacket), or
	// -1: the flows a helper makes meanwhile never early-drop it.
	busy int32
	// keyHost charges the helper keys made with HelperEnv.PutKeyOf to a
	// LAN host (value: its address), keysPerHost counts them, and
	// keysHostMax is a host's share of keysMax: a quarter, as the flow
	// table's default share (MaxFlowsPerHost), whatever that is set to.
	keyHost     *conntrack.Index
	keysPerHost map[[4]byte]int32
	keysHostMax int32

	// Helpers (helper.go, hooks.go), indexed by conntrack.Flow.Helper-1.
	helpers    []Helper
	hooks      []helperHooks
	fast       [256]FastHelper // the fast path's hooks by helper id, nil for none
	payload    []int           // the payload helpers, in order
	makerPorts []portHook      // server ports routed to a FlowMaker
	protoOwner [256]uint8      // IP protocol -> helper id (ProtocolHelper)
	passClass  []uint8         // a passthrough's counting class (conntrack.SetClass), 0 for none
	// classTunnels marks the counting classes of TunnelHelpers; tunnels
	// holds how many of their flows each (class, LAN host, remote) has
	// (tunnelKey), tunnelCount how many such keys each class has.
	classTunnels [conntrack.NumClasses]bool
	tunnels      *conntrack.Index
	tunnelCount  [conntrack.NumClasses]int
	nextClass    uint8
	passthroughs []int  // the PassthroughHelpers, in order
	shared       []Port // outside ports shared by LAN hosts (helpers on)
	helperOn     []bool
	helperStats  []HelperCounters
	hp           HelperPacket
	// seqAdjs are the TCP sequence corrections of the flows whose
	// payload a helper resized, by flow id (a flow's entry goes with it,
	// onDelete): a handful of flows have any, so they are kept apart, not
	// in room for every flow (28 bytes each).
	seqAdjs map[int32]seqAdjs

	hairpin hairpinPeers // hairpin.go

	events events
	stats  Stats
	run    flowRun // Process's own use of the fast path
	zero   uint64  // always 0 (forwardTo)
}

type doomedFlow struct {
	id  int32
	gen uint32
}

const (
	emitBufs = 128
	emitSize = EtherHeadroom + 2048
	// doomedMax bounds the flows one event can end (every call of every
	// PPTP control connection at most).
	doomedMax = 2048
)

// New validates cfg (with defaults filled) and makes an engine.
func New(cfg Config, now Time) (*Engine, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("nat: invalid configuration: %w", err)
	}
	e := &Engine{
		ct:    conntrack.New(cfg.MaxFlows, cfg.MaxFlowsPerHost, int64(now)),
		maps:  newMapper(cfg.MaxFlows, cfg.PortLo, cfg.PortHi, cfg.PortSeed),
		frags: newFragTable(),
		emits: make([]Emit, 0, emitBufs),

		keys:    conntrack.NewGrowingIndex(2*cfg.MaxFlows, helperKeysFirst),
		keysMax: 2 * cfg.MaxFlows,
		doomed:  make([]doomedFlow, 0, doomedMax),
		busy:    -1,

		keyHost:     conntrack.NewGrowingIndex(2*cfg.MaxFlows, helperKeysFirst),
		tunnels:     conntrack.NewGrowingIndex(cfg.MaxFlows, helperKeysFirst),
		keysPerHost: make(map[[4]byte]int32, 256),
		keysHostMax: int32(max(1, 2*cfg.MaxFlows/4)),
	}
	e.seqAdjs = make(map[int32]seqAdjs, 64)
	e.hairpin = make(hairpinPeers, 16)
	e.emitPool = make([][]byte, emitBufs)
	for i := range e.emitPool {
		e.emitPool[i] = make([]byte, emitSize)
	}
	e.ids.init(cfg.PortSeed)
	e.prohib.init(cfg.PortSeed)
	e.errIDs = rand.NewChaCha8(seedHash(cfg.PortSeed, "icmp error ids"))
	e.ct.OnDelete = e.onDelete
	e.ct.OnExpectationGone = e.expectationGone
	e.apply(cfg)
	e.icmpBucket.last = now
	return e, nil
}

// SetLinkMTU tells the engine the MTU of the interface on side in (0:
// not known): it sends, fragments and answers frag-needed by the smaller
// of it and the configured MTU, so that a packet the interface would
// refuse is fragmented or answered instead. The data plane calls it at
// start and when the interface's MTU changes. Under the write lock.
func (e *Engine) SetLinkMTU(in Iface, mtu int) {
	e.linkMTU[in&1] = mtu
	e.setMTU()
}

// setMTU sets the MTUs the engine sends by: the configured ones, less
// where the interface's (SetLinkMTU) is smaller.
func (e *Engine) setMTU() {
	e.mtu = [2]int{e.cfg.LANMTU, e.cfg.WANMTU}
	for i, l := range e.linkMTU {
		if l >= 68 && l < e.mtu[i] { // 68: IPv4's least (RFC 791)
			e.mtu[i] = l
		}
	}
}

// apply installs the parts of cfg that can change while flows live.
func (e *Engine) apply(cfg Config) {
	e.cfg = cfg
	e.lanAddr = cfg.LANAddr.Addr().As4()
	e.wanAddr = cfg.WANAddr.Addr().As4()
	e.lanNet = mkPrefix(cfg.LANAddr)
	e.wanNet = mkPrefix(cfg.WANAddr)
	e.hasGW = cfg.WANGateway.IsValid()
	if e.hasGW {
		e.gateway = cfg.WANGateway.As4()
	}
	e.setMTU()
	t := cfg.Timeouts
	e.timeouts.udp = Time(t.UDP)
	e.timeouts.tcpEst = Time(t.TCPEstablished)
	e.timeouts.tcpOpen = Time(t.TCPOpening)
	e.timeouts.tcpClose = Time(t.TCPClosing)
	e.timeouts.tcpClosed = Time(t.TCPClosed)
	e.timeouts.icmp = Time(t.ICMP)
	e.timeouts.frag = Time(t.Fragment)
	e.fwd = append(e.fwd[:0], cfg.PortForwards...)
	e.ct.SetRuleLimit(cfg.MaxFlowsPerRule)
	e.dmz = [4]byte{}
	if cfg.DMZ.IsValid() {
		e.dmz = cfg.DMZ.As4()
	}
	e.maps.lo, e.maps.hi = cfg.PortLo, cfg.PortHi
	e.applyHelpers()
}

// forwarded asks the Forwarders (a PPTP server on the LAN) about a flow a
// port forward or the DMZ made.
func (e *Engine) forwarded(now Time, id int32, f *conntrack.Flow, port uint16) (bool, DropReason) {
	for i := range e.hooks {
		if fw := e.hooks[i].fwd; fw != nil && e.helperOn[i] {
			if claimed, r := fw.Forwarded(now, id, f, port); claimed || r != DropNone {
				return claimed, r
			}
		}
	}
	return false, DropNone
}

// lookupLive is a lookup that treats a flow past its deadline as gone.
func (e *Engine) lookupLive(now Time, k conntrack.Tuple) (int32, conntrack.Dir, bool) {
	id, dir, ok := e.ct.Lookup(k)
	if ok && e.ct.Get(id).Deadline <= int64(now) {
		e.ct.Delete(id)
		e.reap()
		return 0, 0, false
	}
	return id, dir, ok
}

// doom queues a flow for deletion by reap.
func (e *Engine) doom(id int32, gen uint32) {
	if len(e.doomed) < cap(e.doomed) {
		e.doomed = append(e.doomed, doomedFlow{id, gen})
	}
}

// reap deletes the doomed flows (which may doom more).
func (e *Engine) reap() {
	for len(e.doomed) > 0 {
		d := e.doomed[len(e.doomed)-1]
		e.doomed = e.doomed[:len(e.doomed)-1]
		if e.ct.Live(d.id, d.gen) {
			e.ct.Delete(d.id)
		}
	}
}

// Process handles one IPv4 packet that arrived on from. The packet is
// rewritten in place; the verdict says where it goes. Packets the engine
// generates meanwhile are in Emitted.
func (e *Engine) Process(now Time, from Iface, b []byte) Verdict {
	return e.ProcessFrom(now, from, [6]byte{}, b)
}

// ProcessFrom is Process for a packet whose link-layer source address is
// known: a LAN frame's source MAC. The flows it makes are charged to that
// MAC as well as to the source address, each with its own share
// (MaxFlowsPerHost), so a host forging LAN source addresses still gets one
// share; so do its held fragments. A host with several addresses shares
// one; a host renumbered by DHCP keeps its share. (Checking the MAC
// against the neighbour table instead would trust ARP, which a host
// forges as easily, drop a renumbered host's packets until the table
// learns, and need an entry before the first packet.) A zero MAC charges
// the address alone.
func (e *Engine) ProcessFrom(now Time, from Iface, srcMAC [6]byte, b []byte) Verdict {
	e.now = now
	ip, err := packet.ParseIPv4(b)
	if err != nil {
		if err == packet.ErrVersion {
			return e.drop(DropNotIPv4)
		}
		return e.drop(DropMalformed)
	}
	if !ip.ValidChecksum() {
		return e.drop(DropMalformed)
	}
	e.stats.Packets[from]++
	e.stats.Bytes[from] += uint64(len(ip))
	out, nh, ok, missed := e.established(now, from, ip, &e.run)
	if ok {
		if e.run.tcp {
			e.flushSeq(&e.run, false)
		}
		e.flushRun(&e.run, false)
		return forwardTo(out, nh, e.zero)
	}
	if missed && from == LAN {
		e.prefetchNew(ip)
	}
	// Not a packet of an established flow: from here on it may make
	// flows, which are charged to the frame's source MAC too.
	e.srcMAC = [6]byte{}
	owner := conntrack.Owner{}
	if from == LAN && srcMAC != ([6]byte{}) {
		e.srcMAC = srcMAC
		owner = conntrack.MACOwner(srcMAC)
	}
	e.ct.SetLink(owner)

	if ip.IsFragment() && ip.FragmentOffset() != 0 {
		return e.laterFragment(now, from, ip)
	}
	src, dst := ip.Src(), ip.Dst()
	if from == LAN {
		if !e.lanNet.contains(src) {
			if src == ([4]byte{}) || src[0] == 169 && src[1] == 254 || dst[0] >= 224 {
				// A host with no address yet (DHCP), a link-local
				// one, or a broadcast or multicast: never routed, and
				// no sign of forging.
				return e.drop(DropMartian)
			}
			return e.drop(DropSpoofedSource)
		}
		if src == e.lanAddr || e.lanNet.edge(src) {
			return e.drop(DropMartian)
		}
		if dst == e.lanAddr {
			return e.local(now, from, ip)
		}
		if e.lanNet.contains(dst) || dst[0] >= 224 || dst[0] == 127 || dst[0] == 0 {
			return e.drop(DropMartian)
		}
		if !e.hasGW && !e.wanNet.contains(dst) {
			// Nowhere to send it: say so before making any state for it.
			e.icmpError(now, from, ip, packet.ICMPUnreachable, 0, 0)
			return e.drop(DropNoRoute)
		}
		if ip.TTL() <= 1 {
			e.icmpError(now, from, ip, packet.ICMPTimeExceeded, 0, 0)
			return e.drop(DropTTLExceeded)
		}
	} else if dst != e.wanAddr {
		return e.drop(DropMartian)
	}

	if h := e.protoOwner[ip.Protocol()]; h != 0 {
		// A protocol a helper owns (ESP, AH, GRE): it finds the flow.
		id, dir, r := e.hooks[h-1].proto.Packet(now, from, ip)
		if r != DropNone {
			if from == LAN && refusedFlow(r) {
				e.prohibited(now, ip) // RFC 5508 REQ-8
			}
			return e.drop(r)
		}
		return e.forward(now, from, ip, id, dir)
	}
	k, ok := tupleOf(ip, from)
	if !ok {
		if ip.Protocol() == packet.ProtoICMP {
			return e.icmp(now, from, ip)
		}
		if isL4(ip.Protocol()) {
			return e.drop(DropMalformed)
		}
		return e.drop(DropUnsupportedProto)
	}

	var id int32
	var dir conntrack.Dir
	found := false
	if !missed {
		id, dir, found = e.lookupLive(now, k)
	}
	if !found {
		var r DropReason
		id, dir, r = e.newFlow(now, from, ip, k)
		if r != DropNone {
			if r == dropLocal {
				return e.local(now, from, ip)
			}
			if from == LAN && refusedFlow(r) {
				e.prohibited(now, ip) // RFC 5508 REQ-8
			}
			return e.drop(r)
		}
	}
	return e.forward(now, from, ip, id, dir)
}

// prefetchNew has the CPU start loading what making an outbound flow
// for a TCP or UDP packet from the LAN that matched no flow will touch
// (established checked its headers): the mapper's slots and entries, the
// reply tuple's index slot and the free flow's lines and records, all at
// once, so that their misses overlap with each other and with the checks
// before the flow is made, where each was waited for in turn. It guesses
// the outside port is the LAN port (kept, as it mostly is); if not, the
// filter's and the reply's slots are missed as before.
func (e *Engine) prefetchNew(ip packet.IPv4) {
	h := ip[:packet.IPv4MinHeader:packet.IPv4MinHeader]
	l4 := ip[int(h[0]&0x0f)*4:]
	l4 = l4[:4:4]
	proto := h[9]
	src, dst := [4]byte(h[12:16]), [4]byte(h[16:20])
	sport, dport := binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
	var at [10]uintptr
	e.maps.lines((*[5]uintptr)(at[:5]), proto, src, sport, dst)
	reply := conntrack.Key{
		A: uint64(binary.LittleEndian.Uint32(dst[:])) | uint64(binary.LittleEndian.Uint32(e.wanAddr[:]))<<32,
		B: uint64(dport)<<32 | uint64(sport)<<16 | uint64(proto)<<8 | uint64(WAN),
	}
	e.ct.InsertLines((*[5]uintptr)(at[5:]), reply)
	conntrack.Prefetch(at[:])
}

// dropLocal is an internal marker: the packet is for the router itself.
const dropLocal = maxDropReasons + 1

func isL4(p uint8) bool {
	return p == packet.ProtoTCP || p == packet.ProtoUDP || p == packet.ProtoICMP
}

// tupleOf builds the tuple of a TCP, UDP or ICMP query packet. ok is false
// for other protocols, ICMP errors and truncated headers.
func tupleOf(ip packet.IPv4, side Iface) (conntrack.Tuple, bool) {
	k := conntrack.Tuple{Src: ip.Src(), Dst: ip.Dst(), Proto: ip.Protocol(), Side: uint8(side)}
	l4 := ip.Payload()
	switch k.Proto {
	case packet.ProtoTCP:
		t, err := packet.ParseTCP(l4)
		if err != nil {
			return k, false
		}
		k.SrcID, k.DstID = t.SrcPort(), t.DstPort()
	case packet.ProtoUDP:
		if len(l4) < packet.UDPHeaderLen {
			return k, false
		}
		u := packet.UDP(l4)
		k.SrcID, k.DstID = u.SrcPort(), u.DstPort()
	case packet.ProtoICMP:
		if len(l4) < packet.ICMPHeader {
			return k, false
		}
		c := packet.ICMP(l4)
		switch c.Type() {
		case packet.ICMPEcho, packet.ICMPTimestamp:
			k.SrcID = c.ID()
		case packet.ICMPEchoReply, packet.ICMPTimestampReply:
			k.DstID = c.ID()
		default:
			return k, false
		}
	default:
		return k, false
	}
	return k, true
}

// translation gives, for a packet matching dir of f, its new source and
// destination (address and id) and the interface it leaves by.
func translation(f *conntrack.Flow, dir conntrack.Dir) (src, dst [4]byte, sid, did uint16, out Iface) {
	if dir == conntrack.Original {
		r := &f.Xlate
		return r.Dst, r.Src, r.DstID, r.SrcID, Iface(r.Side)
	}
	o := &f.Orig
	return o.Dst, o.Src, o.DstID, o.SrcID, Iface(o.Side)
}

// forward applies a flow to a packet: state, limits on the way out, the
// rewrite, TTL.
func (e *Engine) forward(now Time, from Iface, ip packet.IPv4, id int32, dir conntrack.Dir) Verdict {
	f := e.ct.Get(id)
	if f.Flags&flagClassed == 0 {
		// A flow's class never changes: it is counted for Stats as it
		// comes and goes.
		e.classify(id, f)
	}
	if f.Origin == originHairpin {
		if r := e.hairpinStep(now, id, f, dir, ip); r != DropNone {
			return e.drop(r)
		}
	}
	nsrc, ndst, nsid, ndid, out := translation(f, dir)
	if from == WAN && ip.TTL() <= 1 {
		e.icmpError(now, from, ip, packet.ICMPTimeExceeded, 0, 0)
		return e.drop(DropTTLExceeded)
	}
	nh, ok := e.nextHop(out, ndst)
	if !ok {
		return e.drop(DropNoRoute)
	}
	tooBig := len(ip) > e.mtu[out]
	if tooBig && ip.DontFragment() {
		e.icmpError(now, from, ip, packet.ICMPUnreachable, packet.ICMPFragNeeded, uint16(e.mtu[out]))
		return e.drop(DropFragNeeded)
	}
	if r := e.track(now, id, f, dir, ip); r != DropNone {
		return e.drop(r)
	}
	e.offloadMaybe(id, f)
	var grown []byte // set when a helper's rewrite outgrew the packet's buffer
	if f.Helper != 0 {
		k := &e.hooks[f.Helper-1]
		if k.payload != nil {
			nip, frame, r := e.algInspect(now, id, f, dir, ip)
			if r != DropNone {
				return e.drop(r)
			}
			ip, grown = nip, frame
		} else if k.pkt != nil {
			e.busy = id
			r := k.pkt.FlowPacket(now, id, f, dir, ip)
			e.busy = -1
			if r != DropNone {
				if len(e.doomed) > 0 {
					e.reap()
				}
				if from == LAN && refusedFlow(r) {
					e.prohibited(now, ip)
				}
				return e.drop(r)
			}
		}
		if len(e.doomed) > 0 {
			e.reap() // flows the helper ended (a call's media, its GRE)
		}
	}
	f.Packets[dir]++
	f.Bytes[dir] += uint64(len(ip))

	isFirstFrag := ip.MoreFragments()
	oldSrc, oldDst, oldID := ip.Src(), ip.Dst(), ip.ID()
	if p, l4 := ip.Protocol(), len(ip.Payload()); f.Flags&flagTranslate == 0 &&
		(p == packet.ProtoUDP && l4 >= packet.UDPHeaderLen || p == packet.ProtoTCP && l4 >= packet.TCPMinHeader) {
		// The same bytes as rewrite and DecTTL, each checksum
		// updated once (a first fragment's too: the transport
		// checksum's update is incremental).
		rewritePorts(ip, p == packet.ProtoUDP, nsrc, ndst, nsid, ndid)
	} else {
		rewrite(ip, nsrc, ndst, nsid, ndid)
		if f.Flags&flagTranslate != 0 {
			e.fast[f.Helper].Translated(f, dir, ip)
		}
		ip.DecTTL()
	}
	if nsrc != oldSrc && nonAtomic(ip) {
		// One public source for many hosts: an ID unique toward the
		// destination (RFC 7857 section 10, ipid.go).
		setID32(ip, e.ids.next(be32(ndst), ip.Protocol()))
	}
	if isFirstFrag {
		e.firstFragment(now, from, oldSrc, oldDst, oldID, ip, out, nh)
	}
	if tooBig {
		e.fragmentOut(ip, out, nh)
		return Verdict{Action: Consumed}
	}
	if grown != nil {
		e.emit(out, nh, grown)
		return Verdict{Action: Consumed}
	}
	return Verdict{Action: Forward, Out: out, NextHop: nh}
}

// rewrite sets addresses and ids, keeping every checksum right
// incrementally. Only the first fragment carries the transport header; its
// checksum covers the whole datagram, and the incremental update stays
// right because only the pseudo-header and the ports change.
func rewrite(ip packet.IPv4, nsrc, ndst [4]byte, nsid, ndid uint16) {
	osrc, odst := ip.Src(), ip.Dst()
	l4 := ip.Payload()
	switch ip.Protocol() {
	case packet.ProtoTCP:
		t := packet.TCP(l4)
		if osrc != nsrc {
			t.UpdateAddr(osrc, nsrc)
		}
		if odst != ndst {
			t.UpdateAddr(odst, ndst)
		}
		if t.SrcPort() != nsid {
			t.SetSrcPort(nsid)
		}
		if t.DstPort() != ndid {
			t.SetDstPort(ndid)
		}
	case packet.ProtoUDP:
		u := packet.UDP(l4)
		if osrc != nsrc {
			u.UpdateAddr(osrc, nsrc)
		}
		if odst != ndst {
			u.UpdateAddr(odst, ndst)
		}
		if u.SrcPort() != nsid {
			u.SetSrcPort(nsid)
		}
		if u.DstPort() != ndid {
			u.SetDstPort(ndid)
		}
	case packet.ProtoICMP:
		c := packet.ICMP(l4)
		// A query's id is its SrcID, a reply's its DstID (see tupleOf).
		id := nsid
		if c.Type() == packet.ICMPEchoReply || c.Type() == packet.ICMPTimestampReply {
			id = ndid
		}
		if c.ID() != id {
			c.SetID(id)
		}
	}
	if osrc != nsrc {
		ip.SetSrc(nsrc)
	}
	if odst != ndst {
		ip.SetDst(ndst)
	}
}

// nextHop32 is nextHop with addresses as integers (be32).
func (e *Engine) nextHop32(out Iface, dst uint32) (uint32, bool) {
	if out == LAN {
		return dst, e.lanNet.has(dst)
	}
	if e.wanNet.has(dst) {
		return dst, true
	}
	return be32(e.gateway), e.hasGW
}

// nextHop picks the neighbour a packet to dst leaves through on out.
func (e *Engine) nextHop(out Iface, dst [4]byte) ([4]byte, bool) {
	if out == LAN {
		return dst, e.lanNet.contains(dst)
	}
	if e.wanNet.contains(dst) {
		return dst, true
	}
	return e.gateway, e.hasGW
}

// newFlow creates the flow for a packet that matched none. It returns
// dropLocal for packets the router answers itself.
func (e *Engine) newFlow(now Time, from Iface, ip packet.IPv4, k conntrack.Tuple) (int32, conntrack.Dir, DropReason) {
	if k.Proto == packet.ProtoTCP {
		fl := packet.TCP(ip.Payload()).Flags()
		if fl&(packet.TCPSyn|packet.TCPAck|packet.TCPRst|packet.TCPFin) != packet.TCPSyn {
			// Only a bare SYN opens a connection: stray segments of flows
			// that ended, and scans, create no state (RFC 5382 REQ-4 lets
			// us drop unsolicited SYNs; we also drop the rest).
			if from == WAN {
				return 0, 0, DropUnsolicited
			}
			return 0, 0, DropTCPInvalid
		}
	}
	if k.Proto == packet.ProtoICMP && !isQueryRequest(ip) {
		// A reply with no request: nothing asked for it.
		return 0, 0, DropUnsolicited
	}
	if from == LAN {
		// Room first (an early drop may end flows and release their
		// mappings, so nothing of theirs may be held across it).
		if err := e.ct.MakeRoom(k.Src, e.linkOwner()); err != nil {
			return 0, 0, insertReason(err)
		}
		if k.Dst == e.wanAddr {
			return e.newHairpin(now, ip, k)
		}
		if m := e.makerFor(k.Proto, k.DstID); m != nil {
			if id, dir, r, ok := m.Outbound(now, ip, k); ok {
				return id, dir, r
			}
		}
		id, dir, r := e.newOutbound(now, k, originLAN)
		if r == DropNone && len(e.helpers) > 0 {
			e.claim(e.ct.Get(id), k.DstID)
		}
		return id, dir, r
	}
	return e.newInbound(now, ip, k)
}

func isQueryRequest(ip packet.IPv4) bool {
	t := packet.ICMP(ip.Payload()).Type()
	return t == packet.ICMPEcho || t == packet.ICMPTimestamp
}

// timeoutFor is the timeout of a new flow.
func (e *Engine) timeoutFor(proto uint8) Time {
	switch proto {
	case packet.ProtoTCP:
		return e.timeouts.tcpOpen
	case packet.ProtoICMP:
		return e.timeouts.icmp
	default:
		// UDP, and the tunnels passed through (ESP, GRE), which live as
		// long: a tunnel idle for a minute is no query that went
		// unanswered.
		return e.timeouts.udp
	}
}

// outboundRoom says why a flow from LAN host src may not be made now
// (the host's share, the table, the MAC's share full), before a mapping
// is taken for it: for a helper's flow (HelperEnv.NewMapped). newFlow
// has made room already (MakeRoom), which these would only check again.
func (e *Engine) outboundRoom(src [4]byte) DropReason {
	if e.ct.HostFlows(src) >= e.cfg.MaxFlowsPerHost {
		return DropHostLimit
	}
	if e.ct.Len() >= e.ct.Cap() {
		return DropTableFull
	}
	if o := e.linkOwner(); o.Kind != conntrack.OwnerNone && e.ct.OwnerFlows(o) >= e.cfg.MaxFlowsPerHost {
		return DropMACLimit
	}
	return DropNone
}

// newOutbound maps a LAN endpoint (endpoint-independent: the same mapping
// for every destination) and makes the flow. The table's room is the
// caller's to see to (MakeRoom, outboundRoom); Insert checks it again.
func (e *Engine) newOutbound(now Time, k conntrack.Tuple, origin uint8) (int32, conntrack.Dir, DropReason) {
	m, ok := e.maps.acquire(k.Proto, k.Src, k.SrcID, e.srcMAC, e.reserved)
	if !ok {
		return 0, 0, DropPortsExhausted
	}
	ext := e.maps.slab[m].extPort
	reply := conntrack.Tuple{Src: k.Dst, Dst: e.wanAddr, SrcID: k.DstID, DstID: ext, Proto: k.Proto, Side: uint8(WAN)}
	if k.Proto == packet.ProtoICMP {
		reply.SrcID = 0
	}
	id, err := e.ct.Insert(k, reply, k.Src, int64(now), int64(now+e.timeoutFor(k.Proto)))
	if err != nil {
		e.maps.release(m)
		return 0, 0, insertReason(err)
	}
	f := e.ct.Get(id)
	f.Ext = m + 1
	f.Origin = origin
	e.maps.filterAdd(k.Proto, ext, k.Dst, 1)
	e.stats.Created++
	return id, conntrack.Original, DropNone
}

func insertReason(err error) DropReason {
	switch err {
	case conntrack.ErrHostLimit:
		return DropHostLimit
	case conntrack.ErrOwnerLimit:
		return DropMACLimit
	case conntrack.ErrFull, conntrack.ErrProbe:
		return DropTableFull
	}
	return DropMalformed
}

// linkOwner is what the flows being made are charged to besides their
// host: the LAN frame's source MAC, if known.
func (e *Engine) linkOwner() conntrack.Owner {
	if e.srcMAC == ([6]byte{}) {
		return conntrack.Owner{}
	}
	return conntrack.MACOwner(e.srcMAC)
}

// dmzRule is the DMZ's number among the inbound rules' owners (a port
// forward's is its protocol and first outside port, see ruleOwner).
const dmzRule = 0xff << 16

// ruleOwner is the owner an inbound rule's flows are charged to: named by
// the rule's protocol and first outside port, so it stays the same while
// other rules come and go.
func ruleOwner(proto uint8, outsideLo uint16) conntrack.Owner {
	return conntrack.RuleOwner(int(proto)<<16 | int(outsideLo))
}

// ruleRoomReason is the drop reason for a refusal to make an inbound
// rule's flow.
func ruleRoomReason(err error) DropReason {
	if err == conntrack.ErrOwnerLimit {
		return DropRuleLimit
	}
	return insertReason(err)
}

// ownerRoomReason is the drop reason for a refusal to make a flow charged
// to o.
func ownerRoomReason(o conntrack.Owner, err error) DropReason {
	if o.Kind == conntrack.OwnerRule {
		return ruleRoomReason(err)
	}
	return insertReason(err)
}

// helperOwner is what a flow a helper makes now is charged to besides its
// host: the LAN frame's source MAC, or, for a packet from the WAN (or a
// LAN frame with no MAC known), the owner of the flow whose packet the
// helper is handling.
func (e *Engine) helperOwner() conntrack.Owner {
	if o := e.linkOwner(); o.Kind != conntrack.OwnerNone || e.busy < 0 {
		return o
	}
	return e.ct.Get(e.busy).Owner
}

// newInbound handles a WAN packet that matched no flow: a port forward, an
// existing mapping that its filtering admits, the router itself, the DMZ
// host, or nothing (unsolicited: dropped, no state).
func (e *Engine) newInbound(now Time, ip packet.IPv4, k conntrack.Tuple) (int32, conntrack.Dir, DropReason) {
	if k.Proto == packet.ProtoICMP {
		return 0, 0, dropLocal // a query to the router's public address
	}
	if host, port, lo, ok := e.forwardRule(k.Proto, k.DstID); ok {
		if id, dir, ok := e.sharedAnswer(now, ip, k); ok {
			return id, dir, DropNone
		}
		return e.newDNAT(now, k, host, port, originForward, ruleOwner(k.Proto, lo))
	}
	if id, r, ok := e.expected(now, k); ok {
		// A refused expected flow is dropped, not let in through the
		// mapping the expectation held (charged to the inbound share).
		return id, conntrack.Original, r
	}
	if m := e.makerFor(k.Proto, k.DstID); m != nil {
		if id, dir, r, ok := m.Inbound(now, ip, k); ok {
			return id, dir, r
		}
	}
	if m, ok := e.maps.lookupExt(k.Proto, k.DstID); ok {
		if !e.admits(k.Proto, k.DstID, k.Src) {
			return 0, 0, DropFiltered
		}
		// Charged to the host's inbound share and, when the mapping was
		// made from a known MAC, to that MAC's (a host forging many
		// addresses gets one share for what comes in through all their
		// mappings, as for what it sends).
		owner := conntrack.InboundOwner
		if mac, ok := e.maps.macOf(m); ok {
			owner = conntrack.MACInboundOwner(mac)
		}
		if err := e.ct.MakeRoom(e.maps.slab[m].key.host, owner); err != nil {
			return 0, 0, insertReason(err)
		}
		// Making room may have ended the mapping's last flow.
		if m, ok = e.maps.lookupExt(k.Proto, k.DstID); !ok {
			return 0, 0, DropUnsolicited
		}
		mp := &e.maps.slab[m]
		orig := conntrack.Tuple{Src: mp.key.host, Dst: k.Src, SrcID: mp.key.port, DstID: k.SrcID, Proto: k.Proto, Side: uint8(LAN)}
		id, err := e.ct.InsertOwned(orig, k, mp.key.host, owner, int64(now), int64(now+e.timeoutFor(k.Proto)))
		if err != nil {
			return 0, 0, insertReason(err)
		}
		mp.refs++
		f := e.ct.Get(id)
		f.Ext = m + 1
		f.Origin = originMapping
		e.maps.filterAdd(k.Proto, k.DstID, k.Src, 1)
		e.stats.Created++
		return id, conntrack.Reply, DropNone
	}
	if e.dmz != ([4]byte{}) {
		return e.newDNAT(now, k, e.dmz, k.DstID, originDMZ, conntrack.RuleOwner(dmzRule))
	}
	return 0, 0, DropUnsolicited
}

// admits is RFC 4787 filtering for a packet from remote to an existing
// mapping's outside port (an exact flow match never gets here).
func (e *Engine) admits(proto uint8, ext uint16, remote [4]byte) bool {
	switch e.cfg.Filtering {
	case EndpointIndependent:
		return true
	case AddressDependent:
		return e.maps.filterHas(proto, ext, remote)
	}
	return false
}

// newDNAT makes a flow for an inbound packet sent on to a LAN host. It is
// charged to the rule that let it in (owner), with a share of its own, and
// to the LAN host's inbound share (its address with no MAC: apart from its
// own outbound flows), so that a flood from the WAN to a forwarded port
// uses up the rule's share (its oldest unanswered flows go first) and
// leaves the host's outbound flows alone, and a host with many forwards
// (a LAN program can open 32 with PCP) does not get a table's worth.
func (e *Engine) newDNAT(now Time, k conntrack.Tuple, host [4]byte, port uint16, origin uint8, owner conntrack.Owner) (int32, conntrack.Dir, DropReason) {
	if err := e.ct.MakeRoom(host, owner); err != nil {
		return 0, 0, ruleRoomReason(err)
	}
	reply := conntrack.Tuple{Src: host, Dst: k.Src, SrcID: port, DstID: k.SrcID, Proto: k.Proto, Side: uint8(LAN)}
	id, err := e.ct.InsertOwned(k, reply, host, owner, int64(now), int64(now+e.timeoutFor(k.Proto)))
	if err != nil {
		return 0, 0, ruleRoomReason(err)
	}
	f := e.ct.Get(id)
	f.Origin = origin
	if claimed, r := e.forwarded(now, id, f, port); r != DropNone {
		e.ct.Delete(id)
		return 0, 0, r
	} else if !claimed && len(e.payload) > 0 {
		e.claim(f, port)
	}
	e.stats.Created++
	return id, conntrack.Original, DropNone
}

// sharedAnswer sends a WAN packet to a forwarded port that a passthrough
// on shares (IKE's UDP 500, L2TP's 1701) to the LAN host whose flow on the
// shared port it answers, when the passthrough places it
// (SharedReplier): the forward takes the rest.
func (e *Engine) sharedAnswer(now Time, ip packet.IPv4, k conntrack.Tuple) (int32, conntrack.Dir, bool) {
	for i := range e.hooks {
		sr := e.hooks[i].replier
		if sr == nil || !e.helperOn[i] {
			continue
		}
		if p := sr.SharedPort(); p.Proto != k.Proto || p.Port != k.DstID || !sr.Places(ip, k) {
			continue
		}
		id, dir, r, handled := sr.Inbound(now, ip, k)
		return id, dir, handled && r == DropNone
	}
	return 0, 0, false
}

// forwardTarget finds the port forward for an outside port: a configured
// one, else a dynamic one (dynfwd.go).
func (e *Engine) forwardTarget(proto uint8, port uint16) ([4]byte, uint16, bool) {
	h, p, _, ok := e.forwardRule(proto, port)
	return h, p, ok
}

// forwardRule is forwardTarget that also gives the rule's first outside
// port, which names it (its charge for inbound flows, ruleOwner).
func (e *Engine) forwardRule(proto uint8, port uint16) ([4]byte, uint16, uint16, bool) {
	for i := range e.fwd {
		r := &e.fwd[i]
		if r.Proto == proto && port >= r.OutsideLo && port <= r.OutsideHi {
			return r.Host.As4(), r.InsidePort + (port - r.OutsideLo), r.OutsideLo, true
		}
	}
	if h, p, ok := e.dynTarget(proto, port); ok {
		// A dynamic forward is named by its outside port.
		return h, p, port, true
	}
	return [4]byte{}, 0, 0, false
}

// reserved says whether port forwarding owns an outside port, so dynamic
// mappings never take it.
func (e *Engine) reserved(proto uint8, port uint16) bool {
	for _, p := range e.shared {
		if p.Port == port && p.Proto == proto {
			return true // shared by every LAN host's IKE or L2TP
		}
	}
	_, _, ok := e.forwardTarget(proto, port)
	return ok
}

// onDelete releases what a flow held when the table removes it.
func (e *Engine) onDelete(id int32, f *conntrack.Flow) {
	if f.Ext != 0 {
		m := f.Ext - 1
		mp := &e.maps.slab[m]
		if f.Origin != originExpected {
			// A hairpin flow's remote is the public address it was
			// made with (the WAN address may have changed since).
			e.maps.filterAdd(mp.key.proto, mp.extPort, f.Orig.Dst, -1)
		}
		e.maps.release(m)
	}
	if f.Origin == originHairpin {
		e.hairpinGone(id, f)
	}
	if f.Helper != 0 {
		e.helperEnded(id, f)
	}
	e.unclassify(f)
	if len(e.seqAdjs) != 0 {
		delete(e.seqAdjs, id)
	}
	e.stats.Expired++
}

func (e *Engine) drop(r DropReason) Verdict {
	e.stats.Drops[r]++
	return Verdict{Action: Drop, Reason: r}
}

// Expire ends flows whose time is up and returns how many.
func (e *Engine) Expire(now Time) int {
	e.now = now
	e.frags.expire(now, e)
	n := e.ct.Expire(int64(now))
	e.reap()
	return n
}

// Emitted returns the packets the engine generated since ResetEmitted.
func (e *Engine) Emitted() []Emit { return e.emits }

// ResetEmitted hands the generated packets' buffers back to the engine;
// the caller must have sent or copied them.
func (e *Engine) ResetEmitted() {
	e.emits = e.emits[:0]
	e.emitUsed = 0
}

// emitBuf returns a buffer for a generated packet of n bytes, or nil when
// the batch's buffers are used up (counted).
func (e *Engine) emitBuf(n int) []byte {
	if e.emitUsed == len(e.emitPool) || EtherHeadroom+n > emitSize {
		e.stats.Drops[DropEmitFull]++
		return nil
	}
	b := e.emitPool[e.emitUsed][:EtherHeadroom+n]
	e.emitUsed++
	return b
}

func (e *Engine) emit(out Iface, nh [4]byte, frame []byte) {
	e.emits = append(e.emits, Emit{Out: out, NextHop: nh, Frame: frame})
}

// nextIPID is the IP ID of an ICMP error the engine sends: drawn from a
// generator keyed by the port seed, where a counter let a host that drew
// two errors count those sent to anyone in between (a LAN traceroute's,
// refusals: TestICMPErrorIDsCountNothing). An error is never fragmented,
// so its ID needs no more than that.
func (e *Engine) nextIPID() uint16 { return uint16(e.errIDs.Uint64()) }
