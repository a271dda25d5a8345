package nat

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"

	"passgate/conntrack"
	"passgate/packet"
)

// DynamicForward is a port forward a LAN application asked for (PCP,
// NAT-PMP or UPnP IGD): inbound Proto traffic for the outside port Outside
// goes to Host:Inside. It behaves as a configured forward does (hairpin,
// ICMP errors, the flows it made end with it); the lease, its expiry and
// the policy of who may ask for what live in package portmap, which adds
// and deletes these.
type DynamicForward struct {
	Proto       uint8 // 6 TCP, 17 UDP
	Outside     uint16
	Host        netip.Addr
	Inside      uint16
	By          string // the protocol that made it: "pcp", "natpmp", "upnp"
	Description string
}

// Reasons AddDynamicForward refuses a forward.
var (
	ErrForwardReserved = errors.New("the outside port belongs to a configured port forward or a VPN passthrough")
	ErrForwardInUse    = errors.New("the outside port is in use by another mapping")
	ErrForwardInvalid  = errors.New("invalid dynamic forward")
)

func dynKey(proto uint8, port uint16) uint32 { return uint32(proto)<<16 | uint32(port) }

// AddDynamicForward installs a dynamic forward, or updates the one the
// same host already holds on that outside port. It is refused if the port
// belongs to a configured forward or passthrough, to another host's
// dynamic forward, or to a live outbound mapping of another host or port.
func (e *Engine) AddDynamicForward(d DynamicForward) error {
	if d.Proto != packet.ProtoTCP && d.Proto != packet.ProtoUDP || d.Outside == 0 || d.Inside == 0 ||
		!d.Host.Is4() || !e.lanNet.contains(d.Host.As4()) {
		return fmt.Errorf("%w: %s %d -> %s:%d", ErrForwardInvalid, protoNames[d.Proto], d.Outside, d.Host, d.Inside)
	}
	k := dynKey(d.Proto, d.Outside)
	old, had := e.dyn[k]
	if had && old.Host != d.Host {
		return ErrForwardInUse
	}
	// reserved sees dynamic forwards too: ask it about the others.
	delete(e.dyn, k)
	reserved := e.reserved(d.Proto, d.Outside)
	if had {
		e.dyn[k] = old
	}
	if reserved {
		return ErrForwardReserved
	}
	if m, ok := e.maps.lookupExt(d.Proto, d.Outside); ok {
		if mk := e.maps.slab[m].key; mk.host != d.Host.As4() || mk.port != d.Inside {
			return ErrForwardInUse
		}
	}
	if had && old.Inside != d.Inside {
		e.endDynamic(old)
	}
	if e.dyn == nil {
		e.dyn = make(map[uint32]DynamicForward)
	}
	e.dyn[k] = d
	return nil
}

// DeleteDynamicForward removes a dynamic forward and ends the flows it
// made, as removing a configured forward does. It says whether there was
// one.
func (e *Engine) DeleteDynamicForward(proto uint8, outside uint16) bool {
	k := dynKey(proto, outside)
	d, ok := e.dyn[k]
	if !ok {
		return false
	}
	delete(e.dyn, k)
	e.endDynamic(d)
	return true
}

// DynamicForwards lists the dynamic forwards by protocol and outside port.
func (e *Engine) DynamicForwards() []DynamicForward {
	out := make([]DynamicForward, 0, len(e.dyn))
	for _, d := range e.dyn {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool {
		return dynKey(out[i].Proto, out[i].Outside) < dynKey(out[j].Proto, out[j].Outside)
	})
	return out
}

// dynTarget finds the dynamic forward for an outside port; it is on the
// packet path (new inbound and hairpinned flows) and allocates nothing.
func (e *Engine) dynTarget(proto uint8, port uint16) ([4]byte, uint16, bool) {
	if len(e.dyn) == 0 {
		return [4]byte{}, 0, false // the usual case: asked for every new mapping's port
	}
	d, ok := e.dyn[dynKey(proto, port)]
	if !ok {
		return [4]byte{}, 0, false
	}
	return d.Host.As4(), d.Inside, true
}

// endDynamic ends the flows a dynamic forward made: those that came in on
// its outside port and those hairpinned to it.
func (e *Engine) endDynamic(d DynamicForward) {
	host := d.Host.As4()
	var doomed []int32
	e.ct.Range(func(id int32, f *conntrack.Flow) bool {
		if f.Orig.Proto == d.Proto && f.Orig.DstID == d.Outside && f.Reply.Src == host && f.Reply.SrcID == d.Inside &&
			(f.Origin == originForward || f.Origin == originHairpin && f.Orig.Dst == e.wanAddr) {
			doomed = append(doomed, id)
		}
		return true
	})
	for _, id := range doomed {
		e.doom(id, e.ct.Get(id).Gen)
	}
	e.reap()
}

// OutboundMapping returns the outside port of a LAN endpoint's live
// mapping, made by its outbound traffic (what PCP's PEER reports).
func (e *Engine) OutboundMapping(proto uint8, host netip.Addr, port uint16) (uint16, bool) {
	if !host.Is4() {
		return 0, false
	}
	i, ok := e.maps.lookup(proto, host.As4(), port)
	if !ok {
		return 0, false
	}
	return e.maps.slab[i].extPort, true
}
