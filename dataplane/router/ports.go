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
	"passgate/dataplane/port"
	"passgate/nat"
)

// Driver names, for Options.Driver.
const (
	DriverAuto     = "auto"     // AF_XDP where its XDP program attaches, else AF_PACKET
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
	kind   string // rx, tx, xsk (both), arp (AF_PACKET ARP tap beside AF_XDP)
}

// hwInfo is what the router reads from a driver socket about its interface.
type hwInfo interface {
	HardwareAddr() net.HardwareAddr
	Index() int
	MTU() int
}

// openPorts opens the driver's sockets and makes the workers. It sets
// r.driver; on error what was opened is in r.socks for closeSockets.
func (r *Router) openPorts(names [2]string) ([2]hwInfo, error) {
	switch r.opts.Driver {
	case DriverAFPacket:
		return r.openAFPacket(names)
	case DriverAFXDP:
		return r.openAFXDP(names)
	}
	hw, err := r.openAFXDP(names)
	if err == nil {
		return hw, nil
	}
	r.log.Warn("AF_XDP unavailable, using AF_PACKET", "err", err)
	r.closeSockets()
	r.fallback = err.Error()
	return r.openAFPacket(names)
}

func (r *Router) openAFPacket(names [2]string) ([2]hwInfo, error) {
	if r.opts.Offload {
		r.log.Warn("offload needs the AF_XDP driver: off")
	}
	r.driver = DriverAFPacket
	var hw [2]hwInfo
	fanout := fanoutIDs()
	for w := 0; w < r.opts.Workers; w++ {
		for in := nat.LAN; in <= nat.WAN; in++ {
			wk := &worker{id: w, in: in}
			r.workers = append(r.workers, wk)
			rx, err := afpacket.Open(afpacket.Config{Iface: names[in], FanoutID: fanout[in], PollTimeout: r.opts.PollTimeout})
			if err != nil {
				return hw, fmt.Errorf("router: worker %d receive socket: %w", w, err)
			}
			wk.rx = rx
			r.socks = append(r.socks, sock{p: rx, iface: names[in], worker: w, loop: names[in], kind: "rx"})
			if hw[in] == nil {
				hw[in] = rx
			}
			for out := nat.LAN; out <= nat.WAN; out++ {
				tx, err := afpacket.Open(afpacket.Config{Iface: names[out], NoRx: true})
				if err != nil {
					return hw, fmt.Errorf("router: worker %d transmit socket: %w", w, err)
				}
				wk.tx[out] = tx
				r.socks = append(r.socks, sock{p: tx, iface: names[out], worker: w, loop: names[in], kind: "tx"})
			}
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
	var flows *ebpf.Map
	if r.opts.Offload {
		maxFlows := r.opts.NAT.MaxFlows
		if maxFlows <= 0 {
			maxFlows = 65536
		}
		off, err := newOffloader(maxFlows)
		if err != nil {
			return hw, fmt.Errorf("router: %w", err)
		}
		r.off, flows = off, off.flows
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
		prog, err := afxdp.Attach(names[in], ifi.Index, q, nil, r.opts.XDPGeneric, flows)
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
	if r.off != nil {
		errs = append(errs, r.off.close())
		r.off = nil
	}
	if err := errors.Join(errs...); err != nil {
		r.log.Error("detaching the XDP programs", "err", err)
	}
}

// Driver is the packet driver in use (afxdp or afpacket), and for AF_XDP
// the XDP attach mode per interface and the sockets' mode ("native/native,
// copy": LAN/WAN native or generic, copy or zero-copy); why auto fell back
// to AF_PACKET, if it did.
func (r *Router) Driver() (name, xdpMode, fallback string) {
	return r.driver, r.xdpMode, r.fallback
}
