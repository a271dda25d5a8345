//go:build linux

package conntrack

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// reserveExt gives t's record pool room for n records (and the unused
// handle 0) as an anonymous private mapping with no swap reserved
// (MAP_NORESERVE): address space, each page of it made resident, zero,
// when a record on it is first written. It is unmapped when t is
// collected. flowExt holds no pointers, so memory outside Go's heap is
// fine for it. If the mapping fails the pool is an ordinary array.
func reserveExt(t *Table, n int) {
	var z flowExt
	size := (uintptr(n+1)*unsafe.Sizeof(z) + pageSize - 1) &^ (pageSize - 1)
	b, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		t.xp.recs = make([]flowExt, n+1)
		return
	}
	t.xp.recs = unsafe.Slice((*flowExt)(unsafe.Pointer(&b[0])), n+1)
	t.extMapped = b
	runtime.AddCleanup(t, func(b []byte) { _ = unix.Munmap(b) }, b)
}

const pageSize = 4096

// ExtMemory is what the record pool takes: reserved, the bytes of address
// space set apart for it, resident, those of its pages in memory now
// (mincore; the whole array where it is on Go's heap).
func (t *Table) ExtMemory() (reserved, resident int) {
	b := t.extMapped
	if b == nil {
		n := len(t.xp.recs) * int(unsafe.Sizeof(flowExt{}))
		return n, n
	}
	vec := make([]byte, (len(b)+pageSize-1)/pageSize)
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(unsafe.Pointer(&vec[0])))
	if errno != 0 {
		return len(b), len(b)
	}
	for _, v := range vec {
		resident += int(v&1) * pageSize
	}
	return len(b), resident
}
