package afpacket

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rxRing is the TPACKET_V3 receive ring: NumBlocks blocks of BlockSize
// bytes. The kernel fills a block with variable-length frames and hands it
// to us by setting TP_STATUS_USER in the block descriptor, either when the
// block is full or when the retire timer fires; we give it back by writing
// TP_STATUS_KERNEL. Blocks are used strictly in ring order on both sides.
type rxRing struct {
	ring        []byte
	base        unsafe.Pointer
	blockSize   int
	numBlocks   int
	pollTimeout time.Duration

	// efd is an eventfd that only Close writes: polling it next to the
	// socket lets Close interrupt a Recv blocked in ppoll.
	efd int
	pfd [2]unix.PollFd
	ts  unix.Timespec

	cur     int    // block being read, or waited for
	inBlock bool   // cur is ours and partly returned to the caller
	left    uint32 // frames of cur not yet returned
	next    int    // offset within cur of the next frame header
	// held counts the blocks just before cur that were fully returned to
	// the caller but not yet handed back: their frames are still in use.
	held int
}

// blockHdrOffset is where struct tpacket_hdr_v1 sits in a block descriptor.
var blockHdrOffset = unsafe.Offsetof(unix.TpacketBlockDesc{}.Hdr)

func (r *rxRing) setup(fd int, cfg Config) error {
	if int64(cfg.BlockSize)*int64(cfg.NumBlocks) > 1<<32 {
		return fmt.Errorf("ring of %d blocks of %d bytes is too large", cfg.NumBlocks, cfg.BlockSize)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return fmt.Errorf("setsockopt PACKET_VERSION TPACKET_V3: %w", err)
	}
	req := unix.TpacketReq3{
		Block_size:     uint32(cfg.BlockSize),
		Block_nr:       uint32(cfg.NumBlocks),
		Frame_size:     frameSize,
		Frame_nr:       uint32(cfg.BlockSize / frameSize * cfg.NumBlocks),
		Retire_blk_tov: retireTimeoutMs,
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return fmt.Errorf("setsockopt PACKET_RX_RING (%d blocks of %d bytes): %w", cfg.NumBlocks, cfg.BlockSize, err)
	}
	ring, err := unix.Mmap(fd, 0, cfg.BlockSize*cfg.NumBlocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("mmap rx ring: %w", err)
	}
	r.ring = ring
	r.base = unsafe.Pointer(&ring[0])
	r.blockSize = cfg.BlockSize
	r.numBlocks = cfg.NumBlocks
	r.pollTimeout = cfg.PollTimeout

	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return fmt.Errorf("eventfd: %w", err)
	}
	r.efd = efd
	r.pfd[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	r.pfd[1] = unix.PollFd{Fd: int32(efd), Events: unix.POLLIN}
	return nil
}

// wake makes a ppoll in Recv return. The eventfd is never drained: once
// Close started, every later poll should return at once too.
func (r *rxRing) wake() {
	if r.efd < 0 {
		return
	}
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	_, _ = unix.Write(r.efd, one[:])
}

func (r *rxRing) teardown() {
	if r.ring != nil {
		_ = unix.Munmap(r.ring)
		r.ring, r.base = nil, nil
	}
	if r.efd >= 0 {
		unix.Close(r.efd)
		r.efd = -1
	}
}

func (r *rxRing) blockHdr(i int) *unix.TpacketHdrV1 {
	return (*unix.TpacketHdrV1)(unsafe.Add(r.base, i*r.blockSize+int(blockHdrOffset)))
}

// Recv fills frames with up to len(frames) received frames and, if flags is
// not nil, flags[i] with the frame's tp_status bits (see StatusCsumNotReady).
// If flags is shorter than frames, at most len(flags) frames are returned.
//
// The slices point into the receive ring: no copy is made, the caller may
// modify them in place (their capacity equals their length) and may pass
// them to Send on any Socket, but they stay valid only until the next Recv
// or Close on this Socket, which hand the memory back to the kernel.
//
// Frames come in arrival order and nothing is filtered. When no frame is
// ready, Recv waits up to Config.PollTimeout and then returns 0, nil. It
// returns net.ErrClosed once Close was called, and an error wrapping the
// socket error (e.g. ENETDOWN) when the kernel reports one, after which the
// next call receives normally again.
func (s *Socket) Recv(frames [][]byte, flags []uint32) (int, error) {
	if !s.gate.Enter() {
		return 0, net.ErrClosed
	}
	defer s.gate.Exit()
	r := &s.rx
	if r.ring == nil {
		return 0, ErrNoRx
	}
	// Everything returned by the previous call is now dead to the caller.
	r.handBack()

	max := len(frames)
	if flags != nil && len(flags) < max {
		max = len(flags)
	}
	if max == 0 {
		return 0, nil
	}
	frames = frames[:max]
	if n := r.fill(frames, flags); n > 0 {
		return n, nil
	}

	deadline := time.Now().Add(r.pollTimeout)
	for {
		wait := time.Until(deadline)
		if wait <= 0 {
			return 0, nil
		}
		r.ts = unix.NsecToTimespec(int64(wait))
		_, err := unix.Ppoll(r.pfd[:], &r.ts, nil)
		if s.gate.Closing() {
			return 0, net.ErrClosed
		}
		if err != nil && !errors.Is(err, unix.EINTR) {
			return 0, fmt.Errorf("afpacket %s: poll: %w", s.iface, err)
		}
		if n := r.fill(frames, flags); n > 0 {
			return n, nil
		}
		if r.pfd[0].Revents&unix.POLLERR != 0 {
			// Reading SO_ERROR clears it; otherwise poll would keep
			// returning at once and we would spin until the deadline.
			if e, gerr := unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_ERROR); gerr == nil && e != 0 {
				return 0, fmt.Errorf("afpacket %s: %w", s.iface, unix.Errno(e))
			}
		}
	}
}

// handBack returns the fully consumed blocks to the kernel, oldest first.
func (r *rxRing) handBack() {
	for ; r.held > 0; r.held-- {
		i := r.cur - r.held
		if i < 0 {
			i += r.numBlocks
		}
		// The atomic store orders our earlier reads of the block before
		// the kernel may overwrite it.
		atomic.StoreUint32(&r.blockHdr(i).Block_status, unix.TP_STATUS_KERNEL)
	}
}

// fill returns frames from ready blocks, continuing a partly returned block
// first and moving on to the next blocks while frames has room.
func (r *rxRing) fill(frames [][]byte, flags []uint32) int {
	n := 0
	for n < len(frames) {
		if !r.inBlock {
			if r.held == r.numBlocks {
				// Every block is in the caller's hands; cur is the oldest
				// of them, not a new one.
				break
			}
			h := r.blockHdr(r.cur)
			// Acquire: the frames are only valid after we saw the status.
			if atomic.LoadUint32(&h.Block_status)&unix.TP_STATUS_USER == 0 {
				break
			}
			r.inBlock = true
			r.left = h.Num_pkts
			r.next = int(h.Offset_to_first_pkt)
		}
		blk := unsafe.Add(r.base, r.cur*r.blockSize)
		for r.left > 0 && n < len(frames) {
			off := r.next
			if off < 0 || off+unix.SizeofTpacket3Hdr > r.blockSize {
				r.left = 0 // corrupt offset: give up on this block
				break
			}
			ph := (*unix.Tpacket3Hdr)(unsafe.Add(blk, off))
			start := off + int(ph.Mac)
			end := start + int(ph.Snaplen)
			if end > r.blockSize {
				r.left = 0
				break
			}
			frames[n] = unsafe.Slice((*byte)(unsafe.Add(blk, start)), int(ph.Snaplen))
			if flags != nil {
				flags[n] = ph.Status
			}
			n++
			r.left--
			r.next = off + int(ph.Next_offset)
		}
		if r.left == 0 {
			r.inBlock = false
			r.held++
			if r.cur++; r.cur == r.numBlocks {
				r.cur = 0
			}
		}
	}
	return n
}
