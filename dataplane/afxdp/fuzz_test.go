package afxdp

import (
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// FuzzDescriptor: whatever descriptor the RX ring holds, take hands out
// only a slice within one UMEM frame, and the frame goes back to the fill
// ring by its chunk address; Send of frames of any length queues, refuses
// or counts each exactly once.
func FuzzDescriptor(f *testing.F) {
	f.Add(uint64(256), uint32(60), 64)
	f.Add(uint64(2048-10), uint32(20), 13) // crosses into the next frame
	f.Add(uint64(1<<40), uint32(60), 1514) // beyond the UMEM
	f.Add(uint64(0), uint32(0), 1515)      // empty; too long to send
	f.Add(uint64(1<<64-8), uint32(16), 0)  // wraps around
	f.Fuzz(func(t *testing.T, addr uint64, n uint32, sendLen int) {
		s := fakeSocket(t, 8)
		rp := atomic.LoadUint32(s.rx.producer)
		s.rx.descs[rp&s.rx.mask] = unix.XDPDesc{Addr: addr, Len: n}
		atomic.StoreUint32(s.rx.producer, rp+1)
		frames := make([][]byte, 4)
		got := s.take(frames, nil)
		if got == 1 {
			start := addr
			if n == 0 || start/2048 != (start+uint64(n)-1)/2048 || start+uint64(n) > uint64(len(s.umem)) {
				t.Fatalf("took descriptor %#x+%d", addr, n)
			}
			if len(frames[0]) != int(n) || cap(frames[0]) != int(n) {
				t.Fatalf("frame len %d cap %d for %d", len(frames[0]), cap(frames[0]), n)
			}
		}
		if len(s.held) != 1 || s.held[0]%2048 != 0 {
			t.Fatalf("held %v", s.held)
		}

		if sendLen < 0 || sendLen > 1<<16 {
			return
		}
		sent, err := s.Send([][]byte{make([]byte, sendLen)})
		st := s.Stats()
		if err != nil || uint64(sent)+st.TxErrors != 1 || st.TxPackets != uint64(sent) {
			t.Fatalf("Send(%d bytes) = %d, %v; stats %+v", sendLen, sent, err, st)
		}
		if ok := sendLen >= 14 && sendLen <= 1514; ok != (sent == 1) {
			t.Fatalf("Send(%d bytes) sent %d", sendLen, sent)
		}
	})
}
