package afxdp

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ring is one of a socket's four single-producer, single-consumer rings
// shared with the kernel. The producer and consumer indexes are free
// running uint32s; an entry's slot is index&mask. We are the producer of
// the fill and TX rings and the consumer of the RX and completion rings;
// the kernel is the other side of each.
//
// Each side keeps its own index locally and a cached copy of the other
// side's, refreshed (an atomic load, i.e. acquire) only when the cache says
// the ring is full (producer) or empty (consumer). Publishing our index is
// an atomic store (release) after the entries are written or read.
type ring struct {
	producer *uint32
	consumer *uint32
	flags    *uint32
	mask     uint32
	size     uint32

	// local is our index (producer index for fill/TX, consumer index for
	// RX/completion), remote the cached index of the kernel's side.
	local, remote uint32

	addrs []uint64       // fill and completion entries
	descs []unix.XDPDesc // RX and TX entries
}

// newRing lays a ring over mem (an mmap of the kernel's ring, or a test's
// buffer) at the offsets the kernel reported; desc is true for RX/TX rings.
func newRing(mem []byte, off unix.XDPRingOffset, size uint32, desc bool) ring {
	base := unsafe.Pointer(&mem[0])
	r := ring{
		producer: (*uint32)(unsafe.Add(base, off.Producer)),
		consumer: (*uint32)(unsafe.Add(base, off.Consumer)),
		flags:    (*uint32)(unsafe.Add(base, off.Flags)),
		mask:     size - 1,
		size:     size,
	}
	if desc {
		r.descs = unsafe.Slice((*unix.XDPDesc)(unsafe.Add(base, off.Desc)), size)
	} else {
		r.addrs = unsafe.Slice((*uint64)(unsafe.Add(base, off.Desc)), size)
	}
	return r
}

// ringBytes is how much memory a ring of size entries needs at off.
func ringBytes(off unix.XDPRingOffset, size uint32, desc bool) int {
	entry := uint64(8)
	if desc {
		entry = uint64(unsafe.Sizeof(unix.XDPDesc{}))
	}
	return int(off.Desc + uint64(size)*entry)
}

// free is how many entries the producer may write now, at most want.
func (r *ring) free(want uint32) uint32 {
	n := r.size - (r.local - r.remote)
	if n < want {
		r.remote = atomic.LoadUint32(r.consumer)
		n = r.size - (r.local - r.remote)
	}
	return min(n, want)
}

// submit publishes n entries written at local, local+1, ...
func (r *ring) submit(n uint32) {
	r.local += n
	atomic.StoreUint32(r.producer, r.local)
}

// ready is how many entries the consumer may read now, at most want.
func (r *ring) ready(want uint32) uint32 {
	n := r.remote - r.local
	if n < want {
		r.remote = atomic.LoadUint32(r.producer)
		n = r.remote - r.local
	}
	return min(n, want)
}

// release hands n read entries back to the producer.
func (r *ring) release(n uint32) {
	r.local += n
	atomic.StoreUint32(r.consumer, r.local)
}

// needWakeup reports the kernel's XDP_RING_NEED_WAKEUP flag: it wants a
// syscall before it looks at the ring again.
func (r *ring) needWakeup() bool {
	return atomic.LoadUint32(r.flags)&unix.XDP_RING_NEED_WAKEUP != 0
}
