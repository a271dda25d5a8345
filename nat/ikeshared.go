package nat

// UDP port 500 is IKE's, shared by every LAN host (vpn.go), but other
// protocols may use it too, and a shared port must never break them:
//
//   - a first datagram from port 500 to port 500 that is not IKE gets an
//     ordinary port mapping, as L2TP's does when it is no readable SCCRQ;
//     counted (Stats.IKEFallback) and logged (EventIKEFallback);
//   - a datagram arriving on the shared port that is not IKE, so has no
//     initiator SPI to demultiplex by, goes to the LAN host when exactly
//     one talks IKE with that server (Stats.IKEUnparsedToHost), as any NAT
//     would deliver it; with several it is dropped as before.

import (
	"passgate/alg/ipsec"
	"passgate/conntrack"
	"passgate/packet"
)

// ikePort says whether k is UDP between port 500 ends that IPsec
// passthrough shares, and whether the datagram reads as IKE.
func (e *Engine) ikePort(ip packet.IPv4, k conntrack.Tuple) (shared, isIKE bool) {
	if k.Proto != packet.ProtoUDP || k.DstID != ipsec.IKEPort || !e.pass.ipsec {
		return false, false
	}
	_, err := ipsec.ParseIKE(packet.UDP(ip.Payload()).Payload())
	return true, err == nil
}

// notIKEOutbound gives a LAN host's first non-IKE datagram from port 500
// to port 500 an ordinary port mapping. handled says whether it did.
func (e *Engine) notIKEOutbound(now Time, ip packet.IPv4, k conntrack.Tuple) (int32, conntrack.Dir, DropReason, bool) {
	if k.SrcID != ipsec.IKEPort {
		return 0, 0, DropNone, false
	}
	if shared, isIKE := e.ikePort(ip, k); !shared || isIKE {
		return 0, 0, DropNone, false
	}
	e.stats.IKEFallback++
	e.event(now, Event{Kind: EventIKEFallback, Host: k.Src, Peer: k.Dst})
	id, dir, r := e.newOutbound(now, k, originLAN)
	return id, dir, r, true
}

// notIKEInbound finds the flow for a non-IKE datagram arriving on the
// shared port 500: the one LAN host's that talks IKE with its sender.
func (e *Engine) notIKEInbound(ip packet.IPv4, k conntrack.Tuple) (int32, bool) {
	if shared, isIKE := e.ikePort(ip, k); !shared || isIKE {
		return 0, false
	}
	if n, _ := e.keys.Get(keyTuple(sideIKEServer, k.Src, [4]byte{}, 0, 0, 0)); n != 1 {
		return 0, false
	}
	h, _ := e.keys.Get(keyTuple(sideIKEHost, k.Src, [4]byte{}, 0, 0, 0))
	id, ok := e.sharedFlow(sideIKE, k.Src, k.SrcID, keyAddr(h), ipsec.IKEPort)
	if ok {
		e.stats.IKEUnparsedToHost++
	}
	return id, ok
}
