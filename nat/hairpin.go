package nat

// Hairpinning (RFC 4787 REQ-9, RFC 5382 REQ-8): a LAN host's packet to the
// router's public address goes back into the LAN, to the host that outside
// port leads to (a port forward, a dynamic mapping, the DMZ host), as if it
// had left by the sender's mapping and come back in by the receiver's,
// through two NATs that share the one public address.
//
// One flow carries both directions: Orig is the sender's packet (A:a ->
// pub:B'), Reply the receiver's (B:b -> pub:A'), so each side sees the
// other's public endpoint (REQ-9 a). A flow to a dynamic mapping holds that
// mapping too (hairpin.peer), and the filter counts are what two NATs would
// record: the sender's mapping has sent to the public address from the
// first packet on, the receiver's from its first answer.
//
// The receiver's mapping filters the first packet after the sender's has
// recorded it. When the filter refuses, the flow is made all the same but
// held: the sender's packets are dropped (DropFiltered, as the receiver's
// NAT would) and keep it alive, and the receiver's first packet to the
// sender's public endpoint, which the sender's mapping admits under any
// filtering since it has sent there, matches the flow's Reply and opens it.
// That is hole punching: both hosts send, the first packets may be lost,
// the rest get through, under endpoint-independent, address-dependent and
// address-and-port-dependent filtering alike, and a TCP simultaneous open
// (RFC 5382 REQ-2) the same way.
//
// A socket that sends to its own public mapping (the hairpinning test of
// RFC 5780 4.6) gets its packets back from that mapping: the flow's Reply
// key is one no packet has (sideSelf), and its Xlate turns the packet round
// to the sender.
//
// ICMP errors about hairpinned packets need nothing here: the error's
// embedded datagram matches the flow as any other's does (icmp.go).

import (
	"passgate/conntrack"
	"passgate/packet"
)

// sideSelf marks the Reply key of a self-probe's flow: no packet has it.
const sideSelf = 0x12

// flagHeld (conntrack.Flow.Flags) marks a hairpin flow the receiving
// mapping's filter has not admitted yet. tcpStep sees the sender's
// packets of a held flow (hairpinStep tracks them before dropping them),
// so its reset of the flags when a connection reopens keeps this one.
const flagHeld uint16 = 1 << 15

// peerSent marks, in hairpin.peer, a receiver that has answered: its
// mapping counts the public address as a remote it has sent to.
const peerSent = 1 << 31

// hairpinPeers are the receiving mappings of the hairpin flows, by flow id:
// the mapping's index + 1 (none: a port forward or the DMZ host), with
// peerSent. A map, as few flows are hairpins: room in every flow was 4
// bytes each.
type hairpinPeers map[int32]uint32

// newHairpin makes the flow for a LAN packet to the router's public
// address. The flow may come back held: forward drops its packets until
// the receiver answers.
func (e *Engine) newHairpin(now Time, ip packet.IPv4, k conntrack.Tuple) (int32, conntrack.Dir, DropReason) {
	if k.Proto == packet.ProtoICMP {
		return 0, 0, dropLocal
	}
	var host [4]byte
	var port uint16
	var peer uint32 // the receiving mapping + 1
	if h, p, ok := e.forwardTarget(k.Proto, k.DstID); ok {
		host, port = h, p
	} else if m, ok := e.maps.lookupExt(k.Proto, k.DstID); ok {
		host, port, peer = e.maps.slab[m].key.host, e.maps.slab[m].key.port, m+1
	} else if e.dmz != ([4]byte{}) {
		host, port = e.dmz, k.DstID
	} else {
		return 0, 0, DropUnsolicited
	}
	if e.ct.HostFlows(k.Src) >= e.cfg.MaxFlowsPerHost {
		return 0, 0, DropHostLimit
	}
	m, ok := e.maps.acquire(k.Proto, k.Src, k.SrcID, e.srcMAC, e.reserved)
	if !ok {
		return 0, 0, DropPortsExhausted
	}
	ext := e.maps.slab[m].extPort
	// A self-probe: to the sender's own mapping, or to a forward (a PCP
	// one, say) of the sender's endpoint on its mapping's port.
	self := host == k.Src && port == k.SrcID && ext == k.DstID
	reply := conntrack.Tuple{Src: host, Dst: e.wanAddr, SrcID: port, DstID: ext, Proto: k.Proto, Side: uint8(LAN)}
	if self {
		reply = k
		reply.Side = sideSelf
	}
	id, err := e.ct.Insert(k, reply, k.Src, int64(now), int64(now+e.timeoutFor(k.Proto)))
	if err != nil {
		e.maps.release(m)
		return 0, 0, insertReason(err)
	}
	f := e.ct.Get(id)
	f.Ext = m + 1
	f.Origin = originHairpin
	// The sender's mapping has sent to the public address (and, for a
	// self-probe, its own filter has just been opened by it).
	e.maps.filterAdd(k.Proto, ext, e.wanAddr, 1)
	delete(e.hairpin, id)
	switch {
	case self:
		f.Xlate = conntrack.Tuple{Src: k.Src, Dst: e.wanAddr, SrcID: k.SrcID, DstID: ext, Proto: k.Proto, Side: uint8(LAN)}
	case peer != 0:
		e.maps.slab[peer-1].refs++
		e.hairpin[id] = peer
		if !e.admits(k.Proto, k.DstID, e.wanAddr) {
			f.Flags |= flagHeld
		}
	}
	e.stats.Created++
	return id, conntrack.Original, DropNone
}

// hairpinStep is forward's first step for a hairpin flow: a held flow's
// packets from the sender are tracked (they keep the flow, and a SYN's
// state, as the sender's NAT would) and dropped; the receiver's first
// answer opens the flow and its mapping's filter to the public address.
func (e *Engine) hairpinStep(now Time, id int32, f *conntrack.Flow, dir conntrack.Dir, ip packet.IPv4) DropReason {
	if dir == conntrack.Original {
		if f.Flags&flagHeld == 0 {
			return DropNone
		}
		e.track(now, id, f, dir, ip)
		return DropFiltered
	}
	f.Flags &^= flagHeld
	if p := e.hairpin[id]; p != 0 && p&peerSent == 0 {
		mp := &e.maps.slab[p-1]
		e.maps.filterAdd(mp.key.proto, mp.extPort, f.Orig.Dst, 1) // the public address
		e.hairpin[id] = p | peerSent
	}
	return DropNone
}

// hairpinGone releases a hairpin flow's hold on the receiving mapping and
// its count of the public address the flow was made with (f.Orig.Dst).
func (e *Engine) hairpinGone(id int32, f *conntrack.Flow) {
	p := e.hairpin[id]
	delete(e.hairpin, id)
	m := p &^ peerSent
	if m == 0 {
		return
	}
	mp := &e.maps.slab[m-1]
	if p&peerSent != 0 {
		e.maps.filterAdd(mp.key.proto, mp.extPort, f.Orig.Dst, -1)
	}
	e.maps.release(m - 1)
}
