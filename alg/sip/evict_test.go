package sip

import (
	"testing"

	"passgate/nat"
)

// A full table gives up the entry used longest ago, whatever the order the
// map walks in.
func TestDropOldest(t *testing.T) {
	for range 20 {
		calls := map[uint64]call{1: {last: 30}, 2: {last: 10}, 3: {last: 20}}
		dropOldest(calls, func(c call) nat.Time { return c.last })
		if _, ok := calls[2]; ok || len(calls) != 2 {
			t.Fatalf("after dropOldest: %v", calls)
		}
	}
}
