// Package server runs the port mapping protocols on the router's LAN
// address: PCP and NAT-PMP on UDP 5351 (one socket, told apart by the
// version byte), SSDP on 239.255.255.250:1900 joined on the LAN interface
// only, and the UPnP description and control over HTTP. Every socket is
// bound to the LAN address (or joined on the LAN interface), and requests
// from outside the LAN prefix are ignored. At start, and when the public
// address changes (Options.Addresses), it announces on the LAN: the
// NAT-PMP public address and a PCP ANNOUNCE to 224.0.0.1:5350 (RFC 6886
// 3.2.1, RFC 6887 14.1.3); SSDP alive at start; at stop SSDP byebye.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"passgate/portmap"
	"passgate/portmap/natpmp"
	"passgate/portmap/pcp"
	"passgate/portmap/upnp"
)

// Options are what the servers need.
type Options struct {
	LAN       netip.Prefix // the router's LAN address and prefix
	Interface string       // the LAN interface (multicast)
	Public    netip.Addr   // the router's public address
	PCP       bool
	NATPMP    bool
	UPnP      bool
	HTTPPort  uint16 // UPnP's description and control; default DefaultHTTPPort
	Manager   *portmap.Manager
	// Outbound finds a LAN endpoint's live outside port (PCP PEER).
	Outbound     func(proto uint8, host netip.Addr, port uint16) (uint16, bool)
	PeerLifetime time.Duration
	BootID       int
	Logger       *slog.Logger
	Clock        func() time.Time // default time.Now
	// AnnounceTo is where announcements go; default 224.0.0.1:5350
	// (tests change it).
	AnnounceTo netip.AddrPort
	// Addresses brings the public address when it changes while running
	// (nil: it never does; the router takes a new WAN address only at a
	// restart today): the servers answer with it, the epoch starts again
	// (portmap.Manager.SetPublic) and the announcements go out again.
	Addresses <-chan netip.Addr
	// After is the announcements' timer; default time.After (tests).
	After func(time.Duration) <-chan time.Time
}

// Ports.
const (
	DefaultHTTPPort = 5431
	PMPPort         = 5351
)

// Ports lists what the servers of o use on the LAN address, for the fence
// and the engine: UDP and TCP ports.
func (o Options) Ports() (udp, tcp []uint16) {
	if o.PCP || o.NATPMP {
		udp = append(udp, PMPPort)
	}
	if o.UPnP {
		udp = append(udp, upnp.SSDPPort)
		tcp = append(tcp, o.httpPort())
	}
	return udp, tcp
}

func (o Options) httpPort() uint16 {
	if o.HTTPPort == 0 {
		return DefaultHTTPPort
	}
	return o.HTTPPort
}

// Run serves until ctx is done. A socket that cannot be opened is an
// error before anything is served.
func Run(ctx context.Context, o Options) error {
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if !o.AnnounceTo.IsValid() {
		o.AnnounceTo = netip.MustParseAddrPort("224.0.0.1:5350")
	}
	if o.After == nil {
		o.After = time.After
	}
	start := o.Clock()
	// The epoch goes on from the leases' (portmap.Manager.EpochStart):
	// clients see it restart at 0 only when the mappings were lost or the
	// public address changed.
	epoch := func(now time.Time) uint32 { return uint32(max(now.Sub(o.Manager.EpochStart()), 0) / time.Second) }
	o.Manager.SetPublic(o.Public, start)
	public := func() netip.Addr {
		if a := o.Manager.Public(); a.IsValid() {
			return a
		}
		return o.Public
	}
	lan := o.LAN.Addr()
	allowed := func(a netip.Addr) bool { return a.Is4() && o.LAN.Contains(a) && a != lan }
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	done := make(chan struct{}, 8)
	var running int
	// announceAgain starts the announcements over (nil: no PCP nor
	// NAT-PMP).
	var announceAgain func()

	if o.PCP || o.NATPMP {
		c, err := listenUDP(netip.AddrPortFrom(lan, PMPPort), lan)
		if err != nil {
			return err
		}
		closers = append(closers, func() { c.Close() })
		np := &natpmp.Server{Manager: o.Manager, Public: public, Epoch: epoch}
		ps := &pcp.Server{Manager: o.Manager, Public: public, Epoch: epoch, Outbound: o.Outbound, PeerLifetime: o.PeerLifetime}
		running++
		go func() {
			defer func() { done <- struct{}{} }()
			serveUDP(c, allowed, func(from netip.AddrPort, b []byte) []byte {
				now := o.Clock()
				switch {
				case b[0] == natpmp.Version && o.NATPMP:
					return np.Answer(now, from.Addr(), b)
				case b[0] == natpmp.Version:
					// PCP without NAT-PMP: version 0 is unsupported.
					return pcp.AppendResponse(nil, b[1]&0x7f, pcp.UnsuppVersion, 30, epoch(now), nil)
				case o.PCP:
					return ps.Answer(now, from.Addr(), b)
				case b[1]&0x80 != 0:
					// A response (PCP's R bit): never answered (RFC 6887
					// 8.3), so two servers cannot bounce messages forever.
					return nil
				}
				return natpmp.AppendHeader(nil, b[1], natpmp.UnsupportedVer, epoch(now))
			})
		}()
		actx, stop := context.WithCancel(ctx)
		go o.announce(actx, c, epoch, public)
		announceAgain = func() {
			stop()
			actx, stop = context.WithCancel(ctx)
			go o.announce(actx, c, epoch, public)
		}
		closers = append(closers, func() { stop() })
	}
	if o.UPnP {
		base := fmt.Sprintf("http://%s:%d", lan, o.httpPort())
		dev := upnp.NewDevice(base, o.LAN.String(), o.BootID)
		ctl := &upnp.Control{Manager: o.Manager, Public: public, Started: start}
		ln, err := net.Listen("tcp4", netip.AddrPortFrom(lan, o.httpPort()).String())
		if err != nil {
			return fmt.Errorf("upnp: %w", err)
		}
		ln = newLimitListener(ln, MaxHTTPConns, MaxHTTPConnsPerHost)
		hs := &http.Server{Handler: upnp.Handler(dev, ctl, allowed, o.Clock), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
			WriteTimeout: 10 * time.Second, IdleTimeout: 30 * time.Second, MaxHeaderBytes: 8 << 10}
		closers = append(closers, func() { hs.Close() })
		running++
		go func() {
			defer func() { done <- struct{}{} }()
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				o.Logger.Error("upnp http", "err", err)
			}
		}()
		uni, err := listenUDP(netip.AddrPortFrom(lan, upnp.SSDPPort), lan)
		if err != nil {
			return fmt.Errorf("ssdp: %w", err)
		}
		closers = append(closers, func() { uni.Close() })
		mc, err := listenGroup(netip.MustParseAddr(upnp.SSDPGroup), upnp.SSDPPort, o.Interface, lan)
		if err != nil {
			return fmt.Errorf("ssdp: %w", err)
		}
		closers = append(closers, func() { mc.Close() })
		var searches searchLimiter
		answer := func(from netip.AddrPort, b []byte) []byte {
			st, ok := upnp.MSearch(b)
			if !ok || !searches.allow(o.Clock().Unix(), from.Addr()) {
				return nil
			}
			for _, r := range dev.Responses(st) {
				uni.WriteToUDPAddrPort(r, from)
			}
			return nil
		}
		running += 2
		go func() { defer func() { done <- struct{}{} }(); serveUDP(mc, allowed, answer) }()
		go func() { defer func() { done <- struct{}{} }(); serveUDP(uni, allowed, answer) }()
		gaddr := netip.AddrPortFrom(netip.MustParseAddr(upnp.SSDPGroup), upnp.SSDPPort)
		notify := func(nts string) {
			for _, m := range dev.Notifies(nts) {
				uni.WriteToUDPAddrPort(m, gaddr)
			}
		}
		notify("ssdp:alive")
		closers = append([]func(){func() { notify("ssdp:byebye") }}, closers...)
		go func() {
			t := time.NewTicker(15 * time.Minute)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					notify("ssdp:alive")
				}
			}
		}()
	}
	o.Logger.Info("port mapping served on the LAN", "address", lan, "pcp", o.PCP, "natpmp", o.NATPMP, "upnp", o.UPnP)

	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			for _, c := range closers {
				c()
			}
			closers = nil
			for ; running > 0; running-- {
				<-done
			}
			o.Manager.Flush()
			return nil
		case <-t.C:
			o.Manager.Expire(o.Clock())
		case a := <-o.Addresses:
			if o.Manager.SetPublic(a, o.Clock()) {
				o.Logger.Info("public address changed: announced on the LAN", "address", a)
				if announceAgain != nil {
					announceAgain()
				}
			}
		}
	}
}

// announce sends the NAT-PMP public address and a PCP ANNOUNCE to the
// LAN's all-hosts group ten times, 250 ms apart and doubling (RFC 6886
// 3.2.1, RFC 6887 14.1.3), until ctx is done.
func (o Options) announce(ctx context.Context, c *net.UDPConn, epoch func(time.Time) uint32, public func() netip.Addr) {
	wait := 250 * time.Millisecond
	for i := 0; i < 10; i++ {
		if ctx.Err() != nil {
			return
		}
		now := o.Clock()
		if o.NATPMP {
			c.WriteToUDPAddrPort(natpmp.AppendAddress(nil, natpmp.Success, epoch(now), public()), o.AnnounceTo)
		}
		if o.PCP {
			c.WriteToUDPAddrPort(pcp.Announcement(epoch(now)), o.AnnounceTo)
		}
		if i == 9 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-o.After(wait):
		}
		wait *= 2
	}
}

// serveUDP answers datagrams from allowed sources until c is closed.
func serveUDP(c *net.UDPConn, allowed func(netip.Addr) bool, answer func(netip.AddrPort, []byte) []byte) {
	buf := make([]byte, 2048)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		if n < 2 || !allowed(from.Addr()) {
			continue
		}
		if out := answer(from, buf[:n]); out != nil {
			c.WriteToUDPAddrPort(out, from)
		}
	}
}

// listenUDP binds ap (SO_REUSEADDR) with multicast sent out of the
// interface of ifAddr with TTL 1.
func listenUDP(ap netip.AddrPort, ifAddr netip.Addr) (*net.UDPConn, error) {
	return listen(ap, func(fd int) error {
		if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
			return err
		}
		if err := syscall.SetsockoptInet4Addr(fd, syscall.IPPROTO_IP, syscall.IP_MULTICAST_IF, ifAddr.As4()); err != nil {
			return err
		}
		return syscall.SetsockoptInt(fd, syscall.IPPROTO_IP, syscall.IP_MULTICAST_TTL, 1)
	})
}

// listenGroup binds the group address itself (not the wildcard address
// Go's ListenMulticastUDP takes) and joins it on the named interface only.
func listenGroup(group netip.Addr, port uint16, iface string, ifAddr netip.Addr) (*net.UDPConn, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, err
	}
	return listen(netip.AddrPortFrom(group, port), func(fd int) error {
		if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
			return err
		}
		mreq := &syscall.IPMreqn{Multiaddr: group.As4(), Address: ifAddr.As4(), Ifindex: int32(ifi.Index)}
		if err := syscall.SetsockoptIPMreqn(fd, syscall.IPPROTO_IP, syscall.IP_ADD_MEMBERSHIP, mreq); err != nil {
			return fmt.Errorf("joining %s on %s: %w", group, iface, err)
		}
		return syscall.SetsockoptInt(fd, syscall.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0)
	})
}

func listen(ap netip.AddrPort, setup func(fd int) error) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = setup(int(fd)) })
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", ap.String())
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", ap, err)
	}
	return pc.(*net.UDPConn), nil
}
