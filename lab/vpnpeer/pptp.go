package vpnpeer

// PPTP: pptpd with the pppd stand-in on a server, and
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
	"path/filepath"
	"strings"
	"time"

	"passgate/lab"
)

// PPTPSetup is the working directory the PPTP ends share (configurations,
// frame logs, the run script) and the pppd stand-in they run.
type PPTPSetup struct {
	Env
	Dir     string
	Stub    string // the pppd stand-in: one executable (a script may exec the real one)
	RunWrap string // runScript written out
}

// NewPPTPSetup writes the run script into dir; stub is the pppd stand-in.
func NewPPTPSetup(env Env, dir, stub string) (*PPTPSetup, error) {
	s := &PPTPSetup{Env: env, Dir: dir, Stub: stub, RunWrap: filepath.Join(dir, "pgpp-run.sh")}
	if err := os.WriteFile(s.RunWrap, []byte(runScript), 0o755); err != nil {
		return nil, err
	}
	return s, nil
}

// Path is a file in the setup's directory.
func (e *PPTPSetup) Path(name string) string { return filepath.Join(e.Dir, name) }

// StartPrivate starts name args... in node inside the run script: a
// private /run, and with pppd set, the stand-in overlaid as
// /usr/sbin/pppd. Its output goes to logName in the directory.
func (e *PPTPSetup) StartPrivate(node, logName string, pppd bool, env []string, name string, args ...string) (Proc, error) {
	if pppd {
		env = append(env, "PGPP_PPPD="+e.Stub)
	}
	full := append([]string{"-m", "--propagation", "private", "sh", e.RunWrap, name}, args...)
	return e.Start(node, env, e.Path(logName), "unshare", full...)
}

// runScript runs a command in a private mount namespace made by
// `unshare -m --propagation private`: a fresh tmpfs on /run (so pid files,
// control pipes and pptp's call-manager socket never collide), and, when
// PGPP_PPPD names a program, an overlayfs on /usr/sbin whose upper layer
// holds that program as pppd. xl2tpd execs /usr/sbin/pppd: Debian's, which
// the packages pull in, cannot work without /dev/ppp, and a bind mount
// would need it to exist; the overlay shadows it either way. Its upper and
// work directories live on the new tmpfs, which overlayfs accepts (the
// root file system may itself be an overlay).
const runScript = `#!/bin/sh
set -eu
mount -t tmpfs -o mode=0755 pgpp-run /run
mkdir -p /run/lock /run/pptp /run/xl2tpd
if [ -n "${PGPP_PPPD:-}" ]; then
	mkdir -p /run/pgpp-ovl/upper /run/pgpp-ovl/work
	cp "$PGPP_PPPD" /run/pgpp-ovl/upper/pppd
	chmod 0755 /run/pgpp-ovl/upper/pppd
	mount -t overlay pgpp-sbin -o lowerdir=/usr/sbin,upperdir=/run/pgpp-ovl/upper,workdir=/run/pgpp-ovl/work /usr/sbin
fi
exec "$@"
`

// TailFile returns at most n bytes of the end of a file, for failure logs.
func TailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	if len(b) > n {
		b = append([]byte("...\n"), b[len(b)-n:]...)
	}
	return string(b)
}

// --- the stand-in's frame logs ---

// Stub is what one stand-in (one PPP end) logged: lines of the form
// "TIME NAME SENT|RECV TEXT".
type Stub struct {
	Name string
	Sent []string // tokens sent ("lan1 #3")
	Recv []string // texts received ("srv1-42 #3", "echo lan1 #3 by srv1-42")
	Args string   // the START line: how it was started
	Exit string   // the EXIT line, if it ended
}

// From is the set of peers whose own numbered frames this end received.
func (s *Stub) From() map[string]int {
	m := map[string]int{}
	for _, r := range s.Recv {
		if strings.HasPrefix(r, "echo ") {
			continue
		}
		if name, _, ok := strings.Cut(r, " #"); ok {
			m[name]++
		}
	}
	return m
}

// EchoedBy is the set of peers that echoed this end's own frames back.
func (s *Stub) EchoedBy() map[string]int {
	m := map[string]int{}
	prefix := "echo " + s.Name + " #"
	for _, r := range s.Recv {
		if !strings.HasPrefix(r, prefix) {
			continue
		}
		if _, by, ok := strings.Cut(r, " by "); ok {
			m[by]++
		}
	}
	return m
}

// ParseStubLog reads one or more stand-in logs (several stand-ins may
// share a file) into their ends, by name.
func ParseStubLog(paths ...string) map[string]*Stub {
	ends := map[string]*Stub{}
	get := func(name string) *Stub {
		s := ends[name]
		if s == nil {
			s = &Stub{Name: name}
			ends[name] = s
		}
		return s
	}
	for _, path := range paths {
		b, _ := os.ReadFile(path)
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.SplitN(line, " ", 4)
			if len(f) < 3 {
				continue
			}
			name, verb := f[1], f[2]
			text := ""
			if len(f) == 4 {
				text = f[3]
			}
			switch verb {
			case "SENT":
				get(name).Sent = append(get(name).Sent, text)
			case "RECV":
				get(name).Recv = append(get(name).Recv, text)
			case "START":
				get(name).Args = text
			case "EXIT":
				get(name).Exit = text
			}
		}
	}
	return ends
}

// CheckPair reports whether client and server ends each received at
// least n of the other's numbered frames and n echoes of their own: frames
// crossed the tunnel both ways, between these two ends only.
func CheckPair(client, server *Stub, n int) (bool, string) {
	switch {
	case client.From()[server.Name] < n:
		return false, fmt.Sprintf("%s received %d frames from %s, want %d", client.Name, client.From()[server.Name], server.Name, n)
	case server.From()[client.Name] < n:
		return false, fmt.Sprintf("%s received %d frames from %s, want %d", server.Name, server.From()[client.Name], client.Name, n)
	case client.EchoedBy()[server.Name] < n:
		return false, fmt.Sprintf("%s got %d echoes from %s, want %d", client.Name, client.EchoedBy()[server.Name], server.Name, n)
	case server.EchoedBy()[client.Name] < n:
		return false, fmt.Sprintf("%s got %d echoes from %s, want %d", server.Name, server.EchoedBy()[client.Name], client.Name, n)
	}
	for peer := range client.From() {
		if peer != server.Name {
			return false, fmt.Sprintf("%s also received frames from %s: calls crossed", client.Name, peer)
		}
	}
	return true, ""
}

// ServerFor finds the one server end that exchanged frames with the
// client named client, among ends whose name has prefix.
func ServerFor(ends map[string]*Stub, client, prefix string) *Stub {
	var found *Stub
	for name, s := range ends {
		if strings.HasPrefix(name, prefix) && s.From()[client] > 0 {
			if found != nil {
				return nil // two servers heard one client: ambiguous
			}
			found = s
		}
	}
	return found
}

// PPTPServer is pptpd running on a lab node: a server on the WAN side
// (srv1) for clients behind passgate, or a LAN host behind a port forward
// for clients on the WAN side.
type PPTPServer struct {
	Node     string
	Addr     string
	FrameLog string // every server-side stand-in appends here
	// Prefix starts the name of every server-side stand-in: the node's
	// name and a dash; the rest is its PID ("srv1-4242").
	Prefix string
	proc   Proc
}

// StartPPTPServer runs pptpd on node, listening on addr, and waits until
// it accepts connections.
func (e *PPTPSetup) StartPPTPServer(ctx context.Context, node, addr string) (*PPTPServer, error) {
	s := &PPTPServer{Node: node, Addr: addr, FrameLog: e.Path("pptp-server-frames.log"), Prefix: node + "-"}
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
	err = lab.Poll(ctx, 10*time.Second, func() (bool, string) {
		if p.Exited() {
			return true, fmt.Sprintf("pptpd exited: %v", p.Err())
		}
		out, _ := e.Lab.Run(ctx, node, "ss", "-Hltn", "sport = :1723")
		return strings.Contains(out, addr+":1723"), "pptpd not listening on " + addr + ":1723 yet"
	})
	if p.Exited() || err != nil {
		return nil, fmt.Errorf("pptpd on %s: %v %v\n%s", node, err, p.Err(), p.Output())
	}
	return s, nil
}

// Stop ends pptpd by its PID (its pptpctrl children end with their
// connections; lab.Down ends any straggler with the namespace).
func (s *PPTPServer) Stop() { s.proc.Stop() }

// Ends parses the server-side frame log.
func (s *PPTPServer) Ends() map[string]*Stub { return ParseStubLog(s.FrameLog) }

// PPTPClient is `pptp --nolaunchpppd` under the stand-in on a lab node.
type PPTPClient struct {
	Node     string
	Name     string // the stand-in's name and token prefix ("lan1")
	FrameLog string
	ChildLog string // pptp's stderr
	proc     Proc
}

// StartPPTPClient connects node to the PPTP server at server (pptpd's own
// address, or the address of a port forward to it). name must be unique in
// the test; it prefixes the client's frames.
func (e *PPTPSetup) StartPPTPClient(node, name, server string) (*PPTPClient, error) {
	c := &PPTPClient{Node: node, Name: name, FrameLog: e.Path("pptp-" + name + "-frames.log"), ChildLog: e.Path("pptp-" + name + "-pptp.log")}
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
func (c *PPTPClient) Stop() { c.proc.Stop() }

// End parses this client's frame log.
func (c *PPTPClient) End() *Stub {
	if s := ParseStubLog(c.FrameLog)[c.Name]; s != nil {
		return s
	}
	return &Stub{Name: c.Name}
}

// Exited reports whether the client has ended.
func (c *PPTPClient) Exited() (bool, error) { return c.proc.Exited(), c.proc.Err() }

// WaitFrames waits until every client exchanged at least n frames each
// way with a server-side stand-in of its own (no two clients share one),
// and returns which server end served which client.
func WaitFrames(ctx context.Context, timeout time.Duration, srv *PPTPServer, clients []*PPTPClient, n int) (map[string]string, error) {
	pairs := map[string]string{}
	err := lab.Poll(ctx, timeout, func() (bool, string) {
		clear(pairs)
		ends := srv.Ends()
		used := map[string]string{}
		for _, c := range clients {
			if done, err := c.Exited(); done {
				return false, fmt.Sprintf("client %s exited: %v", c.Name, err)
			}
			s := ServerFor(ends, c.Name, srv.Prefix)
			if s == nil {
				return false, fmt.Sprintf("no (single) server end heard %s yet", c.Name)
			}
			if other, dup := used[s.Name]; dup {
				return false, fmt.Sprintf("server end %s serves both %s and %s", s.Name, other, c.Name)
			}
			used[s.Name] = c.Name
			if ok, why := CheckPair(c.End(), s, n); !ok {
				return false, why
			}
			pairs[c.Name] = s.Name
		}
		return true, ""
	})
	return pairs, err
}

// Describe summarises the frame logs for a failure message.
func Describe(srv *PPTPServer, clients []*PPTPClient) string {
	var b strings.Builder
	ends := srv.Ends()
	for _, c := range clients {
		end := c.End()
		fmt.Fprintf(&b, "client %s: sent %d, from %v, echoed by %v\n", c.Name, len(end.Sent), end.From(), end.EchoedBy())
		fmt.Fprintf(&b, "  pptp stderr: %s\n", strings.TrimSpace(TailFile(c.ChildLog, 600)))
	}
	for name, s := range ends {
		fmt.Fprintf(&b, "server end %s: sent %d, from %v, echoed by %v, exit %q\n", name, len(s.Sent), s.From(), s.EchoedBy(), s.Exit)
	}
	return b.String()
}
