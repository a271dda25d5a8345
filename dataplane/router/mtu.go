package router

import (
	"fmt"

	"golang.org/x/sys/unix"

	"passgate/nat"
)

// mtuWatch reads the interfaces' MTUs (SIOCGIFMTU) on the expiry tick, so
// that a change made while passgate runs (ip link set dev X mtu N) is
// followed: the engine sends by the new MTU (nat.Engine.SetLinkMTU:
// frag-needed or fragments for what no longer fits) and the offload
// entries made for the old one are replaced (offloadSync).
type mtuWatch struct{ fd int }

func newMTUWatch() (*mtuWatch, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("router: socket for the interfaces' MTUs: %w", err)
	}
	return &mtuWatch{fd: fd}, nil
}

func (w *mtuWatch) close() {
	if w != nil {
		unix.Close(w.fd)
	}
}

// read is the MTU of each interface, 0 where it cannot be read (nil w:
// none).
func (w *mtuWatch) read(names [2]string) [2]int {
	var mtus [2]int
	if w == nil {
		return mtus
	}
	for i, n := range names {
		ifr, err := unix.NewIfreq(n)
		if err != nil {
			continue
		}
		if unix.IoctlIfreq(w.fd, unix.SIOCGIFMTU, ifr) == nil {
			mtus[i] = int(ifr.Uint32())
		}
	}
	return mtus
}

// followMTU takes the interfaces' MTUs as read (0: not read): a change
// is logged and given to the engine; the next offloadSync replaces the
// entries it concerns. Under r.mu's write lock.
func (r *Router) followMTU(mtus [2]int) {
	for in := nat.LAN; in <= nat.WAN; in++ {
		m := mtus[in]
		if m == 0 || m == r.ifaces[in].mtu {
			continue
		}
		r.log.Info("interface MTU changed", "interface", r.ifaces[in].name, "old", r.ifaces[in].mtu, "new", m,
			"sending_mtu", min(m, r.mtu[in]))
		r.ifaces[in].mtu = m
		r.eng.SetLinkMTU(in, m)
	}
}
