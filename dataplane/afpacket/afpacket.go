// Package afpacket is passgate's first packet driver: it moves batches of raw
// Ethernet frames between one network interface and the caller using Linux
// AF_PACKET sockets.
//
// It owns exactly three things per Socket: the packet socket file descriptor,
// the TPACKET_V3 receive ring mmap'd from it, and the preallocated
// sendmmsg(2) arrays used to transmit. It knows nothing about Ethernet
// beyond the 14-byte header length used for the size checks, nor about ARP,
// IP or NAT: that is the link layer's and the engine's business.
//
// Receiving is zero copy: Recv hands out slices that point into the ring, and
// the kernel gets the memory back only at the start of the next Recv, so a
// worker can rewrite headers in place and Send the very same slices on
// another Socket in between. Sending copies (the kernel builds one skb per
// frame) but bypasses the qdisc layer, so nothing is queued or shaped behind
// passgate's back.
//
// Fanout (PACKET_FANOUT_HASH) spreads one interface's traffic over several
// sockets, one per worker goroutine, keeping each flow on one socket.
//
// Recv and Send may each be used by one goroutine at a time (they do not
// share state, so one goroutine may Recv while another Sends on the same
// Socket); Stats and Close are safe from any goroutine.
//
// Consequences the caller has to live with:
//   - Under light load a frame waits in a partly filled block until the
//     kernel retires it, i.e. up to the retire timeout (2ms, rounded up to
//     the kernel's timer tick). Under load blocks fill and retire at once.
//   - Qdisc bypass also bypasses the taps: tcpdump on an interface does
//     not see what Send transmits there, and tc egress rules do not apply.
//   - The kernel delivers what the NIC and the stack hand it: with GRO/LRO
//     on, frames can be larger than the MTU (and Send refuses them); with
//     VLAN offload on, the tag is not in the frame but only flagged with
//     TP_STATUS_VLAN_VALID. The router turns those receive offloads off
//     while it runs (dataplane/nicfeat, unless keep_rx_offloads).
package afpacket

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"passgate/dataplane/port"
)

// StatusCsumNotReady is set in a Recv flag when the frame's transport
// checksum has not been computed yet (the sender relied on checksum offload
// and the frame never left the host, e.g. it came from a local veth or tap).
// A gateway that forwards such a frame must fill in the checksum itself.
const StatusCsumNotReady = port.CsumNotReady

const (
	// Small blocks, many of them: the kernel hands a TPACKET_V3 block over
	// only when it is full or its retire timer fires (a 4 ms tick at
	// HZ=250), so a 256 KiB block of small frames delayed them by a whole
	// tick and released them as one burst of hundreds, which overflowed
	// the receiving hosts' socket buffers downstream. A 16 KiB block holds
	// about a hundred 64-byte frames (1 ms at 100k pkt/s); 1024 of them
	// keep the ring at 16 MiB.
	defaultBlockSize   = 1 << 14
	defaultNumBlocks   = 1024
	defaultPollTimeout = 50 * time.Millisecond

	// retireTimeoutMs bounds how long a partially filled block stays with the
	// kernel: under light traffic it is the extra latency a frame can see.
	// The kernel rounds it up to its timer granularity.
	retireTimeoutMs = 2

	// frameSize is only used to satisfy the kernel's tpacket_req checks; with
	// TPACKET_V3 frames are variable length and packed into blocks.
	frameSize = 1 << 11

	ethHeaderLen = 14

	// sndBufSize is the send buffer we ask for: AF_PACKET accounts every
	// in-flight skb against it, and the default (~208 KiB) is only about
	// a hundred full-size frames, which a busy NIC holds before completing
	// them. Larger means fewer EAGAINs under load.
	sndBufSize = 4 << 20
)

// Config describes one socket. Zero values select the defaults.
type Config struct {
	Iface string
	// FanoutID joins the socket to a PACKET_FANOUT_HASH group: sockets on
	// one interface with the same id share its packets by flow hash. 0
	// means no fanout. Fanout ids are per network namespace, so use a
	// different id for each interface.
	FanoutID uint16
	// NoRx makes a TX-only socket: no ring, receives nothing.
	NoRx bool
	// Protocol is the ethertype received (host order); 0 means every
	// frame (ETH_P_ALL).
	Protocol uint16
	// NotIPv4 has a receiving socket of every ethertype refuse IPv4 (a
	// classic BPF filter on the Ethernet type). The router no longer
	// uses it: a socket of every ethertype is a tap that sees every frame
	// before tc ingress, so its ARP and PPPoE sockets are bound to their
	// ethertypes instead.
	NotIPv4 bool
	// HostOnly has a receiving socket refuse the frames the kernel did
	// not address to this host (PACKET_OTHERHOST): those for another
	// station's MAC, and those tagged with a VLAN (id not 0) the
	// interface has no device for, which the kernel strips of their tag
	// and hands on as if untagged (to a socket bound to ETH_P_IP with
	// nothing left to tell them from the interface's own untagged
	// frames; to one of every ethertype with the tag only in the ring's
	// header).
	HostOnly bool
	// MarkedHost, if not 0, has HostOnly take a frame marked
	// PACKET_OTHERHOST whose skb->mark is MarkedHost: the tc offload
	// program so marks the IPv4 frames it leaves to passgate, so that the
	// kernel's IP layer drops them at once (dataplane/offload MissMark).
	MarkedHost uint32
	// BlockSize is the TPACKET_V3 block size in bytes, a multiple of the
	// page size; default 1<<14.
	BlockSize int
	// NumBlocks is the number of blocks in the ring; default 1024.
	NumBlocks int
	// PollTimeout is how long Recv waits for a block before returning
	// n=0; default 50ms.
	PollTimeout time.Duration
}

// Stats are cumulative counters for one Socket: RxPackets counts frames
// the kernel put into the ring, RxDrops (= RxRingFull) frames it dropped
// because the ring was full, RxFreezes how often the ring filled up (from
// PACKET_STATISTICS); TxPackets counts frames handed to the driver by Send,
// TxErrors frames Send gave up on, by reason in TxFull, TxBadFrame, TxDown.
type Stats = port.Stats

// ErrNoRx is returned by Recv on a socket opened with Config.NoRx.
var ErrNoRx = errors.New("afpacket: socket has no receive ring (NoRx)")

// Socket is one AF_PACKET socket bound to one interface.
type Socket struct {
	iface   string
	fd      int
	ifindex int
	mtu     int
	hwaddr  net.HardwareAddr

	// gate counts Recv/Send calls in progress: Close waits for them before
	// unmapping the ring and closing the fds.
	gate      port.Gate
	closeOnce sync.Once

	rx rxRing
	tx txState

	// statsMu serialises PACKET_STATISTICS reads (the kernel resets its
	// counters on each read, so we keep the running totals) and the final
	// read in Close.
	statsMu   sync.Mutex
	rxPackets uint64
	rxDrops   uint64
	rxFreezes uint64
	txPackets atomic.Uint64
	txFull    atomic.Uint64
	txBad     atomic.Uint64
	txDown    atomic.Uint64
}

// Open creates a socket on cfg.Iface in the calling thread's network
// namespace. Unless cfg.NoRx, it maps a receive ring and starts receiving
// the frames of cfg.Protocol that arrive on the interface (every frame,
// ETH_P_ALL, when it is 0), except frames the host itself transmits.
func Open(cfg Config) (*Socket, error) {
	s, err := open(cfg)
	if err != nil {
		return nil, fmt.Errorf("afpacket: open %q: %w", cfg.Iface, err)
	}
	return s, nil
}

func open(cfg Config) (_ *Socket, err error) {
	if cfg.BlockSize <= 0 {
		cfg.BlockSize = defaultBlockSize
	}
	if cfg.NumBlocks <= 0 {
		cfg.NumBlocks = defaultNumBlocks
	}
	if cfg.PollTimeout <= 0 {
		cfg.PollTimeout = defaultPollTimeout
	}
	if pg := os.Getpagesize(); cfg.BlockSize%pg != 0 {
		return nil, fmt.Errorf("block size %d is not a multiple of the page size %d", cfg.BlockSize, pg)
	}
	if cfg.BlockSize < frameSize || cfg.BlockSize > 1<<30 || cfg.NumBlocks > 1<<20 {
		return nil, fmt.Errorf("ring of %d blocks of %d bytes is out of range", cfg.NumBlocks, cfg.BlockSize)
	}
	if cfg.NoRx && cfg.FanoutID != 0 {
		return nil, errors.New("fanout needs a receiving socket, but NoRx is set")
	}
	if len(cfg.Iface) == 0 || len(cfg.Iface) >= unix.IFNAMSIZ {
		return nil, errors.New("invalid interface name")
	}

	// Protocol 0: the socket receives nothing until bind names a protocol,
	// so no frame can slip into the ordinary receive queue before the ring
	// exists.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	s := &Socket{iface: cfg.Iface, fd: fd}
	s.rx.efd = -1
	defer func() {
		if err != nil {
			s.release()
		}
	}()

	if err := s.queryInterface(); err != nil {
		return nil, err
	}

	// Without this the kernel queues our frames behind the qdisc, i.e. a
	// second queue we do not control; errors then surface later, not as
	// sendmmsg results.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
		return nil, fmt.Errorf("setsockopt PACKET_QDISC_BYPASS: %w", err)
	}
	// SO_SNDBUFFORCE ignores net.core.wmem_max but needs CAP_NET_ADMIN;
	// fall back to SO_SNDBUF, which the kernel caps. Either is best effort.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sndBufSize) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, sndBufSize)
	}

	proto := uint16(0)
	if !cfg.NoRx {
		if err := s.rx.setup(fd, cfg); err != nil {
			return nil, err
		}
		// We forward frames; seeing our own output again (or the host's)
		// would loop them back into the engine.
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
			return nil, fmt.Errorf("setsockopt PACKET_IGNORE_OUTGOING: %w", err)
		}
		proto = unix.ETH_P_ALL
		if cfg.Protocol != 0 {
			proto = cfg.Protocol
		}
		if filter := rxFilter(cfg); filter != nil {
			// Before bind: no frame is delivered unfiltered.
			prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
			if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
				return nil, fmt.Errorf("setsockopt SO_ATTACH_FILTER: %w", err)
			}
		}
	}

	// Binding fixes the interface (and, when receiving, starts delivery).
	// Send relies on it: messages carry no address, so the kernel uses the
	// bound device and parses the protocol from each frame's Ethernet header.
	sa := &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: s.ifindex}
	if err := unix.Bind(fd, sa); err != nil {
		return nil, fmt.Errorf("bind: %w", err)
	}

	if cfg.FanoutID != 0 {
		// Must follow bind: the kernel only lets a running socket join,
		// and matches group members by interface and protocol.
		arg := int(cfg.FanoutID) | unix.PACKET_FANOUT_HASH<<16
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT, arg); err != nil {
			return nil, fmt.Errorf("setsockopt PACKET_FANOUT id %d (ids are per netns; members must share interface and mode): %w", cfg.FanoutID, err)
		}
	}
	return s, nil
}

// queryInterface reads index, MTU and MAC address through ioctls on the
// socket itself, so the answers come from the socket's own network
// namespace whatever thread later uses the Socket.
func (s *Socket) queryInterface() error {
	var req ifreq
	copy(req.name[:], s.iface)

	if err := s.ioctl(unix.SIOCGIFINDEX, &req); err != nil {
		return fmt.Errorf("no such interface: %w", err)
	}
	s.ifindex = int(*(*int32)(unsafe.Pointer(&req.data[0])))

	if err := s.ioctl(unix.SIOCGIFMTU, &req); err != nil {
		return fmt.Errorf("get MTU: %w", err)
	}
	s.mtu = int(*(*int32)(unsafe.Pointer(&req.data[0])))

	if err := s.ioctl(unix.SIOCGIFHWADDR, &req); err != nil {
		return fmt.Errorf("get hardware address: %w", err)
	}
	// data holds a struct sockaddr: sa_family is the ARPHRD type.
	hatype := *(*uint16)(unsafe.Pointer(&req.data[0]))
	if hatype != unix.ARPHRD_ETHER && hatype != unix.ARPHRD_LOOPBACK {
		return fmt.Errorf("not an Ethernet interface (ARPHRD type %d)", hatype)
	}
	s.hwaddr = net.HardwareAddr(append([]byte(nil), req.data[2:8]...))
	return nil
}

type ifreq struct {
	name [unix.IFNAMSIZ]byte
	data [24]byte
}

func (s *Socket) ioctl(req uint, r *ifreq) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(s.fd), uintptr(req), uintptr(unsafe.Pointer(r)))
	if errno != 0 {
		return errno
	}
	return nil
}

// HardwareAddr is the interface's MAC address as read at Open.
func (s *Socket) HardwareAddr() net.HardwareAddr { return s.hwaddr }

// Index is the interface index.
func (s *Socket) Index() int { return s.ifindex }

// MTU is the interface MTU as read at Open. Send refuses frames longer than
// MTU+14.
func (s *Socket) MTU() int { return s.mtu }

// Stats returns the cumulative counters. The kernel resets its counters on
// every read, so Stats accumulates them; after Close it returns the final
// totals.
func (s *Socket) Stats() Stats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	if s.fd >= 0 {
		s.harvestLocked()
	}
	st := Stats{
		RxPackets:  s.rxPackets,
		RxDrops:    s.rxDrops,
		RxRingFull: s.rxDrops,
		RxFreezes:  s.rxFreezes,
		TxPackets:  s.txPackets.Load(),
		TxFull:     s.txFull.Load(),
		TxBadFrame: s.txBad.Load(),
		TxDown:     s.txDown.Load(),
	}
	st.TxErrors = st.TxFull + st.TxBadFrame + st.TxDown
	return st
}

func (s *Socket) harvestLocked() {
	if s.rx.ring == nil {
		return
	}
	st, err := unix.GetsockoptTpacketStatsV3(s.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return
	}
	// The kernel's tp_packets includes the dropped frames; report only the
	// ones that made it into the ring.
	s.rxPackets += uint64(st.Packets) - uint64(st.Drops)
	s.rxDrops += uint64(st.Drops)
	s.rxFreezes += uint64(st.Freeze_q_cnt)
}

// Close wakes a Recv blocked in another goroutine, waits for in-flight Recv
// and Send calls to return, then releases the ring and the socket. Slices
// returned by Recv are invalid afterwards. Further calls to Close return nil;
// Recv and Send return net.ErrClosed.
func (s *Socket) Close() error {
	s.closeOnce.Do(func() {
		s.gate.Shut()
		s.rx.wake()
		s.gate.Drain()
		s.statsMu.Lock()
		s.harvestLocked()
		s.release()
		s.statsMu.Unlock()
	})
	return nil
}

func (s *Socket) release() {
	s.rx.teardown()
	if s.fd >= 0 {
		unix.Close(s.fd)
		s.fd = -1
	}
}

// htons converts to network byte order, as sockaddr_ll and socket(2) want.
// Classic BPF ancillary loads (SKF_AD_OFF + SKF_AD_PKTTYPE, _VLAN_TAG):
// skb->pkt_type and the VLAN tag the kernel took off the frame.
const (
	skfAdPktType = 0xfffff000 + 4
	skfAdMark    = 0xfffff000 + 20
	skfAdVLANTag = 0xfffff000 + 44
)

// rxFilter is the socket filter cfg asks for (NotIPv4, HostOnly), or nil.
func rxFilter(cfg Config) []unix.SockFilter {
	if !cfg.NotIPv4 && !cfg.HostOnly {
		return nil
	}
	var f []unix.SockFilter
	drop := func(code uint16, k, eq uint32) {
		f = append(f,
			unix.SockFilter{Code: code, K: k},
			unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: eq},
			unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: 0})
	}
	if cfg.HostOnly && cfg.MarkedHost != 0 {
		// Another host's, unless marked so by passgate's tc program.
		f = append(f,
			unix.SockFilter{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: skfAdPktType},
			unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 3, K: unix.PACKET_OTHERHOST},
			unix.SockFilter{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: skfAdMark},
			unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 1, Jf: 0, K: cfg.MarkedHost},
			unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: 0})
	} else if cfg.HostOnly {
		drop(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, skfAdPktType, unix.PACKET_OTHERHOST)
	}
	if cfg.HostOnly {
		// A socket of every ethertype sees a tagged frame before the
		// kernel marks it another host's: its tag is off (in the skb),
		// its VLAN id (not 0, a priority tag) is what tells it.
		f = append(f,
			unix.SockFilter{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: skfAdVLANTag},
			unix.SockFilter{Code: unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, K: 0x0fff},
			unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 1, Jf: 0, K: 0},
			unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: 0})
	}
	if cfg.NotIPv4 {
		drop(unix.BPF_LD|unix.BPF_H|unix.BPF_ABS, 12, unix.ETH_P_IP)
	}
	return append(f, unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff})
}

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
