// Package passoff is the one event the VPN passthroughs share: traffic of
// a passthrough that is switched off, blocked.
package passoff

import (
	"fmt"
	"net/netip"

	"passgate/nat"
)

// Protocols, the event's A.
const (
	IPsec = 1
	PPTP  = 2
	L2TP  = 3
)

// Kind is "passthrough_off".
var Kind = nat.NewEventKind("passthrough_off", func(ev nat.Event) string {
	h, p := netip.AddrFrom4(ev.Host), netip.AddrFrom4(ev.Peer)
	return fmt.Sprintf("%s from %s to %s blocked: %s passthrough is switched off", label(ev.A), h, p, label(ev.A))
})

func label(p uint64) string {
	switch p {
	case IPsec:
		return "IPsec"
	case PPTP:
		return "PPTP"
	case L2TP:
		return "L2TP"
	}
	return "VPN"
}

// Event is a passthrough_off event of protocol which from host to peer.
func Event(which uint64, host, peer [4]byte) nat.Event {
	return nat.Event{Kind: Kind, Host: host, Peer: peer, A: which}
}
