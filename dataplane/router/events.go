package router

import (
	"fmt"
	"net/netip"
	"time"

	"passgate/nat"
)

// EventInfo is an engine event as people and the control API see it.
type EventInfo struct {
	Time       time.Time
	Kind       string
	Host       string
	Peer       string
	Message    string
	Suppressed uint64 // like events not shown, by the rate limit
}

const keptEvents = 512

// drainEvents moves new engine events into the router's log and ring;
// r.mu is held.
func (r *Router) drainEvents() {
	evs, next := r.eng.Events(r.evSeq)
	r.evSeq = next
	for _, ev := range evs {
		info := EventInfo{
			Time:       r.started.Add(time.Duration(ev.At)),
			Kind:       ev.Kind.String(),
			Message:    ev.Message(),
			Suppressed: ev.Suppressed,
		}
		if ev.Host != ([4]byte{}) {
			info.Host = netip.AddrFrom4(ev.Host).String()
		}
		if ev.Peer != ([4]byte{}) {
			info.Peer = netip.AddrFrom4(ev.Peer).String()
		}
		r.log.Warn(info.Message, "event", info.Kind, "host", info.Host, "peer", info.Peer, "suppressed", info.Suppressed)
		r.keep(info)
	}
}

// keep adds an event to the ring; r.mu is held.
func (r *Router) keep(info EventInfo) {
	if len(r.events) == keptEvents {
		copy(r.events, r.events[1:])
		r.events = r.events[:keptEvents-1]
	}
	r.events = append(r.events, info)
}

// Events returns the recent events, oldest first.
func (r *Router) Events() []EventInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.drainEvents()
	return append([]EventInfo(nil), r.events...)
}

// Reconfigure applies a new engine configuration while running. Flows it
// does not concern stay; a bad configuration is refused and the running
// one stays.
func (r *Router) Reconfigure(cfg nat.Config) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cfg.LANAddr != r.opts.NAT.LANAddr || cfg.WANAddr != r.opts.NAT.WANAddr {
		return fmt.Errorf("router: interface addresses change only at restart")
	}
	if r.off != nil {
		r.offloadCredit(r.clock())
	}
	if err := r.eng.Reconfigure(cfg, r.clock()); err != nil {
		return err
	}
	// Nothing offloaded outlives the decision: flows the new configuration
	// ended or took from the offload (a helper now) are withdrawn before
	// the lock is given back, and entries made for another MTU replaced.
	r.mtu = natMTUs(cfg)
	r.offloadSync(r.clock())
	r.opts.NAT = cfg
	r.drainEvents()
	return nil
}
