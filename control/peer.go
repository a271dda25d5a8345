package control

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/user"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The control socket changes the gateway with no login, so besides its
// file mode every connection's peer is checked by its credentials
// (SO_PEERCRED): root, the user passgate runs as, or a member of the group
// the configuration names (control_group) gets in; anyone else is closed
// at once and logged.

// PeerPolicy says who may use the control socket.
type PeerPolicy struct {
	// GID is the group whose members may connect besides root; -1: none.
	GID int
}

// LookupGroup resolves control_group, a name or a number; "" is no group
// (-1).
func LookupGroup(name string) (int, error) {
	if name == "" {
		return -1, nil
	}
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return -1, fmt.Errorf("control_group %q: %w", name, err)
	}
	n, err := strconv.Atoi(g.Gid)
	if err != nil {
		return -1, fmt.Errorf("control_group %q: gid %q: %w", name, g.Gid, err)
	}
	return n, nil
}

// Restrict applies p to the socket at path, listened on by l: with a group,
// the socket becomes mode 0660 owned by that group; every accepted
// connection is checked by SO_PEERCRED.
func Restrict(l net.Listener, path string, p PeerPolicy, log *slog.Logger) (net.Listener, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if p.GID >= 0 {
		if err := os.Chown(path, -1, p.GID); err != nil {
			return nil, fmt.Errorf("control socket: giving it to group %d: %w", p.GID, err)
		}
		if err := os.Chmod(path, 0o660); err != nil {
			return nil, fmt.Errorf("control socket: %w", err)
		}
	}
	return &peerListener{Listener: l, policy: p, log: log, self: os.Geteuid()}, nil
}

type peerListener struct {
	net.Listener
	policy PeerPolicy
	log    *slog.Logger
	self   int
}

func (l *peerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		cred, err := peerCred(c)
		if err == nil && l.allowed(cred) {
			return c, nil
		}
		c.Close()
		if err != nil {
			l.log.Warn("control socket: refused a connection whose peer could not be identified", "err", err)
		} else {
			l.log.Warn("control socket: refused a connection", "uid", cred.Uid, "gid", cred.Gid, "pid", cred.Pid)
		}
	}
}

// allowed: root, passgate's own user, or a member of the group (its
// primary group, or a supplementary one read from /proc).
func (l *peerListener) allowed(c *unix.Ucred) bool {
	if c.Uid == 0 || int(c.Uid) == l.self {
		return true
	}
	g := l.policy.GID
	if g < 0 {
		return false
	}
	if int(c.Gid) == g {
		return true
	}
	groups, err := procGroups(int(c.Pid))
	if err != nil {
		return false
	}
	for _, x := range groups {
		if x == g {
			return true
		}
	}
	return false
}

func peerCred(c net.Conn) (*unix.Ucred, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, errors.New("not a unix socket")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	if cerr != nil {
		return nil, fmt.Errorf("SO_PEERCRED: %w", cerr)
	}
	return cred, nil
}

// procGroups reads a process's supplementary groups.
func procGroups(pid int) ([]int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "Groups:")
		if !ok {
			continue
		}
		var out []int
		for _, s := range strings.Fields(rest) {
			if n, err := strconv.Atoi(s); err == nil {
				out = append(out, n)
			}
		}
		return out, nil
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, errors.New("no Groups line")
}
