// Package passthrough is what the VPN passthroughs (alg/ipsec, alg/pptp,
// alg/l2tp) share: their switch, whose traffic is blocked and said with
// one event, passthrough_off, when it is off (Blocked); the outside port
// every LAN host keeps with a server that IPsec (IKE, UDP 500) and L2TP
// (UDP 1701) demultiplex (Shared); and the addresses their events and flow
// descriptions show. Each protocol keeps its own drop reasons, events and
// counters; this package holds only the code they had written alike.
package passthrough

import (
	"fmt"
	"net/netip"

	"passgate/conntrack"
	"passgate/nat"
)

// Protocols, the passthrough_off event's A.
const (
	IPsec = 1
	PPTP  = 2
	L2TP  = 3
)

// Kind is "passthrough_off".
var Kind = nat.NewEventKind("passthrough_off", func(ev nat.Event) string {
	return fmt.Sprintf("%s from %s to %s blocked: %s passthrough is switched off", label(ev.A), Host(ev), Peer(ev), label(ev.A))
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

// Blocked says whether the passthrough env switches is off, and if it is
// records the passthrough_off event of protocol which for traffic from
// host to peer; the caller drops the packet with its own reason.
func Blocked(env *nat.HelperEnv, now nat.Time, which uint64, host, peer [4]byte) bool {
	if env.On() {
		return false
	}
	env.Event(now, Event(which, host, peer))
	return true
}

// Host is an event's LAN host.
func Host(ev nat.Event) netip.Addr { return netip.AddrFrom4(ev.Host) }

// Peer is an event's outside peer.
func Peer(ev nat.Event) netip.Addr { return netip.AddrFrom4(ev.Peer) }

// Own starts the description of a flow of the passthrough vpn ("ipsec",
// "pptp", "l2tp"): it names the VPN, and says whether the flow is the
// helper's own (one it Owns is an ordinary mapping, with nothing more to
// show).
func Own(env *nat.HelperEnv, vpn string, f *conntrack.Flow, fi *nat.FlowInfo) bool {
	fi.VPN = vpn
	return f.Helper == env.ID()
}

// BareAddrs describes a flow of a protocol without ports (ESP, GRE): its
// LAN host, the public address and the server, with port 0.
func BareAddrs(env *nat.HelperEnv, f *conntrack.Flow, fi *nat.FlowInfo) {
	fi.Inside = netip.AddrPortFrom(netip.AddrFrom4(f.Orig.Src), 0)
	fi.Outside = netip.AddrPortFrom(netip.AddrFrom4(env.WANAddr()), 0)
	fi.Remote = netip.AddrPortFrom(netip.AddrFrom4(f.Orig.Dst), 0)
}
