package router

import (
	"encoding/binary"
	"testing"
	"time"

	"passgate/dataplane/afpacket"
	"passgate/nat"
	"passgate/packet"
)

// FuzzFrames hands the router's frame dispatch raw frames from either
// side, as its workers do: the fast path first, then handle, then what the
// engine emitted. Input records are a side byte (bit 0 the side, bit 1 the
// checksum left to offload), a length (2 bytes) and the frame. Nothing may
// panic, and every IPv4 frame that leaves must carry a well-formed packet
// with a right header checksum.
func FuzzFrames(f *testing.F) {
	r, _ := testRouter(f)
	lanMAC, wanMAC := r.nb[nat.LAN].MAC(), r.nb[nat.WAN].MAC()
	host, srv := packet.MAC{2, 0, 0, 0, 0, 0x10}, packet.MAC{2, 0, 0, 0, 0, 0x20}
	frame := func(dst, src packet.MAC, typ uint16, payload []byte) []byte {
		b := make([]byte, 14+len(payload))
		packet.Ether(b).SetHeader(dst, src, typ)
		copy(b[14:], payload)
		return b
	}
	rec := func(side byte, fr []byte) []byte {
		return append([]byte{side, byte(len(fr) >> 8), byte(len(fr))}, fr...)
	}
	udp := udpPacket([]byte("query"))
	binary.BigEndian.PutUint16(udp[10:], packet.Checksum(udp[:20]))
	reply := udpReply([]byte("answer"))
	arp := make([]byte, 60)
	packet.BuildARP(arp, packet.Broadcast, srv, packet.ARPRequest, srv, [4]byte{203, 0, 113, 10}, packet.MAC{}, [4]byte{203, 0, 113, 1})
	arpLAN := make([]byte, 60)
	packet.BuildARP(arpLAN, packet.Broadcast, host, packet.ARPRequest, host, [4]byte{192, 168, 50, 10}, packet.MAC{}, [4]byte{192, 168, 50, 1})
	tcp := tcpPacket([]byte("GET /"))
	binary.BigEndian.PutUint16(tcp[10:], packet.Checksum(tcp[:20]))
	f.Add(append(append(append(rec(1, arp), rec(0, arpLAN)...), rec(0, frame(lanMAC, host, packet.EtherTypeIPv4, udp))...), rec(1, frame(wanMAC, srv, packet.EtherTypeIPv4, reply))...))
	f.Add(rec(2, frame(lanMAC, host, packet.EtherTypeIPv4, tcp)))
	f.Add(rec(0, frame(packet.Broadcast, host, packet.EtherTypeIPv4, udp)))                // broadcast IPv4: not routed
	f.Add(rec(0, frame(lanMAC, host, 0x8863, []byte{0x11, 0x09, 0, 0, 0, 4, 1, 1, 0, 0}))) // PPADI
	f.Add(rec(1, frame(wanMAC, srv, packet.EtherTypeIPv4, udp[:30])))                      // cut short
	f.Add(rec(0, []byte{1, 2, 3}))                                                         // a runt
	f.Fuzz(func(t *testing.T, in []byte) {
		r, out := testRouter(t)
		wks := [2]*worker{{in: nat.LAN}, {in: nat.WAN}}
		var c tally
		var nc nat.Counters
		for now := nat.Time(1); len(in) >= 3; now++ {
			side, n := in[0], int(binary.BigEndian.Uint16(in[1:]))
			in = in[3:]
			n = min(n, len(in))
			fr := append([]byte(nil), in[:n]...)
			in = in[n:]
			wk := wks[side&1]
			var flags uint32
			if side&2 != 0 {
				flags = afpacket.StatusCsumNotReady
			}
			if !r.fast(now, wk, fr, &flags, &out, &c, &nc) {
				r.handle(now, wk, fr, flags, &out, &c)
			}
			r.eng.Flush(&nc)
			r.takeEmitted(time.Duration(now), &out, &c)
			for _, b := range out {
				for _, o := range b.Frames {
					e, ok := packet.ParseEther(o)
					if !ok {
						t.Fatalf("sent a runt: % x", o)
					}
					if e.Type() != packet.EtherTypeIPv4 {
						continue
					}
					ip, err := packet.ParseIPv4(e.Payload())
					if err != nil || !ip.ValidChecksum() {
						t.Fatalf("sent a bad IPv4 packet (%v): % x", err, o)
					}
				}
				b.Reset()
			}
		}
	})
}
