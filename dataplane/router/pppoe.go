package router

import (
	"math/rand/v2"
	"time"

	"passgate/dataplane/link"
	"passgate/nat"
	"passgate/pppoe"
)

// The PPPoE relay hook: frames of ethertype 0x8863 and 0x8864 go to the
// relay (package pppoe), under r.mu like the engine; what it relays leaves
// by the other interface's batch. The nftables fence matches IPv4 only,
// and the kernel has no PPPoE of its own here, so it ignores these frames.

func (r *Router) newPPPoE() (*pppoe.Relay, error) {
	maxPayload := min(r.ifaces[nat.LAN].mtu, r.ifaces[nat.WAN].mtu)
	if maxPayload <= 0 {
		maxPayload = pppoe.DefaultMaxPayload
	}
	relay, err := pppoe.New(pppoe.Config{
		LANMAC:      r.ifaces[nat.LAN].mac,
		WANMAC:      r.ifaces[nat.WAN].mac,
		IdleTimeout: r.opts.PPPoEIdleTimeout,
		MaxPayload:  maxPayload,
		Mark:        rand.Uint32() | 1, // never 0, which means the default
	})
	if err != nil {
		return nil, err
	}
	relay.SetEnabled(0, r.opts.PPPoERelay)
	return relay, nil
}

// handlePPPoE hands one PPPoE frame to the relay; r.mu is held.
func (r *Router) handlePPPoE(now nat.Time, in nat.Iface, f []byte, out *[2]*link.Batch, c *tally) {
	if r.ppp == nil { // a Router made without New, in tests
		c.otherType++
		return
	}
	v := r.ppp.Process(time.Duration(now), pppoe.Side(in), f)
	if v.Action == pppoe.Forward {
		out[v.Out&1].Add(v.Frame)
	}
	// Drain at once: the relay's room for built frames is bounded, and a
	// batch may hold many discovery frames.
	r.takePPPoE(out, c)
}

// takePPPoE copies the frames the relay built into the batches and
// releases the relay's buffers; r.mu is held.
func (r *Router) takePPPoE(out *[2]*link.Batch, c *tally) {
	if r.ppp == nil {
		return
	}
	ems := r.ppp.Emitted()
	if len(ems) == 0 {
		return
	}
	for _, e := range ems {
		o := out[e.Out&1]
		buf := o.Buffer(len(e.Frame))
		if buf == nil {
			c.emitDropped++
			continue
		}
		copy(buf, e.Frame)
		o.Add(buf)
	}
	r.ppp.ResetEmitted()
}

// SetPPPoERelay switches the PPPoE relay while running. Switched off, it
// drops PPPoE frames and ends the relayed sessions with a PADT to both
// ends (sent by the workers with their next batch).
func (r *Router) SetPPPoERelay(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ppp.Enabled() == on {
		return
	}
	r.ppp.SetEnabled(time.Duration(r.clock()), on)
	r.opts.PPPoERelay = on
	r.log.Info("PPPoE relay switched", "on", on)
}

// PPPoERelay reports whether the PPPoE relay is on.
func (r *Router) PPPoERelay() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ppp.Enabled()
}

// PPPoEStats returns the relay's counters.
func (r *Router) PPPoEStats() pppoe.Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ppp.Stats()
}

// PPPoESession is one relayed PPPoE session as the control API shows it.
type PPPoESession struct {
	ID          uint16
	Host        string
	AC          string
	Age         time.Duration
	Idle        time.Duration
	FramesToWAN uint64
	FramesToLAN uint64
}

// PPPoESessions lists the relayed sessions.
func (r *Router) PPPoESessions() []PPPoESession {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Duration(r.clock())
	var out []PPPoESession
	r.ppp.Sessions(now, func(s pppoe.SessionInfo) bool {
		out = append(out, PPPoESession{
			ID: s.ID, Host: s.Host.String(), AC: s.AC.String(),
			Age: now - s.Opened, Idle: now - s.LastActive,
			FramesToWAN: s.FramesToWAN, FramesToLAN: s.FramesToLAN,
		})
		return true
	})
	return out
}

// addPPPoECounters adds the relay's counters to m as "pppoe_NAME".
func (r *Router) addPPPoECounters(m map[string]uint64) {
	if r.ppp == nil {
		return
	}
	st := r.PPPoEStats()
	st.Counters(func(name string, v uint64) { m["pppoe_"+name] += v })
}
