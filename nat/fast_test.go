package nat

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"unsafe"

	"passgate/packet"
	. "passgate/packet/pkttest"
)

// FastPath takes only what Process would forward with no other effect;
// everything else comes back untouched for Process.
func TestFastPathDeclines(t *testing.T) {
	e := newEngine(t, nil)
	lan, srv, pub := "192.168.50.10:40000", "203.0.113.10:80", "203.0.113.1:40000"
	udpLAN, udpSrv, udpPub := "192.168.50.10:5000", "203.0.113.10:53", "203.0.113.1:5000"

	// A UDP flow whose reply has not come yet, and a TCP connection
	// through its handshake.
	pass(t, e, sec, LAN, UDP(udpLAN, udpSrv, []byte("q")), WAN)
	pass(t, e, sec, LAN, TCP(lan, srv, packet.TCPSyn, 100, 0, nil, nil), WAN)
	pass(t, e, sec, WAN, TCP(srv, pub, packet.TCPSyn|packet.TCPAck, 500, 101, nil, nil), LAN)
	pass(t, e, sec, LAN, TCP(lan, srv, packet.TCPAck, 101, 501, nil, nil), WAN)

	for _, tc := range []struct {
		name string
		from Iface
		b    []byte
	}{
		{"new flow", LAN, UDP("192.168.50.11:5000", udpSrv, nil)},
		{"first reply", WAN, UDP(udpSrv, udpPub, []byte("a"))},
		{"FIN", LAN, TCP(lan, srv, packet.TCPFin|packet.TCPAck, 101, 501, nil, nil)},
		{"RST", WAN, TCP(srv, pub, packet.TCPRst, 501, 0, nil, nil)},
		{"SYN again", LAN, TCP(lan, srv, packet.TCPSyn, 100, 0, nil, nil)},
		{"TTL 1", LAN, TCP(lan, srv, packet.TCPAck, 101, 501, nil, nil, TTL(1))},
		{"first fragment", LAN, Fragment(UDP(udpLAN, udpSrv, make([]byte, 1200)), 600)[0]},
		{"to the router", LAN, UDP(udpLAN, "192.168.50.1:53", nil)},
		{"ICMP echo", LAN, Echo("192.168.50.10", "203.0.113.10", false, 7, 1, nil)},
		{"too big for the WAN", LAN, TCP(lan, srv, packet.TCPAck, 101, 501, nil, make([]byte, 1500), DF())},
		{"bad header checksum", LAN, func() []byte {
			b := TCP(lan, srv, packet.TCPAck, 101, 501, nil, nil)
			b[10] ^= 0xff
			return b
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := append([]byte(nil), tc.b...)
			st := e.Stats()
			var c Counters
			if v, ok := e.FastPath(2*sec, tc.from, tc.b, &c); ok {
				t.Fatalf("taken: %+v", v)
			}
			if !bytes.Equal(tc.b, before) || c != (Counters{}) {
				t.Fatalf("declined but changed: packet %v, counters %+v", !bytes.Equal(tc.b, before), c)
			}
			if after := e.Stats(); after.Packets != st.Packets || after.Flows != st.Flows {
				t.Fatalf("declined but the engine changed: %+v -> %+v", st.Packets, after.Packets)
			}
		})
	}

	// What it takes, it translates as Process does, and counts for the
	// caller.
	var c Counters
	b := TCP(srv, pub, packet.TCPAck|packet.TCPPsh, 501, 101, nil, []byte("data"))
	v, ok := e.FastPath(2*sec, WAN, b, &c)
	if !ok || v.Action != Forward || v.Out != LAN {
		t.Fatalf("established TCP: %+v %v", v, ok)
	}
	IPv4(t, b, Src(srv), Dst(lan), TTLIs(63), L4Payload([]byte("data")))
	if c.Packets[WAN] != 1 || c.Bytes[WAN] != uint64(len(b)) {
		t.Fatalf("counters %+v", c)
	}
	// And the flow lives on for the established timeout from then.
	e.Expire(2*sec + e.timeouts.tcpEst - sec)
	if n := e.Stats().FlowsByProto["tcp"]; n != 1 {
		t.Fatalf("TCP flows %d after the fast path extended the deadline, want 1", n)
	}
	e.Expire(2*sec + e.timeouts.tcpEst + sec)
	if n := e.Stats().FlowsByProto["tcp"]; n != 0 {
		t.Fatalf("TCP flows %d after the established timeout, want 0", n)
	}
}

// Workers call FastPath at once, each on its own flows and all on a
// shared one (both directions), as the data plane does under its read
// lock. Run with -race: nothing but the packets, the callers' counters
// and the flows' atomics may be written.
func TestFastPathConcurrent(t *testing.T) {
	e := newEngine(t, nil)
	const workers, flows, rounds = 4, 8, 500
	shared := UDP("192.168.50.20:7000", "203.0.113.10:9", nil)
	pass(t, e, 0, LAN, append([]byte(nil), shared...), WAN) // pass rewrites what it is given
	pass(t, e, 0, WAN, UDP("203.0.113.10:9", "203.0.113.1:7000", nil), LAN)
	var own [workers][flows][2][]byte
	for w := range own {
		for f := range own[w] {
			lan := fmt.Sprintf("192.168.50.%d:%d", 30+w, 10000+f+100*w) // a free port: kept outside
			pass(t, e, 0, LAN, UDP(lan, "203.0.113.10:9", nil), WAN)
			pass(t, e, 0, WAN, UDP("203.0.113.10:9", fmt.Sprintf("203.0.113.1:%d", 10000+f+100*w), nil), LAN)
			own[w][f] = [2][]byte{
				UDP(lan, "203.0.113.10:9", []byte("out")),
				UDP("203.0.113.10:9", fmt.Sprintf("203.0.113.1:%d", 10000+f+100*w), []byte("in")),
			}
		}
	}
	var wg sync.WaitGroup
	counts := make([]Counters, workers)
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 128)
			for r := 0; r < rounds; r++ {
				for f := 0; f < flows; f++ {
					for d, tmpl := range own[w][f] {
						b := buf[:copy(buf, tmpl)]
						if _, ok := e.FastPath(Time(r), Iface(d), b, &counts[w]); !ok {
							errs <- fmt.Errorf("worker %d flow %d dir %d declined", w, f, d)
							return
						}
					}
				}
				b := buf[:copy(buf, shared)]
				if _, ok := e.FastPath(Time(r), LAN, b, &counts[w]); !ok {
					errs <- fmt.Errorf("worker %d: shared flow declined", w)
					return
				}
				if r%7 == 0 {
					e.Flush(&counts[w]) // as a worker does at the end of a batch
				}
			}
			e.Flush(&counts[w])
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var total uint64
	for _, c := range counts {
		total += c.Packets[LAN] + c.Packets[WAN]
	}
	if want := uint64(workers * rounds * (2*flows + 1)); total != want {
		t.Fatalf("counted %d packets, want %d", total, want)
	}
	// The shared flow's count is exact: atomics, not lost updates.
	var sharedOut uint64
	e.Flows(0, func(fi FlowInfo) bool {
		if fi.Inside.String() == "192.168.50.20:7000" {
			sharedOut = fi.PacketsOut
		}
		return true
	})
	if want := uint64(1 + workers*rounds); sharedOut != want {
		t.Fatalf("shared flow counted %d packets out, want %d", sharedOut, want)
	}
}

// TestVerdictLayout: forwardTo writes a Verdict as one word, which takes
// its fields where they are here.
func TestVerdictLayout(t *testing.T) {
	var v Verdict
	if unsafe.Sizeof(v) != 8 || unsafe.Offsetof(v.Action) != 0 || unsafe.Offsetof(v.Out) != 1 ||
		unsafe.Offsetof(v.NextHop) != 2 || unsafe.Offsetof(v.Reason) != 6 {
		t.Fatalf("Verdict layout changed: forwardTo must follow")
	}
	got := forwardTo(WAN, 0xcb007101, 0)
	want := Verdict{Action: Forward, Out: WAN, NextHop: [4]byte{203, 0, 113, 1}}
	if got != want {
		t.Fatalf("forwardTo = %+v, want %+v", got, want)
	}
}
