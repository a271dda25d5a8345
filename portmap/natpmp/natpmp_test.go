package natpmp

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"passgate/portmap"
	. "passgate/portmap/portmaptest"
)

func server(t testing.TB) (*Server, func() int) {
	m, e := Manager(t)
	s := &Server{Manager: m, Public: func() netip.Addr { return Public }, Epoch: func(now time.Time) uint32 { return uint32(now.Sub(T0) / time.Second) }}
	return s, func() int { return len(e.DynamicForwards()) }
}

func mapReq(op uint8, internal, suggested uint16, life uint32) []byte {
	b := []byte{0, op, 0, 0}
	b = binary.BigEndian.AppendUint16(b, internal)
	b = binary.BigEndian.AppendUint16(b, suggested)
	return binary.BigEndian.AppendUint32(b, life)
}

func TestAnswers(t *testing.T) {
	s, forwards := server(t)
	now := T0.Add(10 * time.Second)
	for _, c := range []struct {
		name   string
		client netip.Addr
		req    []byte
		want   []byte
		fwds   int
	}{
		{"public address", LAN1, []byte{0, 0}, []byte{0, 128, 0, 0, 0, 0, 0, 10, 203, 0, 113, 1}, 0},
		{"map TCP", LAN1, mapReq(OpMapTCP, 5000, 40000, 3600), AppendMap(nil, OpMapTCP, Success, 10, 5000, 40000, 3600), 1},
		{"refresh, lease clamped to 2 h", LAN1, mapReq(OpMapTCP, 5000, 0, 86400), AppendMap(nil, OpMapTCP, Success, 10, 5000, 40000, 7200), 1},
		{"another host's port: given another", LAN2, mapReq(OpMapTCP, 5000, 40000, 60), nil, 2},
		{"suggested low port: given another", LAN2, mapReq(OpMapUDP, 53, 53, 60), nil, 3},
		{"the forwarded port: given another", LAN2, mapReq(OpMapTCP, 443, StaticPort, 60), nil, 4},
		{"off the LAN", netip.MustParseAddr("10.0.0.7"), mapReq(OpMapUDP, 9, 9000, 60), AppendMap(nil, OpMapUDP, NotAuthorized, 10, 9, 0, 0), 4},
		{"delete", LAN1, mapReq(OpMapTCP, 5000, 0, 0), AppendMap(nil, OpMapTCP, Success, 10, 5000, 0, 0), 3},
		{"delete all of LAN2's UDP", LAN2, mapReq(OpMapUDP, 0, 0, 0), AppendMap(nil, OpMapUDP, Success, 10, 0, 0, 0), 2},
		{"version 1", LAN1, []byte{1, 0}, []byte{0, 128, 0, 1, 0, 0, 0, 10}, 2},
		{"opcode 3", LAN1, []byte{0, 3}, []byte{0, 131, 0, 5}, 2},
		{"opcode 3, the request returned", LAN1, []byte{0, 3, 9, 9, 1, 2, 3, 4, 5, 6}, []byte{0, 131, 0, 5, 1, 2, 3, 4, 5, 6}, 2},
		{"a response", LAN1, []byte{0, 128, 0, 0}, nil, 2},
		{"short map", LAN1, []byte{0, 1, 0, 0}, nil, 2},
	} {
		got := s.Answer(now, c.client, c.req)
		if c.want != nil && !bytes.Equal(got, c.want) {
			t.Errorf("%s: % x, want % x", c.name, got, c.want)
		}
		if c.want == nil && len(c.req) == 12 {
			ext := binary.BigEndian.Uint16(got[10:])
			if len(got) != 16 || got[3] != 0 || ext < 1024 || ext == 40000 || ext == StaticPort {
				t.Errorf("%s: % x, want success on another high port", c.name, got)
			}
		} else if c.want == nil && got != nil {
			t.Errorf("%s: answered % x", c.name, got)
		}
		if n := forwards(); n != c.fwds {
			t.Errorf("%s: %d forwards in the engine, want %d", c.name, n, c.fwds)
		}
	}
}

// FuzzNATPMP: any datagram gets no answer or a well-formed one (the right
// length, version 0, the request's opcode + 128), and never a mapping for
// an address other than the client's.
func FuzzNATPMP(f *testing.F) {
	f.Add([]byte{0, 0})
	f.Add(mapReq(OpMapUDP, 5000, 5000, 3600))
	f.Add(mapReq(OpMapTCP, 0, 0, 0))
	f.Add([]byte{0})                               // malformed: one byte
	f.Add([]byte{0, 2, 0, 0, 0x13, 0x88})          // malformed: map cut short
	f.Add([]byte{2, 1, 0, 0})                      // a PCP version, not NAT-PMP
	f.Add([]byte{0, 129, 0, 0, 0, 0, 0, 0})        // a response sent to the server
	f.Add(append(mapReq(OpMapTCP, 1, 1, 1), 0xff)) // trailing byte
	f.Add([]byte{0, 3, 0, 0, 1, 2, 3})             // malformed: unsupported opcode 3, returned whole
	s, _ := server(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		out := s.Answer(T0, LAN1, b)
		if out == nil {
			return
		}
		if len(out) != 8 && len(out) != 12 && len(out) != 16 || out[0] != 0 || out[1] != b[1]|ResponseFlag {
			// An unsupported opcode: the request itself returned, with
			// the response bit and result 5 (RFC 6886 3.5).
			if b[0] != 0 || out[1] != b[1]|ResponseFlag || len(out) != max(len(b), 4) || out[3] != 5 || !bytes.Equal(out[4:], b[min(4, len(b)):]) {
				t.Fatalf("answer % x to % x", out, b)
			}
		}
		for _, l := range s.Manager.Leases() {
			if l.Host != LAN1 {
				t.Fatalf("mapping for %s", l.Host)
			}
		}
	})
}

// TestPCPLeaseKeepsItsNonce: a PCP mapping is protected by its nonce; a
// NAT-PMP request (from a host spoofing lan1's address) can neither
// delete it, one by one or all at once, nor refresh it into its own.
func TestPCPLeaseKeepsItsNonce(t *testing.T) {
	s, forwards := server(t)
	now := T0.Add(10 * time.Second)
	if _, err := s.Manager.Map(now, portmap.Request{Client: LAN1, Proto: portmap.TCP, Inside: 5000, Outside: 40000, Exact: true, By: "pcp", Nonce: [12]byte{7}}); err != nil {
		t.Fatal(err)
	}
	for name, req := range map[string][]byte{
		"delete":     mapReq(OpMapTCP, 5000, 0, 0),
		"delete all": mapReq(OpMapTCP, 0, 0, 0),
		"refresh":    mapReq(OpMapTCP, 5000, 40000, 60),
	} {
		got := s.Answer(now, LAN1, req)
		if len(got) != 16 || binary.BigEndian.Uint16(got[2:]) != NotAuthorized {
			t.Errorf("%s: % x, want NOT_AUTHORIZED", name, got)
		}
		l, ok := s.Manager.Find(portmap.TCP, 40000)
		if forwards() != 1 || !ok || l.By != "pcp" || l.Nonce != [12]byte{7} {
			t.Fatalf("%s: the PCP lease is now %+v (%d forwards)", name, l, forwards())
		}
	}
}

// TestDeleteOnlyTheRequesters: lifetime 0 from lan2, for lan1's internal
// port or for all (internal port 0), leaves lan1's mapping in place and
// still answers success (RFC 6886 3.4: deleting nothing succeeds).
func TestDeleteOnlyTheRequesters(t *testing.T) {
	s, forwards := server(t)
	now := T0.Add(10 * time.Second)
	if got := s.Answer(now, LAN1, mapReq(OpMapUDP, 6000, 46000, 600)); binary.BigEndian.Uint16(got[2:]) != Success {
		t.Fatalf("map: % x", got)
	}
	for _, req := range [][]byte{mapReq(OpMapUDP, 6000, 0, 0), mapReq(OpMapUDP, 0, 0, 0)} {
		got := s.Answer(now, LAN2, req)
		if !bytes.Equal(got, AppendMap(nil, OpMapUDP, Success, 10, binary.BigEndian.Uint16(req[4:]), 0, 0)) {
			t.Fatalf("lan2's delete: % x", got)
		}
		if l, ok := s.Manager.Find(portmap.UDP, 46000); !ok || l.Host != LAN1 || forwards() != 1 {
			t.Fatalf("lan2's delete ended lan1's mapping: %+v %v", l, ok)
		}
	}
}
