package nat

// UDP 500 (IKE) and 1701 (L2TP) are shared by every LAN host (vpn.go), but
// other protocols may use those ports too, and a shared port must never
// break them:
//
//   - a first datagram from port 500 to port 500 that is not IKE gets an
//     ordinary port mapping, as L2TP's does when it is no readable SCCRQ;
//     counted (Stats.IKEFallback) and logged (EventIKEFallback);
//   - a datagram arriving on a shared port that cannot be demultiplexed
//     (not IKE, so no initiator SPI; not L2TP or a tunnel id no LAN host
//     announced) goes to the LAN host when exactly one talks that protocol
//     with its sender on the shared port (Stats.SharedToOnlyHost), as any
//     NAT would deliver it; with several it is dropped as before. (IKE
//     with an unknown SPI already went to the only host: vpn.go.)

import (
	"passgate/alg/ipsec"
	"passgate/alg/l2tp"
	"passgate/conntrack"
	"passgate/packet"
)

// Key sides of the L2TP per-server counts, as sideIKEServer and
// sideIKEHost are IKE's.
const (
	sideL2TPServer = 0x30 // keys: (server) -> number of shared L2TP flows
	sideL2TPHost   = 0x31 // keys: (server) -> the host of the newest
)

// notIKEOutbound gives a LAN host's first non-IKE datagram from port 500
// to port 500 an ordinary port mapping. handled says whether it did.
func (e *Engine) notIKEOutbound(now Time, ip packet.IPv4, k conntrack.Tuple) (int32, conntrack.Dir, DropReason, bool) {
	if k.Proto != packet.ProtoUDP || k.SrcID != ipsec.IKEPort || k.DstID != ipsec.IKEPort || !e.pass.ipsec {
		return 0, 0, DropNone, false
	}
	if _, err := ipsec.ParseIKE(packet.UDP(ip.Payload()).Payload()); err == nil {
		return 0, 0, DropNone, false
	}
	e.stats.IKEFallback++
	e.event(now, Event{Kind: EventIKEFallback, Host: k.Src, Peer: k.Dst})
	id, dir, r := e.newOutbound(now, k, originLAN)
	return id, dir, r, true
}

// sharedMade counts a new shared L2TP flow for its server.
func (e *Engine) sharedMade(f *conntrack.Flow) {
	if f.Helper != helperL2TP {
		return
	}
	sk := keyTuple(sideL2TPServer, f.Orig.Dst, [4]byte{}, 0, 0, 0)
	n, _ := e.keys.Get(sk)
	e.putKey(sk, n+1)
	e.putKey(keyTuple(sideL2TPHost, f.Orig.Dst, [4]byte{}, 0, 0, 0), addrKey(f.Orig.Src))
}

// sharedGone uncounts a shared L2TP flow.
func (e *Engine) sharedGone(f *conntrack.Flow) {
	if f.Helper != helperL2TP {
		return
	}
	sk := keyTuple(sideL2TPServer, f.Orig.Dst, [4]byte{}, 0, 0, 0)
	if n, ok := e.keys.Get(sk); ok && n > 1 {
		e.keys.Put(sk, n-1)
		return
	}
	e.keys.Del(sk)
	e.keys.Del(keyTuple(sideL2TPHost, f.Orig.Dst, [4]byte{}, 0, 0, 0))
}

// sharedInbound finds the flow for a datagram on a shared port that its
// protocol's key cannot place: the one LAN host's that talks that
// protocol with its sender, if there is exactly one.
func (e *Engine) sharedInbound(ip packet.IPv4, k conntrack.Tuple) (int32, bool) {
	if k.Proto != packet.ProtoUDP {
		return 0, false
	}
	var count, host uint8
	var port uint16
	p := packet.UDP(ip.Payload()).Payload()
	switch {
	case k.DstID == ipsec.IKEPort && e.pass.ipsec:
		if _, err := ipsec.ParseIKE(p); err == nil {
			return 0, false // vpn.go demultiplexes it
		}
		count, host, port = sideIKEServer, sideIKEHost, ipsec.IKEPort
	case k.DstID == l2tp.Port && e.pass.l2tp:
		if h, err := l2tp.ParseHeader(p); err == nil {
			if _, ok := e.keys.Get(keyTuple(sideL2TPTunnel, k.Src, [4]byte{}, h.TunnelID, 0, 0)); ok {
				return 0, false // vpn.go demultiplexes it
			}
		}
		count, host, port = sideL2TPServer, sideL2TPHost, l2tp.Port
	default:
		return 0, false
	}
	if n, _ := e.keys.Get(keyTuple(count, k.Src, [4]byte{}, 0, 0, 0)); n != 1 {
		return 0, false
	}
	h, _ := e.keys.Get(keyTuple(host, k.Src, [4]byte{}, 0, 0, 0))
	side := uint8(sideIKE)
	if port == l2tp.Port {
		side = sideL2TP
	}
	id, ok := e.sharedFlow(side, k.Src, k.SrcID, keyAddr(h), port)
	if ok {
		e.stats.SharedToOnlyHost++
	}
	return id, ok
}
