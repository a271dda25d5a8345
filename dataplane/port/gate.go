package port

import (
	"sync/atomic"
	"time"
)

// Gate lets a driver's Close wait for the Recv and Send calls in progress
// before it frees the memory and descriptors they use, so a call never
// touches freed memory or a reused fd number. The zero Gate is open.
//
// A call brackets itself with Enter and Exit; Close calls Shut (Enter
// fails from then on), wakes a Recv that waits, then Drain. Go's atomics
// are sequentially consistent, so either Shut sees a call's increment or
// the call sees the flag.
type Gate struct {
	closing atomic.Bool
	active  atomic.Int32
}

// Enter registers a call in progress; it fails once Shut was called.
func (g *Gate) Enter() bool {
	g.active.Add(1)
	if g.closing.Load() {
		g.active.Add(-1)
		return false
	}
	return true
}

// Exit ends a call that Enter registered.
func (g *Gate) Exit() { g.active.Add(-1) }

// Closing reports whether Shut was called (a waiting Recv checks it after
// its wake-up).
func (g *Gate) Closing() bool { return g.closing.Load() }

// Shut makes Enter fail from now on.
func (g *Gate) Shut() { g.closing.Store(true) }

// Drain waits until every call that Enter registered has Exited.
func (g *Gate) Drain() {
	for g.active.Load() != 0 {
		time.Sleep(50 * time.Microsecond)
	}
}
