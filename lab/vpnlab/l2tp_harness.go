//go:build lab

package vpnlab

// The L2TP harness: xl2tpd as LNS on a server and as LAC on clients.
//
// This kernel has no L2TP, so xl2tpd uses its userspace mode: for each
// session it opens a pty and execs /usr/sbin/pppd with the slave as stdin
// and stdout and arguments such as "/dev/pts/3 passive nodetach
// 10.88.0.1:10.88.0.10 refuse-pap refuse-chap debug" (LAC: ":" for the
// addresses). Each xl2tpd runs under the run script: `unshare -m`, a tmpfs on
// /run (its pid file and control pipe /var/run/xl2tpd/l2tp-control are
// there), and an overlayfs on /usr/sbin whose upper layer holds the pppd
// stand-in as `pppd`; the environment (PPPSTUB_*) passes through xl2tpd to
// it. xl2tpd runs in the foreground (-D), logging to stderr; a LAC dials
// when "c NAME" is written to its control pipe, reached from outside
// through /proc/PID/root.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"passgate/lab"
	"passgate/lab/labtest"
)

// l2tpServerPrefix starts the name of every LNS-side stand-in; the rest is
// its PID, which xl2tpd logs with the call.
const l2tpServerPrefix = "lns-"

// l2tpDaemon is one xl2tpd.
type l2tpDaemon struct {
	Node     string
	Name     string // LAC: the [lac NAME] section and the stand-in's name; LNS: "lns"
	LNS      bool
	FrameLog string
	Conf     string
	proc     *labtest.Proc
}

// l2tpTunnel is a tunnel as xl2tpd logs it: "Connection established to
// PEER, PORT.  Local: L, Remote: R".
type l2tpTunnel struct {
	Peer           string
	Port           int
	Local, Remote  uint16 // tunnel ids: this end's and the peer's
	LNSSessionName string
}

// l2tpSession is a session (call) as xl2tpd logs it: "Call established
// with PEER, [PID: N, ]Local: L, Remote: R".
type l2tpSession struct {
	Peer          string
	PID           int // the pppd it started (LNS side logs it)
	Local, Remote uint16
}

var (
	l2tpTunnelRE  = regexp.MustCompile(`Connection established to ([0-9.]+), (\d+)\.\s+Local: (\d+), Remote: (\d+)`)
	l2tpSessionRE = regexp.MustCompile(`Call established with ([0-9.]+), (?:PID: (\d+), )?Local: (\d+), Remote: (\d+)`)
)

func l2tpConfig(global string, section string) string {
	return "[global]\n" + global +
		"access control = no\n" +
		"debug tunnel = yes\n" +
		"debug state = yes\n" +
		"debug avp = yes\n\n" + section
}

// StartL2TPServer runs xl2tpd as LNS on node, listening on addr:1701.
func (e *pptpEnv) StartL2TPServer(ctx context.Context, node, addr string) (*l2tpDaemon, error) {
	d := &l2tpDaemon{Node: node, Name: "lns", LNS: true, FrameLog: e.Path("l2tp-lns-frames.log"), Conf: e.Path("xl2tpd-lns.conf")}
	conf := l2tpConfig("listen-addr = "+addr+"\nport = 1701\n",
		"[lns default]\n"+
			"ip range = 10.88.0.10-10.88.0.60\n"+
			"local ip = 10.88.0.1\n"+
			"require authentication = no\n"+
			"refuse chap = yes\n"+
			"refuse pap = yes\n"+
			"ppp debug = yes\n"+
			"length bit = yes\n"+
			"hostname = pgpplns\n")
	return d, e.startXL2TPD(ctx, d, conf, l2tpServerPrefix+"%p")
}

// StartL2TPClient runs xl2tpd as LAC on node with one [lac NAME] section
// towards the LNS at lns; Dial brings it up.
func (e *pptpEnv) StartL2TPClient(ctx context.Context, node, name, lns string) (*l2tpDaemon, error) {
	d := &l2tpDaemon{Node: node, Name: name, FrameLog: e.Path("l2tp-" + name + "-frames.log"), Conf: e.Path("xl2tpd-" + name + ".conf")}
	conf := l2tpConfig("port = 1701\n",
		"[lac "+name+"]\n"+
			"lns = "+lns+"\n"+
			"require authentication = no\n"+
			"refuse chap = yes\n"+
			"refuse pap = yes\n"+
			"autodial = no\n"+
			"redial = no\n"+
			"ppp debug = yes\n"+
			"length bit = yes\n"+
			"hostname = "+name+"\n")
	return d, e.startXL2TPD(ctx, d, conf, name)
}

func (e *pptpEnv) startXL2TPD(ctx context.Context, d *l2tpDaemon, conf, stubName string) error {
	if err := os.WriteFile(d.Conf, []byte(conf), 0o644); err != nil {
		return err
	}
	secrets := e.Path("l2tp-secrets")
	if err := os.WriteFile(secrets, nil, 0o600); err != nil {
		return err
	}
	env := []string{
		"PPPSTUB_NAME=" + stubName,
		"PPPSTUB_LOG=" + d.FrameLog,
		"PPPSTUB_INTERVAL=200ms",
		"PPPSTUB_LIFETIME=3m",
	}
	p, err := e.StartPrivate(d.Node, "xl2tpd-"+d.Name+".log", true, env, "/usr/sbin/xl2tpd",
		"-D", "-c", d.Conf, "-s", secrets,
		"-p", "/run/xl2tpd/xl2tpd.pid", "-C", "/run/xl2tpd/l2tp-control")
	if err != nil {
		return err
	}
	d.proc = p
	err = labtest.Poll(ctx, 10*time.Second, func() (bool, string) {
		if done, err := p.Ended(); done {
			return true, fmt.Sprintf("xl2tpd exited: %v", err)
		}
		if !strings.Contains(p.Output(), "Listening on IP address") {
			return false, "xl2tpd not listening yet"
		}
		_, err := os.Stat(d.controlPath())
		return err == nil, fmt.Sprintf("no control pipe: %v", err)
	})
	if done, perr := p.Ended(); done || err != nil {
		return fmt.Errorf("xl2tpd %s on %s: %v %v\n%s", d.Name, d.Node, err, perr, p.Output())
	}
	return nil
}

// controlPath is the control pipe in the daemon's private /run, seen
// through its root (/run itself, not the /var/run symlink, whose absolute
// target would resolve in our own root).
func (d *l2tpDaemon) controlPath() string {
	return filepath.Join("/proc", strconv.Itoa(d.proc.PID()), "root", "run", "xl2tpd", "l2tp-control")
}

// Dial asks a LAC to bring its tunnel and session up ("c NAME").
func (d *l2tpDaemon) Dial() error {
	f, err := os.OpenFile(d.controlPath(), os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("xl2tpd %s control pipe: %w", d.Name, err)
	}
	defer f.Close()
	_, err = f.WriteString("c " + d.Name + "\n")
	return err
}

// Stop ends xl2tpd by its PID; it ends its pppd stand-ins itself.
func (d *l2tpDaemon) Stop() { d.proc.Stop() }

// Log is xl2tpd's output so far.
func (d *l2tpDaemon) Log() string { return d.proc.Output() }

// Tunnels lists the tunnels xl2tpd reported established.
func (d *l2tpDaemon) Tunnels() []l2tpTunnel {
	var out []l2tpTunnel
	for _, m := range l2tpTunnelRE.FindAllStringSubmatch(d.Log(), -1) {
		port, _ := strconv.Atoi(m[2])
		out = append(out, l2tpTunnel{Peer: m[1], Port: port, Local: l2tpAtoi16(m[3]), Remote: l2tpAtoi16(m[4])})
	}
	return out
}

// Sessions lists the sessions xl2tpd reported established.
func (d *l2tpDaemon) Sessions() []l2tpSession {
	var out []l2tpSession
	for _, m := range l2tpSessionRE.FindAllStringSubmatch(d.Log(), -1) {
		pid, _ := strconv.Atoi(m[2])
		out = append(out, l2tpSession{Peer: m[1], PID: pid, Local: l2tpAtoi16(m[3]), Remote: l2tpAtoi16(m[4])})
	}
	return out
}

// Ends parses the stand-ins' frame log.
func (d *l2tpDaemon) Ends() map[string]*pptpStub { return pptpParseStubLog(d.FrameLog) }

func l2tpAtoi16(s string) uint16 {
	n, _ := strconv.ParseUint(s, 10, 16)
	return uint16(n)
}

// l2tpLink is one LAC's tunnel and session, matched with the LNS's view.
type l2tpLink struct {
	LAC        *l2tpDaemon
	LACTunnel  l2tpTunnel  // LAC's view: Local is the LAC's tunnel id
	LACSession l2tpSession //
	LNSTunnel  l2tpTunnel  // LNS's view: Peer and Port are the LAC as the server sees it
	LNSSession l2tpSession // PID is the LNS-side stand-in
	ServerEnd  string      // the LNS-side stand-in's name
}

// l2tpTwoLACs starts the LNS on srv1 and a LAC on lan1 and lan2, dials
// both and waits (l2tpWaitLinks, 5 frames) for their links.
func l2tpTwoLACs(ctx context.Context, e *pptpEnv, timeout time.Duration) ([]l2tpLink, error) {
	lns, err := e.StartL2TPServer(ctx, lab.Server1, lab.Srv1)
	if err != nil {
		return nil, err
	}
	var lacs []*l2tpDaemon
	for _, h := range lab.LANHosts[:2] {
		lac, err := e.StartL2TPClient(ctx, h.Node, h.Node, lab.Srv1)
		if err != nil {
			return nil, err
		}
		lacs = append(lacs, lac)
	}
	for _, lac := range lacs {
		if err := lac.Dial(); err != nil {
			return nil, err
		}
	}
	return l2tpWaitLinks(ctx, timeout, lns, lacs, 5)
}

// l2tpWaitLinks waits until every LAC has one tunnel and one session up
// that the LNS agrees on (tunnel and session ids crossed), and the
// stand-ins on both ends exchanged at least n frames each way.
func l2tpWaitLinks(ctx context.Context, timeout time.Duration, lns *l2tpDaemon, lacs []*l2tpDaemon, n int) ([]l2tpLink, error) {
	var links []l2tpLink
	err := labtest.Poll(ctx, timeout, func() (bool, string) {
		links = links[:0]
		lnsTunnels, lnsSessions := lns.Tunnels(), lns.Sessions()
		serverEnds := lns.Ends()
		for _, lac := range lacs {
			if done, err := lac.proc.Ended(); done {
				return false, fmt.Sprintf("xl2tpd %s exited: %v", lac.Name, err)
			}
			lk := l2tpLink{LAC: lac}
			ts, ss := lac.Tunnels(), lac.Sessions()
			if len(ts) != 1 || len(ss) != 1 {
				return false, fmt.Sprintf("%s: %d tunnels, %d sessions established, want 1 each", lac.Name, len(ts), len(ss))
			}
			lk.LACTunnel, lk.LACSession = ts[0], ss[0]
			found := 0
			for _, t := range lnsTunnels {
				if t.Local == lk.LACTunnel.Remote && t.Remote == lk.LACTunnel.Local {
					lk.LNSTunnel = t
					found++
				}
			}
			if found != 1 {
				return false, fmt.Sprintf("%s: LNS reports %d tunnels with ids %d/%d", lac.Name, found, lk.LACTunnel.Remote, lk.LACTunnel.Local)
			}
			found = 0
			for _, s := range lnsSessions {
				if s.Local == lk.LACSession.Remote && s.Remote == lk.LACSession.Local {
					lk.LNSSession = s
					found++
				}
			}
			if found != 1 {
				return false, fmt.Sprintf("%s: LNS reports %d sessions with ids %d/%d", lac.Name, found, lk.LACSession.Remote, lk.LACSession.Local)
			}
			lk.ServerEnd = l2tpServerPrefix + strconv.Itoa(lk.LNSSession.PID)
			srv := serverEnds[lk.ServerEnd]
			if srv == nil {
				return false, fmt.Sprintf("%s: no frames logged by the LNS's stand-in %s yet", lac.Name, lk.ServerEnd)
			}
			cli := lac.Ends()[lac.Name]
			if cli == nil {
				return false, fmt.Sprintf("%s: no frames logged by its stand-in yet", lac.Name)
			}
			if ok, why := pptpCheckPair(cli, srv, n); !ok {
				return false, why
			}
			links = append(links, lk)
		}
		return true, ""
	})
	return links, err
}
