package control

import (
	"net/netip"
	"time"

	"passgate/dataplane/link"
	"passgate/dataplane/router"
	"passgate/nat"
)

// The API's wire types: what GET /v1/flows, /v1/events and /v1/status (and
// the admin API's /api/v1/flows, /events, /status) send, and what the CLI,
// the web pages and the lab tests read. The engine and the router keep
// their own types, without JSON tags; the ...From functions convert.
// testdata/*.json pins the JSON (TestWireJSON): it must not change, the
// web page and users' scripts read it.

// Flow is one flow (a NAT translation) as the API shows it.
type Flow struct {
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

	// Helper names the application-level gateway that owns the flow.
	Helper string `json:"helper,omitempty"`

	// For VPN passthrough flows: the protocol and its ids.
	VPN           string   `json:"vpn,omitempty"`             // ipsec, pptp, l2tp
	IKESPIs       []string `json:"ike_spis,omitempty"`        // initiator SPIs, newest first
	ESPSPIOut     string   `json:"esp_spi_out,omitempty"`     // SPI of LAN->server ESP
	ESPSPIIn      string   `json:"esp_spi_in,omitempty"`      // SPI of server->LAN ESP, once learned
	CallIDInside  uint16   `json:"call_id_inside,omitempty"`  // PPTP: the LAN client's call id
	CallIDOutside uint16   `json:"call_id_outside,omitempty"` // PPTP: what the server sees
	CallIDServer  uint16   `json:"call_id_server,omitempty"`  // PPTP: the server's call id
	TunnelIDs     []uint16 `json:"tunnel_ids,omitempty"`      // L2TP: the LAN host's tunnel ids
}

// FlowFrom converts the engine's description of a flow.
func FlowFrom(f nat.FlowInfo) Flow {
	return Flow{
		Proto: f.Proto, Inside: f.Inside, Outside: f.Outside, Remote: f.Remote,
		State: f.State, Origin: f.Origin,
		PacketsOut: f.PacketsOut, PacketsIn: f.PacketsIn, BytesOut: f.BytesOut, BytesIn: f.BytesIn,
		AgeSec: f.AgeSec, ExpiresSec: f.ExpiresSec,
		Helper: f.Helper,
		VPN:    f.VPN, IKESPIs: f.IKESPIs, ESPSPIOut: f.ESPSPIOut, ESPSPIIn: f.ESPSPIIn,
		CallIDInside: f.CallIDInside, CallIDOutside: f.CallIDOutside, CallIDServer: f.CallIDServer,
		TunnelIDs: f.TunnelIDs,
	}
}

// Event is one engine event (what was blocked and why).
type Event struct {
	Time       time.Time `json:"time"`
	Kind       string    `json:"kind"`
	Host       string    `json:"host,omitempty"`
	Peer       string    `json:"peer,omitempty"`
	Message    string    `json:"message"`
	Suppressed uint64    `json:"suppressed,omitempty"` // like events not shown, by the rate limit
}

// EventsFrom converts the router's events, [] (not null) for none.
func EventsFrom(evs []router.EventInfo) []Event {
	out := make([]Event, 0, len(evs))
	for _, e := range evs {
		out = append(out, Event{Time: e.Time, Kind: e.Kind, Host: e.Host, Peer: e.Peer, Message: e.Message, Suppressed: e.Suppressed})
	}
	return out
}

// ARPStats are the counters of one side's neighbour (ARP) table.
type ARPStats struct {
	Entries    int `json:"entries"`
	Resolved   int `json:"resolved"`
	Incomplete int `json:"incomplete"`
	Waiting    int `json:"waiting"` // packets queued now

	RequestsSent     uint64 `json:"requests_sent"`
	RepliesSent      uint64 `json:"replies_sent"`
	RequestsReceived uint64 `json:"requests_received"`
	RepliesReceived  uint64 `json:"replies_received"`
	Learned          uint64 `json:"learned"`
	Queued           uint64 `json:"queued"`
	Released         uint64 `json:"released"`

	DropQueueFull  uint64 `json:"drop_queue_full"`   // oldest dropped from a full per-hop queue
	DropPoolEmpty  uint64 `json:"drop_pool_empty"`   // MaxQueued packets already waiting
	DropTooBig     uint64 `json:"drop_too_big"`      // frame larger than BufSize
	DropUnresolved uint64 `json:"drop_unresolved"`   // next hop did not answer
	DropTableFull  uint64 `json:"drop_table_full"`   // MaxEntries next hops already known
	DropBadNextHop uint64 `json:"drop_bad_next_hop"` // zero, own or off-link next hop
}

// ARPStatsFrom converts a neighbour table's counters.
func ARPStatsFrom(s link.NeighbourStats) ARPStats {
	return ARPStats{
		Entries: s.Entries, Resolved: s.Resolved, Incomplete: s.Incomplete, Waiting: s.Waiting,
		RequestsSent: s.RequestsSent, RepliesSent: s.RepliesSent,
		RequestsReceived: s.RequestsReceived, RepliesReceived: s.RepliesReceived,
		Learned: s.Learned, Queued: s.Queued, Released: s.Released,
		DropQueueFull: s.DropQueueFull, DropPoolEmpty: s.DropPoolEmpty, DropTooBig: s.DropTooBig,
		DropUnresolved: s.DropUnresolved, DropTableFull: s.DropTableFull, DropBadNextHop: s.DropBadNextHop,
	}
}

// Drops is the sum of all drop counters.
func (s ARPStats) Drops() uint64 {
	return s.DropQueueFull + s.DropPoolEmpty + s.DropTooBig + s.DropUnresolved + s.DropTableFull + s.DropBadNextHop
}

// HelperCounters are one application-level gateway's counters.
type HelperCounters struct {
	On           bool   `json:"on"`
	Flows        uint64 `json:"flows"`
	Rewrites     uint64 `json:"rewrites"`
	Expectations uint64 `json:"expectations"`
	Expected     uint64 `json:"expected_flows"`
	Unparsed     uint64 `json:"unparsed"`
}

// DropReasons are the names of the engine's drop reasons, the keys of
// NATStats.Drops, in the engine's order.
func DropReasons() []string {
	var out []string
	for _, r := range nat.DropReasons() {
		if r != nat.DropNone {
			out = append(out, r.String())
		}
	}
	return out
}

// Mappings is what GET /v1/mappings (and the admin API's
// /api/v1/mappings) returns: which port mapping protocols are on and the
// mappings LAN applications made with them.
type Mappings struct {
	PCP         bool      `json:"pcp"`
	NATPMP      bool      `json:"natpmp"`
	UPnP        bool      `json:"upnp"`
	MaxLeaseSec float64   `json:"max_lease_s"`
	Mappings    []Mapping `json:"mappings"`
}

// Mapping is one dynamic port mapping.
type Mapping struct {
	Proto        string     `json:"proto"` // tcp or udp
	OutsidePort  uint16     `json:"outside_port"`
	Host         netip.Addr `json:"host"`
	InsidePort   uint16     `json:"inside_port"`
	By           string     `json:"by"` // the protocol that made it: pcp, natpmp, upnp
	Description  string     `json:"description"`
	Expires      time.Time  `json:"expires"`
	LeaseLeftSec float64    `json:"lease_left_s"`
}

// Mapper is the part of a Backend that shows and deletes port mappings
// (a Backend without it answers GET /v1/mappings with everything off).
type Mapper interface {
	Mappings() Mappings
	// DeleteMapping deletes the mapping of an outside port; an unknown
	// one is an error wrapping ErrNoMapping.
	DeleteMapping(proto string, outside uint16) error
}
