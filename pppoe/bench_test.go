package pppoe

import (
	"testing"
	"time"

	"passgate/packet"
)

// BenchmarkSessionRelay relays session frames (an LCP echo, 64 bytes on
// the wire) through a relay holding many sessions, alternating LAN to WAN
// and WAN to LAN. Each iteration restores the 12 address bytes the relay
// rewrote; that copy is part of the figure.
func BenchmarkSessionRelay(b *testing.B) {
	for _, n := range []int{1, 128} {
		b.Run(map[int]string{1: "sessions=1", 128: "sessions=128"}[n], func(b *testing.B) {
			r := newRelay(b, func(c *Config) { c.MaxSessions = n; c.MaxDiscoveries = n })
			for i := range n {
				host := packet.MAC{0x02, 1, 0, 0, byte(i >> 8), byte(i)}
				openSession(b, r, host, ac1, uint16(i+1))
			}
			host := packet.MAC{0x02, 1, 0, 0, byte((n - 1) >> 8), byte(n - 1)}
			sid := uint16(n)
			up := sess(lanMAC, host, sid, "bench")
			down := sess(wanMAC, ac1, sid, "bench")
			upHdr := [12]byte(up)
			downHdr := [12]byte(down)
			b.ReportAllocs()
			b.SetBytes(int64(len(up)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				now := time.Duration(i)
				if i&1 == 0 {
					copy(up, upHdr[:])
					if r.Process(now, LAN, up).Action != Forward {
						b.Fatal("not relayed")
					}
				} else {
					copy(down, downHdr[:])
					if r.Process(now, WAN, down).Action != Forward {
						b.Fatal("not relayed")
					}
				}
			}
		})
	}
}

// BenchmarkDiscoveryRelay is a host's PADI (the tags rebuilt with the
// Relay-Session-Id added) and the AC's PADO back.
func BenchmarkDiscoveryRelay(b *testing.B) {
	r := newRelay(b, nil)
	padi := disc(packet.Broadcast, hostA, CodePADI, 0, tag(TagServiceName, ""), tag(TagHostUniq, "12345678"))
	pado := disc(wanMAC, ac1, CodePADO, 0, tag(TagACName, "isp-ac"), tag(TagServiceName, ""),
		tag(TagHostUniq, "12345678"), tag(TagACCookie, "0123456789abcdef"), Tag{TagRelaySessionID, ownID(kindHost, hostA)})
	padoOrig := append([]byte(nil), pado...)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if r.Process(0, LAN, padi).Action != Consumed {
			b.Fatal("PADI")
		}
		r.ResetEmitted()
		copy(pado, padoOrig)
		if r.Process(0, WAN, pado).Action != Forward {
			b.Fatal("PADO")
		}
	}
}

// openSession sets a session up by the frames of a discovery, without the
// checks of dial.
func openSession(b testing.TB, r *Relay, host, ac packet.MAC, sid uint16) {
	steps := []struct {
		in Side
		f  []byte
	}{
		{LAN, disc(packet.Broadcast, host, CodePADI, 0)},
		{WAN, disc(wanMAC, ac, CodePADO, 0, Tag{TagRelaySessionID, ownID(kindHost, host)})},
		{LAN, disc(lanMAC, host, CodePADR, 0, Tag{TagRelaySessionID, ownID(kindAC, ac)})},
		{WAN, disc(wanMAC, ac, CodePADS, sid, Tag{TagRelaySessionID, ownID(kindHost, host)})},
	}
	for _, s := range steps {
		if v := r.Process(0, s.in, s.f); v.Action == Drop {
			b.Fatalf("session %d: dropped for %s", sid, v.Reason)
		}
		r.ResetEmitted()
	}
}
