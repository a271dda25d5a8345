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
	e.ct.Range(func(_ int32, f *conntrack.Flow) bool {
		if f.Deadline <= int64(now) {
			return true
		}
		more = fn(e.describe(now, f))
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
		if i := int(x.Helper) - helperALG; i >= 0 && i < len(e.helpers) {
			fi.Helper = e.helpers[i].Name()
		}
		return fn(fi)
	})
}

func (e *Engine) describe(now Time, f *conntrack.Flow) FlowInfo {
	fi := FlowInfo{
		Proto:      protoNames[f.Orig.Proto],
		Origin:     originNames[f.Origin],
		PacketsOut: f.Packets[conntrack.Original],
		PacketsIn:  f.Packets[conntrack.Reply],
		BytesOut:   f.Bytes[conntrack.Original],
		BytesIn:    f.Bytes[conntrack.Reply],
		AgeSec:     time.Duration(int64(now) - f.Created).Seconds(),
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
	e.describeVPN(f, &fi)
	if i := int(f.Helper) - helperALG; i >= 0 && i < len(e.helpers) {
		fi.Helper = e.helpers[i].Name()
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
	for c, name := range vpnClassNames {
		if c > 0 {
			s.VPNSessions[name] = e.ct.ClassFlows(uint8(c))
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
	var doomed []int32
	e.ct.Range(func(id int32, f *conntrack.Flow) bool {
		switch v := vpnProto(f); {
		case addrChanged:
			doomed = append(doomed, id)
		case v == "ipsec" && !e.pass.ipsec, v == "pptp" && !e.pass.pptp, v == "l2tp" && !e.pass.l2tp:
			// A passthrough switched off ends its sessions.
			doomed = append(doomed, id)
		case f.Helper >= helperALG && !e.helperOn[f.Helper-helperALG]:
			// So does a helper: its flows would carry addresses it no
			// longer rewrites.
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

func (e *Engine) describeVPN(f *conntrack.Flow, fi *FlowInfo) {
	fi.VPN = vpnProto(f)
	switch f.Helper {
	case helperIKE:
		for _, spi := range [2]uint64{f.Data, f.Aux} {
			if spi != 0 {
				fi.IKESPIs = append(fi.IKESPIs, fmt.Sprintf("%016x", spi))
			}
		}
	case helperESP:
		fi.Proto = "esp"
		fi.ESPSPIOut = fmt.Sprintf("%08x", uint32(f.Data))
		if f.Aux != 0 {
			fi.ESPSPIIn = fmt.Sprintf("%08x", uint32(f.Aux))
		}
		fi.Inside = netip.AddrPortFrom(netip.AddrFrom4(f.Orig.Src), 0)
		fi.Outside = netip.AddrPortFrom(netip.AddrFrom4(e.wanAddr), 0)
		fi.Remote = netip.AddrPortFrom(netip.AddrFrom4(f.Orig.Dst), 0)
	case helperL2TP:
		for i := 0; i < 4; i++ {
			if tid := uint16(f.Data >> (16 * i)); tid != 0 {
				fi.TunnelIDs = append(fi.TunnelIDs, tid)
			}
		}
	case helperGRE:
		fi.Proto = "gre"
		fi.CallIDInside = uint16(f.Data)
		fi.CallIDOutside = f.Reply.DstID
		fi.CallIDServer = f.Orig.DstID
		fi.Inside = netip.AddrPortFrom(netip.AddrFrom4(f.Orig.Src), 0)
		fi.Outside = netip.AddrPortFrom(netip.AddrFrom4(e.wanAddr), 0)
		fi.Remote = netip.AddrPortFrom(netip.AddrFrom4(f.Orig.Dst), 0)
	case helperPPTP:
		c := &e.pptp[f.Data]
		for i := range c.calls {
			if cl := &c.calls[i]; cl.inUse {
				fi.CallIDInside, fi.CallIDOutside, fi.CallIDServer = cl.inside, cl.outside, cl.server
			}
		}
	}
}
