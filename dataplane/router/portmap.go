package router

import (
	"net/netip"
	"time"

	"passgate/nat"
)

// AddDynamicForward installs a port mapping a LAN application asked for
// (package portmap decides which); see nat.Engine.AddDynamicForward.
func (r *Router) AddDynamicForward(d nat.DynamicForward) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.eng.AddDynamicForward(d)
	// A mapping taken to another inside port ends the old one's flows:
	// withdrawn now, as DeleteDynamicForward's, not at the next sweep.
	r.offloadSync(r.clock())
	return err
}

// DeleteDynamicForward removes one and ends its flows.
func (r *Router) DeleteDynamicForward(proto uint8, outside uint16) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	ok := r.eng.DeleteDynamicForward(proto, outside)
	r.offloadSync(r.clock()) // its flows, withdrawn now
	return ok
}

// OutboundMapping is a LAN endpoint's live outside port (PCP PEER).
func (r *Router) OutboundMapping(proto uint8, host netip.Addr, port uint16) (uint16, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.eng.OutboundMapping(proto, host, port)
}

// Note adds an event from outside the engine (the port mapping servers,
// which log it themselves) to the event log.
func (r *Router) Note(at time.Time, kind, host, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.drainEvents()
	r.keep(EventInfo{Time: at, Kind: kind, Host: host, Message: msg})
}
