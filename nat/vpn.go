package nat

// VPN passthrough: the glue between the engine and the protocol readers in
// alg/. Three mechanisms serve the three protocols:
//
//   - A shared outside port (IKE on 500, L2TP on 1701): every LAN host
//     keeps the outside source port, and what comes back is sent to the
//     right host by an id in the protocol header (the IKE initiator SPI,
//     the L2TP tunnel id). Such a flow's reply tuple is a key of the
//     helper's own (server, LAN host) and its Xlate holds the wire tuple.
//   - SPI learning for raw ESP: an outbound SPI makes a flow whose reply
//     SPI is unknown; the first unknown SPI from that server binds to the
//     LAN host whose ESP to it is unanswered, the oldest if several (said in
//     counters and the event log).
//   - PPTP: the control connection is followed (alg/pptp), the client's
//     call id is translated to one unique per server, and each call's GRE
//     flow is made when the call is set up and ends with it.

import (
	"encoding/binary"

	"passgate/alg/ipsec"
	"passgate/alg/l2tp"
	"passgate/alg/pptp"
	"passgate/conntrack"
	"passgate/packet"
)

// Helpers that own flows (conntrack.Flow.Helper).
const (
	helperNone uint8 = iota
	helperIKE
	helperESP
	helperL2TP
	helperPPTP // the control connection
	helperGRE  // a PPTP call's data
)

// Side values of helper keys, apart from the real sides (0, 1) and the
// mapper's (0x10, 0x11).
const (
	sideIKE          = 0x20 // flow reply key: (server:port, host:500)
	sideIKESPI       = 0x21 // keys: (server, initiator SPI) -> host
	sideIKEServer    = 0x22 // keys: (server) -> number of IKE flows
	sideIKEHost      = 0x23 // keys: (server) -> the host of the newest IKE flow
	sideL2TP         = 0x24 // flow reply key: (server:port, host:1701)
	sideL2TPTunnel   = 0x25 // keys: (server, tunnel id) -> host
	sideESPPending   = 0x26 // flow reply key until the inbound SPI is known
	sidePPTPCall     = 0x27 // keys: (server, outside call id) -> conn<<8 | call
	protoPassIPsec   = 1
	protoPassPPTP    = 2
	protoPassL2TP    = 3
	l2tpWhyHidden    = 1
	l2tpWhyClash     = 2
	l2tpWhyNoSCCRQ   = 3
	espPendingMax    = 256
	pptpConnsMax     = 256
	pptpCallsPerConn = 8
)

func addrKey(a [4]byte) uint32 { return be32(a) }
func keyAddr(v uint32) [4]byte {
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], v)
	return a
}

// keyTuple makes a helper key: a side of its own and up to 12 bytes.
func keyTuple(side uint8, a [4]byte, b [4]byte, x, y uint16, proto uint8) conntrack.Tuple {
	return conntrack.Tuple{Src: a, Dst: b, SrcID: x, DstID: y, Proto: proto, Side: side}
}

func spiKey(server [4]byte, spi uint64) conntrack.Tuple {
	var hi [4]byte
	binary.BigEndian.PutUint32(hi[:], uint32(spi>>32))
	return keyTuple(sideIKESPI, server, hi, uint16(spi>>16), uint16(spi), packet.ProtoUDP)
}

// putKey adds a helper key if there is room (the keys index is bounded by
// what the flow table can hold; a flood of ids cannot grow it).
func (e *Engine) putKey(k conntrack.Tuple, v uint32) bool {
	if _, ok := e.keys.Get(k); !ok && e.keys.Len() >= e.keysMax {
		e.stats.Drops[DropHelperFull]++
		return false
	}
	e.keys.Put(k, v)
	return true
}

func (e *Engine) passOff(now Time, k conntrack.Tuple, which uint64, r DropReason) (int32, conntrack.Dir, DropReason) {
	e.event(now, Event{Kind: EventPassthroughOff, Host: k.Src, Peer: k.Dst, A: which})
	return 0, 0, r
}

// vpnOutbound is asked about every new flow from the LAN. handled says
// whether it made (or refused) the flow.
func (e *Engine) vpnOutbound(now Time, ip packet.IPv4, k conntrack.Tuple) (id int32, dir conntrack.Dir, r DropReason, handled bool) {
	switch k.Proto {
	case packet.ProtoUDP:
		switch k.DstID {
		case ipsec.IKEPort, ipsec.NATTPort:
			if !e.pass.ipsec {
				id, dir, r = e.passOff(now, k, protoPassIPsec, DropIPsecOff)
				return id, dir, r, true
			}
			if k.SrcID == ipsec.IKEPort && k.DstID == ipsec.IKEPort {
				id, dir, r = e.newShared(now, k, helperIKE)
				return id, dir, r, true
			}
		case l2tp.Port:
			if !e.pass.l2tp {
				id, dir, r = e.passOff(now, k, protoPassL2TP, DropL2TPOff)
				return id, dir, r, true
			}
			if k.SrcID == l2tp.Port {
				id, dir, r = e.newL2TP(now, ip, k)
				return id, dir, r, true
			}
		}
	case packet.ProtoTCP:
		if k.DstID == pptp.Port {
			if !e.pass.pptp {
				id, dir, r = e.passOff(now, k, protoPassPPTP, DropPPTPOff)
				return id, dir, r, true
			}
			id, dir, r = e.newOutbound(now, k, originLAN)
			if r == DropNone && !e.pptpAttach(id, pptp.PNS) {
				e.ct.Delete(id)
				r = DropPPTPLimit
			}
			return id, dir, r, true
		}
	}
	return 0, 0, DropNone, false
}

// newShared makes a flow that keeps its outside port (500 for IKE, 1701
// for L2TP) however many LAN hosts use it with one server.
func (e *Engine) newShared(now Time, k conntrack.Tuple, helper uint8) (int32, conntrack.Dir, DropReason) {
	if e.ct.HostFlows(k.Src) >= e.cfg.MaxFlowsPerHost {
		return 0, 0, DropHostLimit
	}
	side := uint8(sideIKE)
	if helper == helperL2TP {
		side = sideL2TP
	}
	key := conntrack.Tuple{Src: k.Dst, Dst: k.Src, SrcID: k.DstID, DstID: k.SrcID, Proto: k.Proto, Side: side}
	id, err := e.ct.Insert(k, key, k.Src, int64(now), int64(now+e.timeouts.udp))
	if err != nil {
		return 0, 0, insertReason(err)
	}
	f := e.ct.Get(id)
	f.Xlate = conntrack.Tuple{Src: k.Dst, Dst: e.wanAddr, SrcID: k.DstID, DstID: k.SrcID, Proto: k.Proto, Side: uint8(WAN)}
	f.Helper = helper
	if helper == helperIKE {
		sk := keyTuple(sideIKEServer, k.Dst, [4]byte{}, 0, 0, 0)
		n, _ := e.keys.Get(sk)
		e.putKey(sk, n+1)
		e.putKey(keyTuple(sideIKEHost, k.Dst, [4]byte{}, 0, 0, 0), addrKey(k.Src))
	}
	e.stats.Created++
	return id, conntrack.Original, DropNone
}

// sharedFlow finds the shared-port flow of host with server:port.
func (e *Engine) sharedFlow(side uint8, server [4]byte, sport uint16, host [4]byte, hport uint16) (int32, bool) {
	id, _, ok := e.ct.Lookup(conntrack.Tuple{Src: server, Dst: host, SrcID: sport, DstID: hport, Proto: packet.ProtoUDP, Side: side})
	return id, ok
}

// vpnInbound is asked about a WAN packet to an outside port no flow
// matched, before mappings and the DMZ.
func (e *Engine) vpnInbound(now Time, ip packet.IPv4, k conntrack.Tuple) (id int32, dir conntrack.Dir, r DropReason, handled bool) {
	if k.Proto != packet.ProtoUDP {
		return 0, 0, DropNone, false
	}
	if k.DstID == ipsec.IKEPort && e.pass.ipsec {
		id, r = e.ikeInbound(now, ip, k)
		return id, conntrack.Reply, r, true
	}
	if k.DstID == l2tp.Port && e.pass.l2tp {
		id, r = e.l2tpInbound(now, ip, k)
		return id, conntrack.Reply, r, true
	}
	return 0, 0, DropNone, false
}

// ikeInbound sends IKE arriving on the shared port 500 to the LAN host
// whose IKE SA its initiator SPI names. A SPI never seen (an exchange the
// server starts) goes to the one LAN host talking IKE with that server;
// with several it cannot be told, and is dropped and logged.
func (e *Engine) ikeInbound(now Time, ip packet.IPv4, k conntrack.Tuple) (int32, DropReason) {
	m, err := ipsec.ParseIKE(packet.UDP(ip.Payload()).Payload())
	if err != nil {
		return 0, DropMalformed
	}
	spi := m.InitiatorSPI()
	if h, ok := e.keys.Get(spiKey(k.Src, spi)); ok {
		if id, ok := e.sharedFlow(sideIKE, k.Src, k.SrcID, keyAddr(h), ipsec.IKEPort); ok {
			return id, DropNone
		}
	}
	if n, _ := e.keys.Get(keyTuple(sideIKEServer, k.Src, [4]byte{}, 0, 0, 0)); n == 1 {
		h, _ := e.keys.Get(keyTuple(sideIKEHost, k.Src, [4]byte{}, 0, 0, 0))
		if id, ok := e.sharedFlow(sideIKE, k.Src, k.SrcID, keyAddr(h), ipsec.IKEPort); ok {
			e.ikeLearn(e.ct.Get(id), spi)
			return id, DropNone
		}
	}
	e.event(now, Event{Kind: EventIKEUnknownSPI, Peer: k.Src, A: spi})
	return 0, DropIKEUnknownSPI
}

// ikeLearn records an initiator SPI of a LAN host's IKE flow. A flow keeps
// its two newest SPIs (the IKE SA and the one replacing it at a rekey);
// older ones leave the index.
func (e *Engine) ikeLearn(f *conntrack.Flow, spi uint64) {
	if spi == 0 || spi == f.Data {
		return
	}
	if f.Aux != 0 && f.Aux != spi {
		e.delKeyIfOwner(spiKey(f.Orig.Dst, f.Aux), f.Orig.Src)
	}
	f.Aux, f.Data = f.Data, spi
	e.putKey(spiKey(f.Orig.Dst, spi), addrKey(f.Orig.Src))
}

func (e *Engine) delKeyIfOwner(k conntrack.Tuple, host [4]byte) {
	if v, ok := e.keys.Get(k); ok && v == addrKey(host) {
		e.keys.Del(k)
	}
}

// newL2TP makes the flow of a LAN host's L2TP to a server. It keeps outside
// port 1701 when the first message is an SCCRQ whose Assigned Tunnel ID can
// be read and no other LAN host uses that id with the server; otherwise the
// host gets an ordinary port mapping (RFC 2661 section 8.1 lets the port
// change), which is logged.
func (e *Engine) newL2TP(now Time, ip packet.IPv4, k conntrack.Tuple) (int32, conntrack.Dir, DropReason) {
	tid, why := l2tpAssigned(ip)
	if why == 0 {
		if owner, ok := e.keys.Get(keyTuple(sideL2TPTunnel, k.Dst, [4]byte{}, tid, 0, 0)); ok && owner != addrKey(k.Src) {
			if _, alive := e.sharedFlow(sideL2TP, k.Dst, k.DstID, keyAddr(owner), l2tp.Port); alive {
				why = l2tpWhyClash
			}
		}
	}
	if why != 0 {
		e.stats.L2TPFallback++
		e.event(now, Event{Kind: EventL2TPFallback, Host: k.Src, Peer: k.Dst, A: uint64(why)})
		return e.newOutbound(now, k, originLAN)
	}
	id, dir, r := e.newShared(now, k, helperL2TP)
	if r == DropNone {
		e.l2tpLearn(e.ct.Get(id), tid)
	}
	return id, dir, r
}

// l2tpAssigned reads the Assigned Tunnel ID of an SCCRQ.
func l2tpAssigned(ip packet.IPv4) (uint16, uint64) {
	if ip.MoreFragments() {
		return 0, l2tpWhyNoSCCRQ
	}
	p := packet.UDP(ip.Payload()).Payload()
	h, err := l2tp.ParseHeader(p)
	if err != nil || !h.Control || h.TunnelID != 0 {
		return 0, l2tpWhyNoSCCRQ
	}
	ci, err := l2tp.ParseControl(p, h)
	if err == l2tp.ErrHidden {
		return 0, l2tpWhyHidden
	}
	if err != nil || ci.MessageType != l2tp.SCCRQ || !ci.HasAssigned || ci.AssignedTunnelID == 0 {
		return 0, l2tpWhyNoSCCRQ
	}
	return ci.AssignedTunnelID, 0
}

// l2tpLearn adds a tunnel id to a shared L2TP flow; a flow holds up to four
// (Data, 16 bits each), one per tunnel the host opens to the server.
func (e *Engine) l2tpLearn(f *conntrack.Flow, tid uint16) {
	for i := 0; i < 4; i++ {
		switch uint16(f.Data >> (16 * i)) {
		case tid:
			return
		case 0:
			if e.putKey(keyTuple(sideL2TPTunnel, f.Orig.Dst, [4]byte{}, tid, 0, 0), addrKey(f.Orig.Src)) {
				f.Data |= uint64(tid) << (16 * i)
			}
			return
		}
	}
}

// l2tpInbound demultiplexes L2TP on the shared port by the tunnel id in
// the header, which is always the receiver's (the LAN host's) id.
func (e *Engine) l2tpInbound(now Time, ip packet.IPv4, k conntrack.Tuple) (int32, DropReason) {
	h, err := l2tp.ParseHeader(packet.UDP(ip.Payload()).Payload())
	if err != nil {
		return 0, DropMalformed
	}
	if host, ok := e.keys.Get(keyTuple(sideL2TPTunnel, k.Src, [4]byte{}, h.TunnelID, 0, 0)); ok {
		if id, ok := e.sharedFlow(sideL2TP, k.Src, k.SrcID, keyAddr(host), l2tp.Port); ok {
			return id, DropNone
		}
	}
	e.event(now, Event{Kind: EventL2TPUnknownTunnel, Peer: k.Src, A: uint64(h.TunnelID)})
	return 0, DropL2TPUnknownTunnel
}

// helperOutbound runs a helper's inspection of a packet about to be
// translated on a flow it owns.
func (e *Engine) helperPacket(now Time, id int32, f *conntrack.Flow, dir conntrack.Dir, ip packet.IPv4) DropReason {
	switch f.Helper {
	case helperIKE:
		if dir == conntrack.Original {
			if m, err := ipsec.ParseIKE(packet.UDP(ip.Payload()).Payload()); err == nil {
				e.ikeLearn(f, m.InitiatorSPI())
			}
		}
	case helperL2TP:
		if dir == conntrack.Original {
			if tid, why := l2tpAssigned(ip); why == 0 {
				e.l2tpLearn(f, tid)
			}
		}
	case helperPPTP:
		return e.pptpInspect(now, f, dir, ip)
	}
	return DropNone
}

// helperAfter finishes a helper's rewrite after addresses and ports.
func (e *Engine) helperAfter(f *conntrack.Flow, dir conntrack.Dir, ip packet.IPv4) {
	if f.Helper == helperGRE && dir == conntrack.Reply {
		if g, err := pptp.ParseGRE(ip.Payload()); err == nil {
			g.SetCallID(uint16(f.Data))
		}
	}
}

// ah drops AH: it authenticates the IP header addresses, so no NAT can
// pass it (RFC 3715 section 2.1).
func (e *Engine) ah(now Time, from Iface, ip packet.IPv4) Verdict {
	host, peer := ip.Src(), ip.Dst()
	if from == WAN {
		host, peer = peer, host
	}
	e.event(now, Event{Kind: EventAHDropped, Host: host, Peer: peer})
	return e.drop(DropAH)
}

// esp handles raw ESP (protocol 50).
func (e *Engine) esp(now Time, from Iface, ip packet.IPv4) Verdict {
	spi, err := ipsec.ESPSPI(ip.Payload())
	if err != nil {
		return e.drop(DropMalformed)
	}
	if from == LAN {
		if !e.pass.ipsec {
			e.event(now, Event{Kind: EventPassthroughOff, Host: ip.Src(), Peer: ip.Dst(), A: protoPassIPsec})
			return e.drop(DropIPsecOff)
		}
		k := conntrack.Tuple{Src: ip.Src(), Dst: ip.Dst(), SrcID: uint16(spi >> 16), DstID: uint16(spi), Proto: packet.ProtoESP, Side: uint8(LAN)}
		id, dir, found := e.lookupLive(now, k)
		if !found {
			var r DropReason
			if id, r = e.newESP(now, k); r != DropNone {
				return e.drop(r)
			}
		}
		return e.forward(now, from, ip, id, dir)
	}
	k := conntrack.Tuple{Src: ip.Src(), Dst: ip.Dst(), SrcID: uint16(spi >> 16), DstID: uint16(spi), Proto: packet.ProtoESP, Side: uint8(WAN)}
	id, dir, found := e.lookupLive(now, k)
	if !found {
		var r DropReason
		if id, r = e.bindESP(now, k, spi); r != DropNone {
			return e.drop(r)
		}
		dir = conntrack.Reply
	}
	return e.forward(now, from, ip, id, dir)
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

type espPending struct {
	server [4]byte
	id     int32
	gen    uint32
	since  Time
}

// newESP makes the flow for a LAN host's outbound SPI; its inbound SPI is
// learned from the server's first unknown SPI.
func (e *Engine) newESP(now Time, k conntrack.Tuple) (int32, DropReason) {
	if e.ct.HostFlows(k.Src) >= e.cfg.MaxFlowsPerHost {
		return 0, DropHostLimit
	}
	key := conntrack.Tuple{Src: k.Dst, Dst: k.Src, SrcID: k.SrcID, DstID: k.DstID, Proto: packet.ProtoESP, Side: sideESPPending}
	id, err := e.ct.Insert(k, key, k.Src, int64(now), int64(now+e.timeouts.udp))
	if err != nil {
		return 0, insertReason(err)
	}
	f := e.ct.Get(id)
	f.Xlate = conntrack.Tuple{Src: k.Dst, Dst: e.wanAddr, Proto: packet.ProtoESP, Side: uint8(WAN)}
	f.Helper = helperESP
	f.Data = uint64(k.SrcID)<<16 | uint64(k.DstID)
	if len(e.espPending) == espPendingMax {
		copy(e.espPending, e.espPending[1:])
		e.espPending = e.espPending[:espPendingMax-1]
	}
	e.espPending = append(e.espPending, espPending{server: k.Dst, id: id, gen: f.Gen, since: now})
	e.stats.Created++
	return id, DropNone
}

// bindESP gives an unknown inbound SPI from a server to the LAN host whose
// ESP to that server is unanswered: the only one, or the oldest of several
// (counted and logged as ambiguous: the guess vendors make, said aloud).
func (e *Engine) bindESP(now Time, k conntrack.Tuple, spi uint32) (int32, DropReason) {
	best, n := -1, 0
	live := e.espPending[:0]
	for _, p := range e.espPending {
		if !e.ct.Live(p.id, p.gen) || e.ct.Get(p.id).Reply.Side != sideESPPending {
			continue // gone or answered
		}
		live = append(live, p)
		if p.server == k.Src {
			n++
			if best < 0 || p.since < e.espPending[best].since {
				best = len(live) - 1
			}
		}
	}
	e.espPending = live
	if n == 0 {
		e.event(now, Event{Kind: EventESPUnknownSPI, Peer: k.Src, A: uint64(spi)})
		return 0, DropESPUnknownSPI
	}
	p := e.espPending[best]
	if err := e.ct.Rekey(p.id, k); err != nil {
		return 0, DropESPUnknownSPI
	}
	f := e.ct.Get(p.id)
	f.Aux = uint64(spi)
	if n > 1 {
		e.stats.ESPAmbiguous++
		e.event(now, Event{Kind: EventESPAmbiguous, Host: f.Orig.Src, Peer: k.Src, A: uint64(spi), B: uint64(n)})
	}
	e.espPending = append(e.espPending[:best], e.espPending[best+1:]...)
	return p.id, DropNone
}

// gre handles PPTP's enhanced GRE: only calls a control connection set up
// pass.
func (e *Engine) gre(now Time, from Iface, ip packet.IPv4) Verdict {
	g, err := pptp.ParseGRE(ip.Payload())
	if err != nil {
		return e.drop(DropUnsupportedProto)
	}
	if from == LAN && !e.pass.pptp {
		e.event(now, Event{Kind: EventPassthroughOff, Host: ip.Src(), Peer: ip.Dst(), A: protoPassPPTP})
		return e.drop(DropPPTPOff)
	}
	k := conntrack.Tuple{Src: ip.Src(), Dst: ip.Dst(), DstID: g.CallID(), Proto: packet.ProtoGRE, Side: uint8(from)}
	id, dir, found := e.lookupLive(now, k)
	if !found {
		// A live call whose GRE flow timed out gets it back.
		if id, dir, found = e.pptpRevive(now, from, k); !found {
			host, peer := k.Src, k.Dst
			if from == WAN {
				host, peer = peer, host
			}
			e.event(now, Event{Kind: EventGRENoControl, Host: host, Peer: peer, A: uint64(k.DstID)})
			return e.drop(DropGRENoControl)
		}
	}
	return e.forward(now, from, ip, id, dir)
}

// vpnDeleted releases what a helper's flow held.
func (e *Engine) vpnDeleted(f *conntrack.Flow) {
	switch f.Helper {
	case helperIKE:
		sk := keyTuple(sideIKEServer, f.Orig.Dst, [4]byte{}, 0, 0, 0)
		if n, ok := e.keys.Get(sk); ok && n > 1 {
			e.keys.Put(sk, n-1)
		} else {
			e.keys.Del(sk)
			e.keys.Del(keyTuple(sideIKEHost, f.Orig.Dst, [4]byte{}, 0, 0, 0))
		}
		for _, spi := range [2]uint64{f.Data, f.Aux} {
			if spi != 0 {
				e.delKeyIfOwner(spiKey(f.Orig.Dst, spi), f.Orig.Src)
			}
		}
	case helperL2TP:
		for i := 0; i < 4; i++ {
			if tid := uint16(f.Data >> (16 * i)); tid != 0 {
				e.delKeyIfOwner(keyTuple(sideL2TPTunnel, f.Orig.Dst, [4]byte{}, tid, 0, 0), f.Orig.Src)
			}
		}
	case helperPPTP:
		e.pptpDetach(f)
	case helperGRE:
		e.pptpGREDeleted(f)
	}
}

// vpnClassNames are the flow counting classes (conntrack.SetClass) of
// VPN passthrough sessions; class 0 is every other flow. A PPTP call's GRE
// flow is not a session of its own: its control connection is.
var vpnClassNames = [...]string{"", "ipsec", "pptp", "l2tp"}

// vpnClass is the counting class of a flow: its vpnProto's index in
// vpnClassNames.
func vpnClass(f *conntrack.Flow) uint8 {
	if f.Helper == helperGRE {
		return 0
	}
	switch vpnProto(f) {
	case "ipsec":
		return 1
	case "pptp":
		return 2
	case "l2tp":
		return 3
	}
	return 0
}

// vpnProto names the passthrough protocol a flow belongs to, or "".
func vpnProto(f *conntrack.Flow) string {
	switch f.Helper {
	case helperIKE, helperESP:
		return "ipsec"
	case helperPPTP, helperGRE:
		return "pptp"
	case helperL2TP:
		return "l2tp"
	}
	if f.Orig.Proto == packet.ProtoUDP && f.Origin == originLAN {
		switch f.Orig.DstID {
		case ipsec.NATTPort, ipsec.IKEPort:
			return "ipsec"
		case l2tp.Port:
			return "l2tp"
		}
	}
	return ""
}
