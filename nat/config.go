package nat

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// DefaultTimeouts are the RFC minimums or the usual defaults above them.
var DefaultTimeouts = Timeouts{
	UDP:            5 * time.Minute,
	TCPEstablished: 2*time.Hour + 4*time.Minute,
	TCPOpening:     4 * time.Minute,
	TCPClosing:     4 * time.Minute,
	TCPTransitory:  4 * time.Minute,
	TCPClosed:      4 * time.Minute,
	ICMP:           60 * time.Second,
	Fragment:       30 * time.Second,
	Expectation:    60 * time.Second,
}

// withDefaults returns cfg with zero fields set to their defaults.
func (cfg Config) withDefaults() Config {
	if cfg.LANMTU == 0 {
		cfg.LANMTU = 1500
	}
	if cfg.WANMTU == 0 {
		cfg.WANMTU = 1500
	}
	d := DefaultTimeouts
	t := &cfg.Timeouts
	for _, p := range []struct{ v, d *time.Duration }{
		{&t.UDP, &d.UDP}, {&t.TCPEstablished, &d.TCPEstablished},
		{&t.TCPTransitory, &d.TCPTransitory}, {&t.TCPClosed, &d.TCPClosed},
		{&t.ICMP, &d.ICMP}, {&t.Fragment, &d.Fragment}, {&t.Expectation, &d.Expectation},
	} {
		if *p.v == 0 {
			*p.v = *p.d
		}
	}
	// The opening and closing phases take the transitory timeout unless
	// set apart.
	if t.TCPOpening == 0 {
		t.TCPOpening = t.TCPTransitory
	}
	if t.TCPClosing == 0 {
		t.TCPClosing = t.TCPTransitory
	}
	if cfg.MaxFlows == 0 {
		cfg.MaxFlows = 65536
	}
	if cfg.MaxFlowsPerHost == 0 {
		cfg.MaxFlowsPerHost = cfg.MaxFlows / 4
	}
	if cfg.MaxFlowsPerRule == 0 {
		cfg.MaxFlowsPerRule = cfg.MaxFlowsPerHost
	}
	if cfg.PortLo == 0 && cfg.PortHi == 0 {
		cfg.PortLo, cfg.PortHi = 1024, 65535
	}
	if cfg.ICMPRate == 0 {
		cfg.ICMPRate = 100
	}
	return cfg
}

// Validate checks a configuration with defaults applied; errors name the
// field.
func (cfg Config) Validate() error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, a...)))
	}
	if !cfg.LANAddr.IsValid() || !cfg.LANAddr.Addr().Is4() {
		bad("lan.address", "an IPv4 address with prefix length is required")
	}
	if !cfg.WANAddr.IsValid() || !cfg.WANAddr.Addr().Is4() {
		bad("wan.address", "an IPv4 address with prefix length is required")
	}
	if cfg.LANAddr.IsValid() && cfg.WANAddr.IsValid() && cfg.LANAddr.Masked().Overlaps(cfg.WANAddr.Masked()) {
		bad("wan.address", "%s overlaps the LAN %s", cfg.WANAddr, cfg.LANAddr.Masked())
	}
	if cfg.WANGateway.IsValid() && (!cfg.WANGateway.Is4() || !cfg.WANAddr.Contains(cfg.WANGateway)) {
		bad("wan.gateway", "%s is not on the WAN network %s", cfg.WANGateway, cfg.WANAddr.Masked())
	}
	for _, m := range []struct {
		f string
		v int
	}{{"lan.mtu", cfg.LANMTU}, {"wan.mtu", cfg.WANMTU}} {
		if m.v < 576 || m.v > 9000 {
			bad(m.f, "%d out of range 576-9000", m.v)
		}
	}
	if cfg.Filtering > AddressAndPortDependent {
		bad("nat.filtering", "unknown filtering %d", cfg.Filtering)
	}
	if cfg.MaxFlows < 16 || cfg.MaxFlows > 1<<22 {
		bad("nat.max_flows", "%d out of range 16-4194304", cfg.MaxFlows)
	}
	if cfg.MaxFlowsPerHost < 1 || cfg.MaxFlowsPerHost > cfg.MaxFlows {
		bad("nat.max_flows_per_host", "%d out of range 1-%d", cfg.MaxFlowsPerHost, cfg.MaxFlows)
	}
	if cfg.MaxFlowsPerRule < 0 || cfg.MaxFlowsPerRule > cfg.MaxFlows {
		bad("nat.max_flows_per_rule", "%d out of range 1-%d (0: max_flows_per_host)", cfg.MaxFlowsPerRule, cfg.MaxFlows)
	}
	if cfg.PortLo == 0 || cfg.PortHi < cfg.PortLo || int(cfg.PortHi)-int(cfg.PortLo) < 63 {
		bad("nat.port_range", "%d-%d is not a range of at least 64 ports above 0", cfg.PortLo, cfg.PortHi)
	}
	if cfg.MSSClamp != 0 && (cfg.MSSClamp < 536 || cfg.MSSClamp > 8960) {
		bad("nat.mss_clamp", "%d out of range 536-8960", cfg.MSSClamp)
	}
	for i, pf := range cfg.PortForwards {
		f := fmt.Sprintf("port_forwards[%d]", i)
		if pf.Proto != 6 && pf.Proto != 17 {
			bad(f+".proto", "must be tcp or udp")
		}
		if pf.OutsideLo == 0 || pf.OutsideHi < pf.OutsideLo {
			bad(f+".outside_port", "%d-%d is not a port range", pf.OutsideLo, pf.OutsideHi)
		}
		if pf.InsidePort == 0 || int(pf.InsidePort)+int(pf.OutsideHi-pf.OutsideLo) > 65535 {
			bad(f+".inside_port", "%d does not fit the range", pf.InsidePort)
		}
		if !pf.Host.Is4() || !cfg.LANAddr.Contains(pf.Host) || pf.Host == cfg.LANAddr.Addr() {
			bad(f+".host", "%s is not a host on the LAN %s", pf.Host, cfg.LANAddr.Masked())
		}
		for j, q := range cfg.PortForwards[:i] {
			if q.Proto == pf.Proto && q.OutsideLo <= pf.OutsideHi && pf.OutsideLo <= q.OutsideHi {
				bad(f+".outside_port", "overlaps port_forwards[%d] (%s)", j, q.Name)
			}
		}
	}
	if cfg.DMZ.IsValid() && (!cfg.DMZ.Is4() || !cfg.LANAddr.Contains(cfg.DMZ) || cfg.DMZ == cfg.LANAddr.Addr()) {
		bad("dmz", "%s is not a host on the LAN %s", cfg.DMZ, cfg.LANAddr.Masked())
	}
	if cfg.ICMPRate < 0 {
		bad("nat.icmp_rate", "must not be negative")
	}
	return errors.Join(errs...)
}

// prefix4 is an IPv4 network in integer form, for cheap membership tests.
type prefix4 struct{ net, mask uint32 }

func mkPrefix(p netip.Prefix) prefix4 {
	a := p.Masked().Addr().As4()
	m := uint32(0)
	if p.Bits() > 0 {
		m = ^uint32(0) << (32 - p.Bits())
	}
	return prefix4{be32(a), m}
}

func (p prefix4) contains(a [4]byte) bool { return p.has(be32(a)) }

// has is contains for an address as an integer (be32).
func (p prefix4) has(a uint32) bool { return a&p.mask == p.net }

// broadcast reports whether a is the network's broadcast or network address.
func (p prefix4) edge(a [4]byte) bool { return p.edge32(be32(a)) }

// edge32 is edge for an address as an integer (be32).
func (p prefix4) edge32(v uint32) bool {
	return p.mask != ^uint32(0) && (v == p.net || v == p.net|^p.mask)
}

func be32(a [4]byte) uint32 {
	return uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
}
