package nat

import (
	"errors"
	"net/netip"
	"testing"

	"passgate/packet"
	. "passgate/packet/pkttest"
)

func TestDynamicForward(t *testing.T) {
	e := newEngine(t, func(c *Config) {
		c.PortForwards = []PortForward{{Proto: 6, OutsideLo: 8080, OutsideHi: 8080, Host: netip.MustParseAddr("192.168.50.10"), InsidePort: 80}}
	})
	h10, h11 := netip.MustParseAddr("192.168.50.10"), netip.MustParseAddr("192.168.50.11")
	d := DynamicForward{Proto: 6, Outside: 40000, Host: h11, Inside: 5000, By: "pcp", Description: "game"}
	if err := e.AddDynamicForward(d); err != nil {
		t.Fatal(err)
	}
	// Refusals: a configured forward's port, another host's mapping, a
	// host outside the LAN.
	for name, c := range map[string]struct {
		d    DynamicForward
		want error
	}{
		"static":       {DynamicForward{Proto: 6, Outside: 8080, Host: h11, Inside: 80}, ErrForwardReserved},
		"other host":   {DynamicForward{Proto: 6, Outside: 40000, Host: h10, Inside: 5000}, ErrForwardInUse},
		"off the LAN":  {DynamicForward{Proto: 6, Outside: 40001, Host: netip.MustParseAddr("10.1.1.1"), Inside: 1}, ErrForwardInvalid},
		"bad protocol": {DynamicForward{Proto: 1, Outside: 40001, Host: h11, Inside: 1}, ErrForwardInvalid},
	} {
		if err := e.AddDynamicForward(c.d); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}

	in := pass(t, e, 0, WAN, TCP("203.0.113.20:3333", "203.0.113.1:40000", packet.TCPSyn, 1, 0, nil, nil), LAN)
	IPv4(t, in, Src("203.0.113.20:3333"), Dst("192.168.50.11:5000"))
	back := pass(t, e, 0, LAN, TCP("192.168.50.11:5000", "203.0.113.20:3333", packet.TCPSyn|packet.TCPAck, 9, 2, nil, nil), WAN)
	IPv4(t, back, Src("203.0.113.1:40000"), Dst("203.0.113.20:3333"))
	// Hairpin through the public address.
	h := pass(t, e, 0, LAN, TCP("192.168.50.12:4444", "203.0.113.1:40000", packet.TCPSyn, 1, 0, nil, nil), LAN)
	IPv4(t, h, Src("203.0.113.1:4444"), Dst("192.168.50.11:5000"))
	// An outbound flow never takes the mapped port.
	out := pass(t, e, 0, LAN, TCP("192.168.50.13:40000", "203.0.113.20:80", packet.TCPSyn, 1, 0, nil, nil), WAN)
	if p := packet.TCP(packet.IPv4(out).Payload()).SrcPort(); p == 40000 {
		t.Fatal("an outbound mapping took the dynamically forwarded port")
	}
	if got := e.DynamicForwards(); len(got) != 1 || got[0] != d {
		t.Fatalf("DynamicForwards %+v", got)
	}

	flows := e.Stats().Flows
	if !e.DeleteDynamicForward(6, 40000) || e.DeleteDynamicForward(6, 40000) {
		t.Fatal("delete: want true then false")
	}
	if n := e.Stats().Flows; n != flows-2 {
		t.Fatalf("flows after delete %d, want %d (the forwarded and the hairpinned one end)", n, flows-2)
	}
	// The established connection and new ones are both gone.
	dropped(t, e, 0, WAN, TCP("203.0.113.20:3333", "203.0.113.1:40000", packet.TCPAck, 2, 10, nil, nil), DropUnsolicited)
	dropped(t, e, 0, WAN, TCP("203.0.113.21:3333", "203.0.113.1:40000", packet.TCPSyn, 1, 0, nil, nil), DropUnsolicited)
}

func TestDynamicForwardOverOutboundMapping(t *testing.T) {
	e := newEngine(t, nil)
	pass(t, e, 0, LAN, UDP("192.168.50.10:45000", "203.0.113.10:53", nil), WAN)
	// Another host cannot take the outside port a live mapping holds; the
	// host itself may forward it to the same inside port.
	if err := e.AddDynamicForward(DynamicForward{Proto: 17, Outside: 45000, Host: netip.MustParseAddr("192.168.50.11"), Inside: 45000}); !errors.Is(err, ErrForwardInUse) {
		t.Fatalf("other host: %v", err)
	}
	if err := e.AddDynamicForward(DynamicForward{Proto: 17, Outside: 45000, Host: netip.MustParseAddr("192.168.50.10"), Inside: 45000}); err != nil {
		t.Fatal(err)
	}
	in := pass(t, e, 0, WAN, UDP("203.0.113.99:7", "203.0.113.1:45000", []byte("hi")), LAN)
	IPv4(t, in, Dst("192.168.50.10:45000"), L4Payload([]byte("hi")))
}

func BenchmarkDynamicForwardLookup(b *testing.B) {
	e := newEngine(b, nil)
	for p := uint16(40000); p < 40100; p++ {
		if err := e.AddDynamicForward(DynamicForward{Proto: 17, Outside: p, Host: netip.MustParseAddr("192.168.50.10"), Inside: p}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, ok := e.forwardTarget(17, 40000+uint16(i%100)); !ok {
			b.Fatal("miss")
		}
	}
}

func TestOutboundMapping(t *testing.T) {
	e := newEngine(t, nil)
	h := netip.MustParseAddr("192.168.50.10")
	if _, ok := e.OutboundMapping(17, h, 5000); ok {
		t.Fatal("a mapping before any traffic")
	}
	out := pass(t, e, 0, LAN, UDP("192.168.50.10:5000", "203.0.113.10:53", nil), WAN)
	ext, ok := e.OutboundMapping(17, h, 5000)
	if want := packet.UDP(packet.IPv4(out).Payload()).SrcPort(); !ok || ext != want {
		t.Fatalf("OutboundMapping %d %v, the packet left from %d", ext, ok, want)
	}
}

func TestKernelUDPNotCountedAsDrop(t *testing.T) {
	e := newEngine(t, func(c *Config) { c.KernelUDP = []uint16{5351} })
	if v := e.Process(0, LAN, UDP("192.168.50.10:5350", "192.168.50.1:5351", []byte{0, 0})); v.Action != Consumed {
		t.Fatalf("PCP request: %+v", v)
	}
	dropped(t, e, 0, LAN, UDP("192.168.50.10:5350", "192.168.50.1:53", nil), DropToRouter)
	// From the WAN the same port is the router's and dropped.
	dropped(t, e, 0, WAN, UDP("203.0.113.20:5350", "203.0.113.1:5351", nil), DropUnsolicited)
}

func TestDynamicForwardShadowedByNewStaticForward(t *testing.T) {
	e := newEngine(t, nil)
	d := DynamicForward{Proto: 6, Outside: 40000, Host: netip.MustParseAddr("192.168.50.11"), Inside: 5000}
	if err := e.AddDynamicForward(d); err != nil {
		t.Fatal(err)
	}
	if err := e.AddDynamicForward(d); err != nil {
		t.Fatalf("refreshing one's own forward: %v", err)
	}
	cfg := testConfig()
	cfg.PortForwards = []PortForward{{Proto: 6, OutsideLo: 40000, OutsideHi: 40000, Host: netip.MustParseAddr("192.168.50.10"), InsidePort: 80}}
	if err := e.Reconfigure(cfg, 0); err != nil {
		t.Fatal(err)
	}
	if err := e.AddDynamicForward(d); !errors.Is(err, ErrForwardReserved) {
		t.Fatalf("a forward configured since: %v", err)
	}
	in := pass(t, e, 0, WAN, TCP("203.0.113.20:3333", "203.0.113.1:40000", packet.TCPSyn, 1, 0, nil, nil), LAN)
	IPv4(t, in, Dst("192.168.50.10:80"))
}

func TestDynamicForwardICMPError(t *testing.T) {
	e := newEngine(t, nil)
	if err := e.AddDynamicForward(DynamicForward{Proto: 17, Outside: 40000, Host: netip.MustParseAddr("192.168.50.11"), Inside: 5000}); err != nil {
		t.Fatal(err)
	}
	in := pass(t, e, 0, WAN, UDP("203.0.113.20:3333", "203.0.113.1:40000", []byte("x")), LAN)
	// The LAN host's port unreachable goes back out, translated to the
	// public port, as for a configured forward.
	quote := append([]byte(nil), in[:28]...)
	out := pass(t, e, 0, LAN, ICMP("192.168.50.11", "203.0.113.20", packet.ICMPUnreachable, 3, 0, quote), WAN)
	IPv4(t, out, Src("203.0.113.1"), Dst("203.0.113.20"), ICMPType(packet.ICMPUnreachable, 3),
		Embedded(Src("203.0.113.20:3333"), Dst("203.0.113.1:40000")))
}
