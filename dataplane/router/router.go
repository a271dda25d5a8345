// Package router owns passgate's data plane workers: it opens the packet
// driver's ports (dataplane/port: AF_XDP with its XDP program, one socket
// and worker per receive queue, or AF_PACKET, one receiving socket per
// worker and interface joined in a fanout group plus transmit sockets
// owned by each worker goroutine), fences the kernel off the forwarded
// path with an nftables netdev table, and runs the loop that moves frames
// through the link layer and the NAT engine: receive a batch, forward what
// belongs to established flows under the engine's read lock (workers in
// parallel), the rest under its write lock, send what results. A timer
// expires flows. It turns the interfaces' receive offloads off while it
// runs (features.go). On shutdown the interfaces are left as they were
// found.
package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"passgate/alg"
	"passgate/dataplane/afxdp"
	"passgate/dataplane/link"
	"passgate/dataplane/nicfeat"
	"passgate/dataplane/offload"
	"passgate/dataplane/port"
	"passgate/nat"
	"passgate/packet"
	"passgate/pppoe"
)

// Options configure Run.
type Options struct {
	LAN, WAN string     // interface names
	NAT      nat.Config // LANAddr and WANAddr are also the router's link-layer identity
	// Workers is the number of worker pairs (one goroutine per interface
	// each); default runtime.NumCPU().
	Workers int
	// Clock returns the engine time; default: monotonic time since New.
	Clock  func() nat.Time
	Logger *slog.Logger

	// BatchSize is the number of frames per Recv; default 64.
	BatchSize int
	// FenceTable names the nftables netdev table; default "passgate".
	FenceTable string
	// NoFence leaves the kernel's handling of IPv4 on the interfaces alone
	// (for tests on interfaces without kernel addresses).
	NoFence bool
	// PollTimeout bounds how long a worker waits for frames; default 50ms.
	PollTimeout time.Duration
	// ExpireInterval is how often flows are expired; default 200ms.
	ExpireInterval time.Duration
	// Ready, if set, is called once the router is forwarding.
	Ready func(*Router)
	// PPPoERelay switches the PPPoE relay on (default off, as on routers
	// that have one); SetPPPoERelay switches it while running.
	PPPoERelay bool
	// PPPoEIdleTimeout ends relayed PPPoE sessions idle this long;
	// default 10 minutes.
	PPPoEIdleTimeout time.Duration
	// Helpers are the protocol helpers (VPN passthroughs and
	// application-level gateways), in the order they are asked about new
	// flows; default alg.Helpers().
	Helpers []nat.Helper
	// Driver is the packet driver: auto (default), afxdp or afpacket.
	Driver string
	// XDPGeneric attaches the XDP program in generic mode only.
	XDPGeneric bool
	// Offload has the established flows the engine offers forwarded in
	// the kernel (dataplane/offload): by the XDP program with AF_XDP, by
	// a tc program at ingress with AF_PACKET.
	Offload bool
	// KeepRxOffloads leaves the interfaces' receive offloads (GRO, LRO,
	// VLAN stripping: nicfeat.RxOffloads) as they are instead of turning
	// them off for the run (features.go).
	KeepRxOffloads bool
	// StateDir is the runtime directory where the run records the receive
	// offloads it turns off (nicfeat.StateDir: passgate's control socket's
	// directory), so that a run after one killed before restoring them
	// restores them at its exit; empty: not recorded.
	StateDir string
}

// Router is a running data plane.
type Router struct {
	opts  Options
	log   *slog.Logger
	clock func() nat.Time

	// mu guards the engine: workers forward established flows through
	// FastPath together under the read lock; everything else (new flows,
	// helpers, the control plane, expiry) takes the write lock.
	mu  sync.RWMutex
	eng *nat.Engine

	evSeq  uint64      // engine events already taken
	events []EventInfo // the most recent, for the control API

	ifaces  [2]ifaceInfo
	nb      [2]*link.Neighbours
	ppp     *pppoe.Relay // serialised by mu
	workers []*worker
	socks   []sock
	progs   [2]*afxdp.Program
	tcProgs [2]*offload.TCProgram // AF_PACKET with offload
	off     *offloader            // nil without offload
	offKick chan struct{}         // a batch made flows offloadable
	mtu     [2]int                // the engine's MTU per way out
	started time.Time
	fenced  bool

	driver, xdpMode, fallback string
	ifDrops0                  [2][2]uint64 // the interfaces' drop counters at New

	rxOff         []nicfeat.Change // the receive offloads found, and turned off, at New
	rxOffRestored bool
	rxState       *nicfeat.StateDir // nil without Options.StateDir
	rxStateFiles  []string          // the interfaces whose state file this run owns
}

type ifaceInfo struct {
	name  string
	index int
	mac   packet.MAC
	mtu   int
	addr  netip.Prefix
}

// worker is one goroutine: it receives on one interface and owns a
// transmit socket on each.
type worker struct {
	id  int
	in  nat.Iface
	rx  port.Port
	tx  [2]port.Port
	cnt counters
	// hops caches the next hops' MACs per way out, for this goroutine.
	hops [2]link.HopCache
}

// Run opens the sockets, fences the kernel off, forwards until ctx is done,
// and cleans up.
func Run(ctx context.Context, opts Options) error {
	r, err := New(opts)
	if err != nil {
		return err
	}
	return r.Run(ctx)
}

// New validates the options, makes the engine and opens every socket.
func New(opts Options) (*Router, error) {
	if opts.LAN == "" || opts.WAN == "" || opts.LAN == opts.WAN {
		return nil, fmt.Errorf("router: need two distinct interfaces, got LAN %q and WAN %q", opts.LAN, opts.WAN)
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.NumCPU()
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 64
	}
	if opts.FenceTable == "" {
		opts.FenceTable = DefaultFenceTable
	}
	switch opts.Driver {
	case "":
		opts.Driver = DriverAuto
	case DriverAuto, DriverAFXDP, DriverAFPacket:
	default:
		return nil, fmt.Errorf("router: unknown driver %q (want one of %v)", opts.Driver, Drivers)
	}
	if opts.ExpireInterval <= 0 {
		opts.ExpireInterval = 200 * time.Millisecond
	}
	r := &Router{opts: opts, log: opts.Logger, clock: opts.Clock, started: time.Now()}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.clock == nil {
		start := time.Now()
		r.clock = func() nat.Time { return nat.FromDuration(time.Since(start)) }
	}
	eng, err := nat.New(opts.NAT, r.clock())
	if err == nil {
		if opts.Helpers == nil {
			opts.Helpers = alg.Helpers()
		}
		eng.RegisterHelpers(opts.Helpers...)
	}
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	r.eng = eng

	ok := false
	defer func() {
		if !ok {
			r.closeSockets()
			r.restoreRxOffloads()
		}
	}()
	names := [2]string{opts.LAN, opts.WAN}
	addrs := [2]netip.Prefix{opts.NAT.LANAddr, opts.NAT.WANAddr}
	r.rxOffloadsOff(names)
	hw, err := r.openPorts(names)
	if err != nil {
		return nil, err
	}
	mtus := natMTUs(opts.NAT)
	r.mtu = mtus
	for in := nat.LAN; in <= nat.WAN; in++ {
		s := hw[in]
		mac, okMAC := packet.MACFrom(s.HardwareAddr())
		if !okMAC {
			return nil, fmt.Errorf("router: %s has no Ethernet address", names[in])
		}
		r.ifaces[in] = ifaceInfo{name: names[in], index: s.Index(), mac: mac, mtu: s.MTU(), addr: addrs[in]}
		if s.MTU() < mtus[in] {
			r.log.Warn("interface MTU below the configured MTU: sending by the interface's",
				"interface", names[in], "interface_mtu", s.MTU(), "configured_mtu", mtus[in])
		}
		eng.SetLinkMTU(in, s.MTU())
		r.nb[in], err = link.NewNeighbours(link.NeighbourConfig{
			MAC: mac, Addr: addrs[in], BufSize: packet.EtherHeaderLen + max(s.MTU(), mtus[in]),
		})
		if err != nil {
			return nil, fmt.Errorf("router: %s: %w", names[in], err)
		}
	}
	r.snapshotDrops()
	if r.ppp, err = r.newPPPoE(); err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	ok = true
	return r, nil
}

// fanoutIDs picks a fanout group id per interface, unique to this process
// within the network namespace and never 0 (no fanout).
func fanoutIDs() [2]uint16 {
	base := uint16(os.Getpid()&0x7fff) << 1
	if base == 0 {
		base = 2
	}
	return [2]uint16{base, base | 1}
}

// Run forwards until ctx is done. It installs the fence first and removes
// it, and closes every socket, before returning.
func (r *Router) Run(ctx context.Context) error {
	defer r.restoreRxOffloads() // after the sockets and XDP programs are gone
	defer r.closeSockets()
	if err := r.passLocal(lanAccepts(r.opts.FenceTable)); err != nil {
		return fmt.Errorf("router: %w", err)
	}
	if !r.opts.NoFence {
		family := r.fenceFamily()
		if err := installFence(ctx, family, r.opts.FenceTable, [2]string{r.opts.LAN, r.opts.WAN}); err != nil {
			return fmt.Errorf("router: %w", err)
		}
		r.fenced = true
		defer func() {
			if err := removeFence(r.opts.FenceTable); err != nil {
				r.log.Error("leaving the kernel fenced off", "err", err)
			} else {
				r.log.Info("removed nftables table", "table", family+" "+r.opts.FenceTable)
			}
		}()
		r.log.Info("kernel fenced off the forwarded path", "table", family+" "+r.opts.FenceTable)
	}
	for _, in := range []nat.Iface{nat.LAN, nat.WAN} {
		i := r.ifaces[in]
		r.log.Info("interface", "role", in.String(), "name", i.name, "mac", i.mac.String(), "mtu", i.mtu, "address", i.addr.String())
	}

	wctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	for _, wk := range r.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.loop(wctx, wk)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.expireLoop(wctx)
	}()
	r.log.Info("forwarding", "lan", r.opts.LAN, "wan", r.opts.WAN, "workers", len(r.workers),
		"driver", r.driver, "xdp_mode", r.xdpMode, "fallback_reason", r.fallback)
	if r.opts.Ready != nil {
		r.opts.Ready(r)
	}
	<-wctx.Done()
	// Closing the receive sockets wakes the workers' Recv at once.
	for _, wk := range r.workers {
		wk.rx.Close()
	}
	wg.Wait()
	r.log.Info("stopped")
	return nil
}

// offloadGap is the least time between two offload syncs a worker's kick
// asks for: a flow the engine newly offers is installed within it.
const offloadGap = 10 * time.Millisecond

// fenceFamily is the nftables family of the fence for the driver in use.
func (r *Router) fenceFamily() string {
	if r.driver == DriverAFPacket {
		return fenceIP
	}
	return fenceNetdev
}

// FenceTable is the fence's nftables table as nft names it ("ip passgate",
// "netdev passgate").
func (r *Router) FenceTable() string { return r.fenceFamily() + " " + r.opts.FenceTable }

func (r *Router) expireLoop(ctx context.Context) {
	t := time.NewTicker(r.opts.ExpireInterval)
	defer t.Stop()
	mw, err := newMTUWatch()
	if err != nil {
		r.log.Error("interface MTU changes will not be followed", "err", err)
	}
	defer mw.close()
	names := [2]string{r.ifaces[nat.LAN].name, r.ifaces[nat.WAN].name}
	var lastSync time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.offKick:
			// Install what the last batches made offloadable now rather
			// than at the next tick.
			if d := offloadGap - time.Since(lastSync); d > 0 {
				time.Sleep(d)
			}
			r.mu.Lock()
			r.offloadInstall(r.clock())
			r.mu.Unlock()
			lastSync = time.Now()
			continue
		case <-t.C:
		}
		lastSync = time.Now()
		mtus := mw.read(names)
		r.mu.Lock()
		r.followMTU(mtus)
		now := r.clock()
		if r.off != nil {
			r.offloadCredit(now)
		}
		r.eng.Expire(now)
		if r.off != nil {
			r.offloadSync(now)
		}
		r.ppp.Expire(time.Duration(now))
		r.drainEvents()
		r.mu.Unlock()
		for _, nb := range r.nb {
			nb.Expire(time.Duration(now))
		}
	}
}

// natMTUs is the engine's MTU per way out in cfg (0 is 1500).
func natMTUs(cfg nat.Config) [2]int {
	mtus := [2]int{cfg.LANMTU, cfg.WANMTU}
	for i := range mtus {
		if mtus[i] == 0 {
			mtus[i] = 1500
		}
	}
	return mtus
}

// loop is one worker goroutine.
func (r *Router) loop(ctx context.Context, wk *worker) {
	n := r.opts.BatchSize
	frames := make([][]byte, n)
	flags := make([]uint32, n)
	bufSize := packet.EtherHeaderLen + max(2048, r.ifaces[0].mtu, r.ifaces[1].mtu, r.opts.NAT.LANMTU, r.opts.NAT.WANMTU)
	var out [2]*link.Batch
	for i := range out {
		tx := wk.tx[i]
		out[i] = link.NewBatch(2*n, n, bufSize, func(f [][]byte) { r.send(wk, tx, f) })
	}
	var errLog rateLimit
	var t tally
	for ctx.Err() == nil {
		got, err := wk.rx.Recv(frames, flags)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if errLog.allow(time.Now()) {
				r.log.Warn("receive failed", "interface", r.ifaces[wk.in].name, "worker", wk.id, "err", err)
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		now := r.clock()
		r.nb[nat.LAN].Poll(time.Duration(now), out[nat.LAN])
		r.nb[nat.WAN].Poll(time.Duration(now), out[nat.WAN])

		// Established flows first, in parallel with the other workers, up
		// to the first frame that needs more: from there on, in order, the
		// whole engine under the write lock.
		var nc nat.Counters
		i := 0
		r.mu.RLock()
		// The batch's lookups' cache misses at once, not one per frame.
		r.eng.Warm(wk.in, frames[:got], packet.EtherHeaderLen)
		for i < got && r.fast(now, wk, frames[i], &flags[i], &out, &t, &nc) {
			i++
		}
		r.eng.Flush(&nc)
		pending := len(r.eng.Emitted()) > 0 || r.ppp != nil && len(r.ppp.Emitted()) > 0
		r.mu.RUnlock()
		if i < got || pending {
			r.mu.Lock()
			// Read the clock under the lock, so the engine never sees time
			// go backwards between two workers' batches.
			now = r.clock()
			nowD := time.Duration(now)
			for ; i < got; i++ {
				r.handle(now, wk, frames[i], flags[i], &out, &t)
			}
			r.takeEmitted(nowD, &out, &t)
			r.takePPPoE(&out, &t)
			r.mu.Unlock()
			if r.off != nil {
				select {
				case r.offKick <- struct{}{}:
				default:
				}
			}
		}
		wk.cnt.addNAT(&nc)
		wk.cnt.add(&t)

		for i, b := range out {
			if b.Len() > 0 {
				r.send(wk, wk.tx[i], b.Frames)
			}
			b.Reset()
		}
		clear(frames[:got])
	}
}

// fast forwards frame f if it belongs to an established flow (the
// engine's FastPath); r.mu is read-locked. It reports false, having
// counted nothing, when f needs handle. It completes a checksum left to
// offload either way, and clears *flags' note of it.
func (r *Router) fast(now nat.Time, wk *worker, f []byte, flags *uint32, out *[2]*link.Batch, c *tally, nc *nat.Counters) bool {
	eth, ok := packet.ParseEther(f)
	if !ok || eth.Type() != packet.EtherTypeIPv4 || eth.Dst() != r.nb[wk.in].MAC() || eth.Src() == r.nb[wk.in].MAC() {
		return false
	}
	ip := f[packet.EtherHeaderLen:]
	if *flags&port.CsumNotReady != 0 || *flags&port.CsumUnknown != 0 && partialChecksum(ip) {
		*flags &^= port.CsumNotReady | port.CsumUnknown
		if completeChecksum(ip) {
			c.csumCompleted++
		}
	}
	v, ok := r.eng.FastPath(now, wk.in, ip, nc)
	if !ok {
		return false
	}
	c.rxFrames++
	c.fastPath++
	frame := f[:packet.EtherHeaderLen+ipLen(ip)]
	if r.nb[v.Out].OutputCached(time.Duration(now), v.NextHop, frame, out[v.Out], &wk.hops[v.Out]) {
		c.forwarded++
	} else {
		c.neighWait++
	}
	return true
}

// handle processes one received frame; r.mu is held.
func (r *Router) handle(now nat.Time, wk *worker, f []byte, flags uint32, out *[2]*link.Batch, c *tally) {
	c.rxFrames++
	in := wk.in
	eth, ok := packet.ParseEther(f)
	if !ok {
		c.rxRunts++
		return
	}
	nb := r.nb[in]
	if !nb.Accept(eth) {
		c.notForUs++
		return
	}
	switch eth.Type() {
	case packet.EtherTypeARP:
		c.arp++
		nb.Input(time.Duration(now), eth, out[in])
	case packet.EtherTypeIPv4:
		if eth.Dst() != nb.MAC() {
			c.notForUs++ // broadcast IPv4: nothing a NAT routes
			return
		}
		if s := eth.Src(); s.IsZero() || s.IsMulticast() {
			// No station sends from these (a Linux bridge drops them),
			// and the engine reads a zero MAC as none known: its flows
			// would be charged to no MAC's share.
			c.notForUs++
			return
		}
		ip := f[packet.EtherHeaderLen:]
		if flags&port.CsumNotReady != 0 || flags&port.CsumUnknown != 0 && partialChecksum(ip) {
			if completeChecksum(ip) {
				c.csumCompleted++
			}
		}
		// The source MAC: flows are charged to it as well as to the
		// source address (nat.Engine.ProcessFrom).
		// An RST, FIN or SYN of an offloaded TCP flow (any segment the
		// programs leave to it for its flags): the engine judges
		// it by the sequence numbers the program saw; if the flow stays
		// offloaded, its sequence numbers go unseen again (else the
		// engine sees them all from here, once the entry is withdrawn).
		offID, offGen, resynced := r.offloadResync(in, ip)
		v := r.eng.ProcessFrom(now, in, [6]byte(eth.Src()), ip)
		if resynced {
			if r.eng.StillOffloadable(now, offID, offGen) {
				r.eng.OffloadStarted(offID, offGen)
			} else if en := r.off.entries[offID]; en != nil && en.gen == offGen {
				// Ended (RST), closing (FIN), restarted (SYN): withdrawn
				// now rather than at the next sync.
				r.offloadWithdraw(now, offID, en)
			}
		}
		switch v.Action {
		case nat.Forward:
			frame := f[:packet.EtherHeaderLen+ipLen(ip)]
			if r.nb[v.Out].OutputCached(time.Duration(now), v.NextHop, frame, out[v.Out], &wk.hops[v.Out]) {
				c.forwarded++
			} else {
				c.neighWait++
			}
		case nat.Consumed:
			c.consumed++
		default:
			c.dropped++
		}
	case pppoe.EtherTypeDiscovery, pppoe.EtherTypeSession:
		r.handlePPPoE(now, in, f, out, c)
	default:
		c.otherType++
	}
}

// takeEmitted copies what the engine generated into the worker's batches
// and releases the engine's buffers; r.mu is held.
func (r *Router) takeEmitted(now time.Duration, out *[2]*link.Batch, c *tally) {
	ems := r.eng.Emitted()
	if len(ems) == 0 {
		return
	}
	for _, e := range ems {
		o := e.Out & 1
		buf := out[o].Buffer(len(e.Frame))
		if buf == nil || len(e.Frame) < packet.EtherHeaderLen {
			c.emitDropped++
			continue
		}
		copy(buf, e.Frame)
		r.nb[o].Output(now, e.NextHop, buf, out[o])
		c.emitted++
	}
	r.eng.ResetEmitted()
}

func (r *Router) send(wk *worker, tx port.Port, frames [][]byte) {
	n, err := tx.Send(frames)
	wk.cnt.txFrames.Add(uint64(n))
	if n < len(frames) {
		wk.cnt.txFailed.Add(uint64(len(frames) - n))
	}
	if err != nil && !errors.Is(err, net.ErrClosed) && wk.cnt.txErrLog.allow(time.Now()) {
		r.log.Warn("send failed", "worker", wk.id, "err", err)
	}
}

// ipLen is the IPv4 total length, bounded by what was received.
func ipLen(ip []byte) int {
	if len(ip) < 4 {
		return len(ip)
	}
	n := int(ip[2])<<8 | int(ip[3])
	if n < 20 || n > len(ip) {
		return len(ip)
	}
	return n
}

// rateLimit allows one event per second.
type rateLimit struct{ last atomic.Int64 }

func (l *rateLimit) allow(now time.Time) bool {
	t := now.UnixNano()
	last := l.last.Load()
	if t-last < int64(time.Second) {
		return false
	}
	return l.last.CompareAndSwap(last, t)
}
