package afpacket

import (
	"fmt"
	"net"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	// maxTxRetries bounds how often one Send call retries after the kernel
	// refused frames for lack of buffer space (EAGAIN) or because the device
	// queue was full (ENOBUFS, what qdisc bypass reports instead of
	// queueing). Each retry only yields the processor first: sleeping is
	// too coarse (a sub-millisecond time.Sleep or even nanosleep(2) can
	// last a whole millisecond, e.g. on VMs without high-resolution timers)
	// and a router that cannot transmit should drop, not stall. So a
	// refused remainder costs a few microseconds and is then counted as
	// TxErrors.
	maxTxRetries = 8

	// maxVlen is the kernel's UIO_MAXIOV: sendmmsg silently caps vlen here.
	maxVlen = 1024
)

// txState holds the sendmmsg arguments. Each header points at its own iovec
// once and for all; Send only rewrites the iovecs.
type txState struct {
	hdrs []unix.Mmsghdr
	iovs []unix.Iovec
}

func (t *txState) grow(n int) {
	t.hdrs = make([]unix.Mmsghdr, n)
	t.iovs = make([]unix.Iovec, n)
	for i := range t.hdrs {
		t.hdrs[i].Hdr.Iov = &t.iovs[i]
		t.hdrs[i].Hdr.SetIovlen(1)
	}
}

// Send transmits the frames (complete Ethernet frames, without FCS) on the
// socket's interface, in order, with as few sendmmsg(2) calls as possible.
// It returns how many frames the kernel accepted. Frames shorter than 14 or
// longer than MTU+14 bytes are not sent; frames still refused after a few
// retries (EAGAIN, ENOBUFS) are given up. Both are counted in
// Stats.TxErrors and are not errors of the call, so n can be less than
// len(frames) with a nil error; the error is reserved for failures that
// hit the whole socket (e.g. the interface is down: ENETDOWN, ENXIO), in
// which case the rest of the batch is also counted in TxErrors.
//
// The kernel copies each frame before Send returns, so the caller may reuse
// the buffers (or Recv again, if they are ring slices) immediately.
func (s *Socket) Send(frames [][]byte) (int, error) {
	if !s.gate.Enter() {
		return 0, net.ErrClosed
	}
	defer s.gate.Exit()
	t := &s.tx
	if len(frames) > len(t.hdrs) {
		t.grow(len(frames))
	}

	maxLen := s.mtu + ethHeaderLen
	var bad, full, down uint64
	k := 0
	for _, f := range frames {
		if len(f) < ethHeaderLen || len(f) > maxLen {
			bad++
			continue
		}
		t.iovs[k].Base = &f[0]
		t.iovs[k].SetLen(len(f))
		k++
	}

	sent, retries := 0, 0
	var err error
	for off := 0; off < k; {
		vlen := min(k-off, maxVlen)
		r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.fd),
			uintptr(unsafe.Pointer(&t.hdrs[off])), uintptr(vlen), unix.MSG_DONTWAIT, 0, 0)
		if errno == 0 {
			// sendmmsg stops at the first failing message and reports
			// the ones before it; the next round meets the error.
			if r == 0 { // cannot happen for vlen > 0; never spin on it
				bad++
				off++
				continue
			}
			off += int(r)
			sent += int(r)
			continue
		}
		switch errno {
		case unix.EAGAIN, unix.ENOBUFS, unix.EINTR:
			if retries < maxTxRetries {
				runtime.Gosched()
				retries++
				continue
			}
			full += uint64(k - off)
			off = k
		case unix.EMSGSIZE, unix.EINVAL:
			// This frame is unacceptable (e.g. a header the device
			// rejects); skip it and carry on with the rest.
			bad++
			off++
		default:
			down += uint64(k - off)
			off = k
			err = fmt.Errorf("afpacket %s: sendmmsg: %w", s.iface, errno)
		}
	}

	// Do not keep the caller's buffers reachable until the next Send.
	for i := range k {
		t.iovs[i].Base = nil
	}
	s.txPackets.Add(uint64(sent))
	if bad != 0 {
		s.txBad.Add(bad)
	}
	if full != 0 {
		s.txFull.Add(full)
	}
	if down != 0 {
		s.txDown.Add(down)
	}
	return sent, err
}
