package pppoe

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"passgate/packet"
)

func TestNewNeedsMACs(t *testing.T) {
	if _, err := New(Config{WANMAC: wanMAC}); err == nil {
		t.Fatal("no LAN MAC accepted")
	}
	if _, err := New(Config{LANMAC: lanMAC, WANMAC: packet.Broadcast}); err == nil {
		t.Fatal("broadcast WAN MAC accepted")
	}
	r := newRelay(t, nil)
	c := r.Config()
	if c.IdleTimeout != 10*time.Minute || c.MaxSessions != DefaultMaxSessions || !r.Enabled() {
		t.Fatalf("defaults: %+v on %v", c, r.Enabled())
	}
}

// Step by step, one host and one access concentrator, checking every
// frame the relay sends.
func TestDiscoveryAndSession(t *testing.T) {
	r := newRelay(t, nil)
	now := time.Second

	// PADI from the host: broadcast on the WAN from the router's WAN MAC,
	// the host's tags kept in order, our Relay-Session-Id added last.
	padi := consumed(t, r, now, LAN, disc(packet.Broadcast, hostA, CodePADI, 0,
		tag(TagServiceName, "isp"), tag(TagHostUniq, "\x01\x02")), WAN)
	if padi.dst != packet.Broadcast || padi.src != wanMAC || padi.code != CodePADI || padi.sid != 0 {
		t.Fatalf("relayed PADI %+v", padi)
	}
	if len(padi.tags) != 3 || padi.tags[0].Type != TagServiceName || string(padi.tags[0].Value) != "isp" ||
		padi.tags[1].Type != TagHostUniq || padi.tags[2].Type != TagRelaySessionID {
		t.Fatalf("relayed PADI tags %+v", padi.tags)
	}
	hostID := ownID(kindHost, hostA)
	padi.mustTag(t, TagRelaySessionID, hostID)

	// PADO from the AC carrying our id: to the host, from the router's
	// LAN MAC, the id now naming the AC (the host echoes it in its PADR).
	pado := forward(t, r, now, WAN, disc(wanMAC, ac1, CodePADO, 0,
		tag(TagACName, "isp-ac"), tag(TagServiceName, "isp"), tag(TagHostUniq, "\x01\x02"),
		tag(TagACCookie, "c00k1e"), Tag{TagRelaySessionID, hostID}), LAN)
	if pado.dst != hostA || pado.src != lanMAC || pado.code != CodePADO {
		t.Fatalf("relayed PADO %+v", pado)
	}
	pado.mustTag(t, TagACName, []byte("isp-ac"))
	pado.mustTag(t, TagACCookie, []byte("c00k1e"))
	pado.mustTag(t, TagRelaySessionID, ownID(kindAC, ac1))

	// PADR to the router's LAN MAC, echoing that id: to the AC it names,
	// the id naming the host again.
	padr := forward(t, r, now, LAN, disc(lanMAC, hostA, CodePADR, 0,
		tag(TagServiceName, "isp"), tag(TagHostUniq, "\x01\x02"), tag(TagACCookie, "c00k1e"),
		Tag{TagRelaySessionID, ownID(kindAC, ac1)}), WAN)
	if padr.dst != ac1 || padr.src != wanMAC || padr.code != CodePADR {
		t.Fatalf("relayed PADR %+v", padr)
	}
	padr.mustTag(t, TagRelaySessionID, hostID)

	// PADS: a session (0x1234, ac1, hostA); our id taken out.
	padsIn := disc(wanMAC, ac1, CodePADS, 0x1234, tag(TagServiceName, "isp"), Tag{TagRelaySessionID, hostID}, tag(TagHostUniq, "\x01\x02"))
	pads := forward(t, r, now, WAN, padsIn, LAN)
	if pads.dst != hostA || pads.src != lanMAC || pads.sid != 0x1234 {
		t.Fatalf("relayed PADS %+v", pads)
	}
	if pads.count(TagRelaySessionID) != 0 || len(pads.tags) != 2 || pads.tags[1].Type != TagHostUniq {
		t.Fatalf("PADS tags %+v", pads.tags)
	}
	if st := r.Stats(); st.Sessions != 1 || st.Opened != 1 {
		t.Fatalf("stats after PADS: %+v", st)
	}

	// Session frames both ways.
	up := forward(t, r, now+time.Second, LAN, sess(lanMAC, hostA, 0x1234, "up"), WAN)
	if up.dst != ac1 || up.src != wanMAC || up.sid != 0x1234 || !bytes.Contains(up.payload, []byte("up")) {
		t.Fatalf("session frame to the WAN %+v", up)
	}
	down := forward(t, r, now+time.Second, WAN, sess(wanMAC, ac1, 0x1234, "down"), LAN)
	if down.dst != hostA || down.src != lanMAC || !bytes.Contains(down.payload, []byte("down")) {
		t.Fatalf("session frame to the LAN %+v", down)
	}
	var infos []SessionInfo
	r.Sessions(now+time.Second, func(s SessionInfo) bool { infos = append(infos, s); return true })
	if len(infos) != 1 || infos[0].ID != 0x1234 || infos[0].Host != hostA || infos[0].AC != ac1 ||
		infos[0].FramesToWAN != 1 || infos[0].FramesToLAN != 1 || infos[0].ExpiresIn != 10*time.Minute {
		t.Fatalf("sessions %+v", infos)
	}

	// Wrong session id, wrong AC, wrong host, not to us.
	dropped(t, r, now, LAN, sess(lanMAC, hostA, 0x1235, "x"), ReasonUnknownSession)
	dropped(t, r, now, LAN, sess(lanMAC, hostB, 0x1234, "x"), ReasonUnknownSession)
	dropped(t, r, now, WAN, sess(wanMAC, ac2, 0x1234, "x"), ReasonUnknownSession)
	dropped(t, r, now, LAN, sess(packet.Broadcast, hostA, 0x1234, "x"), ReasonNotForUs)
	dropped(t, r, now, WAN, sess(hostB, ac1, 0x1234, "x"), ReasonNotForUs)

	// PADT from the host, echoing the AC's id as rp-pppoe does: to the AC,
	// with the id the AC knows; the session is over.
	padt := forward(t, r, now+2*time.Second, LAN, disc(lanMAC, hostA, CodePADT, 0x1234,
		tag(TagACCookie, "c00k1e"), Tag{TagRelaySessionID, ownID(kindAC, ac1)}, tag(TagGenericError, "bye")), WAN)
	if padt.dst != ac1 || padt.src != wanMAC || padt.sid != 0x1234 || padt.code != CodePADT {
		t.Fatalf("relayed PADT %+v", padt)
	}
	padt.mustTag(t, TagRelaySessionID, hostID)
	padt.mustTag(t, TagGenericError, []byte("bye"))
	dropped(t, r, now, LAN, sess(lanMAC, hostA, 0x1234, "late"), ReasonUnknownSession)
	dropped(t, r, now, WAN, disc(wanMAC, ac1, CodePADT, 0x1234), ReasonUnknownSession)
	st := r.Stats()
	if st.Sessions != 0 || st.ClosedByHost != 1 || st.SessionToWAN != 1 || st.SessionToLAN != 1 ||
		st.DiscoveryToWAN != 3 || st.DiscoveryToLAN != 2 || st.TagsAdded != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestPADTFromAC(t *testing.T) {
	r := newRelay(t, nil)
	dial(t, r, 0, hostA, ac1, 7, "a")
	padt := forward(t, r, time.Second, WAN, disc(wanMAC, ac1, CodePADT, 7, tag(TagGenericError, "admin down")), LAN)
	if padt.dst != hostA || padt.src != lanMAC || padt.sid != 7 {
		t.Fatalf("PADT %+v", padt)
	}
	padt.mustTag(t, TagGenericError, []byte("admin down"))
	if st := r.Stats(); st.Sessions != 0 || st.ClosedByAC != 1 {
		t.Fatalf("stats %+v", st)
	}
	dropped(t, r, time.Second, WAN, sess(wanMAC, ac1, 7, "late"), ReasonUnknownSession)
}

// Two hosts, two ACs, each AC offering to both: every answer reaches the
// host it is for, each PADR the AC the host chose, and sessions with the
// same id from different ACs stay apart.
func TestSeveralHostsAndACs(t *testing.T) {
	r := newRelay(t, nil)
	now := time.Second
	ids := map[packet.MAC][]byte{}
	for _, h := range []packet.MAC{hostA, hostB} {
		padi := consumed(t, r, now, LAN, disc(packet.Broadcast, h, CodePADI, 0, tag(TagServiceName, "")), WAN)
		ids[h], _ = padi.find(TagRelaySessionID)
	}
	if bytes.Equal(ids[hostA], ids[hostB]) {
		t.Fatal("both hosts got the same Relay-Session-Id")
	}
	for _, ac := range []packet.MAC{ac1, ac2} {
		for _, h := range []packet.MAC{hostA, hostB} {
			pado := forward(t, r, now, WAN, disc(wanMAC, ac, CodePADO, 0, tag(TagACName, ac.String()), Tag{TagRelaySessionID, ids[h]}), LAN)
			if pado.dst != h {
				t.Fatalf("PADO of %s for %s went to %s", ac, h, pado.dst)
			}
			pado.mustTag(t, TagRelaySessionID, ownID(kindAC, ac))
		}
	}
	// hostA takes ac2's offer, hostB ac1's.
	choice := map[packet.MAC]packet.MAC{hostA: ac2, hostB: ac1}
	for h, ac := range choice {
		padr := forward(t, r, now, LAN, disc(lanMAC, h, CodePADR, 0, Tag{TagRelaySessionID, ownID(kindAC, ac)}), WAN)
		if padr.dst != ac {
			t.Fatalf("%s's PADR went to %s, want %s", h, padr.dst, ac)
		}
		padr.mustTag(t, TagRelaySessionID, ids[h])
	}
	// Both ACs pick session id 1.
	for h, ac := range choice {
		pads := forward(t, r, now, WAN, disc(wanMAC, ac, CodePADS, 1, Tag{TagRelaySessionID, ids[h]}), LAN)
		if pads.dst != h {
			t.Fatalf("PADS from %s went to %s, want %s", ac, pads.dst, h)
		}
	}
	for h, ac := range choice {
		up := forward(t, r, now, LAN, sess(lanMAC, h, 1, "x"), WAN)
		if up.dst != ac {
			t.Fatalf("%s's session frame went to %s, want %s", h, up.dst, ac)
		}
		down := forward(t, r, now, WAN, sess(wanMAC, ac, 1, "y"), LAN)
		if down.dst != h {
			t.Fatalf("%s's session frame went to %s, want %s", ac, down.dst, h)
		}
	}
	// A PADR naming an AC that made the host no offer is refused.
	r2 := newRelay(t, nil)
	consumed(t, r2, now, LAN, disc(packet.Broadcast, hostA, CodePADI, 0), WAN)
	forward(t, r2, now, WAN, disc(wanMAC, ac1, CodePADO, 0, Tag{TagRelaySessionID, ownID(kindHost, hostA)}), LAN)
	dropped(t, r2, now, LAN, disc(lanMAC, hostA, CodePADR, 0, Tag{TagRelaySessionID, ownID(kindAC, ac2)}), ReasonStaleRelayID)
	// And a PADR naming the host kind.
	dropped(t, r2, now, LAN, disc(lanMAC, hostA, CodePADR, 0, Tag{TagRelaySessionID, ownID(kindHost, hostA)}), ReasonStaleRelayID)
}

// A host that does not echo the Relay-Session-Id in its PADR: with one
// offer the relay knows the AC and adds the host's id; with two it cannot
// tell, unless the AC-Cookie says.
func TestPADRWithoutRelayID(t *testing.T) {
	r := newRelay(t, nil)
	now := time.Second
	consumed(t, r, now, LAN, disc(packet.Broadcast, hostA, CodePADI, 0), WAN)
	forward(t, r, now, WAN, disc(wanMAC, ac1, CodePADO, 0, tag(TagACCookie, "one"), Tag{TagRelaySessionID, ownID(kindHost, hostA)}), LAN)
	padr := consumed(t, r, now, LAN, disc(lanMAC, hostA, CodePADR, 0, tag(TagServiceName, "")), WAN)
	if padr.dst != ac1 {
		t.Fatalf("PADR to %s", padr.dst)
	}
	padr.mustTag(t, TagRelaySessionID, ownID(kindHost, hostA))

	forward(t, r, now, WAN, disc(wanMAC, ac2, CodePADO, 0, tag(TagACCookie, "two"), Tag{TagRelaySessionID, ownID(kindHost, hostA)}), LAN)
	dropped(t, r, now, LAN, disc(lanMAC, hostA, CodePADR, 0, tag(TagServiceName, "")), ReasonNoRelayID)
	padr = consumed(t, r, now, LAN, disc(lanMAC, hostA, CodePADR, 0, tag(TagACCookie, "two")), WAN)
	if padr.dst != ac2 {
		t.Fatalf("PADR with ac2's cookie to %s", padr.dst)
	}
	// No discovery at all.
	dropped(t, r, now, LAN, disc(lanMAC, hostB, CodePADR, 0), ReasonStaleRelayID)
}

// RFC 2516 section 4: a relay must not add a Relay-Session-Id when the
// frame has one, and should use the existing one.
func TestForeignRelayID(t *testing.T) {
	r := newRelay(t, nil)
	now := time.Second
	theirs := []byte("relay-upstream-7")
	padi := forward(t, r, now, LAN, disc(packet.Broadcast, hostA, CodePADI, 0, tag(TagServiceName, ""), Tag{TagRelaySessionID, theirs}), WAN)
	if padi.src != wanMAC || padi.dst != packet.Broadcast || padi.count(TagRelaySessionID) != 1 {
		t.Fatalf("PADI %+v", padi)
	}
	padi.mustTag(t, TagRelaySessionID, theirs)
	for _, ac := range []packet.MAC{ac1, ac2} {
		pado := forward(t, r, now, WAN, disc(wanMAC, ac, CodePADO, 0, tag(TagACCookie, "cookie-"+ac.String()), Tag{TagRelaySessionID, theirs}), LAN)
		if pado.dst != hostA || pado.src != lanMAC {
			t.Fatalf("PADO %+v", pado)
		}
		pado.mustTag(t, TagRelaySessionID, theirs)
	}
	// The PADR's AC-Cookie says which AC it is for.
	padr := forward(t, r, now, LAN, disc(lanMAC, hostA, CodePADR, 0, tag(TagACCookie, "cookie-"+ac2.String()), Tag{TagRelaySessionID, theirs}), WAN)
	if padr.dst != ac2 {
		t.Fatalf("PADR to %s, want %s", padr.dst, ac2)
	}
	padr.mustTag(t, TagRelaySessionID, theirs)
	pads := forward(t, r, now, WAN, disc(wanMAC, ac2, CodePADS, 9, Tag{TagRelaySessionID, theirs}), LAN)
	if pads.dst != hostA {
		t.Fatalf("PADS %+v", pads)
	}
	pads.mustTag(t, TagRelaySessionID, theirs)
	forward(t, r, now, LAN, sess(lanMAC, hostA, 9, "x"), WAN)
	if st := r.Stats(); st.ForeignRelays != 5 || st.TagsAdded != 0 || st.Opened != 1 {
		t.Fatalf("stats %+v", st)
	}
	// An id longer than the relay keeps: a PADO with a Generic-Error goes
	// back to the host (and keeps its Host-Uniq).
	long := bytes.Repeat([]byte{'x'}, MaxForeignRelayID+1)
	dropped(t, r, now, LAN, disc(packet.Broadcast, hostB, CodePADI, 0, tag(TagHostUniq, "hu"), Tag{TagRelaySessionID, long}), ReasonRelayIDUnusable)
	em := emitted(t, r)
	if len(em) != 1 || em[0].Out != LAN {
		t.Fatalf("emitted %+v", em)
	}
	e := view(t, em[0].Frame)
	if e.code != CodePADO || e.dst != hostB || e.src != lanMAC || e.sid != 0 {
		t.Fatalf("error PADO %+v", e)
	}
	e.mustTag(t, TagHostUniq, []byte("hu"))
	if v, _ := e.find(TagGenericError); !strings.Contains(string(v), "Relay-Session-Id") {
		t.Fatalf("Generic-Error %q", v)
	}
}

// A PADI with End-Of-List: the relay's tag must not hide behind it.
func TestEndOfList(t *testing.T) {
	r := newRelay(t, nil)
	pl := AppendTag(nil, TagServiceName, []byte("isp"))
	pl = AppendTag(pl, TagEndOfList, nil)
	pl = AppendTag(pl, TagACName, []byte("after-eol"))
	padi := consumed(t, r, 0, LAN, raw(packet.Broadcast, hostA, EtherTypeDiscovery, CodePADI, 0, pl), WAN)
	if len(padi.tags) != 2 || padi.tags[0].Type != TagServiceName || padi.tags[1].Type != TagRelaySessionID {
		t.Fatalf("tags %+v", padi.tags)
	}
}

// A host's PADI that cannot grow by the tag within the MTU is answered
// with a Generic-Error (RFC 2516 section 4).
func TestNoRoomForRelayID(t *testing.T) {
	r := newRelay(t, nil)
	big := bytes.Repeat([]byte{'v'}, DefaultMaxPayload-HeaderLen-TagHeaderLen-8)
	dropped(t, r, 0, LAN, disc(packet.Broadcast, hostA, CodePADI, 0, Tag{TagVendorSpecific, big}), ReasonTooLong)
	em := emitted(t, r)
	if len(em) != 1 {
		t.Fatalf("emitted %d", len(em))
	}
	if e := view(t, em[0].Frame); e.code != CodePADO || e.dst != hostA {
		t.Fatalf("error frame %+v", e)
	}
	// Just small enough: relayed at exactly MaxPayload.
	fits := bytes.Repeat([]byte{'v'}, DefaultMaxPayload-HeaderLen-2*TagHeaderLen-RelayIDLen)
	v := r.Process(0, LAN, disc(packet.Broadcast, hostA, CodePADI, 0, Tag{TagVendorSpecific, fits}))
	if v.Action != Consumed || len(r.Emitted()) != 1 || len(r.Emitted()[0].Frame) != packet.EtherHeaderLen+DefaultMaxPayload {
		t.Fatalf("verdict %+v, emitted %d", v, len(r.Emitted()))
	}
}

func TestAnswersWithoutOurID(t *testing.T) {
	r := newRelay(t, nil)
	dropped(t, r, 0, WAN, disc(wanMAC, ac1, CodePADO, 0, tag(TagACName, "x")), ReasonNoRelayID)
	dropped(t, r, 0, WAN, disc(wanMAC, ac1, CodePADS, 3, tag(TagACName, "x")), ReasonNoRelayID)
	// Our id, but that host is not in discovery (or it timed out).
	dropped(t, r, 0, WAN, disc(wanMAC, ac1, CodePADO, 0, Tag{TagRelaySessionID, ownID(kindHost, hostA)}), ReasonStaleRelayID)
	consumed(t, r, 0, LAN, disc(packet.Broadcast, hostA, CodePADI, 0), WAN)
	forward(t, r, time.Second, WAN, disc(wanMAC, ac1, CodePADO, 0, Tag{TagRelaySessionID, ownID(kindHost, hostA)}), LAN)
	dropped(t, r, DefaultDiscoveryTimeout, WAN, disc(wanMAC, ac1, CodePADO, 0, Tag{TagRelaySessionID, ownID(kindHost, hostA)}), ReasonStaleRelayID)
	// An id of another mark is not ours, and no host sent it.
	other := ownID(kindHost, hostA)
	other[0] ^= 0xff
	dropped(t, r, 0, WAN, disc(wanMAC, ac1, CodePADO, 0, Tag{TagRelaySessionID, other}), ReasonNoRelayID)
	// The AC kind from the WAN.
	dropped(t, r, 0, WAN, disc(wanMAC, ac1, CodePADO, 0, Tag{TagRelaySessionID, ownID(kindAC, ac1)}), ReasonNoRelayID)
}

// An AC's PADS with session id 0 refuses the host: relayed, no session.
func TestPADSRefusal(t *testing.T) {
	r := newRelay(t, nil)
	consumed(t, r, 0, LAN, disc(packet.Broadcast, hostA, CodePADI, 0), WAN)
	pads := forward(t, r, 0, WAN, disc(wanMAC, ac1, CodePADS, 0, tag(TagServiceNameError, ""), Tag{TagRelaySessionID, ownID(kindHost, hostA)}), LAN)
	if pads.dst != hostA || pads.count(TagServiceNameError) != 1 || pads.count(TagRelaySessionID) != 0 {
		t.Fatalf("PADS %+v", pads)
	}
	if st := r.Stats(); st.Sessions != 0 || st.Opened != 0 {
		t.Fatalf("stats %+v", st)
	}
	dropped(t, r, 0, WAN, disc(wanMAC, ac1, CodePADS, 0xffff, Tag{TagRelaySessionID, ownID(kindHost, hostA)}), ReasonMalformed)
}

func TestRepeatedPADS(t *testing.T) {
	r := newRelay(t, nil)
	dial(t, r, 0, hostA, ac1, 5, "a")
	forward(t, r, time.Second, WAN, disc(wanMAC, ac1, CodePADS, 5, Tag{TagRelaySessionID, ownID(kindHost, hostA)}), LAN)
	if st := r.Stats(); st.Sessions != 1 || st.Opened != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// The AC gives a session id it had given another of our hosts: for the AC
// the old session is over, so the relay ends it with a PADT to its host.
func TestACReassignsSessionID(t *testing.T) {
	r := newRelay(t, nil)
	dial(t, r, 0, hostA, ac1, 5, "a")
	consumed(t, r, 0, LAN, disc(packet.Broadcast, hostB, CodePADI, 0), WAN)
	forward(t, r, 0, WAN, disc(wanMAC, ac1, CodePADO, 0, Tag{TagRelaySessionID, ownID(kindHost, hostB)}), LAN)
	forward(t, r, 0, LAN, disc(lanMAC, hostB, CodePADR, 0, Tag{TagRelaySessionID, ownID(kindAC, ac1)}), WAN)
	if v := r.Process(0, WAN, disc(wanMAC, ac1, CodePADS, 5, Tag{TagRelaySessionID, ownID(kindHost, hostB)})); v.Action != Forward || v.Out != LAN {
		t.Fatalf("PADS verdict %+v", v)
	}
	em := emitted(t, r)
	if len(em) != 1 || em[0].Out != LAN {
		t.Fatalf("emitted %+v", em)
	}
	if e := view(t, em[0].Frame); e.code != CodePADT || e.dst != hostA || e.sid != 5 {
		t.Fatalf("PADT %+v", e)
	}
	if st := r.Stats(); st.Sessions != 1 || st.Replaced != 1 {
		t.Fatalf("stats %+v", st)
	}
	if down := forward(t, r, 0, WAN, sess(wanMAC, ac1, 5, "x"), LAN); down.dst != hostB {
		t.Fatalf("session frame to %s", down.dst)
	}
}

// A PADS that would give a host a session id it already has with another
// AC, or that finds the table full, is refused: a PADS with a Generic-Error
// to the host, a PADT to the AC.
func TestSessionRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		max  int
		host packet.MAC // of the second session
		why  Reason
	}{
		{"clash", 4, hostA, ReasonSessionClash},
		{"table full", 1, hostB, ReasonTableFull},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRelay(t, func(c *Config) { c.MaxSessions = tc.max })
			dial(t, r, 0, hostA, ac1, 5, "a")
			h := tc.host
			consumed(t, r, 0, LAN, disc(packet.Broadcast, h, CodePADI, 0, tag(TagHostUniq, "second")), WAN)
			forward(t, r, 0, WAN, disc(wanMAC, ac2, CodePADO, 0, Tag{TagRelaySessionID, ownID(kindHost, h)}), LAN)
			forward(t, r, 0, LAN, disc(lanMAC, h, CodePADR, 0, Tag{TagRelaySessionID, ownID(kindAC, ac2)}), WAN)
			dropped(t, r, 0, WAN, disc(wanMAC, ac2, CodePADS, 5, tag(TagHostUniq, "second"), Tag{TagRelaySessionID, ownID(kindHost, h)}), tc.why)
			em := emitted(t, r)
			if len(em) != 2 {
				t.Fatalf("emitted %d frames, want an error PADS and a PADT", len(em))
			}
			var padsErr, padt frameView
			for _, e := range em {
				if e.Out == LAN {
					padsErr = view(t, e.Frame)
				} else {
					padt = view(t, e.Frame)
				}
			}
			if padsErr.code != CodePADS || padsErr.sid != 0 || padsErr.dst != h || padsErr.src != lanMAC {
				t.Fatalf("error PADS %+v", padsErr)
			}
			padsErr.mustTag(t, TagHostUniq, []byte("second"))
			if _, ok := padsErr.find(TagGenericError); !ok {
				t.Fatal("error PADS without Generic-Error")
			}
			if padt.code != CodePADT || padt.sid != 5 || padt.dst != ac2 || padt.src != wanMAC {
				t.Fatalf("PADT %+v", padt)
			}
			// The first session is untouched.
			if up := forward(t, r, 0, LAN, sess(lanMAC, hostA, 5, "x"), WAN); up.dst != ac1 {
				t.Fatalf("first session now goes to %s", up.dst)
			}
		})
	}
}

func TestIdleTimeout(t *testing.T) {
	r := newRelay(t, func(c *Config) { c.IdleTimeout = time.Minute })
	dial(t, r, 0, hostA, ac1, 5, "a")
	dial(t, r, 0, hostB, ac1, 6, "b")
	forward(t, r, 50*time.Second, LAN, sess(lanMAC, hostB, 6, "keepalive"), WAN)
	r.Expire(59 * time.Second)
	if st := r.Stats(); st.Sessions != 2 || len(r.Emitted()) != 0 {
		t.Fatalf("expired early: %+v", st)
	}
	r.Expire(60 * time.Second)
	em := emitted(t, r)
	if st := r.Stats(); st.Sessions != 1 || st.Expired != 1 {
		t.Fatalf("stats %+v", st)
	}
	if len(em) != 2 {
		t.Fatalf("emitted %d, want a PADT each way", len(em))
	}
	for _, e := range em {
		v := view(t, e.Frame)
		want := map[Side]packet.MAC{LAN: hostA, WAN: ac1}[e.Out]
		src := map[Side]packet.MAC{LAN: lanMAC, WAN: wanMAC}[e.Out]
		if v.code != CodePADT || v.sid != 5 || v.dst != want || v.src != src {
			t.Fatalf("PADT to %s: %+v", e.Out, v)
		}
		if g, _ := v.find(TagGenericError); !strings.Contains(string(g), "idle") {
			t.Fatalf("PADT error %q", g)
		}
	}
	dropped(t, r, 61*time.Second, LAN, sess(lanMAC, hostA, 5, "late"), ReasonUnknownSession)
	forward(t, r, 61*time.Second, LAN, sess(lanMAC, hostB, 6, "alive"), WAN)
	r.Expire(200 * time.Second)
	if st := r.Stats(); st.Sessions != 0 || st.Discoveries != 0 {
		t.Fatalf("after all timeouts %+v", st)
	}
}

func TestSwitchOff(t *testing.T) {
	r := newRelay(t, nil)
	dial(t, r, 0, hostA, ac1, 5, "a")
	r.SetEnabled(0, false)
	if r.Enabled() {
		t.Fatal("still on")
	}
	em := emitted(t, r)
	if len(em) != 2 {
		t.Fatalf("emitted %d, want a PADT each way", len(em))
	}
	dropped(t, r, 0, LAN, sess(lanMAC, hostA, 5, "x"), ReasonOff)
	dropped(t, r, 0, LAN, disc(packet.Broadcast, hostA, CodePADI, 0), ReasonOff)
	if st := r.Stats(); st.Sessions != 0 || st.SwitchedOff != 1 || st.Discoveries != 0 {
		t.Fatalf("stats %+v", st)
	}
	r.SetEnabled(0, true)
	dial(t, r, 0, hostA, ac1, 5, "a")

	// A full table: every session gets its two PADTs.
	r = newRelay(t, nil)
	for i := range DefaultMaxSessions {
		openSession(t, r, packet.MAC{0x02, 1, 0, 0, 0, byte(i)}, ac1, uint16(i+1))
	}
	r.SetEnabled(0, false)
	if em := emitted(t, r); len(em) != 2*DefaultMaxSessions || r.Stats().Drops[ReasonEmitFull] != 0 {
		t.Fatalf("switched off with %d sessions: %d PADTs, %d lost", DefaultMaxSessions, len(em), r.Stats().Drops[ReasonEmitFull])
	}
}

func TestDiscoveryTableFull(t *testing.T) {
	r := newRelay(t, func(c *Config) { c.MaxDiscoveries = 1 })
	consumed(t, r, 0, LAN, disc(packet.Broadcast, hostA, CodePADI, 0), WAN)
	consumed(t, r, time.Second, LAN, disc(packet.Broadcast, hostA, CodePADI, 0), WAN) // a retry reuses its entry
	dropped(t, r, time.Second, LAN, disc(packet.Broadcast, hostB, CodePADI, 0), ReasonDiscoveryFull)
	// Once hostA's discovery is over, its entry is free again.
	consumed(t, r, time.Second+DefaultDiscoveryTimeout, LAN, disc(packet.Broadcast, hostB, CodePADI, 0), WAN)

	// A discovery whose PADS opened a session gives way to a new one at
	// once, but still serves a repeated PADR until then.
	r = newRelay(t, func(c *Config) { c.MaxDiscoveries = 1 })
	dial(t, r, 0, hostA, ac1, 5, "a")
	forward(t, r, 0, LAN, disc(lanMAC, hostA, CodePADR, 0, Tag{TagRelaySessionID, ownID(kindAC, ac1)}), WAN)
	consumed(t, r, time.Second, LAN, disc(packet.Broadcast, hostB, CodePADI, 0), WAN)
	dropped(t, r, time.Second, LAN, disc(lanMAC, hostA, CodePADR, 0, Tag{TagRelaySessionID, ownID(kindAC, ac1)}), ReasonStaleRelayID)
}

func TestEmitFull(t *testing.T) {
	r := newRelay(t, func(c *Config) { c.EmitBytes = 100 })
	consumed(t, r, 0, LAN, disc(packet.Broadcast, hostA, CodePADI, 0), WAN)
	if v := r.Process(0, LAN, disc(packet.Broadcast, hostB, CodePADI, 0)); v.Action != Consumed {
		t.Fatalf("%+v", v)
	}
	dropped(t, r, 0, LAN, disc(packet.Broadcast, hostA, CodePADI, 0), ReasonEmitFull)
	r.ResetEmitted()
	consumed(t, r, 0, LAN, disc(packet.Broadcast, hostA, CodePADI, 0), WAN)
}

func TestPADMRelayed(t *testing.T) {
	r := newRelay(t, nil)
	dial(t, r, 0, hostA, ac1, 5, "a")
	m := forward(t, r, 0, WAN, disc(wanMAC, ac1, CodePADM, 5, Tag{0x0101 + 0x100, []byte("motm")}), LAN)
	if m.dst != hostA || m.code != CodePADM {
		t.Fatalf("PADM %+v", m)
	}
	dropped(t, r, 0, WAN, disc(wanMAC, ac2, CodePADM, 5), ReasonUnknownSession)
}

func TestMalformedAndUnexpected(t *testing.T) {
	r := newRelay(t, nil)
	good := disc(packet.Broadcast, hostA, CodePADI, 0, tag(TagServiceName, ""))

	short := good[:packet.EtherHeaderLen+3]
	dropped(t, r, 0, LAN, short, ReasonMalformed)
	dropped(t, r, 0, LAN, good[:10], ReasonMalformed)
	badVer := append([]byte(nil), good...)
	badVer[packet.EtherHeaderLen] = 0x12
	dropped(t, r, 0, LAN, badVer, ReasonMalformed)
	badLen := append([]byte(nil), good...)
	badLen[packet.EtherHeaderLen+5] = 200
	dropped(t, r, 0, LAN, badLen, ReasonMalformed)
	badTag := append([]byte(nil), good...)
	badTag[packet.EtherHeaderLen+HeaderLen+3] = 9 // Service-Name length past LENGTH
	dropped(t, r, 0, LAN, badTag, ReasonMalformed)
	dropped(t, r, 0, LAN, disc(packet.Broadcast, packet.Broadcast, CodePADI, 0), ReasonMalformed)
	dropped(t, r, 0, LAN, disc(packet.Broadcast, packet.MAC{}, CodePADI, 0), ReasonMalformed)
	dropped(t, r, 0, LAN, disc(packet.Broadcast, hostA, CodePADI, 3), ReasonMalformed)
	dropped(t, r, 0, LAN, disc(packet.MAC{0x02, 9, 9, 9, 9, 9}, hostA, CodePADI, 0), ReasonMalformed)
	dropped(t, r, 0, LAN, disc(lanMAC, hostA, CodePADR, 3), ReasonMalformed)
	dropped(t, r, 0, LAN, raw(lanMAC, hostA, EtherTypeSession, CodePADT, 1, nil), ReasonMalformed)
	dropped(t, r, 0, LAN, raw(lanMAC, hostA, 0x0800, 0, 0, nil), ReasonMalformed)

	dropped(t, r, 0, WAN, disc(packet.Broadcast, ac1, CodePADI, 0), ReasonUnexpected)
	dropped(t, r, 0, WAN, disc(wanMAC, ac1, CodePADR, 0), ReasonUnexpected)
	dropped(t, r, 0, LAN, disc(lanMAC, hostA, CodePADO, 0), ReasonUnexpected)
	dropped(t, r, 0, LAN, disc(lanMAC, hostA, CodePADS, 4), ReasonUnexpected)
	dropped(t, r, 0, LAN, disc(lanMAC, hostA, 0x42, 0), ReasonUnexpected)
	dropped(t, r, 0, WAN, disc(hostA, ac1, CodePADO, 0), ReasonNotForUs)
	dropped(t, r, 0, LAN, disc(hostB, hostA, CodePADR, 0), ReasonNotForUs)
	dropped(t, r, 0, LAN, disc(packet.Broadcast, hostA, CodePADT, 4), ReasonNotForUs)
	if st := r.Stats(); st.TotalDrops() != 20 {
		t.Fatalf("drops %d: %+v", st.TotalDrops(), st.Drops)
	}
	var names []string
	st := r.Stats()
	st.Counters(func(n string, v uint64) {
		if v != 0 {
			names = append(names, n)
		}
	})
	if got := strings.Join(names, " "); got != "drop_malformed drop_not_for_us drop_unexpected_code" {
		t.Fatalf("non-zero counters: %s", got)
	}
}

// Relaying a session frame, and a discovery, allocates nothing.
func TestNoAllocations(t *testing.T) {
	r := newRelay(t, nil)
	dial(t, r, 0, hostA, ac1, 5, "a")
	up := sess(lanMAC, hostA, 5, "up")
	down := sess(wanMAC, ac1, 5, "down")
	upHdr := append([]byte(nil), up[:12]...)
	downHdr := append([]byte(nil), down[:12]...)
	padi := disc(packet.Broadcast, hostB, CodePADI, 0, tag(TagServiceName, ""), tag(TagHostUniq, "x"))
	pado := disc(wanMAC, ac1, CodePADO, 0, tag(TagACName, "ac"), Tag{TagRelaySessionID, ownID(kindHost, hostB)})
	padoHdr := append([]byte(nil), pado...)
	n := testing.AllocsPerRun(200, func() {
		copy(up, upHdr)
		copy(down, downHdr)
		copy(pado, padoHdr)
		if r.Process(time.Second, LAN, up).Action != Forward || r.Process(time.Second, WAN, down).Action != Forward {
			t.Fatal("session frame not relayed")
		}
		if r.Process(time.Second, LAN, padi).Action != Consumed || r.Process(time.Second, WAN, pado).Action != Forward {
			t.Fatal("discovery not relayed")
		}
		r.ResetEmitted()
		r.Expire(time.Second)
	})
	if n != 0 {
		t.Fatalf("%v allocations per run", n)
	}
}
