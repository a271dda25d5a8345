package ipsec

// IPsec passthrough as a nat helper. Two mechanisms:
//
//   - IKE on the shared outside port 500: every LAN host keeps outside
//     port 500 with a server, and what comes back goes to the host whose
//     IKE SA the initiator SPI names. Such a flow's reply tuple is a key in
//     the helper's space (server:port, host:500); its Xlate holds the wire
//     tuple. IP fragments follow the first one's flow (the engine's
//     fragment table), so a large IKE response reaches its host whole.
//     NAT-T (UDP 4500) is ordinary UDP with an ordinary mapping.
//   - Raw ESP by SPI: an outbound SPI makes a flow whose reply SPI is
//     unknown (its reply key is in the helper's space); the first unknown
//     SPI from that server binds to the LAN host whose ESP to it is
//     unanswered, the oldest if several (esp_ambiguous, counted and
//     logged: the guess vendors make, said aloud). Bound ESP flows take the
//     fast path.
//
// AH authenticates the IP addresses, so no NAT can pass it (RFC 3715
// section 2.1): it is dropped and said.

import (
	"fmt"

	"passgate/alg/internal/passthrough"
	"passgate/conntrack"
	"passgate/nat"
	"passgate/packet"
)

// Drop reasons and events of IPsec passthrough.
var (
	DropAH            = nat.NewDropReason("ah_cannot_cross_nat")
	DropIPsecOff      = nat.NewRefusalReason("ipsec_passthrough_off")
	DropESPUnknownSPI = nat.NewDropReason("esp_unknown_spi")
	DropIKEUnknownSPI = nat.NewDropReason("ike_unknown_spi")

	EventAHDropped = nat.NewEventKind("ah_dropped", func(ev nat.Event) string {
		if ev.Host == ([4]byte{}) {
			return fmt.Sprintf("AH from %s to this router dropped: AH authenticates the IP addresses, so it cannot cross NAT; use ESP (with NAT-T)", passthrough.Peer(ev))
		}
		return fmt.Sprintf("AH from %s to %s dropped: AH authenticates the IP addresses, so it cannot cross NAT; use ESP (with NAT-T)", passthrough.Host(ev), passthrough.Peer(ev))
	})
	EventESPAmbiguous = nat.NewEventKind("esp_ambiguous", func(ev nat.Event) string {
		return fmt.Sprintf("ESP SPI %#08x from %s was new and %d LAN hosts had unanswered ESP to it; bound to the oldest, %s", ev.A, passthrough.Peer(ev), ev.B, passthrough.Host(ev))
	})
	EventESPUnknownSPI = nat.NewEventKind("esp_unknown_spi", func(ev nat.Event) string {
		return fmt.Sprintf("ESP SPI %#08x from %s matches no LAN host: dropped", ev.A, passthrough.Peer(ev))
	})
	EventIKEUnknownSPI = nat.NewEventKind("ike_unknown_spi", func(ev nat.Event) string {
		return fmt.Sprintf("IKE from %s with initiator SPI %#016x matches no LAN host: dropped", passthrough.Peer(ev), ev.A)
	})
	EventIKEFallback = nat.NewEventKind("ike_fallback", func(ev nat.Event) string {
		return fmt.Sprintf("UDP from %s port 500 to %s port 500 is no IKE; it gets its own port", passthrough.Host(ev), passthrough.Peer(ev))
	})
)

// Key spaces of the helper (nat.HelperEnv.Side); the shared port 500
// (passthrough.Shared) has 0, 2 and 3.
const (
	sideIKESPI     = 1 // keys: (server, initiator SPI) -> host
	sideESPPending = 4 // flow reply key until the inbound SPI is known
)

// espPendingMax bounds the outbound SPIs waiting for an answer.
const espPendingMax = 256

// Helper is IPsec passthrough. Register one per engine.
type Helper struct {
	env *nat.HelperEnv
	// ike is the shared port 500; its Fallbacks are non-IKE from 500 to
	// 500 given an ordinary mapping, its SentToOnlyHost non-IKE on the
	// port sent to the one host.
	ike       passthrough.Shared
	pending   []espPending
	ambiguous uint64
}

type espPending struct {
	server [4]byte
	id     int32
	gen    uint32
	since  nat.Time
}

var (
	_ nat.FlowMaker      = (*Helper)(nil)
	_ nat.ProtocolHelper = (*Helper)(nil)
	_ nat.FastHelper     = (*Helper)(nil)
	_ nat.TunnelHelper   = (*Helper)(nil)
)

// Name is the switch name.
func (*Helper) Name() string { return "ipsec" }

// DefaultOn: on, as on home routers.
func (*Helper) DefaultOn() bool { return true }

// Attach takes the engine and sizes the pending SPIs.
func (h *Helper) Attach(env *nat.HelperEnv) {
	h.env = env
	h.ike = passthrough.Shared{Env: env, Port: IKEPort}
	h.pending = make([]espPending, 0, espPendingMax)
}

// Ports are IKE's and NAT-T's.
func (*Helper) Ports() []nat.Port {
	return []nat.Port{{Proto: packet.ProtoUDP, Port: IKEPort}, {Proto: packet.ProtoUDP, Port: NATTPort}}
}

// SharedPort is IKE's: every LAN host keeps outside port 500.
func (*Helper) SharedPort() nat.Port { return nat.Port{Proto: packet.ProtoUDP, Port: IKEPort} }

// Protocols are ESP and AH.
func (*Helper) Protocols() []uint8 { return []uint8{packet.ProtoESP, packet.ProtoAH} }

// Outbound refuses IKE and NAT-T when switched off, and gives IKE from
// port 500 to port 500 the shared outside port.
func (h *Helper) Outbound(now nat.Time, ip packet.IPv4, k conntrack.Tuple) (int32, conntrack.Dir, nat.DropReason, bool) {
	if passthrough.Blocked(h.env, now, passthrough.IPsec, k.Src, k.Dst) {
		return 0, 0, DropIPsecOff, true
	}
	if k.SrcID != IKEPort || k.DstID != IKEPort {
		return 0, 0, nat.DropNone, false // NAT-T: an ordinary mapping
	}
	if _, err := ParseIKE(packet.UDP(ip.Payload()).Payload()); err != nil {
		// Another protocol from port 500 to port 500: a shared port must
		// never break it, so it gets an ordinary port mapping.
		return h.ike.Fallback(now, k, nat.Event{Kind: EventIKEFallback, Host: k.Src, Peer: k.Dst})
	}
	id, f, r := h.ike.NewFlow(now, k)
	if r != nat.DropNone {
		return 0, 0, r, true
	}
	h.ike.Count(k, f)
	return id, conntrack.Original, nat.DropNone, true
}

// Inbound sends IKE arriving on the shared port 500 to the LAN host whose
// IKE SA its initiator SPI names. A SPI never seen (an exchange the server
// starts) goes to the one LAN host talking IKE with that server; with
// several it cannot be told, and is dropped and logged.
func (h *Helper) Inbound(now nat.Time, ip packet.IPv4, k conntrack.Tuple) (int32, conntrack.Dir, nat.DropReason, bool) {
	if k.DstID != IKEPort || !h.env.On() {
		return 0, 0, nat.DropNone, false
	}
	id, spi, ike, how := h.place(ip, k)
	switch how {
	case bySPI:
		return id, conntrack.Reply, nat.DropNone, true
	case onlyHost:
		if !ike {
			// No IKE, so no SPI: to the one LAN host talking IKE with its
			// sender, as any NAT would deliver it.
			h.ike.SentToOnlyHost++
		} else {
			h.learn(h.env.Flow(id), spi)
		}
		return id, conntrack.Reply, nat.DropNone, true
	}
	if !ike {
		return 0, conntrack.Reply, nat.DropMalformed, true
	}
	h.env.Event(now, nat.Event{Kind: EventIKEUnknownSPI, Peer: k.Src, A: spi})
	return 0, conntrack.Reply, DropIKEUnknownSPI, true
}

// Places says whether Inbound sends a datagram to port 500 to a LAN host
// (nat.SharedReplier): with a port forward of UDP 500, only what it does
// not place goes to the forward.
func (h *Helper) Places(ip packet.IPv4, k conntrack.Tuple) bool {
	_, _, _, how := h.place(ip, k)
	return how != unplaced
}

// How place found a datagram's LAN host.
const (
	unplaced = iota
	bySPI    // its initiator SPI names the host's IKE SA
	onlyHost // the one host talking IKE with its sender
)

// place finds, with no side effects, the shared flow a datagram from the
// WAN to port 500 goes to, and whether it is IKE, with its initiator SPI.
func (h *Helper) place(ip packet.IPv4, k conntrack.Tuple) (id int32, spi uint64, ike bool, how int) {
	m, err := ParseIKE(packet.UDP(ip.Payload()).Payload())
	if ike = err == nil; ike {
		spi = m.InitiatorSPI()
		if host, ok := h.env.Key(h.env.KeyOf(sideIKESPI, k.Src, spi)); ok {
			if id, ok := h.ike.Flow(k.Src, k.SrcID, nat.AddrOf(host)); ok {
				return id, spi, true, bySPI
			}
		}
	}
	if id, ok := h.ike.OnlyHost(k.Src, k.SrcID); ok {
		return id, spi, ike, onlyHost
	}
	return 0, spi, ike, unplaced
}

// learn records an initiator SPI of a LAN host's IKE flow. A flow keeps
// its two newest SPIs (the IKE SA and the one replacing it at a rekey);
// older ones leave the index.
func (h *Helper) learn(f *conntrack.Flow, spi uint64) {
	data, aux := h.env.Data(f)
	if spi == 0 || spi == data {
		return
	}
	if aux != 0 && aux != spi {
		h.ike.DelIfOwner(h.env.KeyOf(sideIKESPI, f.Orig.Dst, aux), f.Orig.Src)
	}
	h.env.SetData(f, spi, data)
	h.env.PutKeyOf(f.Orig.Src, f, h.env.KeyOf(sideIKESPI, f.Orig.Dst, spi), nat.AddrValue(f.Orig.Src))
}

// FlowPacket learns the initiator SPIs a LAN host sends on its IKE flow.
func (h *Helper) FlowPacket(now nat.Time, id int32, f *conntrack.Flow, dir conntrack.Dir, ip packet.IPv4) nat.DropReason {
	if f.Orig.Proto == packet.ProtoUDP && dir == conntrack.Original {
		if m, err := ParseIKE(packet.UDP(ip.Payload()).Payload()); err == nil {
			h.learn(f, m.InitiatorSPI())
		}
	}
	return nat.DropNone
}

// Packet handles raw ESP (protocol 50) and AH (51).
func (h *Helper) Packet(now nat.Time, from nat.Iface, ip packet.IPv4) (int32, conntrack.Dir, nat.DropReason) {
	if ip.Protocol() == packet.ProtoAH {
		// The event's host is a LAN host: AH from the WAN is to the
		// router's own address, so it names none.
		ev := nat.Event{Kind: EventAHDropped, Host: ip.Src(), Peer: ip.Dst()}
		if from == nat.WAN {
			ev.Host, ev.Peer = [4]byte{}, ip.Src()
		}
		h.env.Event(now, ev)
		return 0, 0, DropAH
	}
	k, ok := h.FastKey(from, ip)
	if !ok {
		return 0, 0, nat.DropMalformed
	}
	if from == nat.LAN {
		if passthrough.Blocked(h.env, now, passthrough.IPsec, ip.Src(), ip.Dst()) {
			return 0, 0, DropIPsecOff
		}
		if id, dir, found := h.env.LookupLive(now, k); found {
			return id, dir, nat.DropNone
		}
		id, r := h.newESP(now, k)
		return id, conntrack.Original, r
	}
	if id, dir, found := h.env.LookupLive(now, k); found {
		return id, dir, nat.DropNone
	}
	id, r := h.bindESP(now, k, uint32(k.SrcID)<<16|uint32(k.DstID))
	return id, conntrack.Reply, r
}

// FastKey is an ESP packet's tuple: its SPI.
func (*Helper) FastKey(from nat.Iface, ip packet.IPv4) (conntrack.Tuple, bool) {
	spi, err := ESPSPI(ip.Payload())
	if err != nil || ip.Protocol() != packet.ProtoESP {
		return conntrack.Tuple{}, false
	}
	return conntrack.Tuple{Src: ip.Src(), Dst: ip.Dst(), SrcID: uint16(spi >> 16), DstID: uint16(spi), Proto: packet.ProtoESP, Side: uint8(from)}, true
}

// Translated does nothing: ESP is translated by its addresses alone.
func (*Helper) Translated(*conntrack.Flow, conntrack.Dir, packet.IPv4) {}

// newESP makes the flow for a LAN host's outbound SPI; its inbound SPI is
// learned from the server's first unknown SPI.
func (h *Helper) newESP(now nat.Time, k conntrack.Tuple) (int32, nat.DropReason) {
	key := conntrack.Tuple{Src: k.Dst, Dst: k.Src, SrcID: k.SrcID, DstID: k.DstID, Proto: packet.ProtoESP, Side: h.env.Side(sideESPPending)}
	id, f, r := h.env.NewFlow(now, k, key)
	if r != nat.DropNone {
		return 0, r
	}
	f.Xlate = conntrack.Tuple{Src: k.Dst, Dst: h.env.WANAddr(), Proto: packet.ProtoESP, Side: uint8(nat.WAN)}
	h.env.SetData(f, uint64(k.SrcID)<<16|uint64(k.DstID), 0)
	h.env.SetFast(f, false)
	if len(h.pending) == espPendingMax {
		copy(h.pending, h.pending[1:])
		h.pending = h.pending[:espPendingMax-1]
	}
	h.pending = append(h.pending, espPending{server: k.Dst, id: id, gen: f.Gen, since: now})
	return id, nat.DropNone
}

// bindESP gives an unknown inbound SPI from a server to the LAN host whose
// ESP to that server is unanswered: the only one, or the oldest of several
// (counted and logged as ambiguous).
func (h *Helper) bindESP(now nat.Time, k conntrack.Tuple, spi uint32) (int32, nat.DropReason) {
	best, n := -1, 0
	live := h.pending[:0]
	for _, p := range h.pending {
		if !h.env.Live(p.id, p.gen) || h.env.Flow(p.id).Reply.Side != h.env.Side(sideESPPending) {
			continue // gone or answered
		}
		live = append(live, p)
		if p.server == k.Src {
			n++
			if best < 0 || p.since < h.pending[best].since {
				best = len(live) - 1
			}
		}
	}
	h.pending = live
	if n == 0 {
		h.env.Event(now, nat.Event{Kind: EventESPUnknownSPI, Peer: k.Src, A: uint64(spi)})
		return 0, DropESPUnknownSPI
	}
	p := h.pending[best]
	if err := h.env.Rekey(p.id, k); err != nil {
		return 0, DropESPUnknownSPI
	}
	f := h.env.Flow(p.id)
	data, _ := h.env.Data(f)
	h.env.SetData(f, data, uint64(spi))
	if n > 1 {
		h.ambiguous++
		h.env.Event(now, nat.Event{Kind: EventESPAmbiguous, Host: f.Orig.Src, Peer: k.Src, A: uint64(spi), B: uint64(n)})
	}
	h.pending = append(h.pending[:best], h.pending[best+1:]...)
	return p.id, nat.DropNone
}

// Deleted releases an IKE flow's keys.
func (h *Helper) Deleted(id int32, f *conntrack.Flow) {
	if f.Orig.Proto != packet.ProtoUDP {
		return
	}
	h.ike.Deleted(f)
	data, aux := h.env.Data(f)
	for _, spi := range [2]uint64{data, aux} {
		if spi != 0 {
			h.ike.DelIfOwner(h.env.KeyOf(sideIKESPI, f.Orig.Dst, spi), f.Orig.Src)
		}
	}
}

// Owns takes the LAN's ordinary IKE and NAT-T flows (other source ports,
// port 4500).
func (h *Helper) Owns(f *conntrack.Flow) bool {
	return f.Orig.Proto == packet.ProtoUDP && h.env.OpenedFromLAN(f) && (f.Orig.DstID == NATTPort || f.Orig.DstID == IKEPort)
}

// Session: every IPsec flow is part of one, a tunnel: a LAN host's IKE SA
// with a server and its NAT-T or ESP (Tunnels).
func (*Helper) Session(*conntrack.Flow) bool { return true }

// Tunnels makes Stats.VPNSessions["ipsec"] count tunnels (LAN host and
// server pairs), not the IKE, NAT-T and ESP flows each is made of.
func (*Helper) Tunnels() {}

// Describe shows IKE initiator SPIs, and an ESP flow's SPIs with bare
// addresses.
func (h *Helper) Describe(f *conntrack.Flow, fi *nat.FlowInfo) {
	if !passthrough.Own(h.env, "ipsec", f, fi) {
		return
	}
	data, aux := h.env.Data(f)
	switch f.Orig.Proto {
	case packet.ProtoUDP:
		for _, spi := range [2]uint64{data, aux} {
			if spi != 0 {
				fi.IKESPIs = append(fi.IKESPIs, fmt.Sprintf("%016x", spi))
			}
		}
	case packet.ProtoESP:
		fi.Proto = "esp"
		fi.ESPSPIOut = fmt.Sprintf("%08x", uint32(data))
		if aux != 0 {
			fi.ESPSPIIn = fmt.Sprintf("%08x", uint32(aux))
		}
		passthrough.BareAddrs(h.env, f, fi)
	}
}

// AddStats adds the ambiguous ESP bindings, the IKE fallbacks and what
// the shared port sent to its only host.
func (h *Helper) AddStats(s *nat.Stats) {
	s.ESPAmbiguous = h.ambiguous
	s.IKEFallback = h.ike.Fallbacks
	h.ike.AddStats(s)
}
