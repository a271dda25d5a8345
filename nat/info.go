package nat

import (
	"fmt"
	"net/netip"
	"time"

	"passgate/conntrack"
	"passgate/packet"
)

var protoNames = map[uint8]string{packet.ProtoTCP: "tcp", packet.ProtoUDP: "udp", packet.ProtoICMP: "icmp", packet.ProtoESP: "esp", packet.ProtoGRE: "gre"}

// Flows calls fn with a description of every live flow until fn returns
// false. For the control plane, not the packet path.
// Pending expectations come last, with state "expected": the connections
// a helper has opened the way for.
func (e *Engine) Flows(now Time, fn func(FlowInfo) bool) {
	more := true
	e.ct.Range(func(id int32, f *conntrack.Flow) bool {
		if f.Deadline <= int64(now) {
			return true
		}
		more = fn(e.describe(now, id, f))
		return more
	})
	if !more {
		return
	}
	e.ct.RangeExpectations(func(x *conntrack.Expectation) bool {
		if x.Deadline <= int64(now) {
			return true
		}
		fi := FlowInfo{
			Proto:      protoNames[x.Match.Proto],
			Inside:     x.Reply.SrcAddrPort(),
			Outside:    x.Match.DstAddrPort(),
			Remote:     x.Match.SrcAddrPort(),
			State:      "expected",
			Origin:     "expectation",
			ExpiresSec: time.Duration(x.Deadline - int64(now)).Seconds(),
		}
		if i := int(x.Helper) - 1; i >= 0 && i < len(e.helpers) {
			fi.Helper = e.helpers[i].Name()
		}
		return fn(fi)
	})
}

func (e *Engine) describe(now Time, id int32, f *conntrack.Flow) FlowInfo {
	fi := FlowInfo{
		Proto:      protoNames[f.Orig.Proto],
		Origin:     originNames[f.Origin],
		PacketsOut: f.Packets[conntrack.Original],
		PacketsIn:  f.Packets[conntrack.Reply],
		BytesOut:   f.Bytes[conntrack.Original],
		BytesIn:    f.Bytes[conntrack.Reply],
		AgeSec:     time.Duration(int64(now) - e.ct.Created(id)).Seconds(),
		ExpiresSec: time.Duration(f.Deadline - int64(now)).Seconds(),
	}
	if fi.Proto == "" {
		fi.Proto = fmt.Sprint(f.Orig.Proto)
	}
	switch f.Origin {
	case originLAN, originMapping:
		// Orig is LAN host -> remote; Reply is remote -> public mapping.
		fi.Inside = f.Orig.SrcAddrPort()
		fi.Remote = f.Orig.DstAddrPort()
		fi.Outside = f.Xlate.DstAddrPort()
	case originForward, originDMZ, originExpected:
		// Orig is remote -> public port; Reply is LAN host -> remote.
		fi.Inside = f.Reply.SrcAddrPort()
		fi.Remote = f.Orig.SrcAddrPort()
		fi.Outside = f.Orig.DstAddrPort()
		fi.PacketsOut, fi.PacketsIn = fi.PacketsIn, fi.PacketsOut
		fi.BytesOut, fi.BytesIn = fi.BytesIn, fi.BytesOut
	case originHairpin:
		fi.Inside = f.Orig.SrcAddrPort()
		fi.Outside = f.Xlate.DstAddrPort()
		fi.Remote = f.Xlate.SrcAddrPort()
	}
	if i := e.owner(f); i >= 0 {
		k := &e.hooks[i]
		if k.describe != nil {
			k.describe.Describe(f, &fi)
		}
		if k.payload != nil && f.Helper != 0 {
			fi.Helper = e.helpers[i].Name()
		}
	}
	if f.Orig.Proto == packet.ProtoICMP {
		fi.Inside = netip.AddrPortFrom(fi.Inside.Addr(), f.Orig.SrcID)
		fi.Outside = netip.AddrPortFrom(fi.Outside.Addr(), f.Reply.DstID)
		fi.Remote = netip.AddrPortFrom(fi.Remote.Addr(), 0)
	}
	switch f.Orig.Proto {
	case packet.ProtoTCP:
		fi.State = tcpStateNames[f.State]
	default:
		if f.Flags&flagReplied != 0 {
			fi.State = "replied"
		} else {
			fi.State = "unreplied"
		}
	}
	return fi
}

// Stats returns a copy of the counters with the table's current sizes.
func (e *Engine) Stats() Stats {
	s := e.stats
	d := e.ct.EarlyDrops()
	s.EarlyDropTableFull, s.EarlyDropHostShare, s.EarlyDropMACShare, s.EarlyDropRuleShare = d.TableFull, d.HostQuota, d.MACQuota, d.RuleQuota
	s.Flows = e.ct.Len()
	s.Mappings = e.maps.len()
	s.FlowsByProto = map[string]int{}
	s.VPNSessions = map[string]int{}
	s.Helpers = e.HelperStats()
	// Counted as flows come and go (no walk of the table: Stats runs under
	// the data plane's lock).
	for p, name := range protoNames {
		if n := e.ct.ProtoFlows(p); n > 0 {
			s.FlowsByProto[name] = n
		}
	}
	for i := range e.hooks {
		switch c := e.passClass[i]; {
		case e.classTunnels[c]:
			s.VPNSessions[e.helpers[i].Name()] = e.tunnelCount[c]
		case c != 0:
			s.VPNSessions[e.helpers[i].Name()] = e.ct.ClassFlows(c)
		}
		if st := e.hooks[i].stats; st != nil {
			st.AddStats(&s)
		}
	}
	return s
}

// Reconfigure applies a new configuration while running. Flows the change
// does not concern stay: a new address plan ends every flow (their
// translations name the old addresses), a changed port forward or DMZ ends
// the flows it created, timeouts apply from each flow's next packet.
func (e *Engine) Reconfigure(cfg Config, now Time) error {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("nat: invalid configuration: %w", err)
	}
	if cfg.MaxFlows != e.cfg.MaxFlows || cfg.MaxFlowsPerHost != e.cfg.MaxFlowsPerHost {
		return fmt.Errorf("nat: max_flows and max_flows_per_host take effect at restart")
	}
	old := e.cfg
	addrChanged := old.LANAddr != cfg.LANAddr || old.WANAddr != cfg.WANAddr
	e.now = now
	e.apply(cfg)
	e.offScan = true // a helper switched off may leave flows offloadable
	var doomed []int32
	e.ct.Range(func(id int32, f *conntrack.Flow) bool {
		switch i := e.owner(f); {
		case addrChanged:
			doomed = append(doomed, id)
		case i >= 0 && !e.helperOn[i]:
			// A passthrough switched off ends its sessions; so does a
			// helper: its flows would carry addresses it no longer
			// rewrites.
			doomed = append(doomed, id)
		case f.Origin == originForward || f.Origin == originDMZ:
			host, port, ok := e.forwardTarget(f.Orig.Proto, f.Orig.DstID)
			if f.Origin == originDMZ {
				host, port, ok = e.dmz, f.Orig.DstID, e.dmz != ([4]byte{})
			}
			if !ok || host != f.Reply.Src || port != f.Reply.SrcID {
				doomed = append(doomed, id)
			}
		}
		return true
	})
	for _, id := range doomed {
		e.doom(id, e.ct.Get(id).Gen)
	}
	e.reap()
	return nil
}
