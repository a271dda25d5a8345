package pppoe

// Reason says why the relay dropped a frame.
type Reason uint8

const (
	ReasonNone Reason = iota
	// ReasonOff: the relay is switched off.
	ReasonOff
	// ReasonMalformed: not a well-formed PPPoE frame (short, wrong
	// version, LENGTH past the frame, a broken tag list, a multicast
	// source, a session id where none belongs).
	ReasonMalformed
	// ReasonNotForUs: a unicast PPPoE frame addressed to another host, or
	// a session frame sent to broadcast.
	ReasonNotForUs
	// ReasonUnexpected: a code that does not travel this way through a
	// relay (PADI from the WAN, PADO from the LAN, an unknown code).
	ReasonUnexpected
	// ReasonUnknownSession: a session frame, PADT or PADM for no session
	// the relay set up.
	ReasonUnknownSession
	// ReasonNoRelayID: a PADO or PADS without a Relay-Session-Id the relay
	// can route by, or a PADR that names no access concentrator.
	ReasonNoRelayID
	// ReasonStaleRelayID: the relay's own Relay-Session-Id, but the
	// discovery it names is over (timed out) or the access concentrator it
	// names made that host no offer.
	ReasonStaleRelayID
	// ReasonTableFull: the session table is full; the host got a PADS with
	// a Generic-Error and the access concentrator a PADT.
	ReasonTableFull
	// ReasonDiscoveryFull: too many hosts in discovery at once.
	ReasonDiscoveryFull
	// ReasonSessionClash: a PADS gave a host a session id it already uses
	// with another access concentrator; refused as for ReasonTableFull.
	ReasonSessionClash
	// ReasonTooLong: no room to add the Relay-Session-Id within the MTU;
	// the host got a Generic-Error (RFC 2516 section 4).
	ReasonTooLong
	// ReasonRelayIDUnusable: the host's frame carries a Relay-Session-Id
	// the relay cannot keep (longer than it stores); the host got a
	// Generic-Error (RFC 2516 section 4).
	ReasonRelayIDUnusable
	// ReasonEmitFull: no room left for the frames the relay builds before
	// the caller takes them.
	ReasonEmitFull

	NumReasons
)

var reasonNames = [NumReasons]string{
	ReasonNone:            "none",
	ReasonOff:             "relay_off",
	ReasonMalformed:       "malformed",
	ReasonNotForUs:        "not_for_us",
	ReasonUnexpected:      "unexpected_code",
	ReasonUnknownSession:  "unknown_session",
	ReasonNoRelayID:       "no_relay_id",
	ReasonStaleRelayID:    "stale_relay_id",
	ReasonTableFull:       "table_full",
	ReasonDiscoveryFull:   "discovery_table_full",
	ReasonSessionClash:    "session_clash",
	ReasonTooLong:         "too_long",
	ReasonRelayIDUnusable: "relay_id_unusable",
	ReasonEmitFull:        "emit_full",
}

// String is the reason's counter name ("unknown_session").
func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "reason?"
}

// Stats are the relay's counters.
type Stats struct {
	Sessions    int // open now
	Discoveries int // hosts in discovery now

	DiscoveryToWAN uint64 // PADI, PADR, PADT relayed to the WAN
	DiscoveryToLAN uint64 // PADO, PADS, PADT, PADM, PADN relayed to the LAN
	SessionToWAN   uint64 // session frames relayed to the WAN
	SessionToLAN   uint64 // session frames relayed to the LAN

	Opened        uint64 // sessions set up by a PADS
	ClosedByHost  uint64 // ended by the host's PADT
	ClosedByAC    uint64 // ended by the access concentrator's PADT
	Expired       uint64 // ended by the idle timeout (PADT sent both ways)
	Replaced      uint64 // ended because the access concentrator gave its id to another host
	SwitchedOff   uint64 // ended because the relay was switched off
	ErrorsSent    uint64 // frames with a Generic-Error the relay built itself
	TagsAdded     uint64 // Relay-Session-Id tags added
	ForeignRelays uint64 // discovery frames relayed by a Relay-Session-Id another relay added

	Drops [NumReasons]uint64
}

// TotalDrops sums Drops.
func (s *Stats) TotalDrops() uint64 {
	var n uint64
	for _, v := range s.Drops {
		n += v
	}
	return n
}

// Counters lists every counter by name, drops as "drop_REASON", for the
// data plane's counter listing.
func (s *Stats) Counters(fn func(name string, v uint64)) {
	fn("sessions", uint64(s.Sessions))
	fn("discoveries", uint64(s.Discoveries))
	fn("discovery_to_wan", s.DiscoveryToWAN)
	fn("discovery_to_lan", s.DiscoveryToLAN)
	fn("session_to_wan", s.SessionToWAN)
	fn("session_to_lan", s.SessionToLAN)
	fn("sessions_opened", s.Opened)
	fn("sessions_closed_by_host", s.ClosedByHost)
	fn("sessions_closed_by_ac", s.ClosedByAC)
	fn("sessions_expired", s.Expired)
	fn("sessions_replaced", s.Replaced)
	fn("sessions_switched_off", s.SwitchedOff)
	fn("errors_sent", s.ErrorsSent)
	fn("relay_tags_added", s.TagsAdded)
	fn("foreign_relay_ids", s.ForeignRelays)
	for r := ReasonOff; r < NumReasons; r++ {
		fn("drop_"+r.String(), s.Drops[r])
	}
}
