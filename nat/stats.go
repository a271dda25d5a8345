package nat

import "net/netip"

// DropReason says why a packet was dropped; every drop is counted by reason.
type DropReason uint8

const (
	DropNone DropReason = iota
	DropMalformed
	DropNotIPv4
	DropTTLExceeded
	DropUnsolicited
	DropFiltered
	DropTableFull
	DropHostLimit
	DropPortsExhausted
	DropFragNeeded
	DropFragments
	DropUnsupportedProto
	DropMartian
	DropICMPNoFlow
	DropTCPInvalid
	DropToRouter
	DropNoRoute
	DropEmitFull
	DropHelperFull
	DropSpoofedSource
	DropMACLimit
	DropRuleLimit
	numCoreDrops
)

// maxDropReasons bounds the engine's and the helpers' reasons together.
const maxDropReasons = 48

// dropNames are the counters' names: the engine's, then the ones helpers
// add with NewDropReason while their packages initialise. Nothing writes
// them after that.
var dropNames = [maxDropReasons]string{
	DropNone:             "none",
	DropMalformed:        "malformed",
	DropNotIPv4:          "not_ipv4",
	DropTTLExceeded:      "ttl_exceeded",
	DropUnsolicited:      "unsolicited_inbound",
	DropFiltered:         "filtered",
	DropTableFull:        "table_full",
	DropHostLimit:        "host_limit",
	DropPortsExhausted:   "ports_exhausted",
	DropFragNeeded:       "frag_needed",
	DropFragments:        "fragment_limit",
	DropUnsupportedProto: "unsupported_protocol",
	DropMartian:          "martian",
	DropICMPNoFlow:       "icmp_error_no_flow",
	DropTCPInvalid:       "tcp_invalid",
	DropToRouter:         "to_router",
	DropNoRoute:          "no_route",
	DropEmitFull:         "emit_full",
	DropHelperFull:       "helper_table_full",
	DropSpoofedSource:    "lan_source_off_prefix",
	DropMACLimit:         "mac_limit",
	DropRuleLimit:        "inbound_rule_limit",
}

// refusals are the reasons that refuse a LAN packet the flow it would
// make, by a limit or by a setting (RFC 5508 REQ-8): its sender is told
// with an administratively prohibited error (prohibited, icmp.go). The
// engine's limits, then the helpers' NewRefusalReason; nothing writes it
// after their packages initialise.
var refusals = [maxDropReasons]bool{
	DropTableFull:      true,
	DropHostLimit:      true,
	DropMACLimit:       true,
	DropPortsExhausted: true,
}

// numDrops is the number of reasons registered.
var numDrops = numCoreDrops

// NewRefusalReason is NewDropReason for a reason that refuses a LAN
// packet its flow by a limit or a setting (a VPN passthrough switched off,
// a helper's pool or a host's share of it full): the engine answers such a
// packet from the LAN with destination unreachable, communication
// administratively prohibited, as it does for its own limits (RFC 5508
// REQ-8, same rate limits). Not for packets that break a protocol's rules.
func NewRefusalReason(name string) DropReason {
	r := NewDropReason(name)
	refusals[r] = true
	return r
}

// NewDropReason adds a helper's drop reason (IPsec's
// "ah_cannot_cross_nat", ...). Call it from a package-level variable's
// initialiser, never later: name is the counter's name for good, and
// must be new.
func NewDropReason(name string) DropReason {
	for r := DropReason(0); r < numDrops; r++ {
		if dropNames[r] == name {
			panic("nat: drop reason " + name + " registered twice")
		}
	}
	if numDrops == maxDropReasons {
		panic("nat: too many drop reasons")
	}
	r := numDrops
	dropNames[r] = name
	numDrops++
	return r
}

func (r DropReason) String() string {
	if r < numDrops {
		return dropNames[r]
	}
	return "unknown"
}

// DropReasons lists every reason, the engine's and the registered
// helpers', for exporters.
func DropReasons() []DropReason {
	rs := make([]DropReason, 0, numDrops)
	for r := DropReason(0); r < numDrops; r++ {
		rs = append(rs, r)
	}
	return rs
}

// Stats are the engine's counters. Index 0 is LAN→WAN, 1 is WAN→LAN.
type Stats struct {
	Packets      [2]uint64
	Bytes        [2]uint64
	Drops        [maxDropReasons]uint64
	ICMPSent     uint64
	Flows        int
	FlowsByProto map[string]int
	Mappings     int
	Expired      uint64
	Created      uint64

	// VPN passthrough, filled by the helpers (StatsHelper).
	ESPAmbiguous uint64 // inbound SPIs bound with more than one candidate host
	L2TPFallback uint64 // L2TP tunnels given an ordinary port mapping
	// IKEFallback counts first datagrams to UDP 500 that were no IKE,
	// given an ordinary port mapping; SharedToOnlyHost datagrams on a
	// shared port (500, 1701) that could not be demultiplexed, sent to
	// the one LAN host talking that protocol with their sender.
	IKEFallback      uint64
	SharedToOnlyHost uint64
	PPTPUnparsed     uint64 // control connections that could not be followed
	// VPNSessions are the live sessions per passthrough protocol: IPsec
	// tunnels (LAN host and server pairs, however many IKE, NAT-T and ESP
	// flows each has), PPTP control connections, L2TP flows.
	VPNSessions map[string]int
	// Helpers are the application-level gateways' counters by name.
	Helpers map[string]HelperCounters

	// What the limits against floods and spoofing did (not drops of the
	// packet at hand): flows removed early to make room, by what was
	// full, and RSTs passed on without ending their flow.
	EarlyDropTableFull uint64 // the table
	EarlyDropHostShare uint64 // the LAN host's share
	EarlyDropMACShare  uint64 // the LAN MAC's share
	EarlyDropRuleShare uint64 // a port forward's or the DMZ's share
	RSTInWindow        uint64 // in the window but not at its edge: the endpoint will challenge it
	RSTOutOfWindow     uint64 // outside the window: no endpoint takes it
	TCPStateIgnored    uint64 // SYNs and FINs off the edge or with an implausible ACK: passed, the flow's state kept
	// LAN packets whose flow a limit refused (table_full, host_limit,
	// mac_limit, ports_exhausted): answered with an ICMP administratively
	// prohibited, or not because the rate limits held it back.
	ProhibitedSent       uint64
	ProhibitedSuppressed uint64
}

// FlowInfo describes one flow for people and the control API.
type FlowInfo struct {
	Proto      string
	Inside     netip.AddrPort // LAN host endpoint
	Outside    netip.AddrPort // translated endpoint on the WAN address
	Remote     netip.AddrPort // the peer
	State      string
	Origin     string // "lan", "wan" (forward/DMZ/mapping), "hairpin"
	PacketsOut uint64
	PacketsIn  uint64
	BytesOut   uint64
	BytesIn    uint64
	AgeSec     float64
	ExpiresSec float64

	// Helper names the application-level gateway that owns the flow.
	Helper string

	// For VPN passthrough flows: the protocol and its ids.
	VPN           string   // ipsec, pptp, l2tp
	IKESPIs       []string // initiator SPIs, newest first
	ESPSPIOut     string   // SPI of LAN->server ESP
	ESPSPIIn      string   // SPI of server->LAN ESP, once learned
	CallIDInside  uint16   // PPTP: the LAN client's call id
	CallIDOutside uint16   // PPTP: what the server sees
	CallIDServer  uint16   // PPTP: the server's call id
	TunnelIDs     []uint16 // L2TP: the LAN host's tunnel ids
}
