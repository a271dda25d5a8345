package config

import (
	"fmt"
	"net/netip"
	"passgate/alg"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"passgate/nat"
)

// Defaults for fields left out.
const (
	DefaultMTU       = 1500
	DefaultFiltering = "address-dependent"
	DefaultPortRange = "1024-65535"
	DefaultMaxFlows  = 65536
	MaxWorkers       = 256
	// DefaultAdminPort is the admin server's port on the LAN address.
	DefaultAdminPort = 8080
	// DefaultAdminMaxConnections caps the admin server's open connections;
	// MaxAdminConnections is the highest cap allowed.
	DefaultAdminMaxConnections = 64
	MaxAdminConnections        = 4096
	// MaxForwardName is the longest port forward name.
	MaxForwardName = 64
	// DefaultMaxLease and DefaultMaxPerHost are port_mapping's.
	DefaultMaxLease    = "2h"
	DefaultMaxPerHost  = 32
	DefaultMaxMappings = 1024 // port_mapping.max_mappings
	// PMPPort (PCP and NAT-PMP), SSDPPort and UPnPHTTPPort are the
	// port mapping servers' ports on the LAN address.
	PMPPort      = 5351
	SSDPPort     = 1900
	UPnPHTTPPort = 5431
)

// DefaultTimeouts are the RFC 4787, 5382 and 5508 values.
var DefaultTimeouts = Timeouts{
	UDP:            "5m",
	TCPEstablished: "2h4m",
	TCPTransitory:  "4m",
	TCPClosed:      "4m",
	ICMP:           "60s",
}

// Minimum timeouts the RFCs require; shorter ones need
// nat.allow_short_timeouts (tests).
var minTimeouts = map[string]time.Duration{
	"udp":             2 * time.Minute,             // RFC 4787 REQ-5
	"udp_stream":      2 * time.Minute,             // RFC 4787 REQ-5
	"tcp_established": 2*time.Hour + 4*time.Minute, // RFC 5382 REQ-5
	"tcp_transitory":  4 * time.Minute,             // RFC 5382 REQ-5
	"tcp_opening":     4 * time.Minute,             // RFC 5382 REQ-5, RFC 7857 2.1
	"tcp_closing":     4 * time.Minute,             // RFC 5382 REQ-5, RFC 7857 2.1
	"icmp":            60 * time.Second,            // RFC 5508 REQ-1
}

var filterings = map[string]nat.Filtering{
	"address-dependent":          nat.AddressDependent,
	"endpoint-independent":       nat.EndpointIndependent,
	"address-and-port-dependent": nat.AddressAndPortDependent,
}

// DriverAuto is the default packet driver: AF_XDP on NICs whose drivers
// run XDP natively (where its program attaches), else AF_PACKET (veth, and
// where XDP would only run in generic mode).
const DriverAuto = "auto"

// Drivers are the packet drivers field driver accepts: the data plane's
// names (router.Drivers; cmd/passgate's TestDrivers keeps them equal).
var Drivers = []string{DriverAuto, "afxdp", "afpacket"}

// Settings is a validated configuration in the types the program uses.
type Settings struct {
	LANInterface  string
	WANInterface  string
	NAT           nat.Config
	Workers       int    // 0: one per CPU
	Driver        string // auto, afxdp or afpacket
	Offload       bool   // established flows forwarded in the kernel (XDP or tc); default on
	ControlSocket string
	ControlGroup  string // a group name or gid allowed on the control socket besides root
	// KeepRxOffloads leaves the interfaces' receive offloads as they are.
	KeepRxOffloads bool
	Admin          AdminSettings
	PPPoERelay     bool // passthrough.pppoe; default off
	PortMapping    PortMappingSettings
}

// PortMappingSettings are port_mapping's, checked.
type PortMappingSettings struct {
	PCP, NATPMP, UPnP bool
	MaxLease          time.Duration
	MaxPerHost        int
	MaxMappings       int
	AllowLowPorts     bool
	AllowThirdParty   bool
}

// On says whether any of the protocols is on.
func (p PortMappingSettings) On() bool { return p.PCP || p.NATPMP || p.UPnP }

// AdminSettings say where the admin server listens and how.
type AdminSettings struct {
	Enabled bool
	Listen  netip.AddrPort // the LAN address or 127.0.0.1; valid when Enabled
	// TLSCert and TLSKey are the user's certificate files; both empty: a
	// self-signed one passgate makes.
	TLSCert, TLSKey  string
	MaxConnections   int
	MetricsLocalhost bool
}

// SetDefaults fills every field left empty with its default.
func (c *Config) SetDefaults() {
	if c.Driver == "" {
		c.Driver = DriverAuto
	}
	if c.LAN.MTU == 0 {
		c.LAN.MTU = DefaultMTU
	}
	if c.WAN.MTU == 0 {
		c.WAN.MTU = DefaultMTU
	}
	if c.NAT.Filtering == "" {
		c.NAT.Filtering = DefaultFiltering
	}
	if c.NAT.PortRange == "" {
		c.NAT.PortRange = DefaultPortRange
	}
	if c.NAT.MaxFlows == 0 {
		c.NAT.MaxFlows = DefaultMaxFlows
	}
	if c.NAT.MaxFlowsPerHost == 0 {
		c.NAT.MaxFlowsPerHost = c.NAT.MaxFlows / 4
	}
	if c.NAT.MaxFlowsPerRule == 0 {
		c.NAT.MaxFlowsPerRule = c.NAT.MaxFlowsPerHost
	}
	t, d := &c.NAT.Timeouts, DefaultTimeouts
	for _, p := range []struct {
		v *string
		d string
	}{
		{&t.UDP, d.UDP}, {&t.TCPEstablished, d.TCPEstablished}, {&t.TCPTransitory, d.TCPTransitory},
		{&t.TCPClosed, d.TCPClosed}, {&t.ICMP, d.ICMP},
	} {
		if *p.v == "" {
			*p.v = p.d
		}
	}
	for i := range c.PortForwards {
		pf := &c.PortForwards[i]
		if pf.InsidePort == 0 {
			if lo, _, err := parsePortRange(string(pf.OutsidePort)); err == nil {
				pf.InsidePort = int(lo)
			}
		}
	}
	if c.ControlSocket == "" {
		c.ControlSocket = DefaultControlSocket
	}
	if c.PortMapping.MaxLease == "" {
		c.PortMapping.MaxLease = DefaultMaxLease
	}
	if c.PortMapping.MaxPerHost == 0 {
		c.PortMapping.MaxPerHost = DefaultMaxPerHost
	}
	if c.PortMapping.MaxMappings == 0 {
		c.PortMapping.MaxMappings = DefaultMaxMappings
	}
	if c.Admin.Listen == "" {
		if p, err := netip.ParsePrefix(c.LAN.Address); err == nil && p.Addr().Is4() {
			c.Admin.Listen = netip.AddrPortFrom(p.Addr(), DefaultAdminPort).String()
		}
	}
}

// sw turns an optional JSON boolean into an engine switch.
func sw(b *bool) nat.Switch {
	switch {
	case b == nil:
		return nat.Default
	case *b:
		return nat.On
	}
	return nat.Off
}

// Validate fills the defaults, checks every field and converts the result.
// The error is an Errors listing every problem, each naming its field.
func (c *Config) Validate() (*Settings, error) {
	c.SetDefaults()
	v := &validator{}
	s := &Settings{ControlSocket: c.ControlSocket, ControlGroup: c.ControlGroup, Workers: c.Workers, Driver: c.Driver, Offload: c.Offload == nil || *c.Offload,
		KeepRxOffloads: c.KeepRxOffloads}
	n := &s.NAT

	s.LANInterface = v.ifname("lan.interface", c.LAN.Interface)
	s.WANInterface = v.ifname("wan.interface", c.WAN.Interface)
	if s.LANInterface != "" && s.LANInterface == s.WANInterface {
		v.bad("wan.interface", "%q is also the LAN interface", c.WAN.Interface)
	}
	n.LANAddr = v.ifaddr("lan.address", c.LAN.Address, 30)
	n.WANAddr = v.ifaddr("wan.address", c.WAN.Address, 31)
	if n.LANAddr.IsValid() && n.WANAddr.IsValid() && n.LANAddr.Masked().Overlaps(n.WANAddr.Masked()) {
		v.bad("wan.address", "%s overlaps the LAN %s", n.WANAddr, n.LANAddr.Masked())
	}
	if c.WAN.Gateway != "" {
		gw, err := netip.ParseAddr(c.WAN.Gateway)
		switch {
		case err != nil || !gw.Is4():
			v.bad("wan.gateway", "%q is not an IPv4 address", c.WAN.Gateway)
		case !n.WANAddr.IsValid():
			// reported on wan.address
		case !isHost(n.WANAddr, gw):
			v.bad("wan.gateway", "%s is not a host on the WAN network %s", gw, n.WANAddr.Masked())
		default:
			n.WANGateway = gw
		}
	}
	s.PPPoERelay = c.Passthrough.PPPoE != nil && *c.Passthrough.PPPoE
	for _, a := range alg.All() {
		if b, _, ok := c.Switch(a.Name); ok && *b != nil {
			if n.Helpers == nil {
				n.Helpers = map[string]nat.Switch{}
			}
			n.Helpers[a.Name] = sw(*b)
		}
	}
	n.LANMTU = v.intRange("lan.mtu", c.LAN.MTU, 576, 9000)
	n.WANMTU = v.intRange("wan.mtu", c.WAN.MTU, 576, 9000)

	if f, ok := filterings[c.NAT.Filtering]; ok {
		n.Filtering = f
	} else {
		v.bad("nat.filtering", "%q is not one of endpoint-independent, address-dependent, address-and-port-dependent", c.NAT.Filtering)
	}
	if lo, hi, err := parsePortRange(c.NAT.PortRange); err != nil {
		v.bad("nat.port_range", "%v", err)
	} else if int(hi)-int(lo) < 63 {
		v.bad("nat.port_range", "%s has %d ports; at least 64 are needed", c.NAT.PortRange, int(hi)-int(lo)+1)
	} else {
		n.PortLo, n.PortHi = lo, hi
	}
	n.MaxFlows = v.intRange("nat.max_flows", c.NAT.MaxFlows, 16, 1<<22)
	n.MaxFlowsPerHost = v.intRange("nat.max_flows_per_host", c.NAT.MaxFlowsPerHost, 1, max(c.NAT.MaxFlows, 1))
	n.MaxFlowsPerRule = v.intRange("nat.max_flows_per_rule", c.NAT.MaxFlowsPerRule, 1, max(c.NAT.MaxFlows, 1))
	if m := c.NAT.MSSClamp; m != 0 && (m < 536 || m > 8960) {
		v.bad("nat.mss_clamp", "%d out of range 536-8960 (0 turns clamping off)", m)
	} else {
		n.MSSClamp = uint16(m)
	}
	t := &c.NAT.Timeouts
	short := c.NAT.AllowShortTimeouts
	n.Timeouts.UDP = v.timeout("udp", t.UDP, short)
	n.Timeouts.TCPEstablished = v.timeout("tcp_established", t.TCPEstablished, short)
	n.Timeouts.TCPTransitory = v.timeout("tcp_transitory", t.TCPTransitory, short)
	// tcp_opening and tcp_closing take tcp_transitory unless set (the
	// files from before they were apart set only that).
	n.Timeouts.TCPOpening, n.Timeouts.TCPClosing = n.Timeouts.TCPTransitory, n.Timeouts.TCPTransitory
	if t.TCPOpening != "" {
		n.Timeouts.TCPOpening = v.timeout("tcp_opening", t.TCPOpening, short)
	}
	if t.TCPClosing != "" {
		n.Timeouts.TCPClosing = v.timeout("tcp_closing", t.TCPClosing, short)
	}
	n.Timeouts.TCPClosed = v.timeout("tcp_closed", t.TCPClosed, short)
	n.Timeouts.ICMP = v.timeout("icmp", t.ICMP, short)
	n.Timeouts.Fragment = nat.DefaultTimeouts.Fragment
	n.Timeouts.Expectation = nat.DefaultTimeouts.Expectation

	names := map[string]int{}
	for i, pf := range c.PortForwards {
		if j, dup := names[pf.Name]; dup && pf.Name != "" {
			v.bad(fmt.Sprintf("port_forwards[%d].name", i), "%q is already the name of port_forwards[%d]; names must be unique", pf.Name, j)
		} else {
			names[pf.Name] = i
		}
		fw, ok := v.portForward(i, pf, n.LANAddr)
		if !ok {
			continue
		}
		for _, q := range v.forwards {
			if q.Proto == fw.Proto && q.OutsideLo <= fw.OutsideHi && fw.OutsideLo <= q.OutsideHi {
				v.bad(fmt.Sprintf("port_forwards[%d].outside_port", i), "%s overlaps port_forwards[%d]%s (%s %s)",
					portText(fw.OutsideLo, fw.OutsideHi), q.index, nameSuffix(q.Name), strings.ToLower(pf.Proto), portText(q.OutsideLo, q.OutsideHi))
				ok = false
				break
			}
		}
		if ok {
			v.forwards = append(v.forwards, fw)
		}
	}
	for _, fw := range v.forwards {
		n.PortForwards = append(n.PortForwards, fw.PortForward)
	}
	if c.DMZ != "" {
		a, err := netip.ParseAddr(c.DMZ)
		switch {
		case err != nil || !a.Is4():
			v.bad("dmz", "%q is not an IPv4 address", c.DMZ)
		case !n.LANAddr.IsValid():
		case !isHost(n.LANAddr, a):
			v.bad("dmz", "%s is not a host on the LAN %s", a, n.LANAddr.Masked())
		default:
			n.DMZ = a
		}
	}
	if c.Workers < 0 || c.Workers > MaxWorkers {
		v.bad("workers", "%d out of range 0-%d (0: one per CPU)", c.Workers, MaxWorkers)
	}
	if !slices.Contains(Drivers, c.Driver) {
		v.bad("driver", "%q is not one of %s", c.Driver, strings.Join(Drivers, ", "))
	}
	switch sock := c.ControlSocket; {
	case !filepath.IsAbs(sock):
		v.bad("control_socket", "%q is not an absolute path", sock)
	case len(sock) >= 108:
		v.bad("control_socket", "path is %d bytes; a unix socket path must be shorter than 108", len(sock))
	}
	if g := c.ControlGroup; g != "" && !validGroupName(g) {
		v.bad("control_group", "%q is not a group name or number", g)
	}
	s.Admin = v.admin(c.Admin, n.LANAddr)
	if s.Admin.Enabled && s.Admin.Listen.IsValid() && s.Admin.Listen.Addr() == n.LANAddr.Addr() {
		n.KernelTCP = []uint16{s.Admin.Listen.Port()}
	}
	s.PortMapping = v.portMapping(c.PortMapping)
	if pm := s.PortMapping; pm.PCP || pm.NATPMP {
		n.KernelUDP = append(n.KernelUDP, PMPPort)
	}
	if s.PortMapping.UPnP {
		n.KernelUDP = append(n.KernelUDP, SSDPPort)
		n.KernelTCP = append(n.KernelTCP, UPnPHTTPPort)
		if s.Admin.Enabled && s.Admin.Listen.Port() == UPnPHTTPPort {
			v.bad("admin.listen", "port %d is UPnP's (port_mapping.upnp is on)", UPnPHTTPPort)
		}
	}
	if len(v.errs) > 0 {
		return nil, v.errs
	}
	// The engine checks its own configuration too; anything it refuses that
	// we let through is a bug here, but say it with the field names it uses.
	if err := n.Validate(); err != nil {
		var es Errors
		for _, line := range strings.Split(err.Error(), "\n") {
			f, msg, _ := strings.Cut(line, ": ")
			es = append(es, &FieldError{Field: f, Msg: msg})
		}
		return nil, es
	}
	return s, nil
}

type checkedForward struct {
	nat.PortForward
	index int
}

type validator struct {
	errs     Errors
	forwards []checkedForward
}

func (v *validator) bad(field, format string, a ...any) {
	v.errs = append(v.errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, a...)})
}

func (v *validator) ifname(field, name string) string {
	switch {
	case name == "":
		v.bad(field, "required")
	case len(name) > 15:
		v.bad(field, "%q is longer than 15 bytes", name)
	case name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n"):
		v.bad(field, "%q is not a valid interface name", name)
	default:
		return name
	}
	return ""
}

// ifaddr parses the router's address on an interface, e.g. 192.168.50.1/24.
func (v *validator) ifaddr(field, s string, maxBits int) netip.Prefix {
	if s == "" {
		v.bad(field, "required (address/prefix length, e.g. 192.168.50.1/24)")
		return netip.Prefix{}
	}
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		v.bad(field, "%q is not an IPv4 address with prefix length", s)
		return netip.Prefix{}
	}
	a := p.Addr()
	switch {
	case p.Bits() < 8 || p.Bits() > maxBits:
		v.bad(field, "prefix length /%d out of range 8-%d", p.Bits(), maxBits)
	case a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		v.bad(field, "%s cannot be a router address", a)
	case !isHost(p, a):
		v.bad(field, "%s is the network or broadcast address of %s", a, p.Masked())
	default:
		return p
	}
	return netip.Prefix{}
}

// isHost reports whether a is an address of a host on p other than the
// router's own (p.Addr()) and the network and broadcast addresses.
func isHost(p netip.Prefix, a netip.Addr) bool {
	if !a.Is4() || !p.Contains(a) {
		return false
	}
	if p.Bits() >= 31 {
		return true
	}
	n := p.Masked().Addr().As4()
	bits := p.Bits()
	v := uint32(a.As4()[0])<<24 | uint32(a.As4()[1])<<16 | uint32(a.As4()[2])<<8 | uint32(a.As4()[3])
	base := uint32(n[0])<<24 | uint32(n[1])<<16 | uint32(n[2])<<8 | uint32(n[3])
	bcast := base | (^uint32(0) >> bits)
	return v != base && v != bcast
}

func (v *validator) intRange(field string, x, lo, hi int) int {
	if x < lo || x > hi {
		v.bad(field, "%d out of range %d-%d", x, lo, hi)
		return 0
	}
	return x
}

func (v *validator) timeout(name, s string, allowShort bool) time.Duration {
	field := "nat.timeouts." + name
	d, err := time.ParseDuration(s)
	if err != nil {
		v.bad(field, "%q is not a duration (e.g. 5m, 2h4m, 30s)", s)
		return 0
	}
	if d <= 0 {
		v.bad(field, "%s must be positive", s)
		return 0
	}
	if min, ok := minTimeouts[name]; ok && d < min && !allowShort {
		v.bad(field, "%s is below the RFC minimum %s (set nat.allow_short_timeouts for tests)", s, fmtDuration(min))
		return 0
	}
	return d
}

func (v *validator) portForward(i int, pf PortForward, lan netip.Prefix) (checkedForward, bool) {
	f := fmt.Sprintf("port_forwards[%d]", i)
	n := len(v.errs)
	fw := checkedForward{index: i}
	fw.Name = pf.Name
	if msg := CheckForwardName(pf.Name); msg != "" {
		v.bad(f+".name", "%s", msg)
	}
	switch strings.ToLower(pf.Proto) {
	case "tcp":
		fw.Proto = 6
	case "udp":
		fw.Proto = 17
	case "":
		v.bad(f+".proto", "required (tcp or udp)")
	default:
		v.bad(f+".proto", "%q is not tcp or udp", pf.Proto)
	}
	if pf.OutsidePort == "" {
		v.bad(f+".outside_port", "required (a port or a range like 8000-8010)")
	} else if lo, hi, err := parsePortRange(string(pf.OutsidePort)); err != nil {
		v.bad(f+".outside_port", "%v", err)
	} else {
		fw.OutsideLo, fw.OutsideHi = lo, hi
	}
	if pf.InsidePort == 0 && fw.OutsideHi == 0 {
		// Defaults to the outside port, which is already reported.
	} else if pf.InsidePort < 1 || pf.InsidePort > 65535 {
		v.bad(f+".inside_port", "%d out of range 1-65535", pf.InsidePort)
	} else if fw.OutsideHi != 0 && pf.InsidePort+int(fw.OutsideHi-fw.OutsideLo) > 65535 {
		v.bad(f+".inside_port", "%d plus the %d ports of the range passes 65535", pf.InsidePort, int(fw.OutsideHi-fw.OutsideLo)+1)
	} else {
		fw.InsidePort = uint16(pf.InsidePort)
	}
	if pf.Host == "" {
		v.bad(f+".host", "required (a LAN host address)")
	} else if a, err := netip.ParseAddr(pf.Host); err != nil || !a.Is4() {
		v.bad(f+".host", "%q is not an IPv4 address", pf.Host)
	} else if lan.IsValid() && (!isHost(lan, a) || a == lan.Addr()) {
		v.bad(f+".host", "%s is not a host on the LAN %s", a, lan.Masked())
	} else {
		fw.Host = a
	}
	return fw, len(v.errs) == n
}

// CheckForwardName says what is wrong with a port forward name ("" if
// nothing): 1-64 bytes of letters, digits, space, '.', '_' and '-', not
// starting or ending with a space. Names appear in URLs and on the command
// line (passgate forward del NAME).
func CheckForwardName(name string) string {
	switch {
	case name == "":
		return "required (a unique name, e.g. \"web\")"
	case len(name) > MaxForwardName:
		return fmt.Sprintf("longer than %d bytes", MaxForwardName)
	case strings.TrimSpace(name) != name:
		return fmt.Sprintf("%q starts or ends with a space", name)
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == ' ' || r == '.' || r == '_' || r == '-'
		if !ok {
			return fmt.Sprintf("%q: only letters, digits, space, '.', '_' and '-' are allowed", name)
		}
	}
	return ""
}

// admin checks the admin section. The server listens on the LAN address or
// on 127.0.0.1, never on the WAN address nor on every address.
func (v *validator) admin(a Admin, lan netip.Prefix) AdminSettings {
	out := AdminSettings{Enabled: a.Enabled == nil || *a.Enabled, TLSCert: a.TLSCert, TLSKey: a.TLSKey,
		MaxConnections: a.MaxConnections, MetricsLocalhost: a.MetricsLocalhost}
	switch {
	case (a.TLSCert == "") != (a.TLSKey == ""):
		field := "admin.tls_key"
		if a.TLSCert == "" {
			field = "admin.tls_cert"
		}
		v.bad(field, "required with %s: give both the certificate and its key, or neither (a self-signed one)", map[string]string{"admin.tls_key": "admin.tls_cert", "admin.tls_cert": "admin.tls_key"}[field])
	}
	for _, f := range []struct{ name, path string }{{"admin.tls_cert", a.TLSCert}, {"admin.tls_key", a.TLSKey}} {
		if f.path != "" && !filepath.IsAbs(f.path) {
			v.bad(f.name, "%q is not an absolute path", f.path)
		}
	}
	if out.MaxConnections == 0 {
		out.MaxConnections = DefaultAdminMaxConnections
	}
	if out.MaxConnections < 1 || out.MaxConnections > MaxAdminConnections {
		v.bad("admin.max_connections", "%d out of range 1-%d", a.MaxConnections, MaxAdminConnections)
	}
	if a.Listen == "" {
		return out // no LAN address: reported on lan.address
	}
	ap, err := netip.ParseAddrPort(a.Listen)
	switch {
	case err != nil || !ap.Addr().Is4():
		v.bad("admin.listen", "%q is not IPv4ADDRESS:PORT (e.g. %s:%d)", a.Listen, lanAddrText(lan), DefaultAdminPort)
	case ap.Port() == 0:
		v.bad("admin.listen", "port 0 out of range 1-65535")
	case ap.Addr().IsUnspecified():
		v.bad("admin.listen", "%s would listen on every address, the WAN one too; use the LAN address %s", ap.Addr(), lanAddrText(lan))
	case ap.Addr() == netip.AddrFrom4([4]byte{127, 0, 0, 1}):
		out.Listen = ap
	case !lan.IsValid():
		// reported on lan.address
	case ap.Addr() != lan.Addr():
		v.bad("admin.listen", "%s is not the LAN address %s (nor 127.0.0.1): the admin page is served on the LAN side only", ap.Addr(), lan.Addr())
	default:
		out.Listen = ap
	}
	return out
}

// validGroupName accepts what useradd does (and a number, a gid).
func validGroupName(g string) bool {
	if len(g) > 32 {
		return false
	}
	for i, r := range g {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
		case (r == '-' || r == '.') && i > 0:
		case r == '$' && i == len(g)-1 && i > 0:
		default:
			return false
		}
	}
	return g != ""
}

func (v *validator) portMapping(p PortMapping) PortMappingSettings {
	out := PortMappingSettings{PCP: p.PCP, NATPMP: p.NATPMP, UPnP: p.UPnP, AllowLowPorts: p.AllowLowPorts, AllowThirdParty: p.AllowThirdParty}
	d, err := time.ParseDuration(p.MaxLease)
	switch {
	case err != nil:
		v.bad("port_mapping.max_lease", "%q is not a duration (e.g. 2h, 30m)", p.MaxLease)
	case d < time.Minute || d > 24*time.Hour:
		v.bad("port_mapping.max_lease", "%s out of range 1m-24h", p.MaxLease)
	default:
		out.MaxLease = d
	}
	if p.MaxPerHost < 1 || p.MaxPerHost > 1024 {
		v.bad("port_mapping.max_per_host", "%d out of range 1-1024", p.MaxPerHost)
	} else {
		out.MaxPerHost = p.MaxPerHost
	}
	if p.MaxMappings < 1 || p.MaxMappings > 16384 {
		v.bad("port_mapping.max_mappings", "%d out of range 1-16384", p.MaxMappings)
	} else {
		out.MaxMappings = p.MaxMappings
	}
	return out
}

func lanAddrText(lan netip.Prefix) string {
	if lan.IsValid() {
		return lan.Addr().String()
	}
	return "192.168.50.1"
}

// parsePortRange parses "8080" or "8000-8010".
func parsePortRange(s string) (lo, hi uint16, err error) {
	a, b, isRange := strings.Cut(strings.TrimSpace(s), "-")
	l, err := parsePort(a)
	if err != nil {
		return 0, 0, err
	}
	h := l
	if isRange {
		if h, err = parsePort(b); err != nil {
			return 0, 0, err
		}
		if h < l {
			return 0, 0, fmt.Errorf("%q: range ends before it starts", s)
		}
	}
	return l, h, nil
}

func parsePort(s string) (uint16, error) {
	s = strings.TrimSpace(s)
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a port number", s)
	}
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("%d out of range 1-65535", n)
	}
	return uint16(n), nil
}

func portText(lo, hi uint16) string {
	if lo == hi {
		return strconv.Itoa(int(lo))
	}
	return fmt.Sprintf("%d-%d", lo, hi)
}

func nameSuffix(name string) string {
	if name == "" {
		return ""
	}
	return " " + strconv.Quote(name)
}

// fmtDuration prints 2h4m0s as 2h4m.
func fmtDuration(d time.Duration) string {
	s := d.String()
	s = strings.TrimSuffix(s, "0s")
	s = strings.TrimSuffix(s, "0m")
	if s == "" {
		return "0s"
	}
	return s
}
