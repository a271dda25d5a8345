package router

import (
	"encoding/binary"
	"log/slog"
	"testing"
	"time"

	"passgate/dataplane/link"
	"passgate/nat"
	"passgate/packet"
	"passgate/pppoe"
)

// pppoeRouter is testRouter with the relay New would make, switched on.
func pppoeRouter(t testing.TB) (*Router, [2]*link.Batch) {
	r, out := testRouter(t)
	r.ifaces[nat.LAN] = ifaceInfo{mac: r.nb[nat.LAN].MAC(), mtu: 1500}
	r.ifaces[nat.WAN] = ifaceInfo{mac: r.nb[nat.WAN].MAC(), mtu: 1500}
	r.opts.PPPoERelay = true
	var err error
	if r.ppp, err = r.newPPPoE(); err != nil {
		t.Fatal(err)
	}
	r.clock = func() nat.Time { return 0 }
	r.log = slog.New(slog.DiscardHandler)
	return r, out
}

func pppoeFrame(dst, src packet.MAC, typ uint16, code uint8, sid uint16, tags ...[]byte) []byte {
	f := make([]byte, 20, 1514)
	packet.Ether(f).SetHeader(dst, src, typ)
	var pl []byte
	for i := 0; i+1 < len(tags); i += 2 {
		pl = pppoe.AppendTag(pl, binary.BigEndian.Uint16(tags[i]), tags[i+1])
	}
	pppoe.Packet(f[14:]).SetHeader(code, sid, len(pl))
	f = append(f, pl...)
	for len(f) < 60 {
		f = append(f, 0)
	}
	return f
}

func tagType(t uint16) []byte { return binary.BigEndian.AppendUint16(nil, t) }

// The hook: PPPoE frames reach the relay; what it relays leaves by the
// other side's batch, built frames included; switched off, nothing does.
func TestPPPoEHook(t *testing.T) {
	r, out := pppoeRouter(t)
	lanMAC, wanMAC := r.nb[nat.LAN].MAC(), r.nb[nat.WAN].MAC()
	host := packet.MAC{2, 0, 0, 0, 0, 0x10}
	ac := packet.MAC{2, 0, 0, 0, 0, 0xac}
	lan := &worker{in: nat.LAN}
	wan := &worker{in: nat.WAN}
	var c tally
	take := func(side nat.Iface) [][]byte {
		var fs [][]byte
		for _, f := range out[side].Frames {
			fs = append(fs, append([]byte(nil), f...))
		}
		out[side].Reset()
		return fs
	}

	r.handle(0, lan, pppoeFrame(packet.Broadcast, host, pppoe.EtherTypeDiscovery, pppoe.CodePADI, 0, tagType(pppoe.TagServiceName), nil), 0, &out, &c)
	got := take(nat.WAN)
	if len(got) != 1 || packet.Ether(got[0]).Src() != wanMAC || len(take(nat.LAN)) != 0 {
		t.Fatalf("PADI: %d frames to the WAN", len(got))
	}
	p, _ := pppoe.Parse(got[0][14:])
	rid, ok, _ := pppoe.FindTag(p.Payload(), pppoe.TagRelaySessionID)
	if !ok {
		t.Fatal("relayed PADI without Relay-Session-Id")
	}
	r.handle(0, wan, pppoeFrame(wanMAC, ac, pppoe.EtherTypeDiscovery, pppoe.CodePADO, 0, tagType(pppoe.TagRelaySessionID), rid), 0, &out, &c)
	pado := take(nat.LAN)
	if len(pado) != 1 || packet.Ether(pado[0]).Dst() != host || packet.Ether(pado[0]).Src() != lanMAC {
		t.Fatalf("PADO: %d frames to the LAN", len(pado))
	}
	p, _ = pppoe.Parse(pado[0][14:])
	acID, _, _ := pppoe.FindTag(p.Payload(), pppoe.TagRelaySessionID)
	r.handle(0, lan, pppoeFrame(lanMAC, host, pppoe.EtherTypeDiscovery, pppoe.CodePADR, 0, tagType(pppoe.TagRelaySessionID), acID), 0, &out, &c)
	if padr := take(nat.WAN); len(padr) != 1 || packet.Ether(padr[0]).Dst() != ac {
		t.Fatalf("PADR: %d frames", len(padr))
	}
	r.handle(0, wan, pppoeFrame(wanMAC, ac, pppoe.EtherTypeDiscovery, pppoe.CodePADS, 3, tagType(pppoe.TagRelaySessionID), rid), 0, &out, &c)
	if pads := take(nat.LAN); len(pads) != 1 {
		t.Fatalf("PADS: %d frames", len(pads))
	}
	sessFrame := pppoeFrame(lanMAC, host, pppoe.EtherTypeSession, 0, 3)
	r.handle(0, lan, sessFrame, 0, &out, &c)
	if up := take(nat.WAN); len(up) != 1 || packet.Ether(up[0]).Dst() != ac {
		t.Fatalf("session frame: %d frames", len(up))
	}
	if s := r.PPPoESessions(); len(s) != 1 || s[0].ID != 3 || s[0].Host != host.String() || s[0].AC != ac.String() {
		t.Fatalf("sessions %+v", s)
	}

	// Switched off: PADT both ways (sent with the next batch), then
	// nothing crosses.
	r.SetPPPoERelay(false)
	if r.PPPoERelay() {
		t.Fatal("still on")
	}
	r.takePPPoE(&out, &c)
	if l, w := take(nat.LAN), take(nat.WAN); len(l) != 1 || len(w) != 1 {
		t.Fatalf("switched off: %d PADT to the LAN, %d to the WAN", len(l), len(w))
	}
	r.handle(0, lan, pppoeFrame(packet.Broadcast, host, pppoe.EtherTypeDiscovery, pppoe.CodePADI, 0), 0, &out, &c)
	if n := len(take(nat.WAN)); n != 0 {
		t.Fatalf("relay off: %d frames relayed", n)
	}
	m := map[string]uint64{}
	r.addPPPoECounters(m)
	if m["pppoe_drop_relay_off"] != 1 || m["pppoe_sessions_opened"] != 1 || m["pppoe_sessions_switched_off"] != 1 || m["pppoe_relay_tags_added"] != 1 {
		t.Fatalf("counters %v", m)
	}
	if c.otherType != 0 {
		t.Fatalf("PPPoE frames counted as other ethertypes: %+v", c)
	}
}

// pppoeSession opens PPPoE session 3 between a LAN host and an AC through
// the relay (PADI, PADO, PADS) and returns a session frame from the host.
func pppoeSession(r *Router, out [2]*link.Batch) []byte {
	lanMAC, wanMAC := r.nb[nat.LAN].MAC(), r.nb[nat.WAN].MAC()
	host := packet.MAC{2, 0, 0, 0, 0, 0x10}
	ac := packet.MAC{2, 0, 0, 0, 0, 0xac}
	lan, wan := &worker{in: nat.LAN}, &worker{in: nat.WAN}
	var c tally
	r.handle(0, lan, pppoeFrame(packet.Broadcast, host, pppoe.EtherTypeDiscovery, pppoe.CodePADI, 0), 0, &out, &c)
	p, _ := pppoe.Parse(out[nat.WAN].Frames[0][14:])
	rid, _, _ := pppoe.FindTag(p.Payload(), pppoe.TagRelaySessionID)
	rid = append([]byte(nil), rid...)
	out[nat.WAN].Reset()
	r.handle(0, wan, pppoeFrame(wanMAC, ac, pppoe.EtherTypeDiscovery, pppoe.CodePADO, 0, tagType(pppoe.TagRelaySessionID), rid), 0, &out, &c)
	r.handle(0, wan, pppoeFrame(wanMAC, ac, pppoe.EtherTypeDiscovery, pppoe.CodePADS, 3, tagType(pppoe.TagRelaySessionID), rid), 0, &out, &c)
	out[nat.LAN].Reset()
	return pppoeFrame(lanMAC, host, pppoe.EtherTypeSession, 0, 3)
}

// Relaying a session frame through handle allocates nothing.
func TestPPPoEHookAllocatesNothing(t *testing.T) {
	r, out := pppoeRouter(t)
	tmpl := pppoeSession(r, out)
	lan := &worker{in: nat.LAN}
	var c tally
	frame := make([]byte, len(tmpl))
	step := func() {
		copy(frame, tmpl)
		r.handle(nat.Time(time.Second), lan, frame, 0, &out, &c)
		out[nat.WAN].Reset()
	}
	step()
	if st := r.PPPoEStats(); st.SessionToWAN != 1 {
		t.Fatalf("not relayed: %+v", st)
	}
	if a := testing.AllocsPerRun(1000, step); a != 0 {
		t.Fatalf("%v allocations per relayed frame", a)
	}
}

// BenchmarkHandlePPPoESession is one PPPoE session frame through handle:
// Ethernet checks, the relay, and the batch.
func BenchmarkHandlePPPoESession(b *testing.B) {
	r, out := pppoeRouter(b)
	tmpl := pppoeSession(r, out)
	lan := &worker{in: nat.LAN}
	var c tally
	frame := make([]byte, len(tmpl))
	b.ReportAllocs()
	for b.Loop() {
		copy(frame, tmpl)
		r.handle(1, lan, frame, 0, &out, &c)
		if out[nat.WAN].Len() >= 64 {
			out[nat.WAN].Reset()
		}
	}
	if r.PPPoEStats().SessionToWAN == 0 {
		b.Fatal("nothing relayed")
	}
}
