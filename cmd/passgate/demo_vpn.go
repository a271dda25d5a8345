package main

// The demo's VPN passthrough: two LAN hosts bring IKEv2 tunnels up to srv1
// at once (strongSwan), one places a PPTP call to srv1 (pptp-linux to
// pptpd, with the lab's pppd stand-in), and passgate's flow table says
// which LAN host holds what. The ends are passgate/lab/vpnpeer's, as in the
// vpnlab tests.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"passgate/control"
	"passgate/lab"
	"passgate/lab/vpnpeer"
)

// demoIPsecHosts are the LAN hosts that bring IPsec up.
var demoIPsecHosts = []struct{ Node, Addr string }{{lab.Lan1, lab.LAN1}, {lab.Lan2, lab.LAN2}}

// demoESP is what crossed for one LAN host's raw ESP: its SPI, and the one
// srv1 chose for its answers.
type demoESP struct{ SPIOut, SPIIn string }

// demoPPTPHost is the LAN host that places the PPTP call.
var demoPPTPHost = struct{ Node, Addr string }{lab.Lan3, lab.LAN3}

// demoTunnel is what strongSwan says of one LAN host's tunnel.
type demoTunnel struct {
	VIP            string // its virtual IP inside the tunnel
	IKESPI         string // the IKE SA's initiator SPI, chosen by the host
	SPIOut, SPIIn  string // its ESP SPIs (out: to the server)
	RemotePort     int    // where the server sees it, on passgate's address
	ServerSPIsPair bool   // the server's SA has the same SPIs, swapped
}

// PID is the process's id.
func (p *demoProc) PID() int { return p.cmd.Process.Pid }

// Stop ends it by PID and reports whether SIGKILL was needed.
func (p *demoProc) Stop() bool { return p.stop(3 * time.Second) }

// Err is how it ended; nil while it runs.
func (p *demoProc) Err() error {
	if !p.exited() {
		return nil
	}
	return p.err
}

// Exited reports whether it has ended.
func (p *demoProc) Exited() bool { return p.exited() }

// Output is its log file, or what it wrote.
func (p *demoProc) Output() string {
	if p.logFile != "" {
		b, _ := os.ReadFile(p.logFile)
		return string(b)
	}
	if p.buf != nil {
		return p.buf.String()
	}
	return ""
}

// demoBuffer is a bytes.Buffer safe for a process's two output streams and
// a reader.
type demoBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *demoBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *demoBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// peerEnv is the lab as vpnpeer sees it: every process it starts is the
// demo's, ended by PID at cleanup.
func (d *demoSession) peerEnv() vpnpeer.Env {
	return vpnpeer.Env{Lab: d.lab, Start: func(node string, env []string, logFile, name string, args ...string) (vpnpeer.Proc, error) {
		var out *demoBuffer
		var w io.Writer
		if logFile != "" {
			f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				return nil, err
			}
			defer f.Close() // the child keeps its own descriptor
			w = f
		} else {
			out = &demoBuffer{}
			w = out
		}
		p, err := d.startEnv(context.Background(), node, env, w, name, args...)
		if err != nil {
			return nil, err
		}
		p.logFile, p.buf = logFile, out
		return p, nil
	}}
}

func (d *demoSession) stepIPsec(ctx context.Context) error {
	env := d.peerEnv()
	d.say("   srv1 runs strongSwan (IKEv2, pre-shared key) on %s, handing out virtual IPs", lab.Srv1)
	d.say("   from %s; %s and %s each run their own charon and connect at the same moment.", vpnpeer.Pool, demoIPsecHosts[0].Node, demoIPsecHosts[1].Node)
	srv, err := vpnpeer.StartResponder(ctx, env, lab.Server1, lab.Srv1)
	if err != nil {
		return err
	}
	d.charons = append(d.charons, srv)
	clients := make([]*vpnpeer.Charon, len(demoIPsecHosts))
	for i, h := range demoIPsecHosts {
		c, err := vpnpeer.StartInitiator(ctx, env, h.Node, h.Addr, lab.Srv1, h.Node+".passgate.lab", vpnpeer.KeepAlive)
		if err != nil {
			return err
		}
		d.charons = append(d.charons, c)
		clients[i] = c
	}
	ictx, cancel := context.WithTimeout(ctx, 25*time.Second)
	defer cancel()
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	t0 := time.Now()
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c.Initiate(ictx, vpnpeer.ChildName)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("%s: bringing the tunnel up: %w\n%s", demoIPsecHosts[i].Node, err, demoTail([]byte(clients[i].Log()), 1500))
		}
	}
	d.say("   both tunnels up in %v", time.Since(t0).Round(time.Millisecond))

	// What each end says of its SAs.
	srvSAs, err := srv.ListSAs(ctx)
	if err != nil {
		return err
	}
	d.tunnels = map[string]demoTunnel{}
	for i, h := range demoIPsecHosts {
		sas, err := clients[i].ListSAs(ctx)
		if err != nil {
			return err
		}
		if len(sas) != 1 || len(sas[0].Children) != 1 || len(sas[0].LocalVIPs) != 1 {
			return fmt.Errorf("%s: want one IKE SA with one CHILD_SA and one virtual IP, got %+v", h.Node, sas)
		}
		sa, ch := sas[0], sas[0].Children[0]
		tun := demoTunnel{VIP: sa.LocalVIPs[0], IKESPI: strings.ToLower(sa.InitiatorSPI), SPIOut: ch.SPIOut, SPIIn: ch.SPIIn}
		for _, s := range srvSAs {
			if s.RemoteID == h.Node+".passgate.lab" && len(s.Children) == 1 {
				tun.RemotePort = s.RemotePort
				tun.ServerSPIsPair = s.Children[0].SPIIn == ch.SPIOut && s.Children[0].SPIOut == ch.SPIIn && s.RemoteHost == lab.WANAddr
			}
		}
		d.tunnels[h.Node] = tun
		nat := "NAT not detected"
		if sa.NATLocal {
			nat = "NAT detected"
		}
		encap := "raw ESP"
		if ch.Encap {
			encap = "ESP in UDP 4500"
		}
		d.say("   %-6s│ IKE SA %s (%s), virtual IP %s, %s, ESP spi out %s in %s", h.Node, strings.ToLower(sa.State), nat, tun.VIP, encap, tun.SPIOut, tun.SPIIn)
		if tun.ServerSPIsPair {
			d.say("   srv1  │ sees %s.passgate.lab at %s:%d with the same SPIs, swapped", h.Node, lab.WANAddr, tun.RemotePort)
		} else {
			return fmt.Errorf("srv1 has no SA with %s.passgate.lab from %s whose SPIs pair with %s's: %+v", h.Node, lab.WANAddr, h.Node, srvSAs)
		}
	}

	// Traffic through both tunnels at once.
	var bad []string
	var mu sync.Mutex
	for _, h := range demoIPsecHosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out bytes.Buffer
			d.runLabelled(ctx, h.Node, h.Node, &out, "ping", "-n", "-c", "3", "-i", "0.3", "-w", "10", vpnpeer.InnerServer)
			got := demoPingReceived(out.String())
			mu.Lock()
			defer mu.Unlock()
			if got != 3 {
				bad = append(bad, h.Node)
				return
			}
			d.say("   ✓ %s: %d/%d pings to %s answered through its tunnel", h.Node, got, 3, vpnpeer.InnerServer)
		}()
	}
	wg.Wait()
	if len(bad) > 0 {
		return fmt.Errorf("pings lost in the tunnels of %s", strings.Join(bad, ", "))
	}
	return nil
}

// stepRawESP sends crafted raw ESP from lan1 and lan2 to srv1, in turn;
// srv1 answers each under an SPI of its own, which passgate has to bind to
// the right host. The tool's IKE socket is on port 5500: charon has 500.
func (d *demoSession) stepRawESP(ctx context.Context) error {
	d.say("   strongSwan wrapped ESP in UDP. Raw ESP (IP protocol 50) has no ports, only the SPI,")
	d.say("   which each receiver chooses. lan1 and lan2 send crafted ESP to srv1 in turn;")
	d.say("   srv1 answers each under an SPI of its own that passgate has never seen.")
	tool, err := vpnpeer.WriteTool(d.dir)
	if err != nil {
		return err
	}
	srv, err := vpnpeer.StartToolServer(ctx, d.peerEnv(), lab.Server1, tool, lab.Srv1, 5500)
	if err != nil {
		return err
	}
	defer srv.Stop()
	d.esp = map[string]demoESP{}
	const count = 3
	for i, h := range demoIPsecHosts {
		spi := fmt.Sprintf("c0de%04x", i+1)
		var res vpnpeer.ESPResult
		if err := vpnpeer.ToolJSON(ctx, d.lab, h.Node, tool, &res, "esp", "--server", lab.Srv1, "--spi", spi,
			"--count", strconv.Itoa(count), "--token", h.Node, "--timeout", "5"); err != nil {
			return err
		}
		answered, in := 0, ""
		for _, r := range res.Replies {
			if !strings.HasPrefix(r.Payload, "echo:"+h.Node+":") || (in != "" && r.SPI != in) {
				return fmt.Errorf("%s received ESP not meant for it: spi %s, payload %q", h.Node, r.SPI, r.Payload)
			}
			in = r.SPI
			answered++
		}
		d.say("   %-6s│ sent %d ESP packets under spi %s; %d answers came back under srv1's spi %s", h.Node, res.Sent, spi, answered, in)
		if answered != count {
			return fmt.Errorf("%s: %d of %d ESP answers arrived\n%s", h.Node, answered, count, demoTail([]byte(srv.Output()), 1500))
		}
		d.esp[h.Node] = demoESP{SPIOut: spi, SPIIn: in}
	}
	d.say("   ✓ each host got only its own answers: passgate bound each unknown inbound SPI to the")
	d.say("     host whose ESP to srv1 was unanswered")
	return nil
}

var demoReceivedRE = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// demoPingReceived is how many replies ping's summary counts.
func demoPingReceived(out string) int {
	m := demoReceivedRE.FindStringSubmatch(out)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[2])
	return n
}

func (d *demoSession) stepPPTP(ctx context.Context) error {
	dir := filepath.Join(d.dir, "pptp")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// pptpd runs its pppd as one program: a script that runs this binary's
	// stand-in.
	stub := filepath.Join(dir, "pppd-stand-in.sh")
	script := fmt.Sprintf("#!/bin/sh\nexec %s pppstub \"$@\"\n", demoShellQuote(d.self))
	if err := os.WriteFile(stub, []byte(script), 0o755); err != nil {
		return err
	}
	setup, err := vpnpeer.NewPPTPSetup(d.peerEnv(), dir, stub)
	if err != nil {
		return err
	}
	d.say("   srv1 runs pptpd on %s:1723; %s runs pptp-linux to it. Neither runs pppd (this", lab.Srv1, demoPPTPHost.Node)
	d.say("   kernel has no PPP): a stand-in on each end sends numbered PPP frames and echoes the other's.")
	srv, err := setup.StartPPTPServer(ctx, lab.Server1, lab.Srv1)
	if err != nil {
		return err
	}
	cli, err := setup.StartPPTPClient(demoPPTPHost.Node, demoPPTPHost.Node, lab.Srv1)
	if err != nil {
		return err
	}
	t0 := time.Now()
	pairs, err := vpnpeer.WaitFrames(ctx, 20*time.Second, srv, []*vpnpeer.PPTPClient{cli}, 5)
	if err != nil {
		return fmt.Errorf("%w\n%s", err, vpnpeer.Describe(srv, []*vpnpeer.PPTPClient{cli}))
	}
	end := cli.End()
	srvEnd := srv.Ends()[pairs[cli.Name]]
	d.say("   ✓ %s's call is up in %.1fs: srv1's end %s received %d of its frames, %s got %d echoes back",
		demoPPTPHost.Node, time.Since(t0).Seconds(), srvEnd.Name, srvEnd.From()[cli.Name], cli.Name, end.EchoedBy()[srvEnd.Name])
	return nil
}

// demoShellQuote quotes s for sh.
func demoShellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// stepVPNTable shows passgate's VPN flows and says which LAN host holds
// what: IKE SPIs and NAT-T flows, PPTP call ids.
func (d *demoSession) stepVPNTable(ctx context.Context) error {
	table, err := d.pgctl(ctx, "conntrack", "--vpn")
	if err != nil {
		return err
	}
	d.showTable("passgate conntrack --vpn", table)
	js, err := d.pgctl(ctx, "conntrack", "--vpn", "--json")
	if err != nil {
		return err
	}
	var flows []control.Flow
	if err := json.Unmarshal([]byte(js), &flows); err != nil {
		return fmt.Errorf("passgate conntrack --vpn --json: %w", err)
	}
	d.say("")
	d.say("   Who holds what, from passgate's flow table (the ESP SPIs inside NAT-T are strongSwan's:")
	d.say("   passgate carries them in UDP and never reads them):")
	var problems []string
	for _, h := range demoIPsecHosts {
		tun := d.tunnels[h.Node]
		var ike, natt *control.Flow
		for i, f := range flows {
			if f.VPN != "ipsec" || f.Inside.Addr().String() != h.Addr || f.Remote.Addr().String() != lab.Srv1 {
				continue
			}
			switch {
			case f.Remote.Port() == 500 && len(f.IKESPIs) > 0:
				ike = &flows[i]
			case f.Remote.Port() == 4500:
				natt = &flows[i]
			}
		}
		if ike == nil || natt == nil {
			problems = append(problems, fmt.Sprintf("%s: no IKE flow with SPIs and NAT-T flow to %s in passgate's table", h.Node, lab.Srv1))
			continue
		}
		match := "≠ its charon's"
		for _, s := range ike.IKESPIs {
			if strings.EqualFold(s, tun.IKESPI) {
				match = "= its charon's"
			}
		}
		d.say("   holds │ %s %s: IPsec to %s, IKE initiator SPI %s (%s) on outside port %d;",
			h.Node, h.Addr, lab.Srv1, strings.Join(ike.IKESPIs, ","), match, ike.Outside.Port())
		d.say("   holds │ %s %s: NAT-T outside port %d (srv1 sees %d), ESP spi out %s in %s inside it",
			h.Node, h.Addr, natt.Outside.Port(), tun.RemotePort, tun.SPIOut, tun.SPIIn)
		if e, ok := d.esp[h.Node]; ok {
			var flow *control.Flow
			for i, f := range flows {
				if f.Proto == "esp" && f.Inside.Addr().String() == h.Addr && f.Remote.Addr().String() == lab.Srv1 {
					flow = &flows[i]
				}
			}
			if flow == nil {
				problems = append(problems, fmt.Sprintf("%s: no raw ESP flow to %s in passgate's table", h.Node, lab.Srv1))
			} else {
				d.say("   holds │ %s %s: raw ESP to %s, ESP spi out %s in %s (srv1 chose %s)",
					h.Node, h.Addr, lab.Srv1, flow.ESPSPIOut, flow.ESPSPIIn, e.SPIIn)
				if flow.ESPSPIOut != e.SPIOut || flow.ESPSPIIn != e.SPIIn {
					problems = append(problems, fmt.Sprintf("%s: passgate's ESP flow has spi out %s in %s, the packets %s and %s",
						h.Node, flow.ESPSPIOut, flow.ESPSPIIn, e.SPIOut, e.SPIIn))
				}
			}
		}
		if match != "= its charon's" {
			problems = append(problems, fmt.Sprintf("%s: passgate's IKE SPIs %v, its charon's %s", h.Node, ike.IKESPIs, tun.IKESPI))
		}
		if int(natt.Outside.Port()) != tun.RemotePort {
			problems = append(problems, fmt.Sprintf("%s: NAT-T outside port %d, srv1 sees %d", h.Node, natt.Outside.Port(), tun.RemotePort))
		}
	}
	var call *control.Flow
	for i, f := range flows {
		if f.VPN == "pptp" && f.Proto == "gre" && f.Inside.Addr().String() == demoPPTPHost.Addr {
			call = &flows[i]
		}
	}
	if call == nil {
		problems = append(problems, fmt.Sprintf("%s: no PPTP GRE flow in passgate's table", demoPPTPHost.Node))
	} else {
		d.say("   holds │ %s %s: PPTP call to %s, call id %d inside -> %d outside, server's call id %d (GRE keys)",
			demoPPTPHost.Node, demoPPTPHost.Addr, call.Remote.Addr(), call.CallIDInside, call.CallIDOutside, call.CallIDServer)
	}
	d.say("")
	d.say("   Both IKE exchanges left passgate from port 500 of %s: replies go to the host", lab.WANAddr)
	d.say("   whose initiator SPI they carry. strongSwan saw the NAT and wrapped ESP in UDP 4500,")
	d.say("   which passgate maps like any UDP; raw ESP is sorted by SPI, and PPTP's GRE by call id.")
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}
