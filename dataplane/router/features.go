package router

import (
	"net"
	"slices"

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
// back on exactly those it turned off: one found off stays off. So that
// a run killed (SIGKILL, a crash) before restoring them does not leave
// them off for good, with Options.StateDir each run records what it
// turns off per interface before changing anything (nicfeat.StateDir)
// and deletes the record once restored; a run that finds the record of
// a run now gone (this boot, the same ifindex) turns those back on at its
// own exit. Options.KeepRxOffloads leaves them (and any record) alone.

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
	if r.opts.StateDir != "" && !r.opts.KeepRxOffloads {
		var err error
		if r.rxState, err = nicfeat.NewStateDir(r.opts.StateDir); err != nil {
			r.log.Warn("receive offloads not recorded: a run killed will leave them off", "err", err)
		}
	}
	for _, name := range names {
		var cs []nicfeat.Change
		var err error
		if r.opts.KeepRxOffloads {
			cs, err = nicfeat.Inspect(name, nicfeat.RxOffloads)
		} else {
			left, ifindex := r.rxLeftover(name)
			cs, err = nicfeat.Disable(name, nicfeat.RxOffloads, func(off []string) error {
				r.rxRecord(name, ifindex, left, off)
				return nil
			})
			for _, c := range nicfeat.AdoptChanges(cs, left) {
				r.log.Warn("receive offload left off by a passgate that did not restore it: turned back on at exit",
					"interface", name, "feature", c.Feature)
			}
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
	restored := map[string]int{} // per interface, how many came back on
	for _, c := range done {
		if c.After {
			restored[c.Iface]++
			r.log.Info("receive offload restored", "interface", c.Iface, "feature", c.Feature, "old", "off", "new", "on")
		} else {
			r.log.Error("receive offload not restored: the driver left it off", "interface", c.Iface, "feature", c.Feature)
		}
	}
	if err != nil {
		r.log.Error("restoring the receive offloads", "err", err)
	}
	// A record stays for the next run while something it names is off.
	for _, name := range r.rxStateFiles {
		n := 0
		for _, c := range r.rxOff {
			if c.Changed && c.Iface == name {
				n++
			}
		}
		if restored[name] != n {
			continue
		}
		if err := r.rxState.Remove(name); err != nil {
			r.log.Warn("receive offloads restored, their record not removed", "interface", name, "err", err)
		}
	}
}

// rxLeftover is what a state file says a run now gone left off on the
// interface name (nil if nothing), and the interface's index.
func (r *Router) rxLeftover(name string) (left []string, ifindex int) {
	if r.rxState == nil {
		return nil, 0
	}
	if ifi, err := net.InterfaceByName(name); err == nil {
		ifindex = ifi.Index
	}
	rec, verdict, err := r.rxState.Leftover(name, ifindex)
	switch {
	case err != nil:
		r.log.Warn("reading the receive offloads' record", "interface", name, "err", err)
	case verdict == nicfeat.LeftAdopt:
		r.log.Warn("receive offloads turned off by a passgate that did not restore them (killed?)",
			"interface", name, "pid", rec.PID, "features", rec.Features)
		return rec.Features, ifindex
	case verdict == nicfeat.LeftStale:
		r.log.Info("stale receive offloads record removed (another boot, or another interface by that name)",
			"interface", name, "pid", rec.PID, "ifindex", rec.Ifindex)
	case verdict == nicfeat.LeftLive:
		r.log.Warn("receive offloads recorded by a process still running: not recorded again",
			"interface", name, "pid", rec.PID)
		return nil, -1
	}
	return nil, ifindex
}

// rxRecord records, before Disable turns off, that this run owns on the
// interface name what an earlier run left (left) and what it turns off
// (off); a live owner's record (ifindex -1) is left alone.
func (r *Router) rxRecord(name string, ifindex int, left, off []string) {
	if r.rxState == nil || ifindex < 0 {
		return
	}
	all := append(slices.Clone(left), off...)
	if len(all) == 0 {
		return
	}
	if err := r.rxState.Write(name, ifindex, all); err != nil {
		r.log.Warn("receive offloads not recorded: a run killed will leave them off", "interface", name, "err", err)
		return
	}
	r.rxStateFiles = append(r.rxStateFiles, name)
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
