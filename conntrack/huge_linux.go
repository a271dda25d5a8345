//go:build linux

package conntrack

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugePage is the size of an x86-64 (and arm64 4K-granule) huge page.
const hugePage = 2 << 20

// adviseHuge asks the kernel to back the whole huge pages inside the size
// bytes at p with huge pages (MADV_HUGEPAGE: THP is often "madvise"
// only). The flow table's slab and index are read at random, one or two
// cache lines per packet: with 4 KB pages a table of a million flows
// spans 60,000 pages, far more than the TLB holds, and every lookup paid
// a page walk besides its cache misses. The memory stays Go's (it holds
// no pointers, so the collector never scans it); the advice is a system
// call made when the table is, never on the packet path, and a kernel
// that refuses it changes nothing but speed.
func adviseHuge(p unsafe.Pointer, size uintptr) {
	start := (uintptr(p) + hugePage - 1) &^ (hugePage - 1)
	end := (uintptr(p) + size) &^ (hugePage - 1)
	if end <= start {
		return
	}
	b := unsafe.Slice((*byte)(unsafe.Add(p, start-uintptr(p))), end-start)
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE)
}

// hugeSlice makes a slice of n zero Ts advised huge (adviseHuge). One of
// 16 huge pages or more starts on a huge page's boundary, so that all of
// it but its tail is covered (Go places a large object on 8 KB pages:
// unaligned, a 5 MB array was two fifths on 4 KB pages), for at most one
// page more; T must hold no pointers, as the memory is allocated as
// bytes. A smaller one is advised where its whole huge pages lie.
func hugeSlice[T any](n int) []T {
	var z T
	size := uintptr(n) * unsafe.Sizeof(z)
	if size < 16*hugePage {
		s := make([]T, n)
		if n > 0 {
			adviseHuge(unsafe.Pointer(&s[0]), size)
		}
		return s
	}
	raw := make([]byte, size+hugePage)
	p := unsafe.Pointer(&raw[0])
	p = unsafe.Add(p, (hugePage-uintptr(p)%hugePage)%hugePage)
	adviseHuge(p, size)
	return unsafe.Slice((*T)(p), n)
}
