package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"passgate/alg"
	"passgate/config"
	"passgate/control"
	"passgate/dataplane/router"
	"passgate/nat"
)

// backend exposes the running router to the control API.
type backend struct {
	r            *router.Router
	settings     func() config.Settings // the running settings
	started      time.Time
	*portMapping // control.Mapper (nil: port mapping off)
}

func (b *backend) Flows(fn func(control.Flow) bool) {
	b.r.Flows(func(f nat.FlowInfo) bool { return fn(control.FlowFrom(f)) })
}

func (b *backend) Events() []control.Event { return control.EventsFrom(b.r.Events()) }

func (b *backend) PPPoE() control.PPPoE {
	st := b.r.PPPoEStats()
	return pppoeFrom(b.r.PPPoERelay(), b.r.PPPoESessions(), st.Counters)
}

// pppoeFrom converts the router's view of the PPPoE relay.
func pppoeFrom(on bool, ss []router.PPPoESession, counters func(func(string, uint64))) control.PPPoE {
	p := control.PPPoE{On: on, Sessions: make([]control.PPPoESession, 0, len(ss)), Counters: map[string]uint64{}}
	for _, s := range ss {
		p.Sessions = append(p.Sessions, control.PPPoESession{
			ID: s.ID, Host: s.Host, AC: s.AC, AgeSec: s.Age.Seconds(), IdleSec: s.Idle.Seconds(),
			FramesToWAN: s.FramesToWAN, FramesToLAN: s.FramesToLAN,
		})
	}
	if counters != nil {
		counters(func(name string, v uint64) { p.Counters[name] = v })
	}
	return p
}

func (b *backend) Status() control.Status {
	s := control.Status{
		Version:   version,
		PID:       os.Getpid(),
		Started:   b.started,
		UptimeSec: time.Since(b.started).Seconds(),
		Workers:   b.r.Workers(),
		NAT:       control.NATStatsFrom(b.r.NATStats()),
		Passthrough: func() map[string]bool {
			cfg, on := b.r.NATConfig(), map[string]bool{}
			for _, a := range alg.All() {
				if a.Kind == alg.Passthrough {
					on[a.Name] = a.On(cfg)
				}
			}
			return on
		}(),
		Dataplane: b.r.Counters(),
		Losses:    b.r.Losses(),
	}
	s.Driver, s.XDPMode, s.DriverFallback = b.r.Driver()
	for _, o := range b.r.RxOffloads() {
		s.RxOffloads = append(s.RxOffloads, control.RxOffload{Interface: o.Interface, Feature: o.Feature, State: o.State})
	}
	for _, i := range b.r.Interfaces() {
		ci := control.Interface{
			Role: i.Role.String(), Name: i.Name, Index: i.Index, Address: i.Addr.String(),
			MAC: i.MAC.String(), MTU: i.MTU, ARP: control.ARPStatsFrom(b.r.Neighbours(i.Role).Stats()),
		}
		if gw := b.settings().NAT.WANGateway; i.Role == nat.WAN && gw.IsValid() {
			ci.Gateway = gw.String()
		}
		s.Interfaces = append(s.Interfaces, ci)
	}
	for _, k := range b.r.Sockets() {
		s.Sockets = append(s.Sockets, control.SocketStats{
			Interface: k.Interface, Worker: k.Worker, Loop: k.Loop, Kind: k.Kind,
			RxPackets: k.Stats.RxPackets, RxDrops: k.Stats.RxDrops, RxFreezes: k.Stats.RxFreezes,
			TxPackets: k.Stats.TxPackets, TxErrors: k.Stats.TxErrors,
		})
	}
	return s
}

// rootBackend is the control socket's backend: the router's, plus what
// only root may see, the admin server's setup code and certificate.
type rootBackend struct {
	*backend
	admin func() *control.AdminInfo
}

func (b rootBackend) Status() control.Status {
	s := b.backend.Status()
	if b.admin != nil {
		s.Admin = b.admin()
	}
	return s
}

func controlFlag(fs interface {
	String(name, value, usage string) *string
}) *string {
	return fs.String("control", config.DefaultControlSocket, "control `socket` of the running passgate")
}

func cmdStatus(args []string, stdout, stderr io.Writer) error {
	return readCommand("status", args, stdout, stderr, (*control.Client).Status, printStatus)
}

// readCommand is a client command that reads one thing from the running
// daemon and prints it for people, or as JSON with --json.
func readCommand[T any](name string, args []string, stdout, stderr io.Writer,
	get func(*control.Client, context.Context) (T, error), print func(io.Writer, T)) error {
	fs := newFlagSet(name, stderr, "[--json] [--control SOCKET]")
	asJSON := fs.Bool("json", false, "print the raw JSON")
	sock := controlFlag(fs)
	if err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := get(control.NewClient(*sock), ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, v)
	}
	print(stdout, v)
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printStatus(w io.Writer, st *control.Status) {
	up := time.Duration(st.UptimeSec * float64(time.Second)).Round(time.Second)
	fmt.Fprintf(w, "passgate %s  pid %d  up %s  %d workers\n", st.Version, st.PID, up, st.Workers)
	if st.Driver != "" {
		fmt.Fprintf(w, "driver %s", st.Driver)
		if st.XDPMode != "" {
			fmt.Fprintf(w, " (XDP %s)", st.XDPMode)
		}
		if st.DriverFallback != "" {
			fmt.Fprintf(w, " (auto fell back: %s)", st.DriverFallback)
		}
		fmt.Fprintln(w)
	}
	printRxOffloads(w, st.RxOffloads)
	if n, ok := st.Dataplane["offload_flows"]; ok {
		by := "the XDP program"
		if st.Driver == "afpacket" {
			by = "the tc program"
		}
		fmt.Fprintf(w, "offload on: %d flows forwarded by %s now; %d packets, %d bytes so far\n",
			n, by, st.Dataplane["offload_packets"], st.Dataplane["offload_bytes"])
	} else if st.Driver != "" {
		fmt.Fprintln(w, "offload off")
	}
	fmt.Fprintln(w)

	if a := st.Admin; a != nil && a.URL != "" {
		fmt.Fprintf(w, "admin page  %s\n", a.URL)
		fmt.Fprintf(w, "  certificate SHA-256 %s\n", a.Fingerprint)
		if a.SetupCode != "" {
			fmt.Fprintf(w, "  no password yet: setup code %s (or set it here with passgate passwd)\n", a.SetupCode)
		}
		fmt.Fprintln(w)
	}

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tINTERFACE\tADDRESS\tGATEWAY\tMAC\tMTU\tNEIGHBOURS\tARP DROPS")
	for _, i := range st.Interfaces {
		gw := i.Gateway
		if gw == "" {
			gw = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d resolved, %d waiting\t%d\n",
			i.Role, i.Name, i.Address, gw, i.MAC, i.MTU, i.ARP.Resolved, i.ARP.Incomplete, i.ARP.Drops())
	}
	tw.Flush()

	n := st.NAT
	fmt.Fprintf(w, "\nNAT\n")
	fmt.Fprintf(w, "  flows      %d%s, %d mappings, %d created, %d expired\n", n.Flows, byProto(n.FlowsByProto), n.Mappings, n.Created, n.Expired)
	fmt.Fprintf(w, "  lan -> wan %d packets, %s\n", n.PacketsOut, bytesText(n.BytesOut))
	fmt.Fprintf(w, "  wan -> lan %d packets, %s\n", n.PacketsIn, bytesText(n.BytesIn))
	fmt.Fprintf(w, "  icmp sent  %d\n", n.ICMPSent)
	fmt.Fprintf(w, "  drops      %d%s\n", n.TotalDrops(), nonZero(n.Drops))
	var guards uint64 // flows ended early to make room, RSTs passed without closing
	for _, v := range n.Guards {
		guards += v
	}
	fmt.Fprintf(w, "  guards     %d%s\n", guards, nonZero(n.Guards))

	fmt.Fprintf(w, "\nVPN PASSTHROUGH\n")
	for _, p := range alg.All() {
		if p.Kind != alg.Passthrough {
			continue
		}
		state := "off"
		if st.Passthrough[p.Name] {
			state = "on"
		}
		fmt.Fprintf(w, "  %-6s %-3s  %-11s  (%s)\n", p.Label, state, count(n.VPNSessions[p.Name], "session"), p.Note)
	}
	if n.ESPAmbiguous+n.L2TPFallback+n.PPTPUnparsed > 0 {
		fmt.Fprintf(w, "  esp ambiguous %d, l2tp fallback %d, pptp unparsed %d (see passgate events)\n", n.ESPAmbiguous, n.L2TPFallback, n.PPTPUnparsed)
	}

	if st.PPPoE != nil {
		fmt.Fprintf(w, "\nPPPOE RELAY\n")
		printPPPoE(w, st.PPPoE, "  ")
	}

	if len(st.Dataplane) > 0 {
		fmt.Fprintf(w, "\nDATA PLANE\n")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		// The PPPoE relay's counters (some 30) only when it is on or
		// they count something: with it off they are noise. The JSON
		// (--json, the API) has them all.
		pppoeOn := st.PPPoE != nil && st.PPPoE.On
		hidden := 0
		for _, k := range slices.Sorted(maps.Keys(st.Dataplane)) {
			if strings.HasPrefix(k, "pppoe_") && !pppoeOn && st.Dataplane[k] == 0 {
				hidden++
				continue
			}
			fmt.Fprintf(tw, "  %s\t%d\n", k, st.Dataplane[k])
		}
		tw.Flush()
		if hidden > 0 {
			fmt.Fprintf(w, "  (%d zero pppoe_ counters of the PPPoE relay, which is off, not shown; --json has every counter)\n", hidden)
		}
	}

	if len(st.Losses) > 0 {
		fmt.Fprintf(w, "\nLOST FRAMES\n")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, k := range slices.Sorted(maps.Keys(st.Losses)) {
			fmt.Fprintf(tw, "  %s\t%d\n", k, st.Losses[k])
		}
		tw.Flush()
	}

	fmt.Fprintf(w, "\nSOCKETS\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "WORKER\tLOOP\tINTERFACE\tKIND\tRX PACKETS\tRX DROPS\tRX FREEZES\tTX PACKETS\tTX ERRORS\t")
	for _, s := range st.Sockets {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t\n", s.Worker, s.Loop, s.Interface, s.Kind, s.RxPackets, s.RxDrops, s.RxFreezes, s.TxPackets, s.TxErrors)
	}
	tw.Flush()
}

func byProto(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// count says n things: "1 session", "2 sessions".
func count[N int | uint64](n N, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

func nonZero(m map[string]uint64) string {
	keys := make([]string, 0, len(m))
	for k, v := range m {
		if v != 0 {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return ""
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return ": " + strings.Join(parts, ", ")
}

func bytesText(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// printPPPoE prints the relay's state and its sessions, each line
// indented by ind.
func printPPPoE(w io.Writer, p *control.PPPoE, ind string) {
	state := "off"
	if p.On {
		state = "on"
	}
	var drops uint64
	dm := map[string]uint64{}
	for k, v := range p.Counters {
		if r, ok := strings.CutPrefix(k, "drop_"); ok {
			drops += v
			dm[r] = v
		}
	}
	fmt.Fprintf(w, "%s%s, %s, %s%s\n", ind, state, count(len(p.Sessions), "session"), count(drops, "drop"), nonZero(dm))
	if len(p.Sessions) == 0 {
		return
	}
	ss := slices.Clone(p.Sessions)
	slices.SortFunc(ss, func(a, b control.PPPoESession) int {
		return cmp.Or(cmp.Compare(a.Host, b.Host), cmp.Compare(a.ID, b.ID))
	})
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "%sSESSION\tHOST MAC\tAC MAC\tAGE\tIDLE\tFRAMES TO WAN/LAN\n", ind)
	for _, s := range ss {
		fmt.Fprintf(tw, "%s%d\t%s\t%s\t%s\t%s\t%d/%d\n", ind, s.ID, s.Host, s.AC, secs(s.AgeSec), secs(s.IdleSec), s.FramesToWAN, s.FramesToLAN)
	}
	tw.Flush()
}

func cmdConntrack(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("conntrack", stderr, "[--json] [--host IP] [--proto tcp|udp|icmp|gre|esp] [--vpn] [--pppoe] [--control SOCKET]")
	asJSON := fs.Bool("json", false, "print the raw JSON")
	host := fs.String("host", "", "only flows with this `IP` as inside, outside or remote address")
	proto := fs.String("proto", "", "only flows of this `protocol`: tcp, udp, icmp, gre, esp")
	vpnOnly := fs.Bool("vpn", false, "only VPN passthrough flows (IPsec, PPTP, L2TP)")
	pppoeOnly := fs.Bool("pppoe", false, "the PPPoE relay's sessions instead of the NAT flows")
	sock := controlFlag(fs)
	if err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	if *pppoeOnly {
		if *host != "" || *proto != "" || *vpnOnly {
			return fmt.Errorf("conntrack: --pppoe lists PPPoE sessions and takes no --host, --proto or --vpn: %w", errUsage)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p, err := control.NewClient(*sock).PPPoE(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(stdout, p)
		}
		fmt.Fprintf(stdout, "PPPoE relay ")
		printPPPoE(stdout, p, "")
		return nil
	}
	var ff control.FlowFilter
	if *host != "" {
		a, err := netip.ParseAddr(*host)
		if err != nil {
			return fmt.Errorf("conntrack: --host %q is not an IP address: %w", *host, errUsage)
		}
		ff.Host = a
	}
	if *proto != "" {
		switch p := strings.ToLower(*proto); p {
		case "tcp", "udp", "icmp", "gre", "esp":
			ff.Proto = p
		default:
			return fmt.Errorf("conntrack: --proto %q: want tcp, udp, icmp, gre or esp: %w", *proto, errUsage)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	flows, err := control.NewClient(*sock).Flows(ctx, ff)
	if err != nil {
		return err
	}
	if *vpnOnly {
		flows = slices.DeleteFunc(flows, func(f control.Flow) bool { return f.VPN == "" })
	}
	if *asJSON {
		if flows == nil {
			flows = []control.Flow{}
		}
		return writeJSON(stdout, flows)
	}
	printFlows(stdout, flows)
	return nil
}

// vpnIDs says what identifies a VPN flow's session: IKE and ESP SPIs,
// PPTP call ids, L2TP tunnel ids.
func vpnIDs(f control.Flow) string {
	var parts []string
	if len(f.IKESPIs) > 0 {
		parts = append(parts, "ike-spi "+strings.Join(f.IKESPIs, ","))
	}
	if f.ESPSPIOut != "" {
		in := f.ESPSPIIn
		if in == "" {
			in = "?"
		}
		parts = append(parts, "spi out "+f.ESPSPIOut+" in "+in)
	}
	if f.CallIDOutside != 0 {
		parts = append(parts, fmt.Sprintf("call %d->%d server %d", f.CallIDInside, f.CallIDOutside, f.CallIDServer))
	}
	if len(f.TunnelIDs) > 0 {
		parts = append(parts, fmt.Sprint("tunnel ", f.TunnelIDs))
	}
	if len(parts) == 0 {
		return f.VPN
	}
	return f.VPN + " " + strings.Join(parts, "; ")
}

func cmdEvents(args []string, stdout, stderr io.Writer) error {
	return readCommand("events", args, stdout, stderr, (*control.Client).Events, printEvents)
}

func printEvents(w io.Writer, evs []control.Event) {
	for _, ev := range evs {
		extra := ""
		if ev.Suppressed > 0 {
			extra = fmt.Sprintf(" (and %d more like it)", ev.Suppressed)
		}
		fmt.Fprintf(w, "%s  %-20s %s%s\n", ev.Time.Format(time.TimeOnly), ev.Kind, ev.Message, extra)
	}
	fmt.Fprintf(w, "%d events\n", len(evs))
}

func printFlows(w io.Writer, flows []control.Flow) {
	slices.SortFunc(flows, func(a, b control.Flow) int {
		return cmp.Or(
			cmp.Compare(a.Proto, b.Proto),
			a.Inside.Compare(b.Inside),
			a.Remote.Compare(b.Remote),
		)
	})
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROTO\tINSIDE\tOUTSIDE\tREMOTE\tSTATE\tORIGIN\tPKTS OUT/IN\tBYTES OUT/IN\tAGE\tEXPIRES\tVPN")
	for _, f := range flows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\t%s/%s\t%s\t%s\t%s\n",
			f.Proto, f.Inside, f.Outside, f.Remote, f.State, f.Origin,
			f.PacketsOut, f.PacketsIn, bytesText(f.BytesOut), bytesText(f.BytesIn),
			secs(f.AgeSec), secs(f.ExpiresSec), vpnIDs(f))
	}
	tw.Flush()
	fmt.Fprintf(w, "%d flows\n", len(flows))
}

func secs(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Second).String()
}

// printRxOffloads says on one line which receive offloads passgate turned
// off, or that it found them off, and on another, loudly, any still on.
func printRxOffloads(w io.Writer, offs []control.RxOffload) {
	if len(offs) == 0 {
		return
	}
	by := map[string][]string{}
	for _, o := range offs {
		f := o.Interface + " " + o.Feature
		if o.State == "fixed on" {
			f += " (fixed)"
		}
		by[o.State] = append(by[o.State], f)
	}
	on := append(by["on"], by["fixed on"]...)
	if off := by["turned off"]; len(off) > 0 {
		fmt.Fprintf(w, "receive offloads turned off by passgate (back on at exit): %s\n", strings.Join(off, ", "))
	} else if len(on) == 0 {
		fmt.Fprintln(w, "receive offloads (GRO, LRO, VLAN stripping): found off")
	}
	if len(on) > 0 {
		fmt.Fprintf(w, "RECEIVE OFFLOADS ON (frames over the MTU or without their VLAN tag are dropped): %s\n", strings.Join(on, ", "))
	}
}
