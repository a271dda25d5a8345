package vpnlab

// The PPTP harness: pptpd with the pppd stand-in on a server, and
// `pptp SERVER --nolaunchpppd` under the stand-in's client mode on clients.
//
// pptpd: its own pptpd.conf (-c), in the foreground (-f), in a private /run.
// The conf's `ppp` line names the stand-in, which pptpctrl starts with the
// call's pty as stdin and stdout and pppd's arguments ("local file OPTIONS
// 115200 LOCAL:REMOTE ipparam CLIENT remotenumber CLIENT"), which it
// ignores. pptpctrl reads GRE only after the pty side has written, so the
// stand-in writes its first frame at once. The environment (PPPSTUB_*)
// passes through pptpd and pptpctrl to it.
//
// pptp: the stand-in opens a raw pty and runs pptp on its slave, in a
// process group of its own (pptp forks a call manager, which keeps a socket
// under /var/run/pptp/: hence a private /run per client).

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"passgate/lab"
	"passgate/lab/labtest"
)

// pptpServer is pptpd running on a lab node: a server on the WAN side
// (srv1) for clients behind passgate, or a LAN host behind a port forward
// for clients on the WAN side.
type pptpServer struct {
	Node     string
	Addr     string
	FrameLog string // every server-side stand-in appends here
	// Prefix starts the name of every server-side stand-in: the node's
	// name and a dash; the rest is its PID ("srv1-4242").
	Prefix string
	proc   *labtest.Proc
}

// StartPPTPServer runs pptpd on node, listening on addr, and waits until
// it accepts connections.
func (e *pptpEnv) StartPPTPServer(ctx context.Context, node, addr string) (*pptpServer, error) {
	s := &pptpServer{Node: node, Addr: addr, FrameLog: e.Path("pptp-server-frames.log"), Prefix: node + "-"}
	opts := e.Path("pptpd-options")
	if err := os.WriteFile(opts, []byte("# read by the pppd stand-in's parent only; the stand-in ignores pppd options\nnodefaultroute\n"), 0o644); err != nil {
		return nil, err
	}
	conf := e.Path("pptpd.conf")
	confText := strings.Join([]string{
		"ppp " + e.Stub,
		"option " + opts,
		"localip 10.77.0.1",
		"remoteip 10.77.0.10-60",
		"listen " + addr,
		"pidfile /run/pptpd.pid",
		"connections 20",
		"",
	}, "\n")
	if err := os.WriteFile(conf, []byte(confText), 0o644); err != nil {
		return nil, err
	}
	env := []string{
		"PPPSTUB_NAME=" + s.Prefix + "%p",
		"PPPSTUB_LOG=" + s.FrameLog,
		"PPPSTUB_INTERVAL=200ms",
		"PPPSTUB_LIFETIME=3m",
	}
	p, err := e.StartPrivate(node, "pptpd.out", false, env, "/usr/sbin/pptpd", "-f", "-c", conf)
	if err != nil {
		return nil, err
	}
	s.proc = p
	err = labtest.Poll(ctx, 10*time.Second, func() (bool, string) {
		if done, err := p.Ended(); done {
			return true, fmt.Sprintf("pptpd exited: %v", err)
		}
		out, _ := e.Lab.Run(ctx, node, "ss", "-Hltn", "sport = :1723")
		return strings.Contains(out, addr+":1723"), "pptpd not listening on " + addr + ":1723 yet"
	})
	if done, perr := p.Ended(); done || err != nil {
		return nil, fmt.Errorf("pptpd on %s: %v %v\n%s", node, err, perr, p.Output())
	}
	return s, nil
}

// Stop ends pptpd by its PID (its pptpctrl children end with their
// connections; lab.Down ends any straggler with the namespace).
func (s *pptpServer) Stop() { s.proc.Stop() }

// Ends parses the server-side frame log.
func (s *pptpServer) Ends() map[string]*pptpStub { return pptpParseStubLog(s.FrameLog) }

// pptpClient is `pptp --nolaunchpppd` under the stand-in on a lab node.
type pptpClient struct {
	Node     string
	Name     string // the stand-in's name and token prefix ("lan1")
	FrameLog string
	ChildLog string // pptp's stderr
	proc     *labtest.Proc
}

// StartPPTPClient connects node to the PPTP server at server (pptpd's own
// address, or the address of a port forward to it). name must be unique in
// the test; it prefixes the client's frames.
func (e *pptpEnv) StartPPTPClient(node, name, server string) (*pptpClient, error) {
	c := &pptpClient{Node: node, Name: name, FrameLog: e.Path("pptp-" + name + "-frames.log"), ChildLog: e.Path("pptp-" + name + "-pptp.log")}
	p, err := e.StartPrivate(node, "pptp-"+name+".out", false, nil, e.Stub, "client",
		"--name", name, "--log", c.FrameLog, "--child-log", c.ChildLog,
		"--interval", "200ms", "--lifetime", "3m", "--",
		"pptp", server, "--nolaunchpppd", "--nohostroute", "--loglevel", "2")
	if err != nil {
		return nil, err
	}
	c.proc = p
	return c, nil
}

// Stop ends the stand-in by its PID; it ends pptp's process group.
func (c *pptpClient) Stop() { c.proc.Stop() }

// End parses this client's frame log.
func (c *pptpClient) End() *pptpStub {
	if s := pptpParseStubLog(c.FrameLog)[c.Name]; s != nil {
		return s
	}
	return &pptpStub{Name: c.Name}
}

// Exited reports whether the client has ended.
func (c *pptpClient) Exited() (bool, error) { return c.proc.Ended() }

// pptpWaitFrames waits until every client exchanged at least n frames each
// way with a server-side stand-in of its own (no two clients share one),
// and returns which server end served which client.
func pptpWaitFrames(ctx context.Context, timeout time.Duration, srv *pptpServer, clients []*pptpClient, n int) (map[string]string, error) {
	pairs := map[string]string{}
	err := labtest.Poll(ctx, timeout, func() (bool, string) {
		clear(pairs)
		ends := srv.Ends()
		used := map[string]string{}
		for _, c := range clients {
			if done, err := c.Exited(); done {
				return false, fmt.Sprintf("client %s exited: %v", c.Name, err)
			}
			s := pptpServerFor(ends, c.Name, srv.Prefix)
			if s == nil {
				return false, fmt.Sprintf("no (single) server end heard %s yet", c.Name)
			}
			if other, dup := used[s.Name]; dup {
				return false, fmt.Sprintf("server end %s serves both %s and %s", s.Name, other, c.Name)
			}
			used[s.Name] = c.Name
			if ok, why := pptpCheckPair(c.End(), s, n); !ok {
				return false, why
			}
			pairs[c.Name] = s.Name
		}
		return true, ""
	})
	return pairs, err
}

// pptpDescribe summarises the frame logs for a failure message.
func pptpDescribe(srv *pptpServer, clients []*pptpClient) string {
	var b strings.Builder
	ends := srv.Ends()
	for _, c := range clients {
		end := c.End()
		fmt.Fprintf(&b, "client %s: sent %d, from %v, echoed by %v\n", c.Name, len(end.Sent), end.From(), end.EchoedBy())
		fmt.Fprintf(&b, "  pptp stderr: %s\n", strings.TrimSpace(pptpTail(c.ChildLog, 600)))
	}
	for name, s := range ends {
		fmt.Fprintf(&b, "server end %s: sent %d, from %v, echoed by %v, exit %q\n", name, len(s.Sent), s.From(), s.EchoedBy(), s.Exit)
	}
	return b.String()
}

// pptpUpLab brings a lab up and hands back a fresh environment whose
// processes end before the lab goes down (call the returned func last).
func pptpUpLab(ctx context.Context, prefix, dir string) (*pptpEnv, func(), error) {
	l, err := lab.Up(ctx, prefix)
	if err != nil {
		return nil, nil, err
	}
	e, err := pptpNewEnv(ctx, l, dir)
	if err != nil {
		l.Down()
		return nil, nil, err
	}
	return e, func() {
		e.StopAll()
		l.Down()
	}, nil
}
