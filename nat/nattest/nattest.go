// Package nattest owns the scaffolding tests use to drive a real
// nat.Engine: an engine on the lab addresses (LAN 192.168.50.1/24, WAN
// 203.0.113.1/24), a TCP connection driver that tracks both endpoints'
// sequence numbers, and the step from a verdict to the packet that left
// the engine.
package nattest

import (
	"net/netip"
	"testing"

	"passgate/nat"
	"passgate/packet"
	"passgate/packet/pkttest"
)

// Engine returns an engine on the lab addresses with room for 1024
// flows, its configuration first passed to mod (when not nil), and the
// helpers registered.
func Engine(t testing.TB, mod func(*nat.Config), helpers ...nat.Helper) *nat.Engine {
	t.Helper()
	cfg := nat.Config{
		LANAddr:  netip.MustParsePrefix("192.168.50.1/24"),
		WANAddr:  netip.MustParsePrefix("203.0.113.1/24"),
		MaxFlows: 1024,
	}
	if mod != nil {
		mod(&cfg)
	}
	e, err := nat.New(cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	e.RegisterHelpers(helpers...)
	return e
}

// Output returns the packet that left the engine after its verdict v on
// b: b itself, trimmed to its IPv4 length, when forwarded in place, or
// the first frame the engine emitted, without its Ethernet headroom, when
// consumed. ok is false for any other verdict, or a consumed packet with
// nothing emitted. The emitted frame is the engine's; it is neither
// copied nor reset.
func Output(e *nat.Engine, v nat.Verdict, b []byte) (out []byte, ok bool) {
	switch v.Action {
	case nat.Forward:
		return b[:packet.IPv4(b).TotalLen()], true
	case nat.Consumed:
		if em := e.Emitted(); len(em) > 0 {
			return em[0].Frame[nat.EtherHeadroom:], true
		}
	}
	return nil, false
}

// Pass passes b from from through e at now and returns the packet that
// left: b forwarded in place, or a copy of the one packet the engine
// emitted when it consumed b (the emitted list is reset). Any other
// verdict fails the test.
func Pass(t testing.TB, e *nat.Engine, now nat.Time, from nat.Iface, b []byte) []byte {
	t.Helper()
	v := e.Process(now, from, b)
	if v.Action == nat.Consumed {
		if n := len(e.Emitted()); n != 1 {
			t.Fatalf("consumed with %d emitted packets", n)
		}
	}
	out, ok := Output(e, v, b)
	if !ok {
		t.Fatalf("verdict %+v (%v)", v, v.Reason)
	}
	if v.Action == nat.Consumed {
		out = append([]byte(nil), out...)
		e.ResetEmitted()
	}
	return out
}

// Conn is a TCP connection through the engine between LAN (the inside
// host) and Remote, which sees the inside host as Pub. LANSeq and RSeq
// are the next sequence numbers as each endpoint sees them.
type Conn struct {
	T            testing.TB
	E            *nat.Engine
	LAN, Remote  string
	Pub          string
	LANSeq, RSeq uint32
	Now          nat.Time  // when Send passes its segments
	Check        bool      // check every output's lengths and checksums (pkttest.IPv4)
	Out          *[][]byte // when set, every output packet is appended to it
}

// Send passes a segment at c.Now; see SendAt.
func (c *Conn) Send(fromLAN bool, flags uint8, payload string) []byte {
	c.T.Helper()
	return c.SendAt(c.Now, fromLAN, flags, []byte(payload))
}

// SendAt passes a segment from the LAN host (fromLAN) or the remote one
// at now, advances the sender's sequence number, and returns the packet
// that left the engine: the segment forwarded in place, or the one packet
// the engine emitted when it consumed the segment (a copy; the emitted
// list is reset). Any other verdict fails the test.
func (c *Conn) SendAt(now nat.Time, fromLAN bool, flags uint8, payload []byte) []byte {
	c.T.Helper()
	var b []byte
	from := nat.WAN
	if fromLAN {
		b = pkttest.TCP(c.LAN, c.Remote, flags, c.LANSeq, c.RSeq, nil, payload)
		c.LANSeq += uint32(len(payload))
		from = nat.LAN
	} else {
		b = pkttest.TCP(c.Remote, c.Pub, flags, c.RSeq, c.LANSeq, nil, payload)
		c.RSeq += uint32(len(payload))
	}
	if flags&packet.TCPSyn != 0 {
		if fromLAN {
			c.LANSeq++
		} else {
			c.RSeq++
		}
	}
	out := Pass(c.T, c.E, now, from, b)
	if c.Check {
		pkttest.IPv4(c.T, out)
	}
	if c.Out != nil {
		*c.Out = append(*c.Out, out)
	}
	return out
}

// Bench is the loop of a helper's per-packet benchmark: it passes a fresh
// copy of seg from from through e at now, b.N times, and fails unless
// every verdict is want (the packets the engine emits are let go).
func Bench(b *testing.B, e *nat.Engine, now nat.Time, from nat.Iface, seg []byte, want nat.Action) {
	b.Helper()
	p := append([]byte(nil), seg...)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		copy(p, seg)
		if v := e.Process(now, from, p); v.Action != want {
			b.Fatal(v)
		}
		e.ResetEmitted()
	}
}
