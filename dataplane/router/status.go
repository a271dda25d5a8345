package router

import (
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"passgate/dataplane/link"
	"passgate/dataplane/port"
	"passgate/nat"
	"passgate/packet"
)

// tally is what one batch counted; the worker adds it to its counters once
// per batch instead of touching shared memory per frame.
type tally struct {
	rxFrames, rxRunts, notForUs, otherType, arp, csumCompleted    uint64
	forwarded, neighWait, consumed, dropped, emitted, emitDropped uint64
	fastPath                                                      uint64 // frames the engine's FastPath took
}

// counters are one worker's; updated by its goroutine, read by Status.
type counters struct {
	rxFrames      atomic.Uint64
	rxRunts       atomic.Uint64
	notForUs      atomic.Uint64
	otherType     atomic.Uint64
	arp           atomic.Uint64
	csumCompleted atomic.Uint64
	forwarded     atomic.Uint64
	fastPath      atomic.Uint64
	neighWait     atomic.Uint64
	consumed      atomic.Uint64
	dropped       atomic.Uint64
	emitted       atomic.Uint64
	emitDropped   atomic.Uint64
	txFrames      atomic.Uint64
	txFailed      atomic.Uint64
	txErrLog      rateLimit
	// What the engine's FastPath counted for this worker, added to the
	// engine's own counts in NATStats.
	natPackets, natBytes [2]atomic.Uint64
}

func (c *counters) addNAT(n *nat.Counters) {
	for i := range n.Packets {
		if n.Packets[i] != 0 {
			c.natPackets[i].Add(n.Packets[i])
			c.natBytes[i].Add(n.Bytes[i])
		}
	}
}

func (c *counters) add(t *tally) {
	add := func(a *atomic.Uint64, v uint64) {
		if v != 0 {
			a.Add(v)
		}
	}
	add(&c.rxFrames, t.rxFrames)
	add(&c.rxRunts, t.rxRunts)
	add(&c.notForUs, t.notForUs)
	add(&c.otherType, t.otherType)
	add(&c.arp, t.arp)
	add(&c.csumCompleted, t.csumCompleted)
	add(&c.forwarded, t.forwarded)
	add(&c.fastPath, t.fastPath)
	add(&c.neighWait, t.neighWait)
	add(&c.consumed, t.consumed)
	add(&c.dropped, t.dropped)
	add(&c.emitted, t.emitted)
	add(&c.emitDropped, t.emitDropped)
	*t = tally{}
}

// Counters sums the workers' counters by name.
func (r *Router) Counters() map[string]uint64 {
	if r.off != nil {
		r.mu.Lock()
		r.offloadCredit(r.clock()) // the offload counts as of now
		r.mu.Unlock()
	}
	m := map[string]uint64{}
	for _, wk := range r.workers {
		c := &wk.cnt
		m["rx_frames"] += c.rxFrames.Load()
		m["rx_runts"] += c.rxRunts.Load()
		m["rx_not_for_us"] += c.notForUs.Load()
		m["rx_other_ethertype"] += c.otherType.Load()
		m["rx_arp"] += c.arp.Load()
		m["rx_checksum_completed"] += c.csumCompleted.Load()
		m["forwarded"] += c.forwarded.Load()
		m["forwarded_fast_path"] += c.fastPath.Load()
		m["waiting_for_arp"] += c.neighWait.Load()
		m["consumed"] += c.consumed.Load()
		m["dropped_by_engine"] += c.dropped.Load()
		m["emitted"] += c.emitted.Load()
		m["emitted_dropped"] += c.emitDropped.Load()
		m["tx_frames"] += c.txFrames.Load()
		m["tx_failed"] += c.txFailed.Load()
	}
	r.addPPPoECounters(m)
	r.addOffloadCounters(m)
	return m
}

// Interface describes one side of the router.
type Interface struct {
	Role  nat.Iface
	Name  string
	Index int
	MAC   packet.MAC
	MTU   int // the interface's
	Addr  netip.Prefix
}

// Interfaces lists LAN then WAN.
func (r *Router) Interfaces() []Interface {
	r.mu.RLock() // followMTU changes the MTUs
	defer r.mu.RUnlock()
	out := make([]Interface, 0, 2)
	for in := nat.LAN; in <= nat.WAN; in++ {
		i := r.ifaces[in]
		out = append(out, Interface{Role: in, Name: i.name, Index: i.index, MAC: i.mac, MTU: i.mtu, Addr: i.addr})
	}
	return out
}

// Neighbours is the neighbour table of one side.
func (r *Router) Neighbours(in nat.Iface) *link.Neighbours { return r.nb[in&1] }

// Socket is one driver socket and its counters.
type Socket struct {
	Interface string // the socket's interface
	Worker    int
	Loop      string // the interface whose receive loop owns the socket
	// Kind is rx or tx (AF_PACKET), xsk (an AF_XDP socket, both ways) or
	// arp (the AF_PACKET ARP tap beside AF_XDP).
	Kind  string
	Stats port.Stats
}

// Sockets lists every socket with its counters.
func (r *Router) Sockets() []Socket {
	out := make([]Socket, 0, len(r.socks))
	for _, s := range r.socks {
		out = append(out, Socket{Interface: s.iface, Worker: s.worker, Loop: s.loop, Kind: s.kind, Stats: s.p.Stats()})
	}
	return out
}

// Losses sums every socket's losses by reason (port.Stats.Reasons), and
// adds the interfaces' kernel drop counters since New (IFACE_rx_dropped,
// IFACE_tx_dropped); the router's own (dropped_by_engine, emitted_dropped,
// tx_failed) are in Counters.
func (r *Router) Losses() map[string]uint64 {
	var t port.Stats
	for _, s := range r.socks {
		t.Add(s.p.Stats())
	}
	m := map[string]uint64{}
	t.Reasons(func(name string, v uint64) { m[name] = v })
	for in, i := range r.ifaces {
		for k, c := range ifaceDropCounters {
			if v, err := readCounter(i.name, c); err == nil {
				m[i.name+"_"+c] = v - min(v, r.ifDrops0[in][k])
			}
		}
	}
	return m
}

// ifaceDropCounters are the interfaces' kernel drop counters Losses
// reports, as counted since New. On veth, rx_dropped includes the frames
// the XDP program redirected to an AF_XDP socket that had no buffer for
// them (also in rx_no_buffer).
var ifaceDropCounters = [2]string{"rx_dropped", "tx_dropped"}

// snapshotDrops remembers the interfaces' drop counters at start.
func (r *Router) snapshotDrops() {
	for in, i := range r.ifaces {
		for k, c := range ifaceDropCounters {
			r.ifDrops0[in][k], _ = readCounter(i.name, c)
		}
	}
}

// readCounter reads an interface statistic from sysfs (the mount of the
// network namespace passgate was started in, as ip netns exec makes it).
func readCounter(iface, name string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join("/sys/class/net", iface, "statistics", name))
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}

// NATStats returns the engine's counters, with what the workers forwarded
// on the fast path and the offload in the kernel.
func (r *Router) NATStats() nat.Stats {
	r.mu.Lock()
	if r.off != nil {
		r.offloadCredit(r.clock())
	}
	s := r.eng.Stats()
	r.mu.Unlock()
	for _, wk := range r.workers {
		for i := range s.Packets {
			s.Packets[i] += wk.cnt.natPackets[i].Load()
			s.Bytes[i] += wk.cnt.natBytes[i].Load()
		}
	}
	if r.off != nil {
		for i := range s.Packets {
			s.Packets[i] += r.off.inPackets[i].Load()
			s.Bytes[i] += r.off.inBytes[i].Load()
		}
	}
	return s
}

// Flows calls fn for each flow. The table is copied under the engine lock
// and fn runs without it, so a slow reader does not stall forwarding. What
// the offload forwarded is credited first, so the counts are as of now,
// not of the last 200 ms tick.
func (r *Router) Flows(fn func(nat.FlowInfo) bool) {
	r.mu.Lock()
	now := r.clock()
	if r.off != nil {
		r.offloadCredit(now)
	}
	var flows []nat.FlowInfo
	r.eng.Flows(now, func(f nat.FlowInfo) bool {
		flows = append(flows, f)
		return true
	})
	r.mu.Unlock()
	for _, f := range flows {
		if !fn(f) {
			return
		}
	}
}

// Workers is the number of worker goroutines.
func (r *Router) Workers() int { return len(r.workers) }

// Started is when the router was made.
func (r *Router) Started() time.Time { return r.started }

// NATConfig is the engine configuration the router runs with.
func (r *Router) NATConfig() nat.Config {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.opts.NAT
}

// checksumField finds the transport checksum of an unfragmented IPv4 TCP
// or UDP packet: ip's header length, its total length and the field's
// offset in the segment. ok is false for anything else, or where the
// segment within the total length (itself within ip) cannot hold the field.
func checksumField(ip []byte) (hl, total, off int, ok bool) {
	if len(ip) < 20 || ip[0]>>4 != 4 || binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 {
		return 0, 0, 0, false
	}
	switch ip[9] {
	case 6:
		off = 16
	case 17:
		off = 6
	default:
		return 0, 0, 0, false
	}
	hl = int(ip[0]&0x0f) * 4
	total = int(binary.BigEndian.Uint16(ip[2:]))
	if hl < 20 || total > len(ip) || total < hl+off+2 {
		return 0, 0, 0, false
	}
	return hl, total, off, true
}

// partialChecksum reports whether ip is an unfragmented TCP or UDP packet
// whose checksum field holds only the pseudo-header sum, as a sender that
// left the checksum to offload wrote it. A complete checksum that happens
// to hold the same value is harmless: completing it writes it unchanged
// (the segment then sums to the complement of the pseudo-header).
func partialChecksum(ip []byte) bool {
	hl, total, off, ok := checksumField(ip)
	if !ok {
		return false
	}
	field := binary.BigEndian.Uint16(ip[hl+off:])
	if field == 0 {
		return false // UDP without checksum
	}
	ps := packet.PseudoHeaderSum([4]byte(ip[12:16]), [4]byte(ip[16:20]), ip[9], total-hl)
	return field == ^packet.Fold(ps)
}

// completeChecksum finishes a TCP or UDP checksum left partial by a sender
// that relied on checksum offload (TP_STATUS_CSUMNOTREADY): the field holds
// the pseudo-header sum, so the checksum is the complement of the sum over
// the whole segment as it is. It reports whether it wrote one.
func completeChecksum(ip []byte) bool {
	hl, total, off, ok := checksumField(ip)
	if !ok {
		return false
	}
	seg := ip[hl:total]
	c := packet.Fold(packet.Sum(seg, 0))
	if ip[9] == 17 && c == 0 {
		c = 0xffff // a computed zero is sent as all ones (RFC 768)
	}
	binary.BigEndian.PutUint16(seg[off:], c)
	return true
}
