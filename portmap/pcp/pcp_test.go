package pcp

import (
	"net/netip"
	"testing"
	"time"

	"passgate/nat"
	"passgate/packet"
	"passgate/packet/pkttest"
	"passgate/portmap"
	. "passgate/portmap/portmaptest"
)

func server(t testing.TB) (*Server, func() int) {
	m, e := Manager(t)
	s := &Server{
		Manager: m, Public: func() netip.Addr { return Public },
		Epoch:        func(now time.Time) uint32 { return uint32(now.Sub(T0) / time.Second) },
		Outbound:     e.OutboundMapping,
		PeerLifetime: 2 * time.Minute,
	}
	return s, func() int { return len(e.DynamicForwards()) }
}

var (
	nonce1 = [12]byte{1, 2, 3}
	nonce2 = [12]byte{9}
)

func mapReq(client netip.Addr, nonce [12]byte, proto uint8, in, out uint16, life uint32, opts ...Option) []byte {
	return AppendRequest(nil, OpMap, life, client, MapData(nonce, proto, in, out, netip.Addr{}), opts...)
}

func TestAnswers(t *testing.T) {
	s, forwards := server(t)
	now := T0.Add(5 * time.Second)
	prefer := Option{Code: OptPreferFailure}
	third := Option{Code: OptThirdParty, Data: make([]byte, 16)}
	filter := Option{Code: OptFilter, Data: make([]byte, 20)}
	for _, c := range []struct {
		name   string
		client netip.Addr
		req    []byte
		result uint8
		ext    uint16 // 0: not checked; 1: any other high port
		life   uint32
		fwds   int
	}{
		{"map TCP", LAN1, mapReq(LAN1, nonce1, 6, 5000, 40000, 600), Success, 40000, 600, 1},
		{"refresh, clamped", LAN1, mapReq(LAN1, nonce1, 6, 5000, 40000, 99999), Success, 40000, 7200, 1},
		{"refresh with another nonce", LAN1, mapReq(LAN1, nonce2, 6, 5000, 40000, 600), NotAuthorized, 0, 30, 1},
		{"map UDP, suggested port taken", LAN2, mapReq(LAN2, nonce2, 17, 5000, 40000, 600), Success, 40000, 600, 2},
		{"TCP port taken, prefer failure", LAN2, mapReq(LAN2, nonce2, 6, 5000, 40000, 600, prefer), CannotProvideExternal, 0, 30, 2},
		{"TCP port taken, given another", LAN2, mapReq(LAN2, nonce2, 6, 5000, 40000, 600), Success, 1, 600, 3},
		{"static forward, prefer failure", LAN2, mapReq(LAN2, nonce2, 6, 443, StaticPort, 600, prefer), CannotProvideExternal, 0, 30, 3},
		{"low port, prefer failure", LAN2, mapReq(LAN2, nonce2, 17, 53, 53, 600, prefer), CannotProvideExternal, 0, 30, 3},
		{"lan2 for lan1 (client field)", LAN2, mapReq(LAN1, nonce2, 6, 22, 40022, 600), AddressMismatch, 0, 30, 3},
		{"lan2 for lan1 (third party)", LAN2, mapReq(LAN2, nonce2, 6, 22, 40022, 600, third), NotAuthorized, 0, 30, 3},
		{"filter option", LAN1, mapReq(LAN1, nonce1, 6, 23, 0, 600, filter), UnsuppOption, 0, 30, 3},
		{"unknown optional option ignored", LAN1, mapReq(LAN1, nonce1, 17, 7000, 0, 60, Option{Code: 200, Data: []byte{1}}), Success, 1, 60, 4},
		{"all protocols", LAN1, mapReq(LAN1, nonce1, 0, 0, 0, 600), NotAuthorized, 0, 30, 4},
		{"SCTP", LAN1, mapReq(LAN1, nonce1, 132, 9, 9, 600), UnsuppProtocol, 0, 30, 4},
		{"internal port 0", LAN1, mapReq(LAN1, nonce1, 6, 0, 0, 600), MalformedRequest, 0, 30, 4},
		{"delete with another nonce", LAN1, mapReq(LAN1, nonce2, 6, 5000, 0, 0), NotAuthorized, 0, 30, 4},
		{"delete", LAN1, mapReq(LAN1, nonce1, 6, 5000, 0, 0), Success, 0, 0, 3},
		{"announce", LAN1, AppendRequest(nil, OpAnnounce, 0, LAN1, nil), Success, 0, 0, 3},
		{"peer without traffic", LAN1, AppendRequest(nil, OpPeer, 60, LAN1, PeerData(nonce1, 17, 6000, 0, netip.Addr{}, 53, netip.MustParseAddr("198.51.100.1"))), NoResources, 0, 30, 3},
		{"version 1", LAN1, append([]byte{1}, mapReq(LAN1, nonce1, 6, 1, 1, 1)[1:]...), UnsuppVersion, 0, 30, 3},
		{"opcode 5", LAN1, AppendRequest(nil, 5, 0, LAN1, nil), UnsuppOpcode, 0, 30, 3},
		{"map cut short", LAN1, mapReq(LAN1, nonce1, 6, 1, 1, 1)[:40], MalformedRequest, 0, 30, 3},
		{"option past the end", LAN1, append(mapReq(LAN1, nonce1, 6, 1, 1, 1), 2, 0, 0, 8), MalformedOption, 0, 30, 3},
	} {
		out := s.Answer(now, c.client, c.req)
		r, err := ParseResponse(out)
		if err != nil {
			t.Errorf("%s: %v (% x)", c.name, err, out)
			continue
		}
		if r.Result != c.result || r.Lifetime != c.life || r.Epoch != 5 || r.Op != c.req[1] {
			t.Errorf("%s: %+v, want result %d lifetime %d", c.name, r, c.result, c.life)
		}
		if c.result == Success && r.Op == OpMap && c.life != 0 {
			if r.ExternalIP != Public || r.Nonce != [12]byte(c.req[24:36]) {
				t.Errorf("%s: external %s nonce %x", c.name, r.ExternalIP, r.Nonce)
			}
			if c.ext == 1 && (r.External < 1024 || r.External == 40000) || c.ext > 1 && r.External != c.ext {
				t.Errorf("%s: external port %d, want %d", c.name, r.External, c.ext)
			}
		}
		if n := forwards(); n != c.fwds {
			t.Errorf("%s: %d forwards, want %d", c.name, n, c.fwds)
		}
	}
	if s.Answer(now, LAN1, []byte{2}) != nil || s.Answer(now, LAN1, Announcement(1)) != nil {
		t.Error("answered a one-byte message or a response")
	}
}

// FuzzPCP: any datagram gets no answer or a response of the request's
// opcode, at most 1100 bytes, a multiple of 4; no mapping is ever made
// for another host than the sender.
func FuzzPCP(f *testing.F) {
	f.Add(mapReq(LAN1, nonce1, 6, 5000, 40000, 600))
	f.Add(mapReq(LAN1, nonce1, 17, 5000, 0, 0, Option{Code: OptPreferFailure}))
	f.Add(AppendRequest(nil, OpPeer, 60, LAN1, PeerData(nonce1, 17, 6000, 0, netip.Addr{}, 53, netip.MustParseAddr("198.51.100.1"))))
	f.Add(AppendRequest(nil, OpAnnounce, 0, LAN1, nil))
	f.Add(mapReq(LAN2, nonce1, 6, 5000, 40000, 600))                                                    // malformed: client field is another host
	f.Add(mapReq(LAN1, nonce1, 6, 5000, 40000, 600, Option{Code: OptThirdParty, Data: LAN2.AsSlice()})) // third party
	f.Add(append(mapReq(LAN1, nonce1, 6, 1, 1, 1), 1, 0, 0xff, 0xff))                                   // malformed: option length beyond the message
	f.Add(mapReq(LAN1, nonce1, 6, 5000, 40000, 600)[:30])                                               // malformed: length not a multiple of 4
	f.Add(append(mapReq(LAN1, nonce1, 6, 1, 1, 1), make([]byte, 1100)...))                              // malformed: longer than 1100 bytes
	f.Add([]byte{2, 0x81, 0, 0})                                                                        // a response
	s, _ := server(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		out := s.Answer(T0, LAN1, b)
		if out == nil {
			return
		}
		if len(out) < HeaderLen || len(out) > MaxMessage || len(out)%4 != 0 || out[0] != Version || out[1] != b[1]|0x80 {
			t.Fatalf("answer % x to % x", out, b)
		}
		for _, l := range s.Manager.Leases() {
			if l.Host != LAN1 {
				t.Fatalf("mapping for %s", l.Host)
			}
		}
	})
}

func TestPeerReportsTheLiveMapping(t *testing.T) {
	m, e := Manager(t)
	s := &Server{Manager: m, Public: func() netip.Addr { return Public }, Epoch: func(time.Time) uint32 { return 1 }, Outbound: e.OutboundMapping, PeerLifetime: 2 * time.Minute}
	b := pkttest.UDP("192.168.50.10:6000", "198.51.100.1:53", []byte("q"))
	if v := e.Process(0, nat.LAN, b); v.Action != nat.Forward {
		t.Fatalf("verdict %+v", v)
	}
	sent := packet.UDP(packet.IPv4(b).Payload()).SrcPort()
	r, _ := ParseResponse(s.Answer(T0, LAN1, AppendRequest(nil, OpPeer, 3600, LAN1, PeerData(nonce1, 17, 6000, 0, netip.Addr{}, 53, netip.MustParseAddr("198.51.100.1")))))
	if r.Result != Success || r.External != sent || r.ExternalIP != Public || r.Lifetime != 120 {
		t.Fatalf("PEER %+v, the flow left from port %d", r, sent)
	}
}

func thirdParty(a netip.Addr) Option {
	v := a.As16()
	return Option{Code: OptThirdParty, Data: v[:]}
}

// TestThirdParty: with allow_third_party off (the default) lan2 cannot map
// for lan1 with THIRD_PARTY (NOT_AUTHORIZED); a malformed option is
// MALFORMED_OPTION (not 16 octets, twice) and naming the sender itself
// MALFORMED_REQUEST (RFC 6887 13.1). With it on, lan2 maps lan1's port (the
// engine forwards to lan1), and deletes it with the same nonce and option;
// an address off the LAN, the router or the LAN's broadcast address are
// still refused.
func TestThirdParty(t *testing.T) {
	now := T0.Add(5 * time.Second)
	ask := func(s *Server, opts ...Option) Response {
		t.Helper()
		r, err := ParseResponse(s.Answer(now, LAN2, mapReq(LAN2, nonce2, 6, 22, 40022, 600, opts...)))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	off, forwards := server(t)
	for _, c := range []struct {
		name string
		opts []Option
		want uint8
	}{
		{"off", []Option{thirdParty(LAN1)}, NotAuthorized},
		{"4 octets", []Option{{Code: OptThirdParty, Data: LAN1.AsSlice()}}, MalformedOption},
		{"twice", []Option{thirdParty(LAN1), thirdParty(LAN1)}, MalformedOption},
		{"the sender itself", []Option{thirdParty(LAN2)}, MalformedRequest},
	} {
		if r := ask(off, c.opts...); r.Result != c.want || forwards() != 0 {
			t.Errorf("%s: result %d, %d forwards; want %d and none", c.name, r.Result, forwards(), c.want)
		}
	}

	e := Engine(t)
	m, err := portmap.New(portmap.Config{LAN: netip.MustParsePrefix("192.168.50.1/24"), AllowThirdParty: true}, e, "", T0, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	on := &Server{Manager: m, Public: func() netip.Addr { return Public }, Epoch: func(time.Time) uint32 { return 5 }}
	for _, a := range []netip.Addr{netip.MustParseAddr("10.0.0.5"), Router, netip.MustParseAddr("192.168.50.255"), netip.MustParseAddr("192.168.50.0")} {
		if r := ask(on, thirdParty(a)); r.Result != NotAuthorized || len(e.DynamicForwards()) != 0 {
			t.Errorf("for %s: result %d, forwards %+v; want NOT_AUTHORIZED and none", a, r.Result, e.DynamicForwards())
		}
	}
	if r := ask(on, thirdParty(LAN1)); r.Result != Success || r.External != 40022 {
		t.Fatalf("allowed third party: %+v", r)
	}
	if fs := e.DynamicForwards(); len(fs) != 1 || fs[0].Host != LAN1 || fs[0].Inside != 22 || fs[0].Outside != 40022 {
		t.Fatalf("engine %+v, want 40022 to lan1:22", fs)
	}
	// Deleting it: lan2 without the option has no such mapping; with it
	// and another nonce, NOT_AUTHORIZED; with its nonce, gone.
	del := func(nonce [12]byte, opts ...Option) uint8 {
		r, _ := ParseResponse(on.Answer(now, LAN2, mapReq(LAN2, nonce, 6, 22, 0, 0, opts...)))
		return r.Result
	}
	if del(nonce2) != Success || len(e.DynamicForwards()) != 1 {
		t.Fatal("lan2's own delete ended lan1's mapping")
	}
	if del(nonce1, thirdParty(LAN1)) != NotAuthorized || len(e.DynamicForwards()) != 1 {
		t.Fatal("deleted with another nonce")
	}
	if del(nonce2, thirdParty(LAN1)) != Success || len(e.DynamicForwards()) != 0 {
		t.Fatal("third-party delete did not end the mapping")
	}
}
