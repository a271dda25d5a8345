package router

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"passgate/dataplane/afpacket"
	"passgate/dataplane/afxdp"
	"passgate/dataplane/offload"
	"passgate/dataplane/port"
	"passgate/nat"
	"passgate/pppoe"
)

// Driver names, for Options.Driver.
const (
	DriverAuto     = "auto"     // AF_XDP on NICs whose drivers run XDP natively, else AF_PACKET
	DriverAFXDP    = "afxdp"    // AF_XDP or fail
	DriverAFPacket = "afpacket" // AF_PACKET
)

// Drivers are the valid Options.Driver values.
var Drivers = []string{DriverAuto, DriverAFXDP, DriverAFPacket}

// sock is one driver socket the router opened, for Sockets and Close.
type sock struct {
	p      port.Port
	iface  string
	worker int
	loop   string // the interface whose receive loop owns it
	kind   string // rx, tx, xsk (both), arp (AF_PACKET ARP tap beside AF_XDP), other (AF_PACKET: all but IPv4)
}

// hwInfo is what the router reads from a driver socket about its interface.
type hwInfo interface {
	HardwareAddr() net.HardwareAddr
	Index() int
	MTU() int
}

// openPorts opens the driver's sockets and makes the workers. It sets
// r.driver; on error what was opened is in r.socks for closeSockets.
//
// auto takes AF_PACKET (with the tc flow offload) on interfaces whose
// XDP would be generic or whose XDP_REDIRECT is slower than the kernel's
// own forwarding (veth: a redirect goes through the peer's 256-frame ring
// and costs the peer its GSO), and AF_XDP where both drivers run the XDP
// program natively; see docs/DESIGN.md "Drivers" for the figures.
func (r *Router) openPorts(names [2]string) ([2]hwInfo, error) {
	switch r.opts.Driver {
	case DriverAFPacket:
		return r.openAFPacket(names)
	case DriverAFXDP:
		return r.openAFXDP(names)
	}
	drivers := [2]string{ifaceDriver(names[0]), ifaceDriver(names[1])}
	if reason := autoAFPacket(names, drivers); reason != "" {
		r.fallback = reason
		r.log.Info("driver auto: using AF_PACKET (and the tc offload): XDP_REDIRECT into a veth is slower than the kernel's transmit",
			"reason", reason, "drivers", drivers[0]+","+drivers[1])
		return r.openAFPacket(names)
	}
	hw, err := r.openAFXDP(names)
	if err == nil {
		err = autoXDPModes([2]string{r.progs[0].Mode, r.progs[1].Mode})
	}
	if err == nil {
		return hw, nil
	}
	r.log.Warn("AF_XDP unavailable, using AF_PACKET", "err", err)
	r.closeSockets()
	r.fallback = err.Error()
	return r.openAFPacket(names)
}

// autoAFPacket is auto's first choice, by the interfaces' drivers as
// ETHTOOL_GDRVINFO names them (not by the interfaces' names: a veth may
// be called anything, and eth0 may be one): why it takes AF_PACKET at
// once (an interface is a veth), or "" to try AF_XDP (a driver it could
// not read included: the XDP modes then decide).
func autoAFPacket(names, drivers [2]string) string {
	for i, d := range drivers {
		if d == "veth" {
			return names[i] + " is a veth"
		}
	}
	return ""
}

// autoXDPModes is auto's second choice, once the XDP program is
// attached: AF_XDP only where both interfaces run it natively.
func autoXDPModes(modes [2]string) error {
	if modes[0] != "native" || modes[1] != "native" {
		return errors.New("XDP only in generic mode")
	}
	return nil
}

// ifaceDriver is the name of the interface's driver (ETHTOOL_GDRVINFO),
// "" if it cannot be read.
func ifaceDriver(name string) string {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return ""
	}
	defer unix.Close(fd)
	info, err := unix.IoctlGetEthtoolDrvinfo(fd, name)
	if err != nil {
		return ""
	}
	return unix.ByteSliceToString(info.Driver[:])
}

// newOffload makes the offloader, sized for the engine's flows.
func (r *Router) newOffload() error {
	maxFlows := r.opts.NAT.MaxFlows
	if maxFlows <= 0 {
		maxFlows = 65536
	}
	off, err := newOffloader(maxFlows)
	if err != nil {
		return fmt.Errorf("router: %w", err)
	}
	// The programs give IDs from the engine's counters (RFC 7857
	// section 10): the engine moves its own there, before any packet.
	ids := off.ids.IDs()
	ids.Key = r.eng.ShareIPIDs(&ids.Counters)
	r.off = off
	r.offKick = make(chan struct{}, 1)
	return nil
}

// otherSockets are the AF_PACKET driver's sockets beside IPv4's, one of
// each per interface and each read by a worker of its own: each bound to
// its ethertype (a socket of every ethertype, ETH_P_ALL, would be a tap
// that sees every frame, offloaded ones included, before tc ingress, and
// runs its filter on each), with a ring (blocks of 64 KiB) for the
// traffic it carries: PPPoE sessions' data, ARP and PPPoE discovery's
// little.
var otherSockets = [...]struct {
	kind   string
	proto  uint16
	blocks int
}{
	{"arp", unix.ETH_P_ARP, 4},
	{"pppoe-discovery", pppoe.EtherTypeDiscovery, 4},
	{"pppoe-session", pppoe.EtherTypeSession, 16},
}

// openAFPacket opens per worker and interface one receiving socket bound
// to ETH_P_IP, in the interface's fanout group, and a transmit socket per
// interface; per interface one more socket for each of ARP and the two
// PPPoE ethertypes (otherSockets), each read by one more worker. Bound
// to their ethertypes, the receiving sockets see frames after tc ingress,
// where with offload the tc program (dataplane/offload) forwards
// established flows: those never reach passgate.
func (r *Router) openAFPacket(names [2]string) ([2]hwInfo, error) {
	r.driver = DriverAFPacket
	var hw [2]hwInfo
	fanout := fanoutIDs()
	// With the fence and the tc program, the IPv4 frames the program
	// leaves to passgate are marked another host's (offload.TCOptions),
	// so that the kernel's IP layer drops them at once: the sockets take
	// them by their mark.
	markMissed := r.opts.Offload && !r.opts.NoFence
	var marked uint32
	if markMissed {
		marked = offload.MissMark
	}
	txPair := func(w int, in nat.Iface) ([2]port.Port, error) {
		var tx [2]port.Port
		for out := nat.LAN; out <= nat.WAN; out++ {
			s, err := afpacket.Open(afpacket.Config{Iface: names[out], NoRx: true})
			if err != nil {
				return tx, fmt.Errorf("router: worker %d transmit socket: %w", w, err)
			}
			tx[out] = s
			r.socks = append(r.socks, sock{p: s, iface: names[out], worker: w, loop: names[in], kind: "tx"})
		}
		return tx, nil
	}
	for w := 0; w < r.opts.Workers; w++ {
		for in := nat.LAN; in <= nat.WAN; in++ {
			rx, err := afpacket.Open(afpacket.Config{Iface: names[in], FanoutID: fanout[in],
				Protocol: unix.ETH_P_IP, HostOnly: true, MarkedHost: marked, PollTimeout: r.opts.PollTimeout})
			if err != nil {
				return hw, fmt.Errorf("router: worker %d receive socket: %w", w, err)
			}
			r.socks = append(r.socks, sock{p: rx, iface: names[in], worker: w, loop: names[in], kind: "rx"})
			if hw[in] == nil {
				hw[in] = rx
			}
			tx, err := txPair(w, in)
			if err != nil {
				return hw, err
			}
			r.workers = append(r.workers, &worker{id: w, in: in, rx: rx, tx: tx})
		}
	}
	for in := nat.LAN; in <= nat.WAN; in++ {
		for i, o := range otherSockets {
			w := r.opts.Workers + i
			s, err := afpacket.Open(afpacket.Config{Iface: names[in], Protocol: o.proto, HostOnly: true,
				BlockSize: 1 << 16, NumBlocks: o.blocks, PollTimeout: r.opts.PollTimeout})
			if err != nil {
				return hw, fmt.Errorf("router: %s: %s socket: %w", names[in], o.kind, err)
			}
			r.socks = append(r.socks, sock{p: s, iface: names[in], worker: w, loop: names[in], kind: o.kind})
			tx, err := txPair(w, in)
			if err != nil {
				return hw, err
			}
			r.workers = append(r.workers, &worker{id: w, in: in, rx: s, tx: tx})
		}
	}
	if r.opts.Offload {
		if err := r.newOffload(); err != nil {
			return hw, err
		}
		for in := nat.LAN; in <= nat.WAN; in++ {
			o := offload.TCOptions{MarkMissed: markMissed}
			if in == nat.LAN {
				o.Spare = r.opts.NAT.LANAddr.Addr().As4()
			}
			p, err := offload.AttachTC(names[in], hw[in].Index(), r.off.flows, r.off.ids.Map(), o)
			if err != nil {
				// A kernel without tcx (before 6.6), say: forward
				// without offload rather than not at all.
				r.log.Warn("flow offload off: the tc program does not attach", "err", err)
				for i, p := range r.tcProgs {
					_ = p.Close()
					r.tcProgs[i] = nil
				}
				_ = r.off.close()
				r.eng.ShareIPIDs(nil)
				r.off, r.offKick = nil, nil
				break
			}
			r.tcProgs[in] = p
		}
	}
	return hw, nil
}

// openAFXDP attaches the XDP program to both interfaces and opens one
// AF_XDP socket per receive queue. Worker (q, in) receives on queue q of
// in and sends through the socket of the same queue (modulo the count) on
// either side; the two workers sending on one socket share it (Send
// locks). ARP, which the program leaves to the kernel, is read by one more
// worker per interface from an AF_PACKET socket bound to ETH_P_ARP.
func (r *Router) openAFXDP(names [2]string) ([2]hwInfo, error) {
	r.driver = DriverAFXDP
	var hw [2]hwInfo
	var xsks [2][]*afxdp.Socket
	var flows, ids *ebpf.Map
	if r.opts.Offload {
		if err := r.newOffload(); err != nil {
			return hw, err
		}
		flows, ids = r.off.flows, r.off.ids.Map()
	}
	for in := nat.LAN; in <= nat.WAN; in++ {
		ifi, err := net.InterfaceByName(names[in])
		if err != nil {
			return hw, fmt.Errorf("router: %w", err)
		}
		q, err := afxdp.Queues(names[in])
		if err != nil {
			return hw, fmt.Errorf("router: %w", err)
		}
		prog, err := afxdp.Attach(names[in], ifi.Index, q, nil, r.opts.XDPGeneric, flows, ids)
		if err != nil {
			return hw, fmt.Errorf("router: %w", err)
		}
		r.progs[in] = prog
		for i := range q {
			s, err := afxdp.Open(afxdp.Config{Iface: names[in], Queue: i, PollTimeout: r.opts.PollTimeout})
			if err != nil {
				return hw, fmt.Errorf("router: %w", err)
			}
			r.socks = append(r.socks, sock{p: s, iface: names[in], worker: i, loop: names[in], kind: "xsk"})
			xsks[in] = append(xsks[in], s)
			if err := prog.Register(i, s); err != nil {
				return hw, fmt.Errorf("router: %w", err)
			}
		}
		hw[in] = xsks[in][0]
	}
	for in := nat.LAN; in <= nat.WAN; in++ {
		for q, s := range xsks[in] {
			wk := &worker{id: q, in: in, rx: s}
			for out := nat.LAN; out <= nat.WAN; out++ {
				wk.tx[out] = xsks[out][q%len(xsks[out])]
			}
			r.workers = append(r.workers, wk)
		}
		arp, err := afpacket.Open(afpacket.Config{Iface: names[in], Protocol: unix.ETH_P_ARP,
			BlockSize: 1 << 16, NumBlocks: 4, PollTimeout: r.opts.PollTimeout})
		if err != nil {
			return hw, fmt.Errorf("router: ARP socket: %w", err)
		}
		id := len(xsks[in])
		r.socks = append(r.socks, sock{p: arp, iface: names[in], worker: id, loop: names[in], kind: "arp"})
		r.workers = append(r.workers, &worker{id: id, in: in, rx: arp, tx: [2]port.Port{xsks[0][0], xsks[1][0]}})
	}
	// Copy or zero-copy is the kernel's choice per socket (bind asks for
	// neither): zero-copy where the driver supports AF_XDP buffers, copy
	// otherwise (veth).
	copyMode := "zero-copy"
	for _, q := range xsks {
		for _, s := range q {
			if !s.ZeroCopy() {
				copyMode = "copy"
			}
		}
	}
	r.xdpMode = r.progs[0].Mode + "/" + r.progs[1].Mode + ", " + copyMode
	return hw, nil
}

// passLocal rebuilds the LAN side's XDP program so TCP to the admin server
// and UDP to the port mapping servers (what the fence lets through to the
// kernel) reach the kernel's sockets.
func (r *Router) passLocal(tcp, udp []netip.AddrPort) error {
	if r.progs[nat.LAN] == nil || len(tcp)+len(udp) == 0 {
		return nil
	}
	pass := make([]afxdp.Pass, 0, len(tcp)+len(udp))
	for _, ap := range tcp {
		pass = append(pass, afxdp.Pass{Proto: unix.IPPROTO_TCP, Dst: ap})
	}
	for _, ap := range udp {
		pass = append(pass, afxdp.Pass{Proto: unix.IPPROTO_UDP, Dst: ap})
	}
	return r.progs[nat.LAN].SetPass(pass)
}

func (r *Router) closeSockets() {
	for _, s := range r.socks {
		s.p.Close()
	}
	r.socks = nil
	r.workers = nil
	var errs []error
	for i, p := range r.progs {
		if p != nil {
			errs = append(errs, p.Close())
			r.progs[i] = nil
		}
	}
	for i, p := range r.tcProgs {
		if p != nil {
			errs = append(errs, p.Close())
			r.tcProgs[i] = nil
		}
	}
	if r.off != nil {
		errs = append(errs, r.off.close())
		r.off = nil
	}
	if err := errors.Join(errs...); err != nil {
		r.log.Error("detaching the XDP or tc programs", "err", err)
	}
}

// Driver is the packet driver in use (afxdp or afpacket), and for AF_XDP
// the XDP attach mode per interface and the sockets' mode ("native/native,
// copy": LAN/WAN native or generic, copy or zero-copy); why auto fell back
// to AF_PACKET, if it did.
func (r *Router) Driver() (name, xdpMode, fallback string) {
	return r.driver, r.xdpMode, r.fallback
}
