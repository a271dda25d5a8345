package nat

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"passgate/conntrack"
	"passgate/packet"
	"passgate/packet/pkttest"
)

// liveFlows is an engine holding n established UDP flows (n a power of
// 4): side LAN endpoints, each talking to side remote hosts, every flow
// answered. out and in hold each flow's packets both ways, stride bytes
// apart, as they arrive.
type liveFlows struct {
	e       *Engine
	out, in []byte
	stride  int
}

func newLiveFlows(tb testing.TB, n int) *liveFlows {
	side := 1
	for side*side < n {
		side *= 2
	}
	e := newEngine(tb, func(c *Config) { c.MaxFlows = n; c.MaxFlowsPerHost = n })
	const stride = 20 + 8 + 18
	l := &liveFlows{e: e, stride: stride, out: make([]byte, n*stride), in: make([]byte, n*stride)}
	p := make([]byte, stride)
	outT := pkttest.UDP("192.168.50.10:1", "198.18.0.1:9", make([]byte, 18))
	inT := pkttest.UDP("198.18.0.1:9", "203.0.113.1:1", make([]byte, 18))
	for i := range n {
		lan, remote := i/side, i%side
		raddr := [4]byte{198, 18, byte(remote >> 8), byte(remote)}
		o := packet.IPv4(l.out[i*l.stride : (i+1)*l.stride])
		copy(o, outT)
		setAddrs(o, [4]byte{192, 168, 50, byte(10 + lan%200)}, raddr, uint16(10000+lan), 9)
		copy(p, o)
		if v := e.Process(0, LAN, p); v.Action != Forward {
			tb.Fatalf("flow %d out: %+v", i, v)
		}
		ext := packet.UDP(packet.IPv4(p).Payload()).SrcPort()
		in := packet.IPv4(l.in[i*l.stride : (i+1)*l.stride])
		copy(in, inT)
		setAddrs(in, raddr, [4]byte{203, 0, 113, 1}, 9, ext)
		copy(p, in)
		if v := e.Process(0, WAN, p); v.Action != Forward {
			tb.Fatalf("flow %d in: %+v", i, v)
		}
	}
	if got := e.ct.Len(); got != n {
		tb.Fatalf("%d flows live, want %d", got, n)
	}
	return l
}

// setAddrs rewrites a UDP packet's endpoints, checksums kept right.
func setAddrs(ip packet.IPv4, src, dst [4]byte, sport, dport uint16) {
	u := packet.UDP(ip.Payload())
	u.UpdateAddr(ip.Src(), src)
	u.UpdateAddr(ip.Dst(), dst)
	ip.SetSrc(src)
	ip.SetDst(dst)
	u.SetSrcPort(sport)
	u.SetDstPort(dport)
}

// BenchmarkEstablishedUDPLive is BenchmarkEstablishedUDP with 1 k, 64 k
// and 1 M live flows, a random one of them per iteration (its packet out
// and its answer in): the cost per packet should not grow with the
// table, but for the cache misses that a table larger than the caches
// costs.
func BenchmarkEstablishedUDPLive(b *testing.B) {
	for _, n := range []int{1 << 10, 1 << 16, 1 << 20} {
		b.Run("flows="+flowsName(n), func(b *testing.B) {
			l := newLiveFlows(b, n)
			order := rand.New(rand.NewPCG(1, 2)).Perm(n)
			p := make([]byte, l.stride)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				j := order[i%n] * l.stride
				copy(p, l.out[j:j+l.stride])
				if v := l.e.Process(Time(i), LAN, p); v.Action != Forward {
					b.Fatal(v)
				}
				copy(p, l.in[j:j+l.stride])
				if v := l.e.Process(Time(i), WAN, p); v.Action != Forward {
					b.Fatal(v)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(2*b.N), "ns/pkt")
		})
	}
}

func flowsName(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dM", n>>20)
	}
	return fmt.Sprintf("%dk", n>>10)
}

// BenchmarkEngineMemoryPerFlow reports what an engine holding 1 M live
// flows (MaxFlows 1 M) takes per flow and in all: the flow table, the
// mapper, the helpers' index and per-flow state (the Go heap the engine
// took, and the record pool's resident pages: the pool reserves room
// for every flow's record as address space, reported apart); for established UDP
// flows (newLiveFlows) and established TCP ones (newLiveTCPFlows: most
// of a real router's flows are TCP, and a TCP flow has sequence state).
func BenchmarkEngineMemoryPerFlow(b *testing.B) {
	const n = 1 << 20
	for _, proto := range []string{"udp", "tcp"} {
		b.Run(proto, func(b *testing.B) {
			var per float64
			var reserved, resident int
			for i := 0; i < b.N; i++ {
				runtime.GC()
				var m0, m1 runtime.MemStats
				runtime.ReadMemStats(&m0)
				var e *Engine
				if proto == "udp" {
					l := newLiveFlows(b, n)
					// The packets are the benchmark's, not the engine's.
					l.out, l.in = nil, nil
					e = l.e
				} else {
					e = newLiveTCPFlows(b, n)
				}
				runtime.GC()
				runtime.ReadMemStats(&m1)
				// The flow table's record pool is address space apart
				// from the heap (conntrack.Table.ExtMemory): what of it
				// is resident counts, the rest is reserved only.
				reserved, resident = e.ct.ExtMemory()
				runtime.KeepAlive(e)
				per = (float64(m1.HeapAlloc-m0.HeapAlloc) + float64(resident)) / n
			}
			b.ReportMetric(per, "bytes/flow")
			b.ReportMetric(per*n/(1<<20), "MB/1M-flows")
			b.ReportMetric(float64(resident)/n, "pool-resident-bytes/flow")
			b.ReportMetric(float64(reserved)/n, "pool-reserved-bytes/flow")
		})
	}
}

// newLiveTCPFlows is an engine holding n established TCP connections
// (n a power of 4), laid out as newLiveFlows's UDP flows: each opened
// from the LAN with a SYN, answered with a SYN-ACK, acknowledged.
func newLiveTCPFlows(tb testing.TB, n int) *Engine {
	side := 1
	for side*side < n {
		side *= 2
	}
	e := newEngine(tb, func(c *Config) { c.MaxFlows = n; c.MaxFlowsPerHost = n })
	for i := range n {
		lan, remote := i/side, i%side
		c := fmt.Sprintf("192.168.50.%d:%d", 10+lan%200, 10000+lan)
		s := fmt.Sprintf("198.18.%d.%d:80", remote>>8, remote&0xff)
		syn := pkttest.TCP(c, s, packet.TCPSyn, 100, 0, nil, nil)
		if v := e.Process(0, LAN, syn); v.Action != Forward {
			tb.Fatalf("flow %d syn: %+v", i, v)
		}
		pub := fmt.Sprintf("203.0.113.1:%d", packet.TCP(packet.IPv4(syn).Payload()).SrcPort())
		if v := e.Process(0, WAN, pkttest.TCP(s, pub, packet.TCPSyn|packet.TCPAck, 500, 101, nil, nil)); v.Action != Forward {
			tb.Fatalf("flow %d syn-ack: %+v", i, v)
		}
		if v := e.Process(0, LAN, pkttest.TCP(c, s, packet.TCPAck, 101, 501, nil, nil)); v.Action != Forward {
			tb.Fatalf("flow %d ack: %+v", i, v)
		}
	}
	if got := e.ct.Len(); got != n {
		tb.Fatalf("%d flows live, want %d", got, n)
	}
	if got := e.ct.ProtoFlows(packet.ProtoTCP); got != n {
		tb.Fatalf("%d TCP flows live, want %d", got, n)
	}
	return e
}

// BenchmarkEstablishedUDPLiveBatch is the data plane's way with the live
// flows of BenchmarkEstablishedUDPLive: batches of 32 packets, each of a
// random flow, through FastPath (one Counters, flushed per batch), the
// packets out then their answers in; mode fast is that alone, warm calls
// Warm on each batch first, warmonly calls Warm alone (what Warm costs,
// its wait for the index slots). Each batch's packets are copied from the big
// arrays first (as a NIC's ring hands over a batch), and those copies
// miss the caches and the TLB too: mode copy is the copies alone, the
// benchmark's own share of the other two modes' ns/pkt.
func BenchmarkEstablishedUDPLiveBatch(b *testing.B) {
	const batch = 32
	for _, n := range []int{1 << 10, 1 << 16, 1 << 20} {
		l := newLiveFlows(b, n)
		order := rand.New(rand.NewPCG(1, 2)).Perm(n)
		var bufs [batch][]byte
		for i := range bufs {
			bufs[i] = make([]byte, l.stride)
		}
		pkts := bufs[:]
		for _, mode := range []string{"copy", "fast", "warm", "warmonly"} {
			b.Run(fmt.Sprintf("flows=%s/mode=%s", flowsName(n), mode), func(b *testing.B) {
				var c Counters
				var sink uint64
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					for dir, src := range [2][]byte{l.out, l.in} {
						for j := range pkts {
							o := order[(i*batch+j)%n] * l.stride
							copy(pkts[j], src[o:o+l.stride])
						}
						switch mode {
						case "copy":
							sink += uint64(pkts[0][0])
							continue
						case "warm":
							sink ^= l.e.Warm(Iface(dir), pkts, 0)
						case "warmonly":
							sink ^= l.e.Warm(Iface(dir), pkts, 0)
							continue
						}
						for _, p := range pkts {
							if _, ok := l.e.FastPath(Time(i), Iface(dir), p, &c); !ok {
								b.Fatal("declined")
							}
						}
						l.e.Flush(&c)
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(2*batch*b.N), "ns/pkt")
				runtime.KeepAlive(sink)
			})
		}
	}
}

// BenchmarkEstablishedUDPLiveBatchPipelined is ...LiveBatch's mode warm
// (here warm, the baseline, in the same process) against Warm's two
// stages run ahead of FastPath (software pipelining across batches).
// Batch k is 32 packets out (k even) or in (k odd), each of a random
// flow, copied as ...LiveBatch copies them. Mode pipe2 holds two batches:
// WarmSlots(k+1), FastPath of k's first half, WarmFlows(k+1), k's second
// half (the slots and the flows each have half a batch's time to come).
// Mode pipe3 holds three: WarmSlots(k+2), WarmFlows(k+1), FastPath(k)
// (each a whole batch's time). Modes warmonly and pipe3only are warm and
// pipe3 without FastPath: the copies and the warming alone. None is
// ahead of warm at any size (docs/DESIGN.md, "The engine's own cost").
func BenchmarkEstablishedUDPLiveBatchPipelined(b *testing.B) {
	const batch = 32
	for _, n := range []int{1 << 10, 1 << 16, 1 << 20} {
		l := newLiveFlows(b, n)
		order := rand.New(rand.NewPCG(1, 2)).Perm(n)
		var sets [3][][]byte
		for s := range sets {
			sets[s] = make([][]byte, batch)
			for i := range sets[s] {
				sets[s][i] = make([]byte, l.stride)
			}
		}
		// load copies batch k into its set and says which it is.
		load := func(k int) (Iface, [][]byte) {
			src, base := l.out, (k>>1)*batch
			if k&1 == 1 {
				src = l.in
			}
			pkts := sets[k%3]
			for j := range pkts {
				o := order[(base+j)%n] * l.stride
				copy(pkts[j], src[o:o+l.stride])
			}
			return Iface(k & 1), pkts
		}
		fast := func(k int, dir Iface, pkts [][]byte, c *Counters) {
			for _, p := range pkts {
				if _, ok := l.e.FastPath(Time(k>>1), dir, p, c); !ok {
					b.Fatal("declined")
				}
			}
		}
		for _, mode := range []string{"warm", "pipe2", "pipe3", "warmonly", "pipe3only"} {
			b.Run(fmt.Sprintf("flows=%s/mode=%s", flowsName(n), mode), func(b *testing.B) {
				var c Counters
				var sink uint64
				var dirs [3]Iface
				switch mode {
				case "pipe2":
					dirs[0], _ = load(0)
					sink ^= l.e.Warm(dirs[0], sets[0], 0)
				case "pipe3", "pipe3only":
					dirs[0], _ = load(0)
					dirs[1], _ = load(1)
					sink ^= l.e.Warm(dirs[0], sets[0], 0)
					warmStage(l.e, warmSlots, dirs[1], sets[1], 0)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for k := 0; k < 2*b.N; k++ {
					switch mode {
					case "warm":
						dir, pkts := load(k)
						sink ^= l.e.Warm(dir, pkts, 0)
						fast(k, dir, pkts, &c)
					case "pipe2":
						next, npkts := load(k + 1)
						dirs[(k+1)%3] = next
						warmStage(l.e, warmSlots, next, npkts, 0)
						pkts := sets[k%3]
						fast(k, dirs[k%3], pkts[:batch/2], &c)
						sink ^= warmStage(l.e, warmFlows, next, npkts, 0)
						fast(k, dirs[k%3], pkts[batch/2:], &c)
					case "pipe3", "pipe3only":
						next2, n2pkts := load(k + 2)
						dirs[(k+2)%3] = next2
						warmStage(l.e, warmSlots, next2, n2pkts, 0)
						sink ^= warmStage(l.e, warmFlows, dirs[(k+1)%3], sets[(k+1)%3], 0)
						if mode == "pipe3" {
							fast(k, dirs[k%3], sets[k%3], &c)
						}
					case "warmonly":
						dir, pkts := load(k)
						sink ^= l.e.Warm(dir, pkts, 0)
					}
					l.e.Flush(&c)
				}
				b.StopTimer()
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(2*batch*b.N), "ns/pkt")
				runtime.KeepAlive(sink)
			})
		}
	}
}

// BenchmarkOffloadSync is what the router's install sync costs the engine
// with one flow newly offloadable and n flows live, all offloaded: New is
// OffloadNew (the queue), Walk the walk of every flow (Offloadable) it
// replaces, whose cost grew with the table.
func BenchmarkOffloadSync(b *testing.B) {
	for _, n := range []int{1024, 16384, 65536} {
		l := newLiveFlows(b, n)
		var ids []int32
		l.e.OffloadNew(0, func(f *OffloadFlow) bool { ids = append(ids, f.ID); return true })
		if len(ids) != n {
			b.Fatalf("%d flows offered, want %d", len(ids), n)
		}
		take := func(*OffloadFlow) bool { return true }
		b.Run(fmt.Sprintf("New/flows=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				id := ids[i%n]
				l.e.OffloadAgain(id, l.e.ct.Get(id).Gen)
				l.e.OffloadNew(0, take)
			}
		})
		b.Run(fmt.Sprintf("Walk/flows=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				l.e.Offloadable(0, take)
			}
		})
	}
}

// The stages of Warm warmStage runs.
const (
	warmSlots = iota // conntrack.Table.WarmSlots: prefetch the index slots
	warmFlows        // conntrack.Table.WarmFlows: read them, prefetch the flows
)

// warmStage is one of Warm's two stages (conntrack.Table.WarmSlots, then
// WarmFlows a batch later) over pkts as Warm takes them, for
// BenchmarkEstablishedUDPLiveBatchPipelined; the router does not pipeline
// (docs/DESIGN.md, "The engine's own cost": it did not help).
func warmStage(e *Engine, stage int, from Iface, pkts [][]byte, off int) uint64 {
	if e.ct.Len() < warmMinFlows {
		return 0
	}
	var sink uint64
	var keys [conntrack.WarmBatch]conntrack.Key
	for len(pkts) > 0 {
		var n int
		n, pkts = warmKeys(&keys, from, pkts, off)
		if stage == warmSlots {
			e.ct.WarmSlots(keys[:n])
		} else {
			sink ^= e.ct.WarmFlows(keys[:n])
		}
	}
	return sink
}
