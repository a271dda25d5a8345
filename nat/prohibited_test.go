package nat

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"passgate/packet"
	. "passgate/packet/pkttest"
)

// answered opens a UDP flow from src to dst and answers it, so that no
// early drop may take it.
func answered(t *testing.T, e *Engine, src, dst string) {
	t.Helper()
	ext := extPort(pass(t, e, 0, LAN, UDP(src, dst, nil), WAN))
	pass(t, e, 0, WAN, UDP(dst, fmt.Sprintf("203.0.113.1:%d", ext), nil), LAN)
}

// wantProhibited checks that the engine emitted exactly one packet: the
// destination unreachable, communication administratively prohibited
// (RFC 5508 REQ-8) that the router would send about orig, byte for byte,
// toward host on the LAN (its IP ID whatever the engine drew).
func wantProhibited(t *testing.T, e *Engine, orig []byte, host string) {
	t.Helper()
	em := e.Emitted()
	if len(em) != 1 {
		t.Fatalf("emitted %d packets, want 1", len(em))
	}
	got := em[0].Frame[EtherHeadroom:]
	quote := orig[:min(len(orig), 576-28)]
	want := ICMP("192.168.50.1", host, packet.ICMPUnreachable, 13, 0, quote, ID(packet.IPv4(got).ID()))
	IPv4(t, got, Src("192.168.50.1"), Dst(host), ICMPType(packet.ICMPUnreachable, 13))
	if !bytes.Equal(got, want) {
		t.Fatalf("emitted\n% x\nwant\n% x", got, want)
	}
	if em[0].Out != LAN || em[0].NextHop != addr4(host) {
		t.Fatalf("sent out %v to %v", em[0].Out, em[0].NextHop)
	}
	e.ResetEmitted()
}

func addr4(s string) [4]byte {
	var a [4]byte
	fmt.Sscanf(s, "%d.%d.%d.%d", &a[0], &a[1], &a[2], &a[3])
	return a
}

// TestProhibitedWhenNoSession: a LAN packet whose flow a limit refuses
// (the host's share, the table, the outside ports) is dropped, counted
// under its reason, and its sender gets the RFC 792 error quoting it as it
// arrived (as much as fits in 576 bytes).
func TestProhibitedWhenNoSession(t *testing.T) {
	t.Run("host_limit", func(t *testing.T) {
		e := newEngine(t, func(c *Config) { c.MaxFlows = 32; c.MaxFlowsPerHost = 4 })
		for p := 0; p < 4; p++ {
			answered(t, e, fmt.Sprintf("192.168.50.10:%d", 2000+p), "203.0.113.10:1")
		}
		syn := TCP("192.168.50.10:40000", "198.51.100.7:443", packet.TCPSyn, 0x01020304, 0, nil, nil, DF())
		orig := append([]byte(nil), syn...)
		dropped(t, e, sec, LAN, syn, DropHostLimit)
		wantProhibited(t, e, orig, "192.168.50.10")
		// A big datagram is quoted up to 576 bytes in all.
		big := UDP("192.168.50.10:40001", "198.51.100.7:53", make([]byte, 1200))
		orig = append([]byte(nil), big...)
		dropped(t, e, 2*sec, LAN, big, DropHostLimit)
		wantProhibited(t, e, orig, "192.168.50.10")
		// An echo request is a query: it is told too.
		ping := Echo("192.168.50.10", "198.51.100.7", false, 77, 1, []byte("abcdefgh"))
		orig = append([]byte(nil), ping...)
		dropped(t, e, 3*sec, LAN, ping, DropHostLimit)
		wantProhibited(t, e, orig, "192.168.50.10")
		if s := e.Stats(); s.ProhibitedSent != 3 || s.ProhibitedSuppressed != 0 || s.Flows != 4 {
			t.Fatalf("sent %d, suppressed %d, flows %d", s.ProhibitedSent, s.ProhibitedSuppressed, s.Flows)
		}
	})
	t.Run("table_full", func(t *testing.T) {
		e := newEngine(t, func(c *Config) {
			c.MaxFlows = 16
			c.MaxFlowsPerHost = 8
			c.Filtering = EndpointIndependent
		})
		for p := 0; p < 16; p++ {
			answered(t, e, fmt.Sprintf("192.168.50.%d:%d", 10+p/8, 2000+p), "203.0.113.10:1")
		}
		u := UDP("192.168.50.12:5000", "198.51.100.7:53", []byte("query"))
		orig := append([]byte(nil), u...)
		dropped(t, e, sec, LAN, u, DropTableFull)
		wantProhibited(t, e, orig, "192.168.50.12")
		// Refused from the WAN (a new remote on a mapping that its
		// filtering admits): no answer toward the WAN.
		dropped(t, e, sec, WAN, UDP("198.51.100.99:7", "203.0.113.1:2000", nil), DropTableFull)
		// Nor about a datagram to the WAN network's broadcast address.
		dropped(t, e, sec, LAN, UDP("192.168.50.12:5001", "203.0.113.255:9", nil), DropTableFull)
		if em := e.Emitted(); len(em) != 0 {
			t.Fatalf("emitted %d packets", len(em))
		}
		if s := e.Stats(); s.ProhibitedSent != 1 || s.ProhibitedSuppressed != 0 {
			t.Fatalf("sent %d, suppressed %d", s.ProhibitedSent, s.ProhibitedSuppressed)
		}
	})
	t.Run("ports_exhausted", func(t *testing.T) {
		e := newEngine(t, func(c *Config) { c.PortLo, c.PortHi = 10000, 10063 })
		// The LAN port is kept when free, wherever it is: these take
		// the whole range, and the next LAN port in it finds none.
		for p := 0; p < 64; p++ {
			pass(t, e, 0, LAN, UDP(fmt.Sprintf("192.168.50.10:%d", 10000+p), "203.0.113.10:1", nil), WAN)
		}
		u := UDP("192.168.50.11:10005", "198.51.100.7:53", nil)
		orig := append([]byte(nil), u...)
		dropped(t, e, sec, LAN, u, DropPortsExhausted)
		wantProhibited(t, e, orig, "192.168.50.11")
	})
}

// TestProhibitedRateLimited: a LAN flooding new flows at a full table gets
// prohibHostBurst errors at once and then prohibHostRate a second, and
// all hosts together a quarter of ICMPRate a second, however fast they
// send; the rest are counted as suppressed, and the other generated errors
// keep their own budget.
func TestProhibitedRateLimited(t *testing.T) {
	e := newEngine(t, func(c *Config) { c.PortLo, c.PortHi = 10000, 10063; c.ICMPRate = 100 })
	for p := 0; p < 64; p++ {
		pass(t, e, 0, LAN, UDP(fmt.Sprintf("192.168.50.10:%d", 10000+p), "203.0.113.10:1", nil), WAN)
	}
	perHost := map[[4]byte]int{}
	count := func() {
		for _, m := range e.Emitted() {
			perHost[m.NextHop]++
		}
		e.ResetEmitted()
	}
	// One host, 100 000 packets over 10 s.
	n := 0
	for i := 0; i < 100000; i++ {
		u := UDP(fmt.Sprintf("192.168.50.11:%d", 10000+i%64), "198.51.100.7:53", nil)
		if v := e.Process(Time(i)*100*1000, LAN, u); v.Reason != DropPortsExhausted {
			t.Fatalf("packet %d: %+v", i, v)
		}
		n++
		count()
	}
	host := [4]byte{192, 168, 50, 11}
	if want := prohibHostBurst + 9; perHost[host] != want {
		t.Fatalf("one host flooding for 10 s got %d errors, want %d", perHost[host], want)
	}
	// 200 hosts, each as fast, for 10 s more: the bound for all holds.
	start := 10 * sec
	for i := 0; i < 200000; i++ {
		h := 20 + i%200
		u := UDP(fmt.Sprintf("192.168.50.%d:%d", h, 10000+i%64), "198.51.100.7:53", nil)
		e.Process(start+Time(i)*50*1000, LAN, u)
		n++
		count()
	}
	total := 0
	for a, k := range perHost {
		total += k
		if a != host && k > prohibHostBurst+10 {
			t.Fatalf("host %v got %d errors", a, k)
		}
	}
	// The first host's 13, then a burst of 25 and 25 a second for 10 s.
	if want := 13 + 25 + 25*10; total > want+1 || total < want-1 {
		t.Fatalf("%d errors in all, want %d", total, want)
	}
	s := e.Stats()
	if s.ProhibitedSent != uint64(total) || s.ProhibitedSent+s.ProhibitedSuppressed != uint64(n) {
		t.Fatalf("sent %d, suppressed %d, of %d (emitted %d)", s.ProhibitedSent, s.ProhibitedSuppressed, n, total)
	}
	// The flood spent none of the other errors' budget.
	dropped(t, e, start+10*sec, LAN, UDP("192.168.50.12:33434", "203.0.113.20:33434", nil, TTL(1)), DropTTLExceeded)
	if em := e.Emitted(); len(em) != 1 || em[0].Frame[EtherHeadroom+20] != packet.ICMPTimeExceeded {
		t.Fatalf("time exceeded not sent after the flood: %d emitted", len(em))
	}
}

// BenchmarkRefusedFlow: a LAN packet whose flow finds no outside port,
// answered with the administratively prohibited error (a second apart, so
// the buckets always let it go) or held back by them (flood); neither
// allocates.
func BenchmarkRefusedFlow(b *testing.B) {
	for _, tc := range []struct {
		name string
		step Time
	}{{"sent", sec}, {"flood", 0}} {
		b.Run(tc.name, func(b *testing.B) {
			e := newEngine(b, func(c *Config) { c.PortLo, c.PortHi = 10000, 10063 })
			for p := 0; p < 64; p++ {
				u := UDP(fmt.Sprintf("192.168.50.10:%d", 10000+p), "203.0.113.10:1", nil)
				if v := e.Process(0, LAN, u); v.Action != Forward {
					b.Fatal(v)
				}
			}
			seg := UDP("192.168.50.11:10005", "198.51.100.7:53", make([]byte, 64))
			p := append([]byte(nil), seg...)
			now := 10 * sec
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				copy(p, seg)
				now += tc.step
				if v := e.Process(now, LAN, p); v.Reason != DropPortsExhausted {
					b.Fatal(v)
				}
				e.ResetEmitted()
			}
			b.StopTimer()
			if s := e.Stats(); tc.step != 0 && s.ProhibitedSent != uint64(b.N) {
				b.Fatalf("sent %d of %d", s.ProhibitedSent, b.N)
			}
		})
	}
}

// TestProhibitedForgedSourcesOneStation: one station (one MAC, as on a
// Wi-Fi guest network, where the access point binds a station to its
// MAC but not to an address) past its MAC's share, forging 200 LAN
// addresses for 10 s, drew the per-host buckets of all 200: 25 errors a
// second, the whole budget for all hosts, sent to hosts that sent
// nothing, and a real host refused meanwhile was told nothing. The
// buckets are per station now (the frame's source MAC, the address when
// there is none): the forger gets prohibHostBurst and prohibHostRate a
// second in all, and the real host is told of each refusal.
func TestProhibitedForgedSourcesOneStation(t *testing.T) {
	e := newEngine(t, func(c *Config) { c.MaxFlows = 64; c.MaxFlowsPerHost = 4; c.ICMPRate = 100 })
	evil, good := [6]byte{2, 0, 0, 0, 0, 0xee}, [6]byte{2, 0, 0, 0, 0, 0x11}
	fill := func(mac [6]byte, src string) {
		for p := 0; p < 4; p++ {
			u := UDP(fmt.Sprintf("%s:%d", src, 2000+p), "203.0.113.10:1", nil)
			if v := e.ProcessFrom(0, LAN, mac, u); v.Action != Forward {
				t.Fatalf("%s flow %d: %+v", src, p, v)
			}
			pass(t, e, 0, WAN, UDP("203.0.113.10:1", fmt.Sprintf("203.0.113.1:%d", extPort(u)), nil), LAN)
		}
	}
	fill(evil, "192.168.50.9")
	fill(good, "192.168.50.10")
	toForged, toGood := 0, 0
	for i := 0; i < 100000; i++ {
		now := Time(i) * 100 * 1000 // 10 000 packets a second
		src := fmt.Sprintf("192.168.50.%d:%d", 20+i%200, 10000+i%1000)
		if v := e.ProcessFrom(now, LAN, evil, UDP(src, "198.51.100.7:53", nil)); v.Reason != DropMACLimit {
			t.Fatalf("forged packet %d: %+v", i, v)
		}
		if i%10000 == 5000 {
			// The real host, its share full, once a second.
			u := UDP(fmt.Sprintf("192.168.50.10:%d", 3000+i/10000), "198.51.100.7:443", nil)
			if v := e.ProcessFrom(now, LAN, good, u); v.Reason != DropMACLimit {
				t.Fatalf("real host's packet %d: %+v", i, v)
			}
		}
		for _, m := range e.Emitted() {
			if m.NextHop == addr4("192.168.50.10") {
				toGood++
			} else {
				toForged++
			}
		}
		e.ResetEmitted()
	}
	if toGood != 10 || toForged != prohibHostBurst+9 {
		t.Fatalf("the real host was told of %d of its 10 refusals, the forged addresses got %d errors; want 10 and %d",
			toGood, toForged, prohibHostBurst+9)
	}
}

// TestProhibitedCollidingStation: the per-station buckets were picked by
// a hash anyone could compute, so a station that set its MAC to one
// hashing to a neighbour's slot (the neighbour's MAC is in every ARP it
// sends) and drew the bucket down once a second left the neighbour
// untold of its own refusals, one MAC and no forging. The hash is keyed
// now: the attacker's MAC lands elsewhere.
func TestProhibitedCollidingStation(t *testing.T) {
	e := newEngine(t, func(c *Config) { c.MaxFlows = 64; c.MaxFlowsPerHost = 4; c.ICMPRate = 100 })
	good := [6]byte{2, 0, 0, 0, 0, 0x11}
	slot := func(m [6]byte) uint32 { // the unkeyed hash, as the source has it
		k := binary.BigEndian.Uint32(m[2:]) ^ uint32(binary.BigEndian.Uint16(m[:2]))*0x85ebca6b
		return (k * 0x9e3779b1) >> (32 - prohibBits)
	}
	evil := [6]byte{2, 0, 0, 0, 0, 0xee}
	for i := uint32(0); slot(evil) != slot(good); i++ {
		binary.BigEndian.PutUint32(evil[2:], 0x10000+i)
	}
	for _, st := range []struct {
		mac [6]byte
		src string
	}{{evil, "192.168.50.9"}, {good, "192.168.50.10"}} {
		for p := 0; p < 4; p++ {
			u := UDP(fmt.Sprintf("%s:%d", st.src, 2000+p), "203.0.113.10:1", nil)
			if v := e.ProcessFrom(0, LAN, st.mac, u); v.Action != Forward {
				t.Fatalf("%s flow %d: %+v", st.src, p, v)
			}
			pass(t, e, 0, WAN, UDP("203.0.113.10:1", fmt.Sprintf("203.0.113.1:%d", extPort(u)), nil), LAN)
		}
	}
	toGood := 0
	for i := 0; i < 40; i++ {
		now := Time(i) * sec / 4
		if v := e.ProcessFrom(now, LAN, evil, UDP(fmt.Sprintf("192.168.50.9:%d", 3000+i), "198.51.100.7:53", nil)); !refusedFlow(v.Reason) {
			t.Fatalf("attacker's packet %d: %+v", i, v)
		}
		if i%4 == 2 {
			u := UDP(fmt.Sprintf("192.168.50.10:%d", 3000+i), "198.51.100.7:443", nil)
			if v := e.ProcessFrom(now, LAN, good, u); !refusedFlow(v.Reason) {
				t.Fatalf("real host's packet %d: %+v", i, v)
			}
		}
		for _, m := range e.Emitted() {
			if m.NextHop == addr4("192.168.50.10") {
				toGood++
			}
		}
		e.ResetEmitted()
	}
	if toGood != 10 {
		t.Fatalf("the real host was told of %d of its 10 refusals, want 10", toGood)
	}
}
