package nat

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"testing"

	"passgate/packet"
	"passgate/packet/pkttest"
)

// BenchmarkEstablishedUDP is the steady state: a known flow, both ways.
func BenchmarkEstablishedUDP(b *testing.B) {
	e := newEngine(b, nil)
	out := pkttest.UDP("192.168.50.10:5000", "203.0.113.10:9", make([]byte, 18))
	in := pkttest.UDP("203.0.113.10:9", "203.0.113.1:5000", make([]byte, 18))
	po, pi := append([]byte(nil), out...), append([]byte(nil), in...)
	e.Process(0, LAN, po)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		copy(po, out)
		if v := e.Process(Time(i), LAN, po); v.Action != Forward {
			b.Fatal(v)
		}
		copy(pi, in)
		if v := e.Process(Time(i), WAN, pi); v.Action != Forward {
			b.Fatal(v)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(2*b.N), "ns/pkt")
}

// BenchmarkNewFlow sets up a UDP flow per packet (a new source port each
// time, so a new mapping too), with expiry keeping the table from filling.
func BenchmarkNewFlow(b *testing.B) { benchNewFlow(b, [6]byte{}, 1<<17) }

// BenchmarkNewFlowFromMAC is BenchmarkNewFlow with the LAN frame's source
// MAC known, as the data plane gives it (ProcessFrom): each flow is
// charged to the MAC's share too.
func BenchmarkNewFlowFromMAC(b *testing.B) { benchNewFlow(b, [6]byte{2, 0, 0, 0, 0, 1}, 1<<17) }

// BenchmarkNewFlowBigTable is BenchmarkNewFlow in a table made for 1 M
// flows: its indexes (16 MB of flow index, 8 MB each of the mapper's)
// are far past the caches, so every slot a new flow reads is a miss to
// memory, where BenchmarkNewFlow's (2 MB and 1 MB) are partly cached.
func BenchmarkNewFlowBigTable(b *testing.B) { benchNewFlow(b, [6]byte{}, 1<<20) }

func benchNewFlow(b *testing.B, mac [6]byte, max int) {
	e := newEngine(b, func(c *Config) { c.MaxFlows = max; c.MaxFlowsPerHost = max })
	tmpl := pkttest.UDP("192.168.50.10:1", "203.0.113.10:9", make([]byte, 18))
	p := append([]byte(nil), tmpl...)
	b.ReportAllocs()
	b.ResetTimer()
	now := Time(0)
	for i := 0; i < b.N; i++ {
		copy(p, tmpl)
		port := uint16(i%60000) + 1024
		u := packet.UDP(packet.IPv4(p).Payload())
		u.SetSrcPort(port)
		if i%60000 == 59999 {
			// Let every flow of this round expire, as a busy table would.
			now += e.timeouts.udp + sec
			b.StopTimer()
			e.Expire(now)
			b.StartTimer()
		}
		var v Verdict
		if mac == ([6]byte{}) {
			v = e.Process(now, LAN, p)
		} else {
			v = e.ProcessFrom(now, LAN, mac, p)
		}
		if v.Action != Forward {
			b.Fatalf("%d: %+v", i, v)
		}
	}
}

func TestEstablishedPathAllocatesNothing(t *testing.T) {
	e := newEngine(t, nil)
	out := pkttest.UDP("192.168.50.10:5000", "203.0.113.10:9", make([]byte, 18))
	p := append([]byte(nil), out...)
	e.Process(0, LAN, p)
	tcp := pkttest.TCP("192.168.50.10:4000", "203.0.113.10:80", packet.TCPSyn, 1, 0, nil, nil)
	q := append([]byte(nil), tcp...)
	e.Process(0, LAN, q)
	ping := pkttest.Echo("192.168.50.10", "203.0.113.10", false, 9, 1, nil)
	r := append([]byte(nil), ping...)
	e.Process(0, LAN, r)
	n := testing.AllocsPerRun(1000, func() {
		copy(p, out)
		e.Process(1, LAN, p)
		copy(q, tcp)
		e.Process(1, LAN, q)
		copy(r, ping)
		e.Process(1, LAN, r)
	})
	if n != 0 {
		t.Fatalf("%v allocations per run on established flows", n)
	}
}

func TestNewFlowAllocatesNothing(t *testing.T) {
	e := newEngine(t, func(c *Config) { c.MaxFlows = 4096; c.MaxFlowsPerHost = 4096 })
	tmpl := pkttest.UDP("192.168.50.10:1", "203.0.113.10:9", nil)
	p := append([]byte(nil), tmpl...)
	port := uint16(2000)
	n := testing.AllocsPerRun(1000, func() {
		copy(p, tmpl)
		binary.BigEndian.PutUint16(p[20:], port)
		binary.BigEndian.PutUint16(p[26:], 0) // no checksum to keep
		port++
		if v := e.Process(1, LAN, p); v.Action != Forward {
			t.Fatal(v)
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations per new flow", n)
	}
}

// BenchmarkFastPathParallel forwards established UDP flows both ways
// through FastPath from every core at once (a flow per goroutine, as the
// data plane's workers under the engine's read lock): ns/pkt falls as
// cores are added (-cpu 1,2,4).
func BenchmarkFastPathParallel(b *testing.B) {
	e := newEngine(b, nil)
	const maxG = 256
	var tmpl [maxG][2][]byte
	for g := range tmpl {
		lan := fmt.Sprintf("192.168.50.%d:%d", 10+g%200, 20000+g)
		out := pkttest.UDP(lan, "203.0.113.10:9", make([]byte, 18))
		in := pkttest.UDP("203.0.113.10:9", fmt.Sprintf("203.0.113.1:%d", 20000+g), make([]byte, 18))
		e.Process(0, LAN, append([]byte(nil), out...))
		if v := e.Process(0, WAN, append([]byte(nil), in...)); v.Action != Forward {
			b.Fatal(v)
		}
		tmpl[g] = [2][]byte{out, in}
	}
	var next atomic.Int32
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		g := int(next.Add(1)-1) % maxG
		po, pi := append([]byte(nil), tmpl[g][0]...), append([]byte(nil), tmpl[g][1]...)
		var c Counters
		for i := Time(1); pb.Next(); i++ {
			copy(po, tmpl[g][0])
			if _, ok := e.FastPath(i, LAN, po, &c); !ok {
				b.Fatal("declined out")
			}
			copy(pi, tmpl[g][1])
			if _, ok := e.FastPath(i, WAN, pi, &c); !ok {
				b.Fatal("declined in")
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(2*b.N), "ns/pkt")
}

// BenchmarkEstablishedTCP is an established TCP connection's data one way
// and its ACKs the other, the sequence numbers moving as in a transfer
// (each packet is a run of its own: the most the sequence tracking costs).
func BenchmarkEstablishedTCP(b *testing.B) {
	e := newEngine(b, nil)
	c, s, pub := "192.168.50.10:40000", "203.0.113.10:80", "203.0.113.1:40000"
	for _, p := range []struct {
		from Iface
		b    []byte
	}{
		{LAN, pkttest.TCP(c, s, packet.TCPSyn, 100, 0, nil, nil)},
		{WAN, pkttest.TCP(s, pub, packet.TCPSyn|packet.TCPAck, 500, 101, nil, nil)},
		{LAN, pkttest.TCP(c, s, packet.TCPAck, 101, 501, nil, nil)},
	} {
		if v := e.Process(0, p.from, p.b); v.Action != Forward {
			b.Fatal(v)
		}
	}
	in := pkttest.TCP(s, pub, packet.TCPAck, 501, 101, nil, make([]byte, 1000))
	out := pkttest.TCP(c, s, packet.TCPAck, 101, 501, nil, nil)
	po, pi := append([]byte(nil), out...), append([]byte(nil), in...)
	b.ReportAllocs()
	b.ResetTimer()
	seq := uint32(501)
	for i := 0; i < b.N; i++ {
		copy(pi, in)
		binary.BigEndian.PutUint32(pi[24:], seq)
		seq += 1000
		if v := e.Process(Time(i), WAN, pi); v.Action != Forward {
			b.Fatal(v)
		}
		copy(po, out)
		binary.BigEndian.PutUint32(po[28:], seq)
		if v := e.Process(Time(i), LAN, po); v.Action != Forward {
			b.Fatal(v)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(2*b.N), "ns/pkt")
}

// BenchmarkNewFlowBatch is BenchmarkNewFlowFromMAC the data plane's way:
// the packets of 32 new flows a batch, Warm over the batch first (the
// lookups that will miss: their index slots), then each through
// ProcessFrom. ns/op is a flow's.
func BenchmarkNewFlowBatch(b *testing.B) {
	const batch = 32
	e := newEngine(b, func(c *Config) { c.MaxFlows = 1 << 17; c.MaxFlowsPerHost = 1 << 17 })
	tmpl := pkttest.UDP("192.168.50.10:1", "203.0.113.10:9", make([]byte, 18))
	var pkts [batch][]byte
	for j := range pkts {
		pkts[j] = make([]byte, len(tmpl))
	}
	mac := [6]byte{2, 0, 0, 0, 0, 1}
	now := Time(0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		n := min(batch, b.N-i)
		for j := range n {
			if k := i + j; k%60000 == 0 && k > 0 {
				// Every flow of the last round expires, as in
				// benchNewFlow.
				now += e.timeouts.udp + sec
				b.StopTimer()
				e.Expire(now)
				b.StartTimer()
			}
			copy(pkts[j], tmpl)
			packet.UDP(packet.IPv4(pkts[j]).Payload()).SetSrcPort(uint16((i+j)%60000) + 1024)
		}
		e.Warm(LAN, pkts[:n], 0)
		for j := range n {
			if v := e.ProcessFrom(now, LAN, mac, pkts[j]); v.Action != Forward {
				b.Fatalf("%d: %+v", i+j, v)
			}
		}
	}
}
