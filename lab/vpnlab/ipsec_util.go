//go:build lab

package vpnlab

// IPsec harness for the namespace lab: strongSwan (charon with the
// kernel-libipsec plugin, one instance per namespace) and the crafted-packet
// tool ipsec_tool.py (raw ESP, IKE from port 500, AH, with scapy), both
// passgate/lab/vpnpeer's, and a starter for passgate in the router
// namespace. Everything here is named ipsec* because the package is shared
// with the PPTP and L2TP harnesses.

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"passgate/lab"
	"passgate/lab/labtest"
	"passgate/lab/vpnpeer"
)

// strongSwan itself (charon, its configuration, swanctl and its parser) is
// passgate/lab/vpnpeer's, which `passgate demo` uses too.
type (
	ipsecCharon  = vpnpeer.Charon
	ipsecIKESA   = vpnpeer.IKESA
	ipsecChildSA = vpnpeer.ChildSA
)

const (
	ipsecInnerServer = vpnpeer.InnerServer
	ipsecChildName   = vpnpeer.ChildName
	ipsecKeepAlive   = vpnpeer.KeepAlive
)

// ipsecWriteTool writes ipsec_tool.py into dir and returns its path.
func ipsecWriteTool(dir string) (string, error) { return vpnpeer.WriteTool(dir) }

// ipsecTempDir makes a short directory under /tmp (unix socket paths are
// limited to 108 bytes).
func ipsecTempDir(tag string) (string, error) { return vpnpeer.TempDir(tag) }

// ---------------------------------------------------------------- processes

// vpnPeerEnv is the lab as vpnpeer sees it: processes started by labtest,
// added to g when it is not nil.
func vpnPeerEnv(l *lab.Lab, g *labtest.Group) vpnpeer.Env {
	return vpnpeer.Env{Lab: l, Start: func(node string, env []string, logFile, name string, args ...string) (vpnpeer.Proc, error) {
		p, err := labtest.StartWith(l, node, labtest.Options{Env: env, LogFile: logFile}, name, args...)
		if err != nil {
			return nil, err
		}
		if g != nil {
			g.Add(p)
		}
		return p, nil
	}}
}

// ---------------------------------------------------------------- strongSwan

// ipsecStartResponder starts the server: charon on addr in node (see
// vpnpeer.StartResponder).
func ipsecStartResponder(ctx context.Context, l *lab.Lab, node, addr string) (*ipsecCharon, error) {
	return vpnpeer.StartResponder(ctx, vpnPeerEnv(l, nil), node, addr)
}

// ipsecStartInitiator starts a client: charon on localAddr in node (see
// vpnpeer.StartInitiator).
func ipsecStartInitiator(ctx context.Context, l *lab.Lab, node, localAddr, serverAddr, id, keepAlive string) (*ipsecCharon, error) {
	return vpnpeer.StartInitiator(ctx, vpnPeerEnv(l, nil), node, localAddr, serverAddr, id, keepAlive)
}

// ---------------------------------------------------------------- crafted packets

// The crafted-packet tool (ipsec_tool.py) and its results are vpnpeer's.
type (
	ipsecToolServer = vpnpeer.ToolServer
	ipsecESPResult  = vpnpeer.ESPResult
	ipsecIKEResult  = vpnpeer.IKEResult
)

// ipsecStartToolServer starts the crafted-packet server on addr in node,
// its IKE socket on port 500.
func ipsecStartToolServer(ctx context.Context, l *lab.Lab, node, tool, addr string) (*ipsecToolServer, error) {
	return vpnpeer.StartToolServer(ctx, vpnPeerEnv(l, nil), node, tool, addr, 500)
}

// ipsecToolJSON is vpnpeer.ToolJSON.
func ipsecToolJSON(ctx context.Context, l *lab.Lab, node, tool string, v any, args ...string) error {
	return vpnpeer.ToolJSON(ctx, l, node, tool, v, args...)
}

// ipsecPing pings dst count times from node and returns how many of those
// echoes (icmp_seq 1 to count) dst answered. With -w ping waits up to 15 s
// for late replies (without it, it waits for the last one only 0.2 s after
// sending it, which a loaded machine can miss), sending more echoes
// meanwhile; a lost echo still counts as unanswered.
func ipsecPing(ctx context.Context, l *lab.Lab, node, dst string, count int) (int, string) {
	out, _ := l.Run(ctx, node, "ping", labtest.PingArgs(count, dst, 15*time.Second)...)
	return labtest.PingAnswered(out, dst, count), out
}

// ---------------------------------------------------------------- passgate

// ipsecPassgate is passgate running in the lab's router namespace.
type ipsecPassgate struct{ *labtest.Gate }

// ipsecMerge merges src into dst, descending into objects.
func ipsecMerge(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				ipsecMerge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

// ipsecStartPassgate writes a configuration (the lab's interfaces and
// addresses, a control socket in dir, then extra merged over it: e.g. the
// passthrough switches), starts `passgate run` in the router namespace and
// waits until it forwards. dir should be short (the socket path).
func ipsecStartPassgate(ctx context.Context, l *lab.Lab, bin, dir string, extra map[string]any) (*ipsecPassgate, error) {
	sock := filepath.Join(dir, "passgate.sock")
	cfg := map[string]any{
		"lan":            map[string]any{"interface": lab.LANIface, "address": lab.LANCIDR},
		"wan":            map[string]any{"interface": lab.WANIface, "address": lab.WANCIDR},
		"control_socket": sock,
	}
	ipsecMerge(cfg, extra)
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	g, err := labtest.StartGate(ctx, l, labtest.GateOptions{
		Bin: bin, Dir: dir, Config: string(b), Sock: sock, Args: []string{"--log-level", "debug"},
		Wait: time.Until(deadline(ctx, time.Minute)),
	})
	if err != nil {
		return nil, err
	}
	return &ipsecPassgate{g}, nil
}

// deadline is ctx's deadline, or d from now if it has none.
func deadline(ctx context.Context, d time.Duration) time.Time {
	if dl, ok := ctx.Deadline(); ok {
		return dl
	}
	return time.Now().Add(d)
}

// Conntrack runs `passgate conntrack --json`, for failure messages: it
// shows whatever fields the running version has.
func (p *ipsecPassgate) Conntrack(ctx context.Context) string {
	out, err := p.CLI(ctx, "conntrack", "--json")
	if err != nil {
		return fmt.Sprintf("passgate conntrack: %v\n%s", err, out)
	}
	return string(out)
}

// PID is passgate's process id.
func (p *ipsecPassgate) PID() int { return p.Proc.PID() }

// Exited reports whether passgate has ended.
func (p *ipsecPassgate) Exited() bool { return p.Proc.Exited() }
