package h323

import (
	"net/netip"
	"testing"

	"passgate/nat"
	"passgate/packet"
	. "passgate/packet/pkttest"
)

// FuzzWalk feeds arbitrary bytes to the TPKT/Q.931 parser, the RAS walker and the H.225.0
// and H.245 PER walkers: none may panic, and every address found must lie
// inside the message.
func FuzzWalk(f *testing.F) {
	lan := netip.MustParseAddr("192.168.50.10")
	fast := [][]byte{enc(func(w *perw) { olcReverse(w, 2, ap(lan, 5000), ap(lan, 5001)) })}
	setup := q931Msg(0x05, 1, setupUU(ap(lan, 40002), fast))
	for _, s := range [][]byte{
		setup,
		q931Msg(0x07, 0x8001, connectUU(ap(lan, 40002), nil)),
		q931Msg(0x5a, 1, releaseUU()),
		h245OLC(3, ap(lan, 5003)),
		h245OLCAck(4, ap(lan, 5004), ap(lan, 5005)),
		setup[:len(setup)-7],                                                // malformed: TPKT length beyond the segment
		append(setup[:4:4], 0x09, 0x02, 1),                                  // malformed: not a Q.931 protocol discriminator
		{3, 0, 0, 4},                                                        // a keep-alive: empty TPKT
		{3, 0, 0, 2},                                                        // malformed: TPKT length below its header
		tpktWrap([]byte{8, 2, 0, 1, 5, 0x7e, 0xff, 0xff, 5}),                // malformed: user-user length past the end
		tpktWrap([]byte{8, 2, 0, 1, 5, 0x7e, 0, 3, 5, 0x80, 0xc0}),          // malformed: fragmented PER length
		tpktWrap([]byte{0x7f, 0xff, 0xff, 0xff}),                            // malformed H.245: extension index 63 then nothing
		q931Msg(0x05, 2, setupTunnelUU([][]byte{mscOLC(1, ap(lan, 5011))})), // tunnelled H.245
		q931Msg(0x62, 2, emptyUU([][]byte{mscOLCAck(2, ap(lan, 5012), ap(lan, 5013)), {0}})), // tunnelled, and an H.245 message not walked
		rrq(1, ap(lan, 1720), ap(lan, 1719), 300),                                            // RAS (walked as RAS below)
		q931Msg(0x03, 0x8001, progressUU(ap(lan, 41000), fast, h235Signed)),                  // Progress: the body's open type, h245Address, H.235 tokens, fastStart
		q931Msg(0x03, 0x8001, progressUU(netip.AddrPort{}, nil, h235None)),                   // Progress: callIdentifier only
		q931Msg(0x03, 0x8001, progressUU(ap(lan, 41000), fast, h235Tokens)[:60]),             // malformed: Progress cut inside its open type
		rrq(2, ap(lan, 1720), ap(lan, 1719), 0)[:20],                                         // RAS cut short
	} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, b []byte, signalling bool) {
		var w walker
		for off := 0; off < len(b); {
			msg, ok := tpkt(b[off:])
			if !ok {
				break
			}
			base := off + 4
			off += 4 + len(msg)
			r := reader{b: msg, base: base}
			if signalling {
				_, _, uu, at, ok := q931(msg)
				if !ok {
					break
				}
				r = reader{b: uu, base: base + at}
				if w.uuie(&r) != nil {
					break
				}
			} else if w.msc(&r) != nil {
				break
			}
		}
		check := func() {
			for _, f := range w.refs[:w.n] {
				if f.at < 0 || f.at+6 > len(b) {
					t.Fatalf("address at %d outside %d bytes", f.at, len(b))
				}
			}
		}
		check()
		// Each input is a RAS datagram too.
		w = walker{}
		r := reader{b: b}
		_ = w.ras(&r)
		check()
		if len(b) > 1400 {
			return
		}
		// And through the engine: whatever comes out is a valid packet.
		e := engine(t)
		e.Process(0, nat.LAN, TCP("192.168.50.10:40000", "203.0.113.10:1720", packet.TCPSyn, 1, 0, nil, nil))
		seg := TCP("192.168.50.10:40000", "203.0.113.10:1720", packet.TCPAck, 2, 1, nil, b)
		v := e.Process(sec, nat.LAN, seg)
		if v.Action != nat.Forward && v.Action != nat.Consumed {
			t.Fatalf("verdict %+v", v)
		}
		if v.Action == nat.Forward {
			IPv4(t, seg, Src("203.0.113.1"))
		}
		d := UDP("192.168.50.10:1719", "203.0.113.10:1719", b)
		if v := e.Process(sec, nat.LAN, d); v.Action != nat.Forward {
			t.Fatalf("RAS verdict %+v", v)
		}
		IPv4(t, d, Src("203.0.113.1:1719"))
	})
}
