package h323

import (
	"net/netip"
	"testing"
)

// The walk alone, without the engine: for comparing walker changes by
// instructions (valgrind --tool=cachegrind) when the machine is too busy
// for wall time to say much.

func benchWalk(b *testing.B, msg []byte, ras bool, refs int) {
	var w walker
	_, _, uu, _, _ := q931(msg[4:])
	b.ReportAllocs()
	for b.Loop() {
		w.n = 0
		if ras {
			r := reader{b: msg}
			if w.ras(&r) != nil {
				b.Fatal("walk")
			}
			continue
		}
		r := reader{b: uu}
		if w.uuie(&r) != nil {
			b.Fatal("walk")
		}
	}
	if w.n != refs {
		b.Fatalf("%d addresses found, want %d", w.n, refs)
	}
}

// BenchmarkWalkAlerting walks an Alerting: the shortest body with an
// EndpointType.
func BenchmarkWalkAlerting(b *testing.B) { benchWalk(b, q931Msg(0x01, 0x8001, alertingUU()), false, 0) }

// BenchmarkWalkProgress walks a Progress with H.235 tokens and a fastStart.
func BenchmarkWalkProgress(b *testing.B) {
	stun := netip.MustParseAddr("198.51.100.7")
	fast := [][]byte{enc(func(w *perw) { olcReverse(w, 2, ap(stun, 7000), ap(stun, 7001)) })}
	benchWalk(b, q931Msg(0x03, 0x8001, progressUU(ap(stun, 40002), fast, h235Signed)), false, 3)
}

// BenchmarkWalkSetup walks a Setup with a fastStart.
func BenchmarkWalkSetup(b *testing.B) {
	stun := netip.MustParseAddr("198.51.100.7")
	fast := [][]byte{enc(func(w *perw) { olcReverse(w, 2, ap(stun, 7000), ap(stun, 7001)) })}
	benchWalk(b, q931Msg(0x05, 1, setupUU(ap(stun, 40002), fast)), false, 3)
}

// BenchmarkWalkRAS walks an RRQ to its timeToLive.
func BenchmarkWalkRAS(b *testing.B) {
	stun := netip.MustParseAddr("198.51.100.7")
	benchWalk(b, rrq(1, ap(stun, 1720), ap(stun, 1719), 300), true, 2)
}
