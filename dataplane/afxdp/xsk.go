// Package afxdp is passgate's AF_XDP packet driver: an XDP program steers
// the frames passgate handles (IPv4, PPPoE) from an interface's receive
// queues into AF_XDP sockets, one per queue, and passes everything else
// (IPv6, ARP, TCP to the admin server) on to the kernel.
//
// A Socket owns one UMEM (a region of frames shared with the kernel) and
// its four rings: the fill ring gives the kernel empty frames to receive
// into, the RX ring hands received frames back, the TX ring gives frames
// to send, and the completion ring returns them once sent. The UMEM's
// first RxRingSize frames circulate through fill and RX, the rest through TX and
// completion. need_wakeup is on: the kernel is only kicked (poll, sendto)
// when it asked to be.
//
// Recv is zero copy, as AF_PACKET's: the slices point into the UMEM and are
// given back to the kernel (the fill ring) at the next Recv. Send copies
// each frame into a TX frame of this socket's UMEM (frames received on
// another interface live in another UMEM), so a Socket's Send may be used by
// several goroutines (it takes a lock): the router's two workers that send
// on one interface share its queue's socket.
//
// On veth (the lab) and every driver without AF_XDP zero-copy support the
// kernel runs the socket in copy mode: it copies each frame into the UMEM
// on receive and builds an skb from it on send. The native XDP hook still
// runs before any skb exists.
package afxdp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"passgate/dataplane/port"
)

const (
	defaultFrameSize = 2048
	// defaultRxRingSize: 16384 frames of RX backlog ride out a worker
	// kept off the CPU for 160 ms at 100k pkt/s. On the loaded 2-core lab
	// machine 2048 lost frames to rx_no_buffer in most 100k pkt/s runs,
	// 8192 in some. AF_PACKET's 16 MiB ring holds some 100k small frames;
	// AF_XDP's frames are fixed 2 KiB chunks, so depth costs memory: 32 MiB
	// for RX, 8 MiB for TX, per socket.
	defaultRxRingSize  = 16384
	defaultTxRingSize  = 4096
	defaultPollTimeout = 50 * time.Millisecond
	ethHeaderLen       = 14

	// maxTxKicks bounds how often one Send kicks the kernel (sendto) for
	// a TX ring or frame pool that is still full; in copy mode each kick
	// transmits up to the socket's TX budget synchronously.
	maxTxKicks = 16
	// txBudget is asked for with XDP_MAX_TX_SKB_BUDGET (Linux 6.17+): how
	// many frames one sendto sends in copy mode; the kernel's default is 32.
	txBudget = 256
)

// Config describes one socket.
type Config struct {
	Iface string
	Queue int
	// FrameSize is the UMEM chunk size, 2048 or 4096; default 2048.
	FrameSize int
	// RxRingSize is the size of the fill and RX rings, TxRingSize of
	// the TX and completion rings, powers of two; the UMEM has as many
	// frames as both together. Defaults 16384 and 4096.
	RxRingSize, TxRingSize int
	// PollTimeout is how long Recv waits before returning 0; default 50ms.
	PollTimeout time.Duration
}

// Socket is one AF_XDP socket bound to one queue of one interface.
type Socket struct {
	iface   string
	queue   int
	fd      int
	ifindex int
	mtu     int
	hwaddr  net.HardwareAddr
	zc      bool

	umem      []byte
	frameSize uint64
	maps      [4][]byte // fill, completion, RX, TX ring mappings

	fill, comp, rx, tx ring

	// RX side, used by the one receiving goroutine.
	held        []uint64 // frames handed out by the last Recv
	efd         int
	pfd         [2]unix.PollFd
	pollTimeout time.Duration

	// TX side, under txMu.
	txMu   sync.Mutex
	txFree []uint64 // free TX frames

	gate      port.Gate // Recv and Send in progress, for Close
	closeOnce sync.Once

	rxPackets, txPackets  atomic.Uint64
	txFull, txBad, txDown atomic.Uint64
	statsMu               sync.Mutex
	kstats                unix.XDPStatistics // last read, kept after Close
}

// Open makes a socket on cfg.Iface's queue cfg.Queue in the calling
// thread's network namespace. It receives nothing until its descriptor is
// put in the XDP program's socket map (Program.Register).
func Open(cfg Config) (*Socket, error) {
	s, err := open(cfg)
	if err != nil {
		return nil, fmt.Errorf("afxdp: open %s queue %d: %w", cfg.Iface, cfg.Queue, err)
	}
	return s, nil
}

func open(cfg Config) (_ *Socket, err error) {
	if cfg.FrameSize == 0 {
		cfg.FrameSize = defaultFrameSize
	}
	if cfg.RxRingSize == 0 {
		cfg.RxRingSize = defaultRxRingSize
	}
	if cfg.TxRingSize == 0 {
		cfg.TxRingSize = defaultTxRingSize
	}
	if cfg.PollTimeout <= 0 {
		cfg.PollTimeout = defaultPollTimeout
	}
	if cfg.FrameSize != 2048 && cfg.FrameSize != 4096 {
		return nil, fmt.Errorf("frame size %d is not 2048 or 4096", cfg.FrameSize)
	}
	for _, n := range []int{cfg.RxRingSize, cfg.TxRingSize} {
		if n < 8 || n > 1<<16 || n&(n-1) != 0 {
			return nil, fmt.Errorf("ring size %d is not a power of two in [8, 65536]", n)
		}
	}
	ifi, err := net.InterfaceByName(cfg.Iface)
	if err != nil {
		return nil, err
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, errors.New("not an Ethernet interface")
	}
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket(AF_XDP): %w", err)
	}
	s := &Socket{iface: cfg.Iface, queue: cfg.Queue, fd: fd, efd: -1, ifindex: ifi.Index, mtu: ifi.MTU,
		hwaddr: ifi.HardwareAddr, frameSize: uint64(cfg.FrameSize), pollTimeout: cfg.PollTimeout}
	defer func() {
		if err != nil {
			s.release()
		}
	}()

	rxSize, txSize := uint32(cfg.RxRingSize), uint32(cfg.TxRingSize)
	nframes := cfg.RxRingSize + cfg.TxRingSize
	s.umem, err = unix.Mmap(-1, 0, nframes*cfg.FrameSize, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("mmap UMEM: %w", err)
	}
	reg := unix.XDPUmemReg{Addr: uint64(uintptr(unsafe.Pointer(&s.umem[0]))), Len: uint64(len(s.umem)), Size: uint32(cfg.FrameSize)}
	if err := setsockopt(fd, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg)); err != nil {
		return nil, fmt.Errorf("XDP_UMEM_REG: %w", err)
	}
	for _, o := range [][2]int{{unix.XDP_UMEM_FILL_RING, cfg.RxRingSize}, {unix.XDP_UMEM_COMPLETION_RING, cfg.TxRingSize},
		{unix.XDP_RX_RING, cfg.RxRingSize}, {unix.XDP_TX_RING, cfg.TxRingSize}} {
		if err := unix.SetsockoptInt(fd, unix.SOL_XDP, o[0], o[1]); err != nil {
			return nil, fmt.Errorf("setsockopt ring %d size %d: %w", o[0], o[1], err)
		}
	}
	var off unix.XDPMmapOffsets
	if err := getsockopt(fd, unix.XDP_MMAP_OFFSETS, unsafe.Pointer(&off), unsafe.Sizeof(off)); err != nil {
		return nil, fmt.Errorf("XDP_MMAP_OFFSETS: %w", err)
	}
	type spec struct {
		off  unix.XDPRingOffset
		pgof int64
		size uint32
		desc bool
		r    *ring
	}
	for i, sp := range []spec{
		{off.Fr, unix.XDP_UMEM_PGOFF_FILL_RING, rxSize, false, &s.fill},
		{off.Cr, unix.XDP_UMEM_PGOFF_COMPLETION_RING, txSize, false, &s.comp},
		{off.Rx, unix.XDP_PGOFF_RX_RING, rxSize, true, &s.rx},
		{off.Tx, unix.XDP_PGOFF_TX_RING, txSize, true, &s.tx},
	} {
		m, err := unix.Mmap(fd, sp.pgof, ringBytes(sp.off, sp.size, sp.desc), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
		if err != nil {
			return nil, fmt.Errorf("mmap ring %d: %w", i, err)
		}
		s.maps[i] = m
		*sp.r = newRing(m, sp.off, sp.size, sp.desc)
	}

	// The first RxRingSize frames of the UMEM receive, the rest send.
	n := s.fill.free(rxSize)
	for i := range n {
		s.fill.addrs[(s.fill.local+i)&s.fill.mask] = uint64(i) * s.frameSize
	}
	s.fill.submit(n)
	s.held = make([]uint64, 0, cfg.RxRingSize)
	s.txFree = make([]uint64, 0, cfg.TxRingSize)
	for i := cfg.RxRingSize; i < nframes; i++ {
		s.txFree = append(s.txFree, uint64(i)*s.frameSize)
	}

	// Best effort: a larger copy-mode TX budget per sendto.
	_ = unix.SetsockoptInt(fd, unix.SOL_XDP, unix.XDP_MAX_TX_SKB_BUDGET, txBudget)

	sa := &unix.SockaddrXDP{Flags: unix.XDP_USE_NEED_WAKEUP, Ifindex: uint32(s.ifindex), QueueID: uint32(cfg.Queue)}
	if err := unix.Bind(fd, sa); err != nil {
		return nil, fmt.Errorf("bind: %w", err)
	}
	var opts uint32
	if getsockopt(fd, unix.XDP_OPTIONS, unsafe.Pointer(&opts), 4) == nil {
		s.zc = opts&unix.XDP_OPTIONS_ZEROCOPY != 0
	}

	s.efd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	s.pfd[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	s.pfd[1] = unix.PollFd{Fd: int32(s.efd), Events: unix.POLLIN}
	return s, nil
}

func setsockopt(fd, opt int, p unsafe.Pointer, n uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(p), n, 0)
	if e != 0 {
		return e
	}
	return nil
}

func getsockopt(fd, opt int, p unsafe.Pointer, n uintptr) error {
	l := uint32(n)
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(p), uintptr(unsafe.Pointer(&l)), 0)
	if e != 0 {
		return e
	}
	return nil
}

// FD is the socket's descriptor, for the XDP program's socket map.
func (s *Socket) FD() int { return s.fd }

// Queue is the queue the socket is bound to.
func (s *Socket) Queue() int { return s.queue }

// ZeroCopy reports whether the kernel runs the socket in zero-copy mode
// (false: copy mode, as on veth).
func (s *Socket) ZeroCopy() bool { return s.zc }

// HardwareAddr is the interface's MAC address as read at Open.
func (s *Socket) HardwareAddr() net.HardwareAddr { return s.hwaddr }

// Index is the interface index.
func (s *Socket) Index() int { return s.ifindex }

// MTU is the interface MTU as read at Open.
func (s *Socket) MTU() int { return s.mtu }

// Recv fills frames with up to len(frames) received frames; flags, if not
// nil, get port.CsumUnknown (a veth peer on the same host may have left the
// transport checksum to offload, and AF_XDP does not say). The slices point into
// the UMEM and stay valid until the next Recv or Close. With nothing to
// receive it waits up to Config.PollTimeout and returns 0, nil; after
// Close, net.ErrClosed.
func (s *Socket) Recv(frames [][]byte, flags []uint32) (int, error) {
	if !s.gate.Enter() {
		return 0, net.ErrClosed
	}
	defer s.gate.Exit()
	s.refill()
	max := len(frames)
	if flags != nil && len(flags) < max {
		max = len(flags)
	}
	if max == 0 {
		return 0, nil
	}
	if n := s.take(frames[:max], flags); n > 0 {
		return n, nil
	}
	deadline := time.Now().Add(s.pollTimeout)
	var ts unix.Timespec
	for {
		wait := time.Until(deadline)
		if wait <= 0 {
			return 0, nil
		}
		ts = unix.NsecToTimespec(int64(wait))
		_, err := unix.Ppoll(s.pfd[:], &ts, nil)
		if s.gate.Closing() {
			return 0, net.ErrClosed
		}
		if err != nil && !errors.Is(err, unix.EINTR) {
			return 0, fmt.Errorf("afxdp %s: poll: %w", s.iface, err)
		}
		if n := s.take(frames[:max], flags); n > 0 {
			return n, nil
		}
	}
}

// refill gives the frames of the previous Recv back to the fill ring. The
// fill ring is as large as the RX part of the UMEM, so there is always room.
func (s *Socket) refill() {
	if len(s.held) == 0 {
		return
	}
	n := s.fill.free(uint32(len(s.held)))
	for i := range n {
		s.fill.addrs[(s.fill.local+i)&s.fill.mask] = s.held[i]
	}
	s.fill.submit(n)
	// n < len(held) cannot happen (see above); keep the rest if it did.
	s.held = s.held[:copy(s.held, s.held[n:])]
	if s.fill.needWakeup() {
		// Zero-copy drivers wait for this before using new fill entries.
		_, _, _ = unix.Syscall6(unix.SYS_RECVFROM, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	}
}

// take reads up to len(frames) descriptors from the RX ring.
func (s *Socket) take(frames [][]byte, flags []uint32) int {
	n := s.rx.ready(uint32(min(len(frames), cap(s.held)-len(s.held))))
	got := 0
	for i := range n {
		d := s.rx.descs[(s.rx.local+i)&s.rx.mask]
		s.held = append(s.held, d.Addr&^(s.frameSize-1))
		f, ok := frameAt(s.umem, d, s.frameSize)
		if !ok {
			continue // the kernel never writes such a descriptor
		}
		frames[got] = f
		if flags != nil {
			flags[got] = port.CsumUnknown
		}
		got++
	}
	s.rx.release(n)
	s.rxPackets.Add(uint64(got))
	return got
}

// frameAt is the frame a descriptor points at, if it lies within one
// chunk of umem.
func frameAt(umem []byte, d unix.XDPDesc, frameSize uint64) ([]byte, bool) {
	start := d.Addr
	end := start + uint64(d.Len)
	if d.Len == 0 || end < start || end > uint64(len(umem)) || start/frameSize != (end-1)/frameSize {
		return nil, false
	}
	return umem[start:end:end], true
}

// Send copies the frames into TX frames, queues them on the TX ring and
// kicks the kernel; it returns how many were queued. Frames shorter than
// 14 or longer than MTU+14 (or a frame) bytes are counted as TxBadFrame;
// frames for which no TX frame or ring slot came free after a few kicks as
// TxFull. Safe for several goroutines.
func (s *Socket) Send(frames [][]byte) (int, error) {
	if !s.gate.Enter() {
		return 0, net.ErrClosed
	}
	defer s.gate.Exit()
	s.txMu.Lock()
	defer s.txMu.Unlock()

	maxLen := min(s.mtu+ethHeaderLen, int(s.frameSize))
	var bad uint64
	sent, kicks := 0, 0
	var err error
	i := 0
	for i < len(frames) {
		s.complete()
		room := min(s.tx.free(uint32(len(frames)-i)), uint32(len(s.txFree)))
		var k uint32
		for ; i < len(frames); i++ {
			f := frames[i]
			if len(f) < ethHeaderLen || len(f) > maxLen {
				bad++
				continue
			}
			if k == room {
				break
			}
			addr := s.txFree[len(s.txFree)-1]
			s.txFree = s.txFree[:len(s.txFree)-1]
			copy(s.umem[addr:addr+uint64(len(f))], f)
			s.tx.descs[(s.tx.local+k)&s.tx.mask] = unix.XDPDesc{Addr: addr, Len: uint32(len(f))}
			k++
		}
		if k > 0 {
			s.tx.submit(k)
			sent += int(k)
		}
		if err = s.kick(); err != nil {
			break
		}
		if i < len(frames) {
			if kicks++; kicks > maxTxKicks {
				break
			}
			runtime.Gosched()
		}
	}
	if rest := uint64(len(frames) - i); rest > 0 {
		if err != nil {
			s.txDown.Add(rest)
		} else {
			s.txFull.Add(rest)
		}
	}
	s.txPackets.Add(uint64(sent))
	if bad > 0 {
		s.txBad.Add(bad)
	}
	return sent, err
}

// kick asks the kernel to transmit what the TX ring holds, if it said it
// needs asking. EAGAIN (the TX budget of one call spent, or the device
// busy), ENOBUFS and EBUSY leave frames in the ring for the next kick.
func (s *Socket) kick() error {
	if !s.tx.needWakeup() {
		return nil
	}
	_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	switch e {
	case 0, unix.EAGAIN, unix.ENOBUFS, unix.EBUSY, unix.EINTR:
		return nil
	}
	return fmt.Errorf("afxdp %s: sendto: %w", s.iface, e)
}

// complete moves sent frames from the completion ring to the free list.
func (s *Socket) complete() {
	n := s.comp.ready(s.comp.size)
	for i := range n {
		s.txFree = append(s.txFree, s.comp.addrs[(s.comp.local+i)&s.comp.mask]&^(s.frameSize-1))
	}
	s.comp.release(n)
}

// Stats returns the cumulative counters, with the kernel's XDP_STATISTICS
// split by reason.
func (s *Socket) Stats() port.Stats {
	s.statsMu.Lock()
	if s.fd >= 0 {
		var k unix.XDPStatistics
		if getsockopt(s.fd, unix.XDP_STATISTICS, unsafe.Pointer(&k), unsafe.Sizeof(k)) == nil {
			s.kstats = k
		}
	}
	k := s.kstats
	s.statsMu.Unlock()
	// The kernel's rx_dropped counts frames it had no fill ring buffer for
	// (also counted in rx_fill_ring_empty_descs) and frames too long for
	// a buffer; a full RX ring is counted apart, in rx_ring_full.
	tooLong := k.Rx_dropped - min(k.Rx_dropped, k.Rx_fill_ring_empty_descs)
	st := port.Stats{
		RxPackets:  s.rxPackets.Load(),
		RxRingFull: k.Rx_ring_full,
		RxNoBuffer: k.Rx_fill_ring_empty_descs,
		RxInvalid:  k.Rx_invalid_descs + tooLong,
		TxPackets:  s.txPackets.Load(),
		TxFull:     s.txFull.Load(),
		TxBadFrame: s.txBad.Load() + k.Tx_invalid_descs,
		TxDown:     s.txDown.Load(),
	}
	st.RxDrops = st.RxRingFull + st.RxNoBuffer + st.RxInvalid
	st.TxErrors = st.TxFull + st.TxBadFrame + st.TxDown
	return st
}

// Close wakes a waiting Recv, waits for Recv and Send calls in progress,
// and releases the socket and its memory. Further calls return nil.
func (s *Socket) Close() error {
	s.closeOnce.Do(func() {
		s.gate.Shut()
		if s.efd >= 0 {
			var one [8]byte
			binary.NativeEndian.PutUint64(one[:], 1)
			_, _ = unix.Write(s.efd, one[:])
		}
		s.gate.Drain()
		s.Stats() // keep the kernel's last counts
		s.statsMu.Lock()
		s.release()
		s.statsMu.Unlock()
	})
	return nil
}

func (s *Socket) release() {
	for i, m := range s.maps {
		if m != nil {
			_ = unix.Munmap(m)
			s.maps[i] = nil
		}
	}
	if s.fd >= 0 {
		unix.Close(s.fd)
		s.fd = -1
	}
	if s.umem != nil {
		_ = unix.Munmap(s.umem)
		s.umem = nil
	}
	if s.efd >= 0 {
		unix.Close(s.efd)
		s.efd = -1
	}
}
