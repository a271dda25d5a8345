package router

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The fence keeps the kernel out of the forwarded path: it drops the IPv4
// passgate handles before the kernel's IP layer does anything with it, so
// the kernel neither answers it (TCP RST, port unreachable, echo replies)
// nor routes it. ARP still reaches the kernel. Where it sits depends on
// the driver:
//
//   - AF_XDP: a netdev table with an ingress chain per interface that
//     drops IPv4; what reaches it is only what the XDP program passed.
//   - AF_PACKET: passgate's receiving sockets are bound to ETH_P_IP and get
//     their copy after tc ingress (where the tc offload program runs) and
//     after netdev ingress, which would drop it; so the fence is an ip
//     table whose prerouting chain (priority -450: before defragmentation,
//     raw and conntrack) jumps to a chain per interface that drops IPv4.
//     The kernel's IP layer sees the frames only after the packet sockets
//     got theirs.
//
// The exceptions are the router's own services, kernel sockets on the LAN
// side: the admin server (package admin) and the port mapping servers
// (portmap/server). AllowLANTCP and AllowLANUDP let TCP and UDP to those
// addresses and ports (the LAN address, or SSDP's multicast group) through
// on the LAN interface only, before the drop; the WAN side stays fenced
// whole, so none of them is ever reachable there.

// DefaultFenceTable is the nftables table passgate owns.
const DefaultFenceTable = "passgate"

// fenceAccepts are the LAN-side TCP destinations let through to the
// kernel, by fence table.
var fenceAccepts = struct {
	sync.Mutex
	m   map[string][]netip.AddrPort
	udp map[string][]netip.AddrPort
}{m: map[string][]netip.AddrPort{}, udp: map[string][]netip.AddrPort{}}

// AllowLANTCP lets TCP to ap, which must be the router's LAN address, reach
// the kernel's sockets through the fence on the LAN interface (the admin
// server). Call it before Run, which installs the fence. passgate's engine
// still sees those packets (AF_PACKET taps come first) and drops its copy
// as addressed to the router (with AF_PACKET it sees them before the
// fence's ip table; with AF_XDP the XDP program passes them).
func (r *Router) AllowLANTCP(ap netip.AddrPort) error {
	lan := r.opts.NAT.LANAddr.Addr()
	if ap.Addr() != lan || ap.Port() == 0 {
		return fmt.Errorf("router: fence: only TCP to the LAN address %s can be let through, not %s", lan, ap)
	}
	fenceAccepts.Lock()
	defer fenceAccepts.Unlock()
	t := r.opts.FenceTable
	if !slices.Contains(fenceAccepts.m[t], ap) {
		fenceAccepts.m[t] = append(fenceAccepts.m[t], ap)
	}
	return nil
}

// AllowLANUDP lets UDP to ap, the router's LAN address or a multicast
// group (SSDP's), reach the kernel's sockets through the fence on the LAN
// interface (the port mapping servers). Call it before Run.
func (r *Router) AllowLANUDP(ap netip.AddrPort) error {
	lan := r.opts.NAT.LANAddr.Addr()
	if ap.Addr() != lan && !ap.Addr().IsMulticast() || !ap.Addr().Is4() || ap.Port() == 0 {
		return fmt.Errorf("router: fence: only UDP to the LAN address %s or a multicast group can be let through, not %s", lan, ap)
	}
	fenceAccepts.Lock()
	defer fenceAccepts.Unlock()
	t := r.opts.FenceTable
	if !slices.Contains(fenceAccepts.udp[t], ap) {
		fenceAccepts.udp[t] = append(fenceAccepts.udp[t], ap)
	}
	return nil
}

func lanAccepts(table string) (tcp, udp []netip.AddrPort) {
	fenceAccepts.Lock()
	defer fenceAccepts.Unlock()
	return slices.Clone(fenceAccepts.m[table]), slices.Clone(fenceAccepts.udp[table])
}

// Fence families: where the fence sits, by driver.
const (
	fenceNetdev = "netdev" // AF_XDP
	fenceIP     = "ip"     // AF_PACKET
)

func fenceScript(family, table string, ifaces [2]string) string {
	tcp, udp := lanAccepts(table)
	return fenceScriptWith(family, table, ifaces, tcp, udp...)
}

// clearFence is the nft script that deletes the fence's tables of both
// families, whether or not they exist (adding then deleting).
func clearFence(table string) string {
	var b strings.Builder
	for _, f := range []string{fenceNetdev, fenceIP} {
		fmt.Fprintf(&b, "add table %s %s\ndelete table %s %s\n", f, table, f, table)
	}
	return b.String()
}

// fenceScriptWith is the fence with accepts for TCP (and UDP) to the
// kernel on the LAN interface.
func fenceScriptWith(family, table string, ifaces [2]string, accepts []netip.AddrPort, udp ...netip.AddrPort) string {
	var b strings.Builder
	// Clearing first removes a table left by a crashed run (of either
	// driver), in the same transaction.
	b.WriteString(clearFence(table))
	fmt.Fprintf(&b, "table %s %s {\n", family, table)
	if family == fenceIP {
		b.WriteString("\tchain prerouting {\n\t\ttype filter hook prerouting priority -450; policy accept;\n")
		for i, name := range ifaces {
			fmt.Fprintf(&b, "\t\tiifname %s jump %s_ingress\n", strconv.Quote(name), [2]string{"lan", "wan"}[i])
		}
		b.WriteString("\t}\n")
	}
	for i, name := range ifaces {
		fmt.Fprintf(&b, "\tchain %s_ingress {\n", [2]string{"lan", "wan"}[i])
		if family == fenceNetdev {
			fmt.Fprintf(&b, "\t\ttype filter hook ingress device %s priority -500; policy accept;\n", strconv.Quote(name))
		}
		if i == 0 {
			for _, ap := range accepts {
				fmt.Fprintf(&b, "\t\tip daddr %s tcp dport %d counter accept\n", ap.Addr(), ap.Port())
			}
			for _, ap := range udp {
				fmt.Fprintf(&b, "\t\tip daddr %s udp dport %d counter accept\n", ap.Addr(), ap.Port())
			}
		}
		b.WriteString("\t\tmeta protocol ip counter drop\n\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

func runNft(ctx context.Context, script string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nft: %w: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}

// installFence creates (or recreates) the table.
func installFence(ctx context.Context, family, table string, ifaces [2]string) error {
	if err := runNft(ctx, fenceScript(family, table, ifaces)); err != nil {
		return fmt.Errorf("fencing the kernel off %s and %s: %w", ifaces[0], ifaces[1], err)
	}
	return nil
}

// removeFence deletes the tables; a table already gone is not an error.
func removeFence(table string) error {
	if err := runNft(context.Background(), clearFence(table)); err != nil {
		return fmt.Errorf("removing nftables tables netdev and ip %s: %w", table, err)
	}
	return nil
}
