package nat

import (
	"encoding/binary"
	"slices"

	"passgate/conntrack"
	"passgate/packet"
)

// local answers what is addressed to the router itself: echo requests get
// a reply, turned round in place; anything else is dropped (the admin plane
// reaches the kernel's sockets by its own path).
func (e *Engine) local(now Time, from Iface, ip packet.IPv4) Verdict {
	if from == LAN && ip.Protocol() == packet.ProtoTCP && !ip.IsFragment() && len(e.cfg.KernelTCP) > 0 {
		if t, err := packet.ParseTCP(ip.Payload()); err == nil && ip.Dst() == e.lanAddr && slices.Contains(e.cfg.KernelTCP, t.DstPort()) {
			return Verdict{Action: Consumed} // the kernel's socket answers it
		}
	}
	if from == LAN && ip.Protocol() == packet.ProtoUDP && !ip.IsFragment() && len(e.cfg.KernelUDP) > 0 {
		if u, err := packet.ParseUDP(ip.Payload()); err == nil && ip.Dst() == e.lanAddr && slices.Contains(e.cfg.KernelUDP, u.DstPort()) {
			return Verdict{Action: Consumed}
		}
	}
	if ip.Protocol() != packet.ProtoICMP || ip.IsFragment() {
		return e.drop(DropToRouter)
	}
	c, err := packet.ParseICMP(ip.Payload())
	if err != nil || c.Type() != packet.ICMPEcho {
		return e.drop(DropToRouter)
	}
	if packet.Checksum(c) != 0 {
		return e.drop(DropMalformed)
	}
	if !e.icmpAllowed(now) {
		return e.drop(DropToRouter)
	}
	src, dst := ip.Src(), ip.Dst()
	nh, ok := e.nextHop(from, src)
	if !ok {
		return e.drop(DropNoRoute)
	}
	c[0] = packet.ICMPEchoReply
	c.AdjustChecksum(uint16(packet.ICMPEcho)<<8|uint16(c.Code()), uint16(packet.ICMPEchoReply)<<8|uint16(c.Code()))
	ip.SetSrc(dst)
	ip.SetDst(src)
	old := binary.BigEndian.Uint16(ip[8:])
	ip[8] = 64
	binary.BigEndian.PutUint16(ip[10:], packet.Update16(ip.Checksum(), old, binary.BigEndian.Uint16(ip[8:])))
	e.stats.ICMPSent++
	return Verdict{Action: Forward, Out: from, NextHop: nh}
}

// icmp handles ICMP messages that are not queries: errors about a flow are
// translated with the datagram they embed (RFC 5508 REQ-3..REQ-6); others
// are dropped.
func (e *Engine) icmp(now Time, from Iface, ip packet.IPv4) Verdict {
	if ip.IsFragment() {
		return e.drop(DropFragments)
	}
	c, err := packet.ParseICMP(ip.Payload())
	if err != nil || !c.IsError() || c.Type() == packet.ICMPRedirect {
		if err == nil && from == WAN && !c.IsError() {
			return e.drop(DropUnsolicited)
		}
		return e.drop(DropMalformed)
	}
	inner, err := parseEmbedded(c.Payload())
	if err != nil || packet.Checksum(c) != 0 || !inner.ValidChecksum() {
		// RFC 5508 REQ-3, 3a: an error whose ICMP checksum or embedded
		// header checksum fails is dropped (the embedded transport
		// checksum is not checked: REQ-3c).
		return e.drop(DropMalformed)
	}
	// The embedded datagram went out from the flow; its reverse is what a
	// reply would look like arriving on this side.
	k, ok := embeddedReverseTuple(inner, from)
	if !ok {
		return e.drop(DropICMPNoFlow)
	}
	id, dir, found := e.ct.Lookup(k)
	if !found {
		return e.drop(DropICMPNoFlow)
	}
	f := e.ct.Get(id)
	nsrc, ndst, nsid, ndid, out := translation(f, dir)
	if ip.TTL() <= 1 {
		return e.drop(DropTTLExceeded)
	}
	nh, ok := e.nextHop(out, ndst)
	if !ok {
		return e.drop(DropNoRoute)
	}
	// The embedded datagram is restored to what the LAN (or WAN) side sent:
	// its source is where the error goes, its destination where it went.
	osrc := ip.Src()
	innerDst := inner.Dst()
	setEmbedded(inner, ndst, nsrc, ndid, nsid)
	if osrc == innerDst || out == WAN {
		// The peer itself reports: it appears as the translated peer.
		// And no LAN address leaves by the WAN: an error from another
		// LAN node (a router in front of the host) comes from the
		// public address (RFC 5508 REQ-5), which nsrc then is.
		ip.SetSrc(nsrc)
	}
	ip.SetDst(ndst)
	c.ComputeChecksum()
	ip.DecTTL()
	if len(ip) > e.mtu[out] {
		return e.drop(DropFragNeeded)
	}
	f.Packets[dir]++
	f.Bytes[dir] += uint64(len(ip))
	return Verdict{Action: Forward, Out: out, NextHop: nh}
}

// parseEmbedded reads the datagram inside an ICMP error: a full IPv4
// header and at least the 8 bytes RFC 792 promises; the rest may be cut.
func parseEmbedded(b []byte) (packet.IPv4, error) {
	if len(b) < packet.IPv4MinHeader {
		return nil, packet.ErrTruncated
	}
	if b[0]>>4 != 4 {
		return nil, packet.ErrVersion
	}
	hl := int(b[0]&0x0f) * 4
	if hl < packet.IPv4MinHeader || len(b) < hl+8 {
		return nil, packet.ErrHeaderLen
	}
	return packet.IPv4(b), nil
}

// embeddedReverseTuple is the tuple of a reply to the embedded datagram,
// arriving on side.
func embeddedReverseTuple(in packet.IPv4, side Iface) (conntrack.Tuple, bool) {
	hl := in.HeaderLen()
	l4 := in[hl:]
	k := conntrack.Tuple{Src: in.Dst(), Dst: in.Src(), Proto: in.Protocol(), Side: uint8(side)}
	if binary.BigEndian.Uint16(in[6:])&0x1fff != 0 {
		return k, false // not the first fragment: no ports to read
	}
	switch k.Proto {
	case packet.ProtoTCP, packet.ProtoUDP:
		k.SrcID = binary.BigEndian.Uint16(l4[2:])
		k.DstID = binary.BigEndian.Uint16(l4[0:])
	case packet.ProtoICMP:
		switch l4[0] {
		case packet.ICMPEcho, packet.ICMPTimestamp:
			k.DstID = binary.BigEndian.Uint16(l4[4:]) // the reply carries it
		case packet.ICMPEchoReply, packet.ICMPTimestampReply:
			k.SrcID = binary.BigEndian.Uint16(l4[4:])
		default:
			return k, false
		}
	default:
		return k, false
	}
	return k, true
}

// setEmbedded rewrites the embedded datagram's addresses and ids, with its
// header checksum and, when the embedded transport checksum is there, that
// one too. The ICMP checksum is recomputed by the caller.
func setEmbedded(in packet.IPv4, src, dst [4]byte, sid, did uint16) {
	hl := in.HeaderLen()
	l4 := in[hl:]
	osrc, odst := in.Src(), in.Dst()
	proto := in.Protocol()
	switch proto {
	case packet.ProtoTCP, packet.ProtoUDP:
		csOff := 16
		if proto == packet.ProtoUDP {
			csOff = 6
		}
		osid := binary.BigEndian.Uint16(l4[0:])
		odid := binary.BigEndian.Uint16(l4[2:])
		binary.BigEndian.PutUint16(l4[0:], sid)
		binary.BigEndian.PutUint16(l4[2:], did)
		if len(l4) >= csOff+2 {
			cs := binary.BigEndian.Uint16(l4[csOff:])
			if cs != 0 || proto == packet.ProtoTCP {
				cs = packet.Update32(cs, osrc, src)
				cs = packet.Update32(cs, odst, dst)
				cs = packet.Update16(cs, osid, sid)
				cs = packet.Update16(cs, odid, did)
				if cs == 0 && proto == packet.ProtoUDP {
					cs = 0xffff
				}
				binary.BigEndian.PutUint16(l4[csOff:], cs)
			}
		}
	case packet.ProtoICMP:
		id := sid
		if l4[0] == packet.ICMPEchoReply || l4[0] == packet.ICMPTimestampReply {
			id = did
		}
		if len(l4) >= 8 {
			old := binary.BigEndian.Uint16(l4[4:])
			binary.BigEndian.PutUint16(l4[4:], id)
			cs := packet.Update16(binary.BigEndian.Uint16(l4[2:]), old, id)
			binary.BigEndian.PutUint16(l4[2:], cs)
		}
	}
	// The embedded header checksum, incrementally: the header is complete.
	cs := binary.BigEndian.Uint16(in[10:])
	cs = packet.Update32(cs, osrc, src)
	cs = packet.Update32(cs, odst, dst)
	binary.BigEndian.PutUint16(in[10:], cs)
	copy(in[12:16], src[:])
	copy(in[16:20], dst[:])
}

// bucket is a token bucket kept in engine time: debt is how much of the
// clock the packets it let through have drawn ahead (each costs a second
// divided by the rate), paid back as time passes. Counting in nanoseconds
// loses nothing to rounding however often it is asked, and its zero value
// is full.
type bucket struct {
	debt, last Time
}

// fill pays back the time passed since the bucket was last looked at.
func (b *bucket) fill(now Time) {
	if el := now - b.last; el > 0 || b.debt == 0 {
		b.debt = max(0, b.debt-max(el, 0))
		b.last = now
	}
}

// room says whether the bucket, filled, has a packet of cost to give
// with burst packets at most drawn ahead.
func (b *bucket) room(cost Time, burst int64) bool {
	return b.debt+cost <= cost*Time(burst)
}

// take fills the bucket and takes a packet of cost if it has one.
func (b *bucket) take(now, cost Time, burst int64) bool {
	b.fill(now)
	if !b.room(cost, burst) {
		return false
	}
	b.debt += cost
	return true
}

// icmpAllowed is a token bucket on generated ICMP (RFC 1812 4.3.2.8):
// ICMPRate a second, as many at once.
func (e *Engine) icmpAllowed(now Time) bool {
	rate := int64(e.cfg.ICMPRate)
	if rate <= 0 {
		return false
	}
	return e.icmpBucket.take(now, sec/Time(rate), rate)
}

// icmpQuotable says whether orig may be answered with an ICMP error at all
// (RFC 1122 3.2.2, RFC 1812 4.3.2.7): never an error about an error, a
// fragment other than the first, or a packet whose source cannot take one.
func icmpQuotable(orig packet.IPv4) bool {
	if orig.IsFragment() && orig.FragmentOffset() != 0 {
		return false
	}
	if orig.Protocol() == packet.ProtoICMP {
		if c, err := packet.ParseICMP(orig.Payload()); err != nil || c.IsError() {
			return false
		}
	}
	src := orig.Src()
	return src != ([4]byte{}) && src[0] < 224 && src[0] != 127
}

// icmpError sends an ICMP error about orig (still as it arrived) back to its
// sender, from the router's address on the side it came in by.
func (e *Engine) icmpError(now Time, from Iface, orig packet.IPv4, typ, code uint8, mtu uint16) {
	if !icmpQuotable(orig) || !e.icmpAllowed(now) {
		return
	}
	e.sendICMPError(from, orig, typ, code, mtu)
}

// sendICMPError builds and emits the error icmpError sends, quoting as
// much of orig as fits in 576 bytes (RFC 1812 4.3.2.3).
func (e *Engine) sendICMPError(from Iface, orig packet.IPv4, typ, code uint8, mtu uint16) bool {
	src := orig.Src()
	nh, ok := e.nextHop(from, src)
	if !ok {
		return false
	}
	quote := len(orig)
	const maxQuote = 576 - packet.IPv4MinHeader - packet.ICMPHeader
	if quote > maxQuote {
		quote = maxQuote
	}
	n := packet.IPv4MinHeader + packet.ICMPHeader + quote
	buf := e.emitBuf(n)
	if buf == nil {
		return false
	}
	pkt := buf[EtherHeadroom:]
	me := e.lanAddr
	if from == WAN {
		me = e.wanAddr
	}
	packet.InitIPv4(pkt, n, e.nextIPID(), 64, packet.ProtoICMP, me, src)
	c := packet.ICMP(pkt[packet.IPv4MinHeader:])
	c[0], c[1] = typ, code
	binary.BigEndian.PutUint32(c[4:], 0)
	if typ == packet.ICMPUnreachable && code == packet.ICMPFragNeeded {
		binary.BigEndian.PutUint16(c[6:], mtu)
	}
	copy(c[packet.ICMPHeader:], orig[:quote])
	c.ComputeChecksum()
	e.stats.ICMPSent++
	e.emit(from, nh, buf)
	return true
}

// Refused flows (RFC 5508 REQ-8). A LAN packet that would make a flow the
// limits refuse (the table full, its host's or MAC's share, no outside
// port left), or a helper refuses by a limit or a setting (a VPN
// passthrough switched off, PPTP's connection pool or a host's share of
// it: NewRefusalReason), on any path (TCP, UDP and ICMP; ESP and GRE; a
// helper's packet hook), is dropped and its sender told so with a destination
// unreachable, communication administratively prohibited (code 13), so
// that its connect fails at once rather than after its retries. A guest
// LAN opening flows in a loop must not turn that into a flood, so the
// messages have buckets of their own, apart from the other generated
// errors' (which a flood of refusals must not starve): each LAN station
// (source MAC, prohibBucket) prohibHostBurst at once and prohibHostRate a
// second after that, and all hosts together a quarter of ICMPRate
// (ICMPRate 0 sends none). A
// sender on the WAN refused by a limit (a port forward's or the DMZ's
// share, its LAN host's inbound share) gets nothing: the router answers
// no unsolicited packet from outside, and a scanner would learn from the
// answers which ports lead somewhere and when their shares are full.
const (
	prohibHostBurst = 4
	prohibHostRate  = 1
	// prohibSlots are the per-host buckets, by a hash of the address;
	// hosts that share a slot share its rate.
	prohibBits  = 10
	prohibSlots = 1 << prohibBits
	// icmpAdminProhibited is the destination unreachable code for a
	// packet an administrative rule refused (RFC 1812 5.2.7.1).
	icmpAdminProhibited = 13
)

// prohibLimits are the buckets of the administratively prohibited errors.
type prohibLimits struct {
	all  bucket
	host [prohibSlots]bucket
	key  uint64 // of prohibBucket's hash
}

func (p *prohibLimits) init(seed uint64) {
	h := seedHash(seed, "prohibited buckets")
	p.key = binary.LittleEndian.Uint64(h[:])
}

// refusedFlow says whether a drop reason is a flow a limit or a setting
// refused (refusals: the engine's limits and the helpers'
// NewRefusalReason).
func refusedFlow(r DropReason) bool { return int(r) < len(refusals) && refusals[r] }

// prohibBucket is the per-host bucket of the station that sent a refused
// packet from src: by its frame's source MAC, by src when no MAC is
// known. Not by the address alone: a station may send from any address
// of the prefix (a Wi-Fi access point binds a station to its MAC, not to
// an address), and one forging many would otherwise draw the buckets of
// all of them, spend the budget for all hosts and leave the real ones
// untold (TestProhibitedForgedSourcesOneStation), as the flows are
// charged to the MAC (mac_limit) for the same reason. The hash is keyed
// (from the port seed), or a station would set its MAC to one sharing a
// neighbour's slot and spend the neighbour's bucket
// (TestProhibitedCollidingStation).
func (e *Engine) prohibBucket(src [4]byte) *bucket {
	k := uint64(be32(src)) | 1<<48 // apart from any MAC
	if m := e.srcMAC; m != ([6]byte{}) {
		k = uint64(binary.BigEndian.Uint16(m[:2]))<<32 | uint64(binary.BigEndian.Uint32(m[2:]))
	}
	return &e.prohib.host[((k^e.prohib.key)*0x9e3779b97f4a7c15)>>(64-prohibBits)]
}

// prohibited answers a LAN packet whose flow the limits refused (r) with a
// communication administratively prohibited error, rate-limited, and
// counts what it sent and what the buckets held back.
func (e *Engine) prohibited(now Time, ip packet.IPv4) {
	dst := ip.Dst()
	if !icmpQuotable(ip) || dst[0] >= 224 || e.wanNet.edge(dst) {
		// No error about a broadcast or multicast (RFC 1122 3.2.2); a
		// LAN broadcast never gets this far.
		return
	}
	rate := int64(e.cfg.ICMPRate) / 4
	if e.cfg.ICMPRate > 0 {
		rate = max(rate, 1)
	}
	hb := e.prohibBucket(ip.Src())
	all := &e.prohib.all
	hb.fill(now)
	all.fill(now)
	hostCost := sec / prohibHostRate
	if rate == 0 || !hb.room(hostCost, prohibHostBurst) || !all.room(sec/Time(rate), rate) {
		e.stats.ProhibitedSuppressed++
		return
	}
	if !e.sendICMPError(LAN, ip, packet.ICMPUnreachable, icmpAdminProhibited, 0) {
		return
	}
	hb.debt += hostCost
	all.debt += sec / Time(rate)
	e.stats.ProhibitedSent++
}
