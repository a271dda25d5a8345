// Package vpnpeer runs real VPN endpoints in the lab's namespaces: strongSwan
// (IKEv2, one charon per namespace), PPTP (pptpd on a server, pptp-linux on
// clients, with the pppd stand-in of passgate/lab/pppstub in place of pppd,
// as the lab's kernel has no PPP), and crafted IPsec packets (raw ESP, IKE,
// AH) with a server that answers them as a peer would. The vpnlab tests and `passgate demo` both
// use it; each brings its own way of starting a process in a lab node (Env),
// and ends what it started by PID.
package vpnpeer

import (
	"os"

	"passgate/lab"
)

// Proc is a process started in a lab node, ended by its PID.
type Proc interface {
	PID() int
	Exited() bool
	// Stop ends it by its PID (a signal, then SIGKILL after a grace
	// period) and waits; it reports whether SIGKILL was needed.
	Stop() bool
	// Output is what it wrote so far (its log file, if it has one).
	Output() string
	// Err is how it ended; nil while it runs.
	Err() error
}

// Starter starts name args... in node with env added to the environment and
// its output appended to logFile ("": kept for Output). The process must not
// be tied to any context: the caller ends it with Stop.
type Starter func(node string, env []string, logFile, name string, args ...string) (Proc, error)

// Env is where the peers run: a lab, and how to start a process in it.
type Env struct {
	Lab   *lab.Lab
	Start Starter
}

// TempDir makes a short directory under /tmp, readable by all (daemons
// that drop privileges read their files there): unix socket paths are
// limited to 108 bytes.
func TempDir(tag string) (string, error) {
	d, err := os.MkdirTemp("", "pgipsec-"+tag+"-")
	if err != nil {
		return "", err
	}
	return d, os.Chmod(d, 0o755)
}
