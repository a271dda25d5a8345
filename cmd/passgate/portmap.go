package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"text/tabwriter"
	"time"

	"passgate/config"
	"passgate/control"
	"passgate/dataplane/router"
	"passgate/portmap"
	"passgate/portmap/server"
)

// LeasesSuffix names the port mapping leases file beside the
// configuration file.
const LeasesSuffix = ".leases"

// portMapping is the running port mapping: the lease manager and its
// settings; nil when every protocol is off.
type portMapping struct {
	m   *portmap.Manager
	set config.PortMappingSettings
}

func portmapConfig(s *config.Settings) portmap.Config {
	return portmap.Config{
		LAN: s.NAT.LANAddr, MaxLease: s.PortMapping.MaxLease, MaxPerHost: s.PortMapping.MaxPerHost,
		MaxMappings:   s.PortMapping.MaxMappings,
		AllowLowPorts: s.PortMapping.AllowLowPorts, AllowThirdParty: s.PortMapping.AllowThirdParty,
		RouterPorts: append(append([]uint16(nil), s.NAT.KernelTCP...), s.NAT.KernelUDP...),
		Public:      s.NAT.WANAddr.Addr(),
	}
}

// startPortMapping loads the leases (saved beside cfgPath, if any), lets
// the servers' ports through the fence on the LAN side and starts them.
// It returns nil when port mapping is off.
func startPortMapping(ctx context.Context, log *slog.Logger, r *router.Router, s *config.Settings, cfgPath string) (*portMapping, <-chan error, error) {
	if !s.PortMapping.On() {
		log.Info("port mapping off (port_mapping.pcp, natpmp and upnp are false): LAN programs cannot open ports on the router")
		return nil, nil, nil
	}
	path := ""
	if cfgPath != "" {
		path = cfgPath + LeasesSuffix
	}
	notify := func(ev portmap.Event) {
		host := ""
		if ev.Host.IsValid() {
			host = ev.Host.String()
		}
		r.Note(ev.Time, ev.Kind, host, ev.Message)
	}
	m, err := portmap.New(portmapConfig(s), r, path, time.Now(), log, notify)
	if err != nil {
		return nil, nil, err
	}
	opts := server.Options{
		LAN: s.NAT.LANAddr, Interface: s.LANInterface, Public: s.NAT.WANAddr.Addr(),
		PCP: s.PortMapping.PCP, NATPMP: s.PortMapping.NATPMP, UPnP: s.PortMapping.UPnP,
		HTTPPort: config.UPnPHTTPPort, Manager: m, Outbound: r.OutboundMapping,
		PeerLifetime: s.NAT.Timeouts.UDP, BootID: int(time.Now().Unix() & 0x7fffffff), Logger: log,
	}
	lan := s.NAT.LANAddr.Addr()
	udp, tcp := opts.Ports()
	for _, p := range udp {
		if err := r.AllowLANUDP(netip.AddrPortFrom(lan, p)); err != nil {
			return nil, nil, err
		}
	}
	if opts.UPnP {
		if err := r.AllowLANUDP(netip.MustParseAddrPort("239.255.255.250:1900")); err != nil {
			return nil, nil, err
		}
	}
	for _, p := range tcp {
		if err := r.AllowLANTCP(netip.AddrPortFrom(lan, p)); err != nil {
			return nil, nil, err
		}
	}
	done := make(chan error, 1)
	go func() {
		err := server.Run(ctx, opts)
		if err != nil {
			log.Error("port mapping off: its servers could not start", "err", err)
		}
		done <- err
	}()
	return &portMapping{m: m, set: s.PortMapping}, done, nil
}

// reconfigure applies a new policy (lease, limit, low ports) live.
func (p *portMapping) reconfigure(s *config.Settings) {
	if p != nil {
		p.m.Reconfigure(portmapConfig(s), time.Now())
	}
}

// Mappings is control.Mapper's.
func (p *portMapping) Mappings() control.Mappings {
	out := control.Mappings{Mappings: []control.Mapping{}}
	if p == nil {
		return out
	}
	out.PCP, out.NATPMP, out.UPnP = p.set.PCP, p.set.NATPMP, p.set.UPnP
	out.MaxLeaseSec = p.m.MaxLease().Seconds()
	now := time.Now()
	for _, l := range p.m.Leases() {
		out.Mappings = append(out.Mappings, control.Mapping{
			Proto: protoText(l.Proto), OutsidePort: l.Outside, Host: l.Host, InsidePort: l.Inside,
			By: l.By, Description: l.Description, Expires: l.Expires, LeaseLeftSec: l.Left(now).Round(time.Second).Seconds(),
		})
	}
	return out
}

// DeleteMapping is control.Mapper's.
func (p *portMapping) DeleteMapping(proto string, outside uint16) error {
	if p == nil {
		return fmt.Errorf("%s %d: %w (port mapping is off)", proto, outside, control.ErrNoMapping)
	}
	pr := portmap.TCP
	if proto == "udp" {
		pr = portmap.UDP
	}
	if err := p.m.Remove(time.Now(), pr, outside); err != nil {
		if errors.Is(err, portmap.ErrNoSuchLease) {
			return fmt.Errorf("%s %d: %w", proto, outside, control.ErrNoMapping)
		}
		return err
	}
	return nil
}

func protoText(p uint8) string {
	if p == portmap.UDP {
		return "udp"
	}
	return "tcp"
}

// cmdMappings lists or deletes the port mappings LAN applications made
// (PCP, NAT-PMP, UPnP), over the control socket.
func cmdMappings(args []string, stdout, stderr io.Writer) error {
	a, pos, cancel, err := dialAdmin("mappings", "[list | del tcp|udp PORT] [--json] [--control SOCKET]", args, stdout, stderr)
	if err != nil {
		return err
	}
	defer cancel()
	if len(pos) == 0 {
		pos = []string{"list"}
	}
	var m control.Mappings
	switch pos[0] {
	case "list", "ls":
		if len(pos) != 1 {
			return fmt.Errorf("mappings list: unexpected argument %q: %w", pos[1], errUsage)
		}
		if err := a.c.Do(a.ctx, http.MethodGet, "/v1/mappings", nil, &m); err != nil {
			return err
		}
	case "del", "delete", "rm":
		if len(pos) != 3 {
			return fmt.Errorf("mappings del: want tcp|udp PORT: %w", errUsage)
		}
		if err := a.c.Do(a.ctx, http.MethodDelete, "/v1/mappings/"+url.PathEscape(pos[1])+"/"+url.PathEscape(pos[2]), nil, &m); err != nil {
			return err
		}
		if !a.asJSON {
			fmt.Fprintf(stdout, "deleted %s %s\n", pos[1], pos[2])
			return nil
		}
	default:
		return fmt.Errorf("mappings: unknown subcommand %q (want list or del): %w", pos[0], errUsage)
	}
	if a.asJSON {
		return writeJSON(stdout, m)
	}
	printMappings(stdout, m)
	return nil
}

func printMappings(w io.Writer, m control.Mappings) {
	if !m.PCP && !m.NATPMP && !m.UPnP {
		fmt.Fprintln(w, "port mapping is off (port_mapping.pcp, natpmp and upnp in the configuration): LAN programs cannot open ports")
	} else {
		fmt.Fprintf(w, "port mapping: pcp %s, natpmp %s, upnp %s; leases up to %s\n", onOff(m.PCP), onOff(m.NATPMP), onOff(m.UPnP), time.Duration(m.MaxLeaseSec)*time.Second)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROTO\tOUTSIDE PORT\tHOST\tINSIDE PORT\tBY\tLEASE LEFT\tDESCRIPTION")
	for _, x := range m.Mappings {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\t%s\n", x.Proto, x.OutsidePort, x.Host, x.InsidePort, x.By, time.Duration(x.LeaseLeftSec)*time.Second, x.Description)
	}
	tw.Flush()
	fmt.Fprintf(w, "%d mappings\n", len(m.Mappings))
}
