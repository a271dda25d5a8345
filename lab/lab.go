// Package lab builds the network-namespace topology of docs/DESIGN.md "The lab":
// three LAN hosts and two servers joined by a router namespace, used by
// `passgate demo`, the integration tests and the benchmarks.
//
// The topology itself is lab.sh, embedded here so the binary carries it; this
// package writes it to a temporary file and drives it. Everything the lab
// creates carries the prefix given to Up, and a lock file per prefix keeps two
// runs of the same prefix apart for the whole life of a Lab.
package lab

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Script is lab.sh, the topology as a bash script (see its header for usage).
//
//go:embed lab.sh
var Script []byte

// Addresses of the lab. They exist only inside the lab's namespaces.
const (
	LANGateway = "192.168.50.1"  // router lan0
	LAN1       = "192.168.50.10" // lan1 eth0
	LAN2       = "192.168.50.11" // lan2 eth0
	LAN3       = "192.168.50.12" // lan3 eth0
	WANAddr    = "203.0.113.1"   // router wan0
	Srv1       = "203.0.113.10"  // srv1 eth0
	Srv1b      = "203.0.113.11"  // srv1 eth0, second address
	Srv2       = "203.0.113.20"  // srv2 eth0

	LANPrefixLen = 24
	LANCIDR      = "192.168.50.1/24" // router lan0 address and prefix
	WANCIDR      = "203.0.113.1/24"  // router wan0 address and prefix

	LANIface  = "lan0" // router's LAN interface
	WANIface  = "wan0" // router's WAN interface
	HostIface = "eth0" // every host's interface
)

// Node names, as accepted by NS, Cmd and Run.
const (
	Router  = "rtr"
	Switch  = "sw"
	Lan1    = "lan1"
	Lan2    = "lan2"
	Lan3    = "lan3"
	Server1 = "srv1"
	Server2 = "srv2"
)

// Nodes lists every node of the lab.
var Nodes = []string{Switch, Router, Lan1, Lan2, Lan3, Server1, Server2}

// LANHosts lists the LAN hosts with their addresses.
var LANHosts = []struct{ Node, Addr string }{
	{Lan1, LAN1}, {Lan2, LAN2}, {Lan3, LAN3},
}

var prefixRE = regexp.MustCompile(`^[a-z0-9]{1,10}$`)

// Lab is a running lab. Create it with Up and remove it with Down.
type Lab struct {
	Prefix string

	dir    string // temporary directory holding the script
	script string // path of lab.sh inside dir

	mu   sync.Mutex
	lock *os.File // flock held for the life of the lab
	down bool
}

// LockPath is the lock file guarding a prefix; lab.sh takes the same lock.
func LockPath(prefix string) string {
	return "/run/lock/passgate-lab-" + prefix + ".lock"
}

// Up clears whatever an earlier run of the same prefix left behind and builds
// the lab. It holds the prefix's lock until Down, waiting for it while ctx
// allows. The prefix is 1-10 characters of [a-z0-9].
func Up(ctx context.Context, prefix string) (*Lab, error) {
	if !prefixRE.MatchString(prefix) {
		return nil, fmt.Errorf("lab: prefix %q: want 1-10 characters of [a-z0-9]", prefix)
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("lab: must run as root (network namespaces)")
	}
	lock, err := takeLock(ctx, LockPath(prefix))
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "passgate-lab-"+prefix+"-")
	if err != nil {
		lock.Close()
		return nil, err
	}
	l := &Lab{Prefix: prefix, dir: dir, script: filepath.Join(dir, "lab.sh"), lock: lock}
	if err := os.WriteFile(l.script, Script, 0o755); err != nil {
		l.release()
		return nil, err
	}
	if _, err := l.runScript(ctx, "up"); err != nil {
		// lab.sh removes a half-built lab itself, unless it was killed
		// (ctx cancelled): remove whatever it left, whatever ctx says.
		dctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		l.runScript(dctx, "down")
		cancel()
		l.release()
		return nil, err
	}
	return l, nil
}

func takeLock(ctx context.Context, path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lab: lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lab: lock %s held by another run: %w", path, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (l *Lab) release() {
	if l.lock != nil {
		l.lock.Close() // closing drops the flock
		l.lock = nil
	}
	if l.dir != "" {
		os.RemoveAll(l.dir)
	}
}

// ScriptPath is where this lab's copy of lab.sh lives while the lab is up;
// run it with PG_PREFIX=l.Prefix and PG_LAB_LOCK_HELD=1 (this Lab holds the
// lock).
func (l *Lab) ScriptPath() string { return l.script }

func (l *Lab) runScript(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "bash", append([]string{l.script}, args...)...)
	cmd.Env = append(os.Environ(), "PG_PREFIX="+l.Prefix, "PG_LAB_LOCK_HELD=1")
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("lab.sh %s (prefix %s): %w\n%s", strings.Join(args, " "), l.Prefix, err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// Down removes every namespace, veth and bridge of the lab, ending any
// process still inside its namespaces, and releases the lock. Calling it
// again does nothing.
func (l *Lab) Down() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := l.runScript(ctx, "down")
	l.down = true
	l.release()
	return err
}

// NS is the name of a node's network namespace.
func (l *Lab) NS(node string) string { return l.Prefix + "-" + node }

// Cmd prepares name args... to run inside node's namespace via
// `ip netns exec`. ip execs the command, so the process's PID is the
// command's own: kill it by cmd.Process.
func (l *Lab) Cmd(ctx context.Context, node, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.NS(node), name}, args...)...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Run runs name args... in node and returns its combined output; the error
// includes the output.
func (l *Lab) Run(ctx context.Context, node, name string, args ...string) (string, error) {
	out, err := l.Cmd(ctx, node, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %s %s: %w\n%s", node, name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// KernelNAT switches the reference on or off: the kernel's own NAT in the
// router namespace (ip_forward=1 and an nftables masquerade on wan0). Off
// removes it and sets ip_forward=0, the state passgate expects.
func (l *Lab) KernelNAT(on bool) error {
	arg := "off"
	if on {
		arg = "on"
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := l.runScript(ctx, "kernelnat", arg)
	return err
}

// MAC returns the hardware address of dev in node.
func (l *Lab) MAC(ctx context.Context, node, dev string) (string, error) {
	out, err := l.Run(ctx, node, "cat", "/sys/class/net/"+dev+"/address")
	return strings.TrimSpace(out), err
}

// Poll calls cond every 100 ms until it holds, d passes or ctx ends; the
// error carries cond's last explanation.
func Poll(ctx context.Context, d time.Duration, cond func() (bool, string)) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		ok, why := cond()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %s: %s", d, why)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
