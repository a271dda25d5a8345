package nat

import (
	"net/netip"
	"time"
)

// Time is the engine's clock: nanoseconds on a monotonic scale chosen by the
// caller. The engine never reads a clock itself, so the lab, pcap replay,
// fuzzers and benchmarks all drive the same code deterministically.
type Time int64

// sec is one second of engine time.
const sec = Time(time.Second)

// FromDuration converts an offset from the caller's epoch into engine time.
func FromDuration(d time.Duration) Time { return Time(d) }

// Iface names the side a packet arrived on or leaves by.
type Iface uint8

const (
	LAN Iface = iota
	WAN
)

func (i Iface) String() string {
	if i == LAN {
		return "lan"
	}
	return "wan"
}

// Action is what the caller must do with the packet handed to Process.
type Action uint8

const (
	// Drop: discard the packet; Verdict.Reason says why.
	Drop Action = iota
	// Forward: the packet was rewritten in place; send it out Verdict.Out to
	// Verdict.NextHop.
	Forward
	// Consumed: the engine took what it needed (a held fragment, a packet it
	// answered itself); the caller sends nothing for it, but must still send
	// what Emitted returns.
	Consumed
)

// Verdict is the outcome of Process for one packet.
type Verdict struct {
	Action  Action
	Out     Iface
	NextHop [4]byte
	Reason  DropReason
	// Eight bytes in all: a copy is one load and one store, where seven
	// took two overlapping ones that the CPU cannot forward from the
	// byte stores that built the verdict (a stall per copy, 10% of an
	// established packet's time).
	_ uint8
}

// Emit is a packet the engine generated (ICMP error, echo reply, a fragment,
// a released held fragment). Frame[:EtherHeadroom] is free for the link
// layer's header; Frame[EtherHeadroom:] is the IPv4 packet.
type Emit struct {
	Out     Iface
	NextHop [4]byte
	Frame   []byte
}

// EtherHeadroom is the room reserved in front of every emitted IPv4 packet.
const EtherHeadroom = 14

// Filtering is the RFC 4787 filtering behaviour of inbound packets on an
// existing mapping.
type Filtering uint8

const (
	AddressDependent Filtering = iota // default (RFC 4787 REQ-8 recommends EIF or ADF)
	EndpointIndependent
	AddressAndPortDependent
)

// PortForward sends inbound traffic for Proto on the outside ports
// [OutsideLo, OutsideHi] to Host, at InsidePort + (port - OutsideLo).
type PortForward struct {
	Name       string
	Proto      uint8 // 6 TCP, 17 UDP
	OutsideLo  uint16
	OutsideHi  uint16
	Host       netip.Addr
	InsidePort uint16
}

// Timeouts are per protocol state, RFC 4787/5382/5508 minimums by default.
type Timeouts struct {
	UDP            time.Duration // default 5 min (REQ-5: at least 2 min)
	TCPEstablished time.Duration // default 2 h 4 min (RFC 5382 REQ-5)
	// TCPOpening is the timeout of a connection being opened (SYN sent
	// or received), TCPClosing of one being closed (a FIN seen), RFC 7857
	// section 2.1; each is TCPTransitory when zero. Default 4 min.
	TCPOpening    time.Duration
	TCPClosing    time.Duration
	TCPTransitory time.Duration // both of those unless set; default 4 min
	TCPClosed     time.Duration // after RST; default 4 min (RFC 7857 2.2)
	ICMP          time.Duration // default 60 s (RFC 5508 REQ-1)
	Fragment      time.Duration // reassembly state; default 30 s
	Expectation   time.Duration // default 60 s
}

// Config is the engine's whole configuration.
type Config struct {
	LANAddr    netip.Prefix // router address on the LAN and the LAN prefix
	WANAddr    netip.Prefix // router address on the WAN (the public address) and its prefix
	WANGateway netip.Addr   // next hop for destinations off the WAN prefix; invalid = none
	LANMTU     int          // default 1500
	WANMTU     int          // default 1500

	Filtering       Filtering
	Timeouts        Timeouts
	MaxFlows        int // whole table; default 65536
	MaxFlowsPerHost int // per LAN host (RFC 6888), and per LAN MAC address; default MaxFlows/4
	// MaxFlowsPerRule bounds the inbound flows of each port forward and
	// of the DMZ, which are not charged to the LAN host; default
	// MaxFlowsPerHost.
	MaxFlowsPerRule int
	MSSClamp        uint16 // 0 = off; otherwise clamp TCP MSS on SYNs to this
	PortLo, PortHi  uint16 // dynamic port range; default 1024-65535
	PortForwards    []PortForward
	DMZ             netip.Addr // invalid = none
	ICMPRate        int        // generated ICMP errors per second; default 100
	// PortSeed seeds the choice of an outside port when the LAN port
	// cannot be kept, so it cannot be predicted (RFC 6056, RFC 7857
	// section 9); 0 is a fixed seed, for tests and replays. Only New
	// reads it.
	PortSeed uint64

	// KernelTCP are TCP ports on the LAN address that the kernel serves
	// (the admin page): the data plane lets the kernel have those
	// packets, so the engine takes them quietly instead of counting them
	// as drops.
	KernelTCP []uint16
	// KernelUDP are the same for UDP (the port mapping servers).
	KernelUDP []uint16
	// Helpers switches registered helpers by name: the VPN passthroughs
	// ("ipsec", "pptp", "l2tp") and the application-level gateways
	// ("ftp", "sip", ...); absent ones take the helper's default.
	Helpers map[string]Switch
}

// Switch is a run-time on/off setting whose zero value means the default.
type Switch uint8

const (
	Default Switch = iota
	On
	Off
)

// Enabled resolves the switch against its default.
func (s Switch) Enabled(def bool) bool {
	switch s {
	case On:
		return true
	case Off:
		return false
	}
	return def
}
