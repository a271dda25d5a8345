//go:build lab

package offload

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"passgate/nat"
	"passgate/packet"
	"passgate/packet/pkttest"
)

// TestProgramMatchesApply loads the offload instructions (a miss returns
// XDP_PASS) and runs crafted frames through the kernel's verifier and
// BPF_PROG_TEST_RUN: a hit must come out as XDP_REDIRECT byte for byte
// what Apply makes, counted in the entry, a DF-clear one with its new IP
// ID from the shared counters, moved as Apply moves them; a miss
// untouched.
func TestProgramMatchesApply(t *testing.T) {
	m, err := NewMap(16)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ids := newIDMap(t)
	is := Instructions(m, ids.Map())
	is = append(is, asm.Mov.Imm(asm.R0, 2), asm.Return())
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "offload_test", Type: ebpf.XDP, License: "GPL", Instructions: is})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	defer prog.Close()
	runMatchesApply(t, m, ids, prog, 2, 4, false)
}

// TestTCProgramMatchesApply is the same for the tc program (a miss is
// TC_ACT_OK, a hit TC_ACT_REDIRECT). BPF_PROG_TEST_RUN's skb has no
// checksum state (CHECKSUM_NONE): the helpers then update the fields as
// Apply does, and the frame with a partial-looking checksum, which the
// tc program does not tell apart (the helpers would keep a real
// CHECKSUM_PARTIAL right), comes out as Apply makes it of a complete
// one.
func TestTCProgramMatchesApply(t *testing.T) {
	m, err := NewMap(16)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ids := newIDMap(t)
	prog, err := ebpf.NewProgram(TCProgramSpec(m, ids.Map(), TCOptions{}))
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	defer prog.Close()
	runMatchesApply(t, m, ids, prog, 0, 7, true)
}

// newIDMap is an ID map with a key and counters set, closed by the test's
// end.
func newIDMap(t *testing.T) *IDMap {
	t.Helper()
	ids, err := NewIDMap()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ids.Close() })
	s := ids.IDs()
	s.Key = 0x5eed0123456789ab
	for i := range s.Counters {
		// Each bucket's next ID a few below 0xffff and past it.
		s.Counters[i] = uint32(i)<<16 | 0xfffd
	}
	return ids
}

func runMatchesApply(t *testing.T, m *ebpf.Map, ids *IDMap, prog *ebpf.Program, pass, redirect uint32, tc bool) {
	t.Helper()
	const lo = 1 // BPF_PROG_TEST_RUN's frames arrive on lo
	payload := bytes.Repeat([]byte{0xfe, 0x01}, 300)
	frames := map[string][]byte{
		"udp":      frame(pkttest.UDP("10.0.0.2:5000", "198.51.100.7:53", payload, pkttest.DF()), lanMAC, hostMAC),
		"udp nocs": frame(pkttest.UDP("10.0.0.2:5001", "198.51.100.7:53", payload[:33], pkttest.ZeroUDPChecksum(), pkttest.DF()), lanMAC, hostMAC),
		"tcp":      frame(pkttest.TCP("10.0.0.2:5002", "198.51.100.7:80", packet.TCPAck|packet.TCPPsh, 7, 9, nil, payload, pkttest.DF()), lanMAC, hostMAC),
		// DF clear, its source rewritten: a new IP ID from the counters
		// shared with the engine (nat/ipid.go).
		"df clear":      frame(pkttest.UDP("10.0.0.2:5005", "198.51.100.7:53", payload, pkttest.ID(7)), lanMAC, hostMAC),
		"df clear tcp":  frame(pkttest.TCP("10.0.0.2:5006", "198.51.100.7:80", packet.TCPAck, 7, 9, nil, payload, pkttest.ID(0xffff)), lanMAC, hostMAC),
		"df clear nocs": frame(pkttest.UDP("10.0.0.2:5007", "198.51.100.9:53", payload[:3], pkttest.ZeroUDPChecksum(), pkttest.ID(0)), lanMAC, hostMAC),
		// DF clear, its source kept (inbound): its ID kept.
		"df clear inbound": frame(pkttest.UDP("198.51.100.7:53", "203.0.113.1:40001", payload, pkttest.ID(7)), lanMAC, hostMAC),
		"tcp fin":          frame(pkttest.TCP("10.0.0.2:5002", "198.51.100.7:80", packet.TCPAck|packet.TCPFin, 7, 9, nil, nil), lanMAC, hostMAC),
		"ttl 1":            frame(pkttest.UDP("10.0.0.2:5000", "198.51.100.7:53", payload, pkttest.TTL(1)), lanMAC, hostMAC),
		"no entry":         frame(pkttest.UDP("10.0.0.9:5000", "198.51.100.7:53", payload), lanMAC, hostMAC),
		"partial":          frame(partial(pkttest.TCP("10.0.0.2:5004", "198.51.100.7:80", packet.TCPAck, 7, 9, nil, payload)), lanMAC, hostMAC),
		"too large":        frame(pkttest.UDP("10.0.0.2:5003", "198.51.100.7:53", make([]byte, 1473), pkttest.DF()), lanMAC, hostMAC),
		// In an offloaded flow's tuple, segments the engine must judge:
		// without ACK, or with a reserved bit. ACK with PSH, URG, ECE,
		// CWR and AE (Accurate ECN) is forwarded.
		"tcp no ack":         frame(pkttest.TCP("10.0.0.2:5002", "198.51.100.7:80", packet.TCPPsh, 7, 0, nil, payload, pkttest.DF()), lanMAC, hostMAC),
		"tcp no flags":       frame(pkttest.TCP("10.0.0.2:5002", "198.51.100.7:80", 0, 7, 0, nil, nil, pkttest.DF()), lanMAC, hostMAC),
		"tcp ae":             tcpHeaderBits(frame(pkttest.TCP("10.0.0.2:5009", "198.51.100.7:80", packet.TCPAck|packet.TCPPsh|0x40|0x80, 7, 9, nil, payload, pkttest.DF()), lanMAC, hostMAC), 0x01),
		"tcp reserved":       tcpHeaderBits(frame(pkttest.TCP("10.0.0.2:5002", "198.51.100.7:80", packet.TCPAck, 7, 9, nil, payload, pkttest.DF()), lanMAC, hostMAC), 0x02),
		"tcp reserved 0x800": tcpHeaderBits(frame(pkttest.TCP("10.0.0.2:5002", "198.51.100.7:80", packet.TCPAck, 7, 9, nil, payload, pkttest.DF()), lanMAC, hostMAC), 0x08),
		"tcp reserved ae":    tcpHeaderBits(frame(pkttest.TCP("10.0.0.2:5002", "198.51.100.7:80", packet.TCPAck, 7, 9, nil, payload, pkttest.DF()), lanMAC, hostMAC), 0x05),
		"tcp fin ae":         tcpHeaderBits(frame(pkttest.TCP("10.0.0.2:5002", "198.51.100.7:80", packet.TCPAck|packet.TCPFin, 7, 9, nil, nil), lanMAC, hostMAC), 0x01),
		"tcp ecn urg":        frame(pkttest.TCP("10.0.0.2:5008", "198.51.100.7:80", packet.TCPAck|packet.TCPPsh|0x20|0x40|0x80, 7, 9, nil, payload, pkttest.DF()), lanMAC, hostMAC),
		// An offloaded flow's tuple in frames for another station (a
		// bridge flooding them, a promiscuous port) or for all: the
		// engine drops them, so the program must not forward them.
		"other station": frame(pkttest.UDP("10.0.0.2:5000", "198.51.100.7:53", payload), gwMAC, hostMAC),
		"broadcast":     frame(pkttest.TCP("10.0.0.2:5002", "198.51.100.7:80", packet.TCPAck, 7, 9, nil, payload), packet.Broadcast, hostMAC),
		// Malformed headers the engine drops, in an offloaded flow's
		// tuple: a wrong header checksum, a total length past the frame.
		"bad ip checksum": badIPChecksum(frame(pkttest.UDP("10.0.0.2:5000", "198.51.100.7:53", payload), lanMAC, hostMAC)),
		"truncated":       frame(pkttest.UDP("10.0.0.2:5000", "198.51.100.7:53", payload), lanMAC, hostMAC)[:200],
		"one byte off":    frame(pkttest.UDP("10.0.0.2:5001", "198.51.100.7:53", payload[:33], pkttest.ZeroUDPChecksum()), [6]byte{2, 0, 0, 0, 0, 9}, hostMAC),
	}
	// What must reach the engine whatever entry its tuple has.
	engineOnly := map[string]bool{"tcp fin": true, "tcp no ack": true, "tcp no flags": true, "tcp reserved": true,
		"tcp reserved 0x800": true, "tcp reserved ae": true, "tcp fin ae": true}
	// An entry for the partial checksum's flow too: the program must pass
	// the frame on however.
	pk := Key{Ifindex: lo, Proto: 6, Src: a4("10.0.0.2"), Dst: a4("198.51.100.7"), SrcPort: 5004, DstPort: 80}
	pv := outbound(pk)
	if err := m.Put(pk, valueBytes(&pv)); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"udp", "udp nocs", "tcp", "too large", "df clear", "df clear tcp", "df clear nocs", "df clear inbound", "tcp ecn urg", "tcp ae"} {
		k, ok := Match(frames[name])
		if !ok {
			t.Fatalf("%s not matched", name)
		}
		k.Ifindex = lo
		v := outbound(k)
		if name == "df clear inbound" {
			v = NewValue(k, k.Src, a4("10.0.0.2"), k.SrcPort, 5000, 7, hostMAC, lanMAC, lanMAC, 1500)
		}
		if err := m.Put(k, valueBytes(&v)); err != nil {
			t.Fatal(err)
		}
	}
	for name, f := range frames {
		k, hit := Match(f)
		if tc && name == "partial" {
			k, hit = pk, true
		}
		k.Ifindex = lo
		want := append([]byte(nil), f...)
		verdict := pass
		sim := *ids.IDs() // what the counters become
		if hit {
			var v Value
			var vb [ValueSize]byte
			if err := m.Lookup(k, &vb); err == nil {
				v.Decode(&vb)
				if Apply(want, &v, &sim) == Redirect {
					verdict = redirect
				}
			}
		}
		if engineOnly[name] && verdict != pass {
			t.Errorf("%s: Match and Apply offload it", name)
			verdict = pass
			want = append(want[:0], f...)
		}
		out := make([]byte, len(f))
		ret, err := prog.Run(&ebpf.RunOptions{Data: f, DataOut: out})
		if err != nil {
			t.Fatalf("%s: run: %v", name, err)
		}
		if wantv, ok := map[string]uint32{"udp": redirect, "tcp": redirect, "df clear": redirect, "df clear tcp": redirect,
			"df clear nocs": redirect, "df clear inbound": redirect, "tcp ae": redirect}[name]; ok && verdict != wantv {
			t.Errorf("%s: Apply's verdict %d, want %d", name, verdict, wantv)
		}
		if ret != verdict || !bytes.Equal(out, want) {
			t.Errorf("%s: verdict %d, want %d\n got % x\nwant % x", name, ret, verdict, out, want)
		}
		if ids.IDs().Counters != sim.Counters {
			t.Errorf("%s: the program moved the ID counters other than Apply", name)
		}
		if strings.HasPrefix(name, "df clear") {
			// The ID: the next of the bucket of the destination and
			// protocol (kept inbound), a new one to each of the kind.
			id := uint16(7)
			if name != "df clear inbound" {
				b := nat.IPIDBucket(sim.Key, binary.BigEndian.Uint32(f[14+16:]), f[14+9])
				id = uint16(sim.Counters[b])
			}
			if got := packet.IPv4(out[14:]).ID(); got != id {
				t.Errorf("%s: ID %#x, want %#x", name, got, id)
			}
			pkttest.IPv4(t, out[14:]) // the checksums, from scratch
		}
		if verdict == redirect {
			if name != "partial" && name != "df clear inbound" {
				pkttest.IPv4(t, out[14:], pkttest.Src("203.0.113.1:40000"))
			}
			var vb [ValueSize]byte
			if err := m.Lookup(k, &vb); err != nil {
				t.Fatal(err)
			}
			var v Value
			v.Decode(&vb)
			if v.Packets != 1 || v.Bytes != uint64(len(f)-14) {
				t.Errorf("%s: counted %d packets %d bytes, want 1 and %d", name, v.Packets, v.Bytes, len(f)-14)
			}
			if f[14+9] == 6 {
				next, ack, win := Seq(f)
				if v.SeqNext != next || v.SeqAck != ack || v.SeqWin != win {
					t.Errorf("%s: recorded next %d ack %d win %d, want %d %d %d", name, v.SeqNext, v.SeqAck, v.SeqWin, next, ack, win)
				}
			}
		}
	}
}

// TestEngineAndProgramsShareIDs: the engine and each program give
// DF-clear datagrams to one destination IDs from one counter sequence, in
// the ID map (NewIDMap, nat.Engine.ShareIPIDs): no ID repeats across the
// two.
func TestEngineAndProgramsShareIDs(t *testing.T) {
	m, err := NewMap(16)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, tc := range []bool{false, true} {
		ids := newIDMap(t)
		spec := TCProgramSpec(m, ids.Map(), TCOptions{})
		if !tc {
			is := Instructions(m, ids.Map())
			is = append(is, asm.Mov.Imm(asm.R0, 2), asm.Return())
			spec = &ebpf.ProgramSpec{Name: "offload_test", Type: ebpf.XDP, License: "GPL", Instructions: is}
		}
		prog, err := ebpf.NewProgram(spec)
		if err != nil {
			t.Fatalf("load: %v", err)
		}
		defer prog.Close()
		engineAndProgramShareIDs(t, ids.IDs(), func(f []byte) []byte {
			k, _ := Match(f)
			k.Ifindex = 1 // lo
			v := outbound(k)
			if err := m.Put(k, valueBytes(&v)); err != nil {
				t.Fatal(err)
			}
			out := make([]byte, len(f))
			if ret, err := prog.Run(&ebpf.RunOptions{Data: f, DataOut: out}); err != nil || ret != map[bool]uint32{false: 4, true: 7}[tc] {
				t.Fatalf("tc %v: run: %d %v", tc, ret, err)
			}
			return out
		})
	}
}

// badIPChecksum spoils f's IPv4 header checksum.
func badIPChecksum(f []byte) []byte {
	f[14+10] ^= 0x40
	return f
}

func valueBytes(v *Value) []byte {
	var b [ValueSize]byte
	v.Encode(&b)
	return b[:]
}

// TestProgramsLearnNearAcksOnly: an entry seeded with the engine's edges
// and an AckSpan. A segment whose acknowledgement is far from the last (a
// blind attacker's, who knows the tuple but not the numbers) is forwarded
// as the engine forwards it but must not move the recorded edges, which
// the engine judges the flow's next RST by (nat.Engine.OffloadResync):
// before, the program recorded every segment, so an ACK then an RST with
// the same sequence number, both made up, ended an offloaded connection.
// One whose acknowledgement is near is recorded.
func TestProgramsLearnNearAcksOnly(t *testing.T) {
	m, err := NewMap(16)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ids := newIDMap(t)
	xdp := Instructions(m, ids.Map())
	xdp = append(xdp, asm.Mov.Imm(asm.R0, 2), asm.Return())
	progs := map[string]*ebpf.ProgramSpec{
		"xdp": {Name: "offload_test", Type: ebpf.XDP, License: "GPL", Instructions: xdp},
		"tc":  TCProgramSpec(m, ids.Map(), TCOptions{}),
	}
	redirect := map[string]uint32{"xdp": 4, "tc": 7}
	for name, spec := range progs {
		prog, err := ebpf.NewProgram(spec)
		if err != nil {
			t.Fatalf("%s: load: %v", name, err)
		}
		defer prog.Close()
		const seedNext, seedAck, span = 100000, 5000000, 131070
		k := Key{Ifindex: 1, Proto: 6, Src: a4("10.0.0.2"), Dst: a4("198.51.100.7"), SrcPort: 5010, DstPort: 80}
		v := outbound(k)
		v.SeqNext, v.SeqAck, v.SeqWin, v.AckSpan = seedNext, seedAck, 502, span
		if err := m.Put(k, valueBytes(&v)); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name     string
			seq, ack uint32
			learnt   bool
			next     uint32 // the edge after it
		}{
			{"blind", 3000000000, seedAck + 1<<30, false, seedNext},
			{"just past the span", 3000000000, seedAck + span + 1, false, seedNext},
			{"near", seedNext + 10, seedAck + 1000, true, seedNext + 12},
			{"behind, within the span", seedNext, seedAck + 1000 - span, true, seedNext + 12},
			// The acknowledgement guessed, the sequence number not:
			// nothing is recorded. The acknowledgement it set was one an
			// RST is exact at (the engine's TestRSTAtForgedAck), so a
			// guessed ACK and a free RST closed an offloaded connection
			// for the engine while both ends kept it.
			{"ack near, seq far", 3000000000, seedAck + 1000 - span, false, seedNext + 12},
			{"a window on", seedNext + 12 + 60000, seedAck + 1000 - span, true, seedNext + 12 + 60002},
			{"ack near, end just past twice the span ahead", seedNext + 12 + 60002 + 2*span - 1, seedAck + 1000, false, seedNext + 12 + 60002},
			{"ack near, end twice the span ahead", seedNext + 12 + 60002 + 2*span - 2, seedAck + 1000, true, seedNext + 12 + 60002 + 2*span},
			{"ack near, end just past the span behind", seedNext + 12 + 60002 + span - 3, seedAck + 1000, false, seedNext + 12 + 60002 + 2*span},
			{"ack near, end the span behind", seedNext + 12 + 60002 + span - 2, seedAck + 1000, true, seedNext + 12 + 60002 + 2*span},
		} {
			f := frame(pkttest.TCP("10.0.0.2:5010", "198.51.100.7:80", packet.TCPAck, c.seq, c.ack, nil, []byte("xy"), pkttest.DF()), lanMAC, hostMAC)
			var before Value
			var vb [ValueSize]byte
			if err := m.Lookup(k, &vb); err != nil {
				t.Fatal(err)
			}
			before.Decode(&vb)
			want := before
			if got := Record(f, &want); got != c.learnt || want.SeqNext != c.next {
				t.Fatalf("%s: Record %v next %d, want %v %d", c.name, got, want.SeqNext, c.learnt, c.next)
			}
			out := make([]byte, len(f))
			ret, err := prog.Run(&ebpf.RunOptions{Data: f, DataOut: out})
			if err != nil {
				t.Fatalf("%s %s: run: %v", name, c.name, err)
			}
			if ret != redirect[name] {
				t.Errorf("%s %s: verdict %d, want %d (forwarded either way)", name, c.name, ret, redirect[name])
			}
			if err := m.Lookup(k, &vb); err != nil {
				t.Fatal(err)
			}
			var after Value
			after.Decode(&vb)
			if after.SeqNext != want.SeqNext || after.SeqAck != want.SeqAck || after.SeqWin != want.SeqWin {
				t.Errorf("%s %s: recorded next %d ack %d win %d, want %d %d %d", name, c.name,
					after.SeqNext, after.SeqAck, after.SeqWin, want.SeqNext, want.SeqAck, want.SeqWin)
			}
		}
	}
}

// TestTCProgramMarksMisses: with MarkMissed, the tc program marks the
// IPv4 frames to this host it leaves to passgate (MissMark, and
// PACKET_OTHERHOST: afpacket's TestOtherHostMeasured shows what that
// does), but not those to the spared address, another station's, or
// other ethertypes; without it, none. BPF_PROG_TEST_RUN's skb arrives on
// lo, whose MAC is all zero: a frame to it is PACKET_HOST.
func TestTCProgramMarksMisses(t *testing.T) {
	m, err := NewMap(16)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	spare := a4("192.168.50.1")
	var lo [6]byte
	payload := bytes.Repeat([]byte{1}, 64)
	arp := frame(pkttest.UDP("10.0.0.2:5000", "198.51.100.7:53", payload), lo, hostMAC)
	arp[12], arp[13] = 0x08, 0x06
	frames := map[string]struct {
		f    []byte
		mark bool
	}{
		"udp to us":          {frame(pkttest.UDP("10.0.0.2:5000", "198.51.100.7:53", payload), lo, hostMAC), true},
		"tcp syn to us":      {frame(pkttest.TCP("10.0.0.2:5000", "198.51.100.7:80", packet.TCPSyn, 1, 0, nil, nil), lo, hostMAC), true},
		"to the spared addr": {frame(pkttest.UDP("10.0.0.2:5000", "192.168.50.1:80", payload), lo, hostMAC), false},
		"other station":      {frame(pkttest.UDP("10.0.0.2:5000", "198.51.100.7:53", payload), lanMAC, hostMAC), false},
		"arp":                {arp, false},
	}
	for _, markMissed := range []bool{false, true} {
		prog, err := ebpf.NewProgram(TCProgramSpec(m, newIDMap(t).Map(), TCOptions{MarkMissed: markMissed, Spare: spare}))
		if err != nil {
			t.Fatalf("load: %v", err)
		}
		for name, c := range frames {
			ctx := make([]byte, 192) // struct __sk_buff
			ret, err := prog.Run(&ebpf.RunOptions{Data: c.f, ContextOut: ctx})
			if err != nil {
				t.Fatalf("%s: run: %v", name, err)
			}
			mark := binary.NativeEndian.Uint32(ctx[skbMark:])
			want := uint32(0)
			if markMissed && c.mark {
				want = MissMark
			}
			if ret != tcActOK || mark != want {
				t.Errorf("MarkMissed %v, %s: verdict %d mark %#x, want %d and %#x", markMissed, name, ret, mark, tcActOK, want)
			}
		}
		prog.Close()
	}
}
