//go:build lab

package afpacket

import (
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkSendRecv64 pushes 64-byte frames across the veth pair in batches
// of 64: one goroutine Sends on a TX-only socket in namespace a, the
// benchmark goroutine Recvs on the other end. One op is one batch. The
// sender keeps at most a window of frames in flight, several blocks' worth
// (so blocks retire because they are full, not on the timer) but far below
// the ring's capacity (so nothing is dropped and every frame is counted).
func BenchmarkSendRecv64(b *testing.B) {
	l := newLab(b)
	tx := openIn(b, l.nsA, Config{Iface: devA, NoRx: true})
	rx := openIn(b, l.nsB, Config{Iface: devB})

	const batch, window = 64, 8192
	tok := newToken()
	out := make([][]byte, batch)
	for i := range out {
		out[i] = testFrame(tok, uint16(i), uint32(i), 64)
	}
	frames := make([][]byte, batch)
	total := int64(b.N) * batch

	var received atomic.Int64
	credit := make(chan struct{}, 1)
	senderDone := make(chan error, 1)

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	go func() {
		var sent int64
		for sent < total {
			for sent-received.Load() > window {
				<-credit
			}
			n, err := tx.Send(out[:min(batch, total-sent)])
			if err != nil {
				senderDone <- err
				return
			}
			sent += int64(n)
		}
		senderDone <- nil
	}()
	var got int64
	idle := 0
	for got < total {
		n, err := rx.Recv(frames, nil)
		if err != nil {
			b.Fatal(err)
		}
		if n == 0 {
			if idle++; idle > 40 { // 2s without a frame
				b.Fatalf("stalled at %d of %d frames; rx %+v tx %+v", got, total, rx.Stats(), tx.Stats())
			}
			continue
		}
		idle = 0
		got += int64(n)
		received.Store(got)
		select {
		case credit <- struct{}{}:
		default:
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if err := <-senderDone; err != nil {
		b.Fatal(err)
	}
	if st := rx.Stats(); st.RxDrops != 0 {
		b.Fatalf("ring dropped %d frames", st.RxDrops)
	}
	if st := tx.Stats(); st.TxErrors != 0 {
		b.Fatalf("%d tx errors", st.TxErrors)
	}
	b.ReportMetric(float64(total)/elapsed.Seconds(), "pkts/s")
}
