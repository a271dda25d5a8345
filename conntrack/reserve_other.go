//go:build !linux

package conntrack

import "unsafe"

// reserveExt gives t's record pool room for n records (and the unused
// handle 0): an array on Go's heap, whose pages a fresh allocation
// leaves untouched until written where the system allows.
func reserveExt(t *Table, n int) { t.xp.recs = make([]flowExt, n+1) }

// ExtMemory is what the record pool takes: reserved, the bytes set apart
// for it, resident, those in memory (the whole array: not measured here).
func (t *Table) ExtMemory() (reserved, resident int) {
	n := len(t.xp.recs) * int(unsafe.Sizeof(flowExt{}))
	return n, n
}
