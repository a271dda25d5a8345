package conntrack

// prefetch asks the CPU to start loading the cache line at each of the n
// addresses at p (PREFETCHT0), and returns at once: unlike a load, a
// prefetch that misses holds up no instruction after it, so the misses
// of a batch overlap with the work done meanwhile. The addresses must
// lie in memory the caller keeps alive (the table's slab and index); a
// prefetch never faults.
//
//go:noescape
func prefetch(p *uintptr, n int)
