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
	numDropReasons
)

var dropNames = [numDropReasons]string{
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
}

func (r DropReason) String() string {
	if r < numDropReasons {
		return dropNames[r]
	}
	return "unknown"
}

// DropReasons lists every reason, for exporters.
func DropReasons() []DropReason {
	rs := make([]DropReason, 0, numDropReasons)
	for r := DropReason(0); r < numDropReasons; r++ {
		rs = append(rs, r)
	}
	return rs
}

// Stats are the engine's counters. Index 0 is LAN→WAN, 1 is WAN→LAN.
type Stats struct {
	Packets      [2]uint64
	Bytes        [2]uint64
	Drops        [numDropReasons]uint64
	ICMPSent     uint64
	Flows        int
	FlowsByProto map[string]int
	Mappings     int
	Expired      uint64
	Created      uint64
}

// FlowInfo describes one flow for people and the control API.
type FlowInfo struct {
	Proto      string         `json:"proto"`
	Inside     netip.AddrPort `json:"inside"`  // LAN host endpoint
	Outside    netip.AddrPort `json:"outside"` // translated endpoint on the WAN address
	Remote     netip.AddrPort `json:"remote"`  // the peer
	State      string         `json:"state"`
	Origin     string         `json:"origin"` // "lan", "wan" (forward/DMZ/mapping), "hairpin"
	PacketsOut uint64         `json:"packets_out"`
	PacketsIn  uint64         `json:"packets_in"`
	BytesOut   uint64         `json:"bytes_out"`
	BytesIn    uint64         `json:"bytes_in"`
	AgeSec     float64        `json:"age_s"`
	ExpiresSec float64        `json:"expires_s"`
}
