package packet

import (
	"bytes"
	"testing"
)

var (
	ourMAC  = MAC{0x02, 0, 0, 0, 0, 0x01}
	hostMAC = MAC{0x02, 0, 0, 0, 0, 0x10}
	ourIP   = [4]byte{192, 168, 50, 1}
	hostIP  = [4]byte{192, 168, 50, 10}
)

func arpFrame(ethDst, ethSrc MAC, op uint16, sha MAC, spa [4]byte, tha MAC, tpa [4]byte) Ether {
	return Ether(BuildARP(make([]byte, MinFrameLen), ethDst, ethSrc, op, sha, spa, tha, tpa))
}

func TestEtherAccessors(t *testing.T) {
	f := make([]byte, 20)
	e, ok := ParseEther(f)
	if !ok {
		t.Fatal("ParseEther failed on 20 bytes")
	}
	e.SetHeader(hostMAC, ourMAC, EtherTypeIPv4)
	if e.Dst() != hostMAC || e.Src() != ourMAC || e.Type() != EtherTypeIPv4 || len(e.Payload()) != 6 {
		t.Fatalf("header round trip: %v %v %#x", e.Dst(), e.Src(), e.Type())
	}
	e.SetDst(Broadcast)
	e.SetSrc(hostMAC)
	e.SetType(EtherTypeARP)
	want := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 0x10, 0x08, 0x06}
	if !bytes.Equal(f[:14], want) {
		t.Fatalf("wire header % x, want % x", f[:14], want)
	}
	if _, ok := ParseEther(make([]byte, 13)); ok {
		t.Fatal("ParseEther accepted 13 bytes")
	}
	if !Broadcast.IsBroadcast() || !Broadcast.IsMulticast() || ourMAC.IsMulticast() || !(MAC{}).IsZero() {
		t.Fatal("MAC predicates")
	}
	if ourMAC.String() != "02:00:00:00:00:01" {
		t.Fatalf("String = %s", ourMAC)
	}
}

func TestARPParse(t *testing.T) {
	f := arpFrame(Broadcast, hostMAC, ARPRequest, hostMAC, hostIP, MAC{}, ourIP)
	if len(f) != MinFrameLen {
		t.Fatalf("frame length %d", len(f))
	}
	a, ok := ParseARP(f.Payload())
	if !ok {
		t.Fatal("ParseARP failed")
	}
	if a.Op() != ARPRequest || a.SenderMAC() != hostMAC || a.SenderIP() != hostIP || a.TargetMAC() != (MAC{}) || a.TargetIP() != ourIP {
		t.Fatalf("fields: %d %v %v %v %v", a.Op(), a.SenderMAC(), a.SenderIP(), a.TargetMAC(), a.TargetIP())
	}
	for name, mut := range map[string]func(b []byte){
		"htype":  func(b []byte) { b[1] = 6 },
		"ptype":  func(b []byte) { b[2] = 0x86 },
		"hlen":   func(b []byte) { b[4] = 8 },
		"plen":   func(b []byte) { b[5] = 16 },
		"length": nil,
	} {
		p := append([]byte(nil), f.Payload()...)
		if mut == nil {
			p = p[:ARPLen-1]
		} else {
			mut(p)
		}
		if _, ok := ParseARP(p); ok {
			t.Errorf("%s: ParseARP accepted a bad packet", name)
		}
	}
}

// BuildARP writes RFC 826's layout byte for byte, padded with zeros to the
// minimum frame, over whatever the buffer held.
func TestBuildARPWire(t *testing.T) {
	buf := bytes.Repeat([]byte{0xee}, 100)
	f := BuildARP(buf, Broadcast, hostMAC, ARPReply, hostMAC, hostIP, ourMAC, ourIP)
	want := []byte{
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 0x10, 0x08, 0x06, // Ethernet: dst, src, ARP
		0, 1, 0x08, 0x00, 6, 4, 0, 2, // Ethernet/IPv4, hlen 6, plen 4, reply
		2, 0, 0, 0, 0, 0x10, 192, 168, 50, 10, // sender
		2, 0, 0, 0, 0, 0x01, 192, 168, 50, 1, // target
	}
	want = append(want, make([]byte, MinFrameLen-len(want))...)
	if !bytes.Equal(f, want) {
		t.Fatalf("frame\n% x\nwant\n% x", f, want)
	}
}
