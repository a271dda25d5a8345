package router

import (
	"passgate/dataplane/nicfeat"
)

// Receive offloads. With GRO or LRO on, the kernel merges a TCP stream's
// segments into frames of up to 64 KiB before AF_PACKET (or generic XDP)
// sees them: the engine refuses them as larger than the MTU (frag_needed
// with DF set, and the sender, whose segments fit the MTU, never slows
// down) and the drivers' Send would refuse them as tx_bad_frame. With VLAN
// tag stripping on, a tagged frame reaches passgate untagged. So before
// the driver opens the interfaces (some drivers refuse XDP while LRO is
// on) the router turns nicfeat.RxOffloads off on both, and at exit turns
// back on exactly those it turned off: one found off, even because an
// earlier run was killed (SIGKILL) before restoring it, stays off.
// Options.KeepRxOffloads leaves them alone.

// RxOffload is what the router found, and did, at start for one receive
// offload on one interface.
type RxOffload struct {
	Interface, Feature string
	// State: "turned off" (by passgate, turned back on at exit), "off"
	// (found off), "on" (left on: KeepRxOffloads, or the driver refused),
	// "fixed on" (the driver does not let it change).
	State string
}

// rxOffloadsOff turns the receive offloads off on both interfaces, or
// only reads them with KeepRxOffloads, and logs what it found and did.
func (r *Router) rxOffloadsOff(names [2]string) {
	for _, name := range names {
		var cs []nicfeat.Change
		var err error
		if r.opts.KeepRxOffloads {
			cs, err = nicfeat.Inspect(name, nicfeat.RxOffloads)
		} else {
			cs, err = nicfeat.Disable(name, nicfeat.RxOffloads)
		}
		if err != nil {
			r.log.Warn("reading or changing the interface's receive offloads", "interface", name, "err", err)
		}
		for _, c := range cs {
			switch {
			case c.Changed:
				r.log.Info("receive offload turned off (back on at exit)", "interface", name, "feature", c.Feature, "old", "on", "new", "off")
			case c.After && c.Fixed:
				r.log.Error("RECEIVE OFFLOAD ON AND FIXED by the driver: frames larger than the MTU (or without their VLAN tag) will reach passgate and be dropped",
					"interface", name, "feature", c.Feature)
			case c.After && r.opts.KeepRxOffloads:
				r.log.Warn("receive offload left on (keep_rx_offloads): frames larger than the MTU (or without their VLAN tag) will be dropped",
					"interface", name, "feature", c.Feature)
			case c.After:
				r.log.Error("RECEIVE OFFLOAD STAYED ON: the driver refused to turn it off; frames larger than the MTU (or without their VLAN tag) will be dropped",
					"interface", name, "feature", c.Feature)
			}
		}
		r.rxOff = append(r.rxOff, cs...)
	}
}

// restoreRxOffloads turns back on what rxOffloadsOff turned off, once.
func (r *Router) restoreRxOffloads() {
	if r.rxOffRestored {
		return
	}
	r.rxOffRestored = true
	done, err := nicfeat.Restore(r.rxOff)
	for _, c := range done {
		if c.After {
			r.log.Info("receive offload restored", "interface", c.Iface, "feature", c.Feature, "old", "off", "new", "on")
		} else {
			r.log.Error("receive offload not restored: the driver left it off", "interface", c.Iface, "feature", c.Feature)
		}
	}
	if err != nil {
		r.log.Error("restoring the receive offloads", "err", err)
	}
}

// RxOffloads says, for each receive offload the kernel knows on each
// interface, what the router found and did at start.
func (r *Router) RxOffloads() []RxOffload {
	out := make([]RxOffload, 0, len(r.rxOff))
	for _, c := range r.rxOff {
		st := "off"
		switch {
		case c.Changed:
			st = "turned off"
		case c.After && c.Fixed:
			st = "fixed on"
		case c.After:
			st = "on"
		}
		out = append(out, RxOffload{Interface: c.Iface, Feature: c.Feature, State: st})
	}
	return out
}
