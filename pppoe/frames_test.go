package pppoe

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"passgate/packet"
)

// Crafted-frame helpers shared by the tests, the fuzz targets and the
// benchmarks of this package.

var (
	lanMAC = packet.MAC{0x02, 0, 0, 0, 0x01, 0x01} // router lan0
	wanMAC = packet.MAC{0x02, 0, 0, 0, 0x02, 0x01} // router wan0
	hostA  = packet.MAC{0x02, 0, 0, 0, 0x0a, 0x0a}
	hostB  = packet.MAC{0x02, 0, 0, 0, 0x0b, 0x0b}
	ac1    = packet.MAC{0x02, 0, 0, 0, 0xac, 0x01}
	ac2    = packet.MAC{0x02, 0, 0, 0, 0xac, 0x02}
)

const testMark = 0x50475431 // "PGT1"

func newRelay(t testing.TB, mod func(*Config)) *Relay {
	t.Helper()
	cfg := Config{LANMAC: lanMAC, WANMAC: wanMAC, Mark: testMark}
	if mod != nil {
		mod(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// disc builds a discovery frame.
func disc(dst, src packet.MAC, code uint8, sid uint16, tags ...Tag) []byte {
	var pl []byte
	for _, t := range tags {
		pl = AppendTag(pl, t.Type, t.Value)
	}
	return raw(dst, src, EtherTypeDiscovery, code, sid, pl)
}

// raw builds a PPPoE frame with the given payload, padded to 60 bytes.
func raw(dst, src packet.MAC, typ uint16, code uint8, sid uint16, pl []byte) []byte {
	f := make([]byte, packet.EtherHeaderLen+HeaderLen, 1600)
	packet.Ether(f).SetHeader(dst, src, typ)
	Packet(f[packet.EtherHeaderLen:]).SetHeader(code, sid, len(pl))
	f = append(f, pl...)
	for len(f) < packet.MinFrameLen {
		f = append(f, 0)
	}
	return f
}

// sess builds a session frame carrying a PPP LCP echo request.
func sess(dst, src packet.MAC, sid uint16, text string) []byte {
	ppp := []byte{0xc0, 0x21, 9, 1, 0, byte(8 + len(text)), 1, 2, 3, 4}
	ppp = append(ppp, text...)
	return raw(dst, src, EtherTypeSession, CodeSession, sid, ppp)
}

func tag(typ uint16, v string) Tag { return Tag{Type: typ, Value: []byte(v)} }

func ownID(kind byte, m packet.MAC) []byte {
	v := make([]byte, RelayIDLen)
	binary.BigEndian.PutUint32(v, testMark)
	v[4] = kind
	copy(v[6:], m[:])
	return v
}

// frameView is a decoded frame for assertions.
type frameView struct {
	dst, src packet.MAC
	typ      uint16
	code     uint8
	sid      uint16
	tags     []Tag
	payload  []byte
}

func view(t *testing.T, f []byte) frameView {
	t.Helper()
	e, ok := packet.ParseEther(f)
	if !ok {
		t.Fatalf("frame of %d bytes", len(f))
	}
	p, err := Parse(e.Payload())
	if err != nil {
		t.Fatalf("frame % x: %v", f, err)
	}
	v := frameView{dst: e.Dst(), src: e.Src(), typ: e.Type(), code: p.Code(), sid: p.SessionID(), payload: p.Payload()}
	if v.typ == EtherTypeDiscovery {
		it := Tags(p.Payload())
		for it.Next() {
			v.tags = append(v.tags, it.Tag())
		}
		if it.Err() != nil {
			t.Fatalf("tags of % x: %v", f, it.Err())
		}
	}
	return v
}

func (v frameView) find(typ uint16) ([]byte, bool) {
	for _, t := range v.tags {
		if t.Type == typ {
			return t.Value, true
		}
	}
	return nil, false
}

func (v frameView) count(typ uint16) int {
	n := 0
	for _, t := range v.tags {
		if t.Type == typ {
			n++
		}
	}
	return n
}

func (v frameView) mustTag(t *testing.T, typ uint16, want []byte) {
	t.Helper()
	got, ok := v.find(typ)
	if !ok {
		t.Fatalf("no %s tag in %+v", TagName(typ), v.tags)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s = % x, want % x", TagName(typ), got, want)
	}
}

// forward runs Process and requires a Forward verdict out of side out.
func forward(t *testing.T, r *Relay, now time.Duration, in Side, f []byte, out Side) frameView {
	t.Helper()
	v := r.Process(now, in, f)
	if v.Action != Forward || v.Out != out {
		t.Fatalf("verdict %+v (reason %s), want forward to %s", v, v.Reason, out)
	}
	if len(r.Emitted()) != 0 {
		t.Fatalf("forward also emitted %d frames", len(r.Emitted()))
	}
	return view(t, v.Frame)
}

// consumed runs Process and requires it to build exactly one frame out of
// side out, returned after ResetEmitted (copied).
func consumed(t *testing.T, r *Relay, now time.Duration, in Side, f []byte, out Side) frameView {
	t.Helper()
	v := r.Process(now, in, f)
	if v.Action != Consumed {
		t.Fatalf("verdict %+v (reason %s), want consumed", v, v.Reason)
	}
	em := r.Emitted()
	if len(em) != 1 || em[0].Out != out {
		t.Fatalf("emitted %d frames (%+v), want one to %s", len(em), em, out)
	}
	c := append([]byte(nil), em[0].Frame...)
	r.ResetEmitted()
	return view(t, c)
}

// dropped runs Process and requires a drop for why.
func dropped(t *testing.T, r *Relay, now time.Duration, in Side, f []byte, why Reason) {
	t.Helper()
	before := r.Stats().Drops[why]
	v := r.Process(now, in, f)
	if v.Action != Drop || v.Reason != why {
		t.Fatalf("verdict %+v (reason %s), want drop for %s", v, v.Reason, why)
	}
	if r.Stats().Drops[why] != before+1 {
		t.Fatalf("drop counter %s did not count", why)
	}
}

// emitted takes (copies) every frame the relay built and resets it.
func emitted(t *testing.T, r *Relay) (out []Emit) {
	for _, e := range r.Emitted() {
		out = append(out, Emit{Out: e.Out, Frame: append([]byte(nil), e.Frame...)})
	}
	r.ResetEmitted()
	return out
}

// dial runs a whole discovery for host with ac, returning the session id
// the AC assigned, through the relay: PADI, PADO, PADR, PADS.
func dial(t *testing.T, r *Relay, now time.Duration, host, ac packet.MAC, sid uint16, hostUniq string) {
	t.Helper()
	padi := consumed(t, r, now, LAN, disc(packet.Broadcast, host, CodePADI, 0, tag(TagServiceName, ""), tag(TagHostUniq, hostUniq)), WAN)
	rid, _ := padi.find(TagRelaySessionID)
	pado := forward(t, r, now, WAN, disc(wanMAC, ac, CodePADO, 0,
		tag(TagACName, "ac"), tag(TagServiceName, ""), tag(TagHostUniq, hostUniq), tag(TagACCookie, "cookie-"+ac.String()), Tag{TagRelaySessionID, rid}), LAN)
	acID, _ := pado.find(TagRelaySessionID)
	padr := forward(t, r, now, LAN, disc(lanMAC, host, CodePADR, 0,
		tag(TagServiceName, ""), tag(TagHostUniq, hostUniq), tag(TagACCookie, "cookie-"+ac.String()), Tag{TagRelaySessionID, acID}), WAN)
	if padr.dst != ac {
		t.Fatalf("PADR to %s, want %s", padr.dst, ac)
	}
	rid2, _ := padr.find(TagRelaySessionID)
	pads := forward(t, r, now, WAN, disc(wanMAC, ac, CodePADS, sid, tag(TagServiceName, ""), tag(TagHostUniq, hostUniq), Tag{TagRelaySessionID, rid2}), LAN)
	if pads.dst != host || pads.sid != sid {
		t.Fatalf("PADS to %s session %d, want %s session %d", pads.dst, pads.sid, host, sid)
	}
}
