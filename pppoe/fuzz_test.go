package pppoe

import (
	"bytes"
	"testing"
	"time"

	"passgate/packet"
)

// FuzzTags walks arbitrary tag lists: no panic, every tag lies within the
// payload, the tags found re-encode to exactly the bytes walked, and
// FindTag and CheckTags agree with the walk.
func FuzzTags(f *testing.F) {
	f.Add(AppendTag(AppendTag(nil, TagServiceName, nil), TagHostUniq, []byte{1, 2, 3, 4}))
	f.Add(AppendTag(AppendTag(nil, TagRelaySessionID, ownID(kindHost, hostA)), TagEndOfList, nil))
	f.Add([]byte{0x01, 0x01, 0x00, 0x05, 'a'})
	f.Add([]byte{0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		it := Tags(b)
		var re []byte
		var first = map[uint16][]byte{}
		for it.Next() {
			tg := it.Tag()
			if tg.Type == TagEndOfList {
				t.Fatal("End-Of-List returned as a tag")
			}
			raw := it.Raw()
			if len(raw) != TagHeaderLen+len(tg.Value) || !bytes.Equal(raw[TagHeaderLen:], tg.Value) {
				t.Fatalf("raw % x does not hold value % x", raw, tg.Value)
			}
			if _, seen := first[tg.Type]; !seen {
				first[tg.Type] = tg.Value
			}
			re = AppendTag(re, tg.Type, tg.Value)
		}
		if !bytes.Equal(re, b[:len(re)]) {
			t.Fatalf("re-encoded % x is not a prefix of % x", re, b)
		}
		rest := b[len(re):]
		switch {
		case it.Err() != nil:
			if len(rest) == 0 {
				t.Fatalf("error %v with nothing left", it.Err())
			}
		case len(rest) > 0:
			if len(rest) < TagHeaderLen || rest[0] != 0 || rest[1] != 0 {
				t.Fatalf("walk ended without error before % x", rest)
			}
		}
		if err := CheckTags(b); err != it.Err() {
			t.Fatalf("CheckTags %v, walk %v", err, it.Err())
		}
		for typ, v := range first {
			got, ok, _ := FindTag(b, typ)
			if !ok || !bytes.Equal(got, v) {
				t.Fatalf("FindTag(%#x) = % x %v, want % x", typ, got, ok, v)
			}
		}
	})
}

// FuzzRelay hands arbitrary frames to a relay holding a session and a
// discovery: nothing panics, and whatever it sends is a well-formed PPPoE
// frame from the router's own address on that side, within the MTU.
func FuzzRelay(f *testing.F) {
	f.Add(true, sess(lanMAC, hostA, 5, "x"))
	f.Add(false, sess(wanMAC, ac1, 5, "y"))
	f.Add(true, disc(packet.Broadcast, hostB, CodePADI, 0, tag(TagServiceName, "")))
	f.Add(false, disc(wanMAC, ac1, CodePADO, 0, Tag{TagRelaySessionID, ownID(kindHost, hostB)}))
	f.Add(false, disc(wanMAC, ac2, CodePADS, 9, tag(TagHostUniq, "h"), Tag{TagRelaySessionID, ownID(kindHost, hostB)}))
	f.Add(true, disc(lanMAC, hostB, CodePADR, 0, tag(TagACCookie, "c"), Tag{TagRelaySessionID, ownID(kindAC, ac1)}))
	f.Add(true, disc(lanMAC, hostA, CodePADT, 5))
	f.Add(false, disc(wanMAC, ac1, CodePADT, 5, tag(TagGenericError, "bye")))
	f.Add(true, disc(packet.Broadcast, hostB, CodePADI, 0, Tag{TagRelaySessionID, []byte("other relay")}))
	f.Fuzz(func(t *testing.T, fromLAN bool, frame []byte) {
		r := newRelay(t, func(c *Config) { c.MaxSessions = 2; c.MaxDiscoveries = 2; c.MaxPayload = 200 })
		dial(t, r, 0, hostA, ac1, 5, "a")
		if v := r.Process(0, LAN, disc(packet.Broadcast, hostB, CodePADI, 0)); v.Action != Consumed {
			t.Fatal("PADI")
		}
		r.ResetEmitted()
		in := WAN
		if fromLAN {
			in = LAN
		}
		n := len(frame)
		v := r.Process(time.Second, in, frame)
		check := func(out Side, fr []byte) {
			e, ok := packet.ParseEther(fr)
			if !ok {
				t.Fatalf("sent a runt % x", fr)
			}
			src := map[Side]packet.MAC{LAN: lanMAC, WAN: wanMAC}[out]
			if e.Src() != src {
				t.Fatalf("sent out %s from %s", out, e.Src())
			}
			if e.Type() != EtherTypeDiscovery && e.Type() != EtherTypeSession {
				t.Fatalf("sent type %#x", e.Type())
			}
			p, err := Parse(e.Payload())
			if err != nil {
				t.Fatalf("sent a bad frame: %v", err)
			}
			if e.Type() == EtherTypeDiscovery {
				if err := CheckTags(p.Payload()); err != nil {
					t.Fatalf("sent bad tags: %v", err)
				}
				if len(p) > 200 && len(p) > n-packet.EtherHeaderLen {
					t.Fatalf("sent %d bytes over the MTU", len(p))
				}
			}
		}
		switch v.Action {
		case Forward:
			if len(v.Frame) > n {
				t.Fatalf("forwarded %d bytes of %d", len(v.Frame), n)
			}
			check(v.Out, v.Frame)
		case Drop:
			if v.Reason == ReasonNone || v.Reason >= NumReasons {
				t.Fatalf("drop reason %d", v.Reason)
			}
		}
		for _, e := range r.Emitted() {
			check(e.Out, e.Frame)
		}
		r.ResetEmitted()
		r.Expire(time.Hour)
		if st := r.Stats(); st.Sessions != 0 {
			t.Fatalf("%d sessions after every timeout", st.Sessions)
		}
	})
}
