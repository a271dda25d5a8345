package afxdp

import (
	"bytes"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeOff lays a ring out in test memory as the kernel would: producer,
// consumer and flags on their own cache lines, then the entries.
var fakeOff = unix.XDPRingOffset{Producer: 0, Consumer: 64, Flags: 128, Desc: 192}

func fakeRing(size uint32, desc bool) ring {
	return newRing(make([]byte, ringBytes(fakeOff, size, desc)), fakeOff, size, desc)
}

// fakeSocket is a Socket over in-memory rings and UMEM, with no kernel:
// the test plays the kernel by moving the rings' indexes. Its flags never
// ask for a wakeup, so Send and Recv make no syscall.
func fakeSocket(t *testing.T, size uint32) *Socket {
	t.Helper()
	s := &Socket{iface: "fake", fd: -1, efd: -1, mtu: 1500, frameSize: 2048}
	s.umem = make([]byte, 2*int(size)*2048)
	s.fill, s.comp = fakeRing(size, false), fakeRing(size, false)
	s.rx, s.tx = fakeRing(size, true), fakeRing(size, true)
	n := s.fill.free(size)
	for i := range n {
		s.fill.addrs[(s.fill.local+i)&s.fill.mask] = uint64(i) * s.frameSize
	}
	s.fill.submit(n)
	s.held = make([]uint64, 0, size)
	for i := size; i < 2*size; i++ {
		s.txFree = append(s.txFree, uint64(i)*s.frameSize)
	}
	return s
}

// TestRingWrapAround runs a producer ring across the uint32 wrap of its
// indexes: free space, slots and the published index stay right.
func TestRingWrapAround(t *testing.T) {
	r := fakeRing(8, false)
	start := uint32(1<<32 - 3)
	r.local, r.remote = start, start
	atomic.StoreUint32(r.producer, start)
	atomic.StoreUint32(r.consumer, start)

	if n := r.free(100); n != 8 {
		t.Fatalf("free = %d on an empty ring of 8", n)
	}
	for i := range uint32(8) {
		r.addrs[(r.local+i)&r.mask] = uint64(100 + i)
	}
	r.submit(8)
	if got := atomic.LoadUint32(r.producer); got != start+8 || got != 5 {
		t.Fatalf("producer = %d, want %d (wrapped to 5)", got, start+8)
	}
	if n := r.free(1); n != 0 {
		t.Fatalf("free = %d on a full ring", n)
	}
	// The kernel consumes 3: the entries it read are the first three, in
	// the slots before and after the wrap.
	for i := range uint32(3) {
		if v := r.addrs[(start+i)&r.mask]; v != uint64(100+i) {
			t.Fatalf("slot of entry %d holds %d", i, v)
		}
	}
	atomic.StoreUint32(r.consumer, start+3)
	if n := r.free(8); n != 3 {
		t.Fatalf("free = %d after the consumer took 3", n)
	}

	// A consumer ring across the same wrap.
	c := fakeRing(8, true)
	c.local, c.remote = start, start
	for i := range uint32(6) {
		c.descs[(start+i)&c.mask] = unix.XDPDesc{Addr: uint64(i) * 2048, Len: 60 + i}
	}
	atomic.StoreUint32(c.producer, start+6)
	if n := c.ready(4); n != 4 {
		t.Fatalf("ready(4) = %d with 6 produced", n)
	}
	c.release(4)
	if n := c.ready(100); n != 2 {
		t.Fatalf("ready = %d, want the 2 left", n)
	}
	if d := c.descs[(c.local+1)&c.mask]; d.Len != 65 {
		t.Fatalf("6th descriptor %+v", d)
	}
	c.release(2)
	if got := atomic.LoadUint32(c.consumer); got != start+6 {
		t.Fatalf("consumer = %d", got)
	}
}

// TestFullFillRing: every RX frame is with the kernel (the fill ring is
// full from the start). Frames the kernel delivers come out of Recv's take
// and go back to the fill ring at the next call, the fill ring never
// overflows and no frame is lost or doubled.
func TestFullFillRing(t *testing.T) {
	const size = 8
	s := fakeSocket(t, size)
	if n := s.fill.free(1); n != 0 {
		t.Fatalf("fill ring has %d free slots at start, want 0", n)
	}
	frames := make([][]byte, 16)
	flags := make([]uint32, 16)
	for round := range 5 {
		// The kernel takes all 8 fill entries and delivers them on RX.
		cons := atomic.LoadUint32(s.fill.consumer)
		prod := atomic.LoadUint32(s.fill.producer)
		if prod-cons != size {
			t.Fatalf("round %d: fill ring holds %d, want all %d frames", round, prod-cons, size)
		}
		rp := atomic.LoadUint32(s.rx.producer)
		for i := range uint32(size) {
			addr := s.fill.addrs[(cons+i)&s.fill.mask]
			payload := []byte{byte(round), byte(i)}
			copy(s.umem[addr+256:], bytes.Repeat(payload, 30))
			s.rx.descs[(rp+i)&s.rx.mask] = unix.XDPDesc{Addr: addr + 256, Len: 60}
		}
		atomic.StoreUint32(s.fill.consumer, cons+size)
		atomic.StoreUint32(s.rx.producer, rp+size)

		s.refill()
		n := s.take(frames, flags)
		if n != size {
			t.Fatalf("round %d: took %d frames, want %d", round, n, size)
		}
		for i := range n {
			if len(frames[i]) != 60 || frames[i][0] != byte(round) || frames[i][1] != byte(i) || cap(frames[i]) != 60 {
				t.Fatalf("round %d frame %d: % x", round, i, frames[i][:2])
			}
		}
		s.refill() // the next Recv gives them back
	}
	if st := s.Stats(); st.RxPackets != 5*size {
		t.Fatalf("RxPackets %d", st.RxPackets)
	}
}

// TestFullTXRing: with the kernel not consuming, Send fills the TX ring,
// counts the rest as TxFull, and sends again once the kernel completes.
func TestFullTXRing(t *testing.T) {
	const size = 8
	s := fakeSocket(t, size)
	batch := make([][]byte, 12)
	for i := range batch {
		batch[i] = bytes.Repeat([]byte{byte(i + 1)}, 64)
	}
	n, err := s.Send(batch)
	if err != nil || n != size {
		t.Fatalf("Send = %d, %v; want %d queued", n, err, size)
	}
	st := s.Stats()
	if st.TxPackets != size || st.TxFull != 4 || st.TxErrors != 4 {
		t.Fatalf("stats %+v, want 8 sent, 4 tx_full", st)
	}
	// What the ring holds is the first 8 frames, copied into TX frames.
	for i := range uint32(size) {
		d := s.tx.descs[i&s.tx.mask]
		if d.Len != 64 || d.Addr < size*2048 || s.umem[d.Addr] != byte(i+1) {
			t.Fatalf("TX descriptor %d: %+v first byte %d", i, d, s.umem[d.Addr])
		}
	}
	// The ring is full: nothing more goes.
	if n, _ := s.Send(batch[:1]); n != 0 {
		t.Fatalf("Send on a full TX ring queued %d", n)
	}
	// The kernel sends 5 and completes them.
	atomic.StoreUint32(s.tx.consumer, 5)
	for i := range uint32(5) {
		s.comp.addrs[i] = s.tx.descs[i].Addr
	}
	atomic.StoreUint32(s.comp.producer, 5)
	n, err = s.Send(batch[:5])
	if err != nil || n != 5 {
		t.Fatalf("Send after completions = %d, %v; want 5", n, err)
	}
	if c := atomic.LoadUint32(s.comp.consumer); c != 5 {
		t.Fatalf("completion consumer %d, want 5", c)
	}
	// Bad frames are counted, not queued.
	atomic.StoreUint32(s.tx.consumer, 13)
	if n, _ := s.Send([][]byte{make([]byte, 13), make([]byte, 1515)}); n != 0 {
		t.Fatalf("queued %d bad frames", n)
	}
	if st := s.Stats(); st.TxBadFrame != 2 {
		t.Fatalf("TxBadFrame %d", st.TxBadFrame)
	}
}

func TestSendAllocs(t *testing.T) {
	s := fakeSocket(t, 64)
	batch := [][]byte{make([]byte, 64), make([]byte, 64)}
	allocs := testing.AllocsPerRun(100, func() {
		if n, _ := s.Send(batch); n != 2 {
			t.Fatal("not sent")
		}
		// The kernel sends and completes at once.
		p := s.tx.local
		atomic.StoreUint32(s.tx.consumer, p)
		cp := s.comp.remote
		for i := uint32(0); i < 2; i++ {
			s.comp.addrs[(cp+i)&s.comp.mask] = s.tx.descs[(p-2+i)&s.tx.mask].Addr
		}
		atomic.StoreUint32(s.comp.producer, cp+2)
		s.comp.remote = s.comp.local // let ready reload
	})
	if allocs != 0 {
		t.Fatalf("%v allocs per Send", allocs)
	}
}
