package link

import (
	"net/netip"
	"testing"
	"time"

	"passgate/packet"
)

// FuzzParse feeds arbitrary frames through the Ethernet and ARP views and the
// neighbour table's input path: nothing may panic, and what the table sends
// back must be well-formed.
func FuzzParse(f *testing.F) {
	f.Add([]byte(arpFrame(packet.Broadcast, hostMAC, packet.ARPRequest, hostMAC, hostIP, packet.MAC{}, ourIP)))
	f.Add([]byte(arpFrame(ourMAC, hostMAC, packet.ARPReply, hostMAC, hostIP, ourMAC, ourIP)))
	f.Add([]byte{})
	f.Add(make([]byte, 13))
	n, err := NewNeighbours(NeighbourConfig{MAC: ourMAC, Addr: netip.MustParsePrefix("192.168.50.1/24")})
	if err != nil {
		f.Fatal(err)
	}
	b := NewBatch(8, 8, 1514, nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		e, ok := packet.ParseEther(data)
		if !ok {
			if len(data) >= packet.EtherHeaderLen {
				t.Fatal("rejected a frame with a full header")
			}
			return
		}
		_, _, _ = e.Dst(), e.Src(), e.Type()
		if a, ok := packet.ParseARP(e.Payload()); ok {
			_, _, _, _, _ = a.Op(), a.SenderMAC(), a.SenderIP(), a.TargetMAC(), a.TargetIP()
		}
		if n.Accept(e) {
			n.Input(time.Second, e, b)
		}
		n.Output(time.Second, [4]byte{192, 168, 50, 10}, append([]byte(nil), data...), b)
		for _, out := range b.Frames {
			oe, ok := packet.ParseEther(out)
			if !ok || oe.Src() != ourMAC {
				t.Fatalf("sent a frame not from us: % x", out)
			}
			if oe.Type() == packet.EtherTypeARP {
				if _, ok := packet.ParseARP(oe.Payload()); !ok {
					t.Fatalf("sent malformed ARP: % x", out)
				}
			}
		}
		b.Reset()
	})
}
