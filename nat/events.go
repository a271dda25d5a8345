package nat

import (
	"fmt"
	"net/netip"
)

// EventKind names something the engine tells people about.
type EventKind uint8

const (
	EventAHDropped EventKind = iota + 1
	EventPassthroughOff
	EventESPAmbiguous
	EventESPUnknownSPI
	EventIKEUnknownSPI
	EventL2TPFallback
	EventL2TPUnknownTunnel
	EventPPTPUnparsed
	EventGRENoControl
	EventPPTPCall
	EventPPTPCallEnd
	EventIKEFallback
	numEventKinds
)

var eventNames = [numEventKinds]string{
	EventAHDropped:         "ah_dropped",
	EventPassthroughOff:    "passthrough_off",
	EventESPAmbiguous:      "esp_ambiguous",
	EventESPUnknownSPI:     "esp_unknown_spi",
	EventIKEUnknownSPI:     "ike_unknown_spi",
	EventL2TPFallback:      "l2tp_fallback",
	EventL2TPUnknownTunnel: "l2tp_unknown_tunnel",
	EventPPTPUnparsed:      "pptp_unparsed",
	EventGRENoControl:      "gre_without_control",
	EventPPTPCall:          "pptp_call",
	EventPPTPCallEnd:       "pptp_call_end",
	EventIKEFallback:       "ike_fallback",
}

func (k EventKind) String() string {
	if k < numEventKinds && eventNames[k] != "" {
		return eventNames[k]
	}
	return "unknown"
}

// Event is something that happened on the packet path which a person
// should be able to read: what was blocked and why, which guess the engine
// made. It holds numbers only, so recording one never allocates; Message
// renders it.
type Event struct {
	At   Time
	Kind EventKind
	Host [4]byte // the LAN host concerned (zero if none)
	Peer [4]byte // the remote peer
	A, B uint64  // kind-specific ids
	// Suppressed counts events of this kind dropped by the rate limit
	// since the previous one recorded.
	Suppressed uint64
}

// Message says what the event means, for logs and the admin page.
func (ev Event) Message() string {
	h, p := netip.AddrFrom4(ev.Host), netip.AddrFrom4(ev.Peer)
	switch ev.Kind {
	case EventAHDropped:
		return fmt.Sprintf("AH from %s to %s dropped: AH authenticates the IP addresses, so it cannot cross NAT; use ESP (with NAT-T)", h, p)
	case EventPassthroughOff:
		return fmt.Sprintf("%s from %s to %s blocked: %s passthrough is switched off", protoLabel(ev.A), h, p, protoLabel(ev.A))
	case EventESPAmbiguous:
		return fmt.Sprintf("ESP SPI %#08x from %s was new and %d LAN hosts had unanswered ESP to it; bound to the oldest, %s", ev.A, p, ev.B, h)
	case EventESPUnknownSPI:
		return fmt.Sprintf("ESP SPI %#08x from %s matches no LAN host: dropped", ev.A, p)
	case EventIKEUnknownSPI:
		return fmt.Sprintf("IKE from %s with initiator SPI %#016x matches no LAN host: dropped", p, ev.A)
	case EventL2TPFallback:
		return fmt.Sprintf("L2TP from %s to %s cannot share outside port 1701 (%s); it gets its own port", h, p, l2tpWhy(ev.A))
	case EventL2TPUnknownTunnel:
		return fmt.Sprintf("L2TP from %s for tunnel %d matches no LAN host: dropped", p, ev.A)
	case EventPPTPUnparsed:
		return fmt.Sprintf("PPTP control connection from %s to %s could not be followed; its calls will not work", h, p)
	case EventGRENoControl:
		return fmt.Sprintf("GRE between %s and %s with call id %d belongs to no PPTP call: dropped", h, p, ev.A)
	case EventPPTPCall:
		return fmt.Sprintf("PPTP call from %s to %s: client call id %d is %d outside, server call id %d", h, p, ev.A>>16, ev.A&0xffff, ev.B)
	case EventIKEFallback:
		return fmt.Sprintf("UDP from %s port 500 to %s port 500 is no IKE; it gets its own port", h, p)
	case EventPPTPCallEnd:
		return fmt.Sprintf("PPTP call from %s to %s ended (outside call id %d)", h, p, ev.A)
	}
	return ev.Kind.String()
}

// Event.A of EventPassthroughOff: the protocol switched off.
const (
	PassOffIPsec = 1
	PassOffPPTP  = 2
	PassOffL2TP  = 3
)

// Event.A of EventL2TPFallback: why the tunnel could not share port 1701.
const (
	L2TPWhyHidden  = 1 // the tunnel id is in a hidden AVP
	L2TPWhyClash   = 2 // another LAN host uses the id with the server
	L2TPWhyNoSCCRQ = 3 // the first message was no readable SCCRQ
)

func protoLabel(p uint64) string {
	switch p {
	case PassOffIPsec:
		return "IPsec"
	case PassOffPPTP:
		return "PPTP"
	case PassOffL2TP:
		return "L2TP"
	}
	return "VPN"
}

func l2tpWhy(r uint64) string {
	switch r {
	case L2TPWhyHidden:
		return "its tunnel id is in a hidden AVP"
	case L2TPWhyClash:
		return "another LAN host uses the same tunnel id with this server"
	case L2TPWhyNoSCCRQ:
		return "its first message was not a readable SCCRQ"
	}
	return "unknown reason"
}

const eventRing = 256

// events is a ring of recent events with a per-kind rate limit, so a flood
// of one kind cannot push out the rest or cost more than a counter.
type events struct {
	ring       [eventRing]Event
	n          uint64 // total recorded
	last       [numEventKinds]Time
	seen       [numEventKinds]bool
	suppressed [numEventKinds]uint64
}

func (e *Engine) event(now Time, ev Event) {
	es := &e.events
	if es.seen[ev.Kind] && now-es.last[ev.Kind] < sec {
		es.suppressed[ev.Kind]++
		return
	}
	es.seen[ev.Kind] = true
	es.last[ev.Kind] = now
	ev.At = now
	ev.Suppressed = es.suppressed[ev.Kind]
	es.suppressed[ev.Kind] = 0
	es.ring[es.n%eventRing] = ev
	es.n++
}

// Events returns the events recorded after sequence number since (0 for
// all that are kept), oldest first, and the sequence number to pass next
// time.
func (e *Engine) Events(since uint64) ([]Event, uint64) {
	es := &e.events
	from := since
	if es.n > eventRing && from < es.n-eventRing {
		from = es.n - eventRing
	}
	out := make([]Event, 0, es.n-from)
	for i := from; i < es.n; i++ {
		out = append(out, es.ring[i%eventRing])
	}
	return out, es.n
}
