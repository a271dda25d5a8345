package alg_test

import (
	"bytes"
	"fmt"
	"testing"

	"passgate/alg/ipsec"
	"passgate/alg/l2tp"
	"passgate/alg/pptp"
	. "passgate/alg/vpntest"
	. "passgate/nat"
	"passgate/packet"
	. "passgate/packet/pkttest"
)

// refused runs a LAN packet the engine must refuse for why and requires
// the one packet it emits to be the administratively prohibited error
// (RFC 5508 REQ-8) quoting it as it arrived, byte for byte, toward its
// sender (its IP ID whatever the engine drew).
func refused(t *testing.T, e *Engine, now Time, b []byte, why DropReason) {
	t.Helper()
	orig := append([]byte(nil), b...)
	Dropped(t, e, now, LAN, b, why)
	em := e.Emitted()
	if len(em) != 1 {
		t.Fatalf("%v: emitted %d packets, want 1", why, len(em))
	}
	host := packet.IPv4(orig).Src()
	hs := fmt.Sprintf("%d.%d.%d.%d", host[0], host[1], host[2], host[3])
	got := em[0].Frame[EtherHeadroom:]
	want := ICMP("192.168.50.1", hs, packet.ICMPUnreachable, 13, 0, orig[:min(len(orig), 576-28)], ID(packet.IPv4(got).ID()))
	if !bytes.Equal(got, want) || em[0].Out != LAN || em[0].NextHop != host {
		t.Fatalf("%v: emitted out %v to %v\n% x\nwant\n% x", why, em[0].Out, em[0].NextHop, got, want)
	}
	e.ResetEmitted()
}

// silent runs a packet the engine must drop for why without a word.
func silent(t *testing.T, e *Engine, now Time, from Iface, b []byte, why DropReason) {
	t.Helper()
	Dropped(t, e, now, from, b, why)
	if em := e.Emitted(); len(em) != 0 {
		t.Fatalf("%v: emitted %d packets, want none", why, len(em))
	}
}

// TestProhibitedOnVPNPaths: a LAN packet a VPN passthrough refuses, on
// its TCP or UDP port (the helper's flow maker), as ESP or GRE (the
// helper's protocol), because the passthrough is switched off or a limit
// is reached, gets the administratively prohibited error the engine's own
// limits give. Packets that break a protocol's rules (AH, which cannot
// cross NAT; GRE of no call) and WAN senders get nothing.
func TestProhibitedOnVPNPaths(t *testing.T) {
	t.Run("switched off", func(t *testing.T) {
		e := NewEngine(t, nil)
		cfg := LabConfig()
		cfg.Helpers = map[string]Switch{"pptp": Off, "ipsec": Off, "l2tp": Off}
		if err := e.Reconfigure(cfg, 0); err != nil {
			t.Fatal(err)
		}
		refused(t, e, Sec, TCP("192.168.50.10:43001", "203.0.113.10:1723", packet.TCPSyn, 1, 0, nil, nil, DF()), pptp.DropPPTPOff)
		refused(t, e, Sec, GRE("192.168.50.10", "203.0.113.10", 1, "x"), pptp.DropPPTPOff)
		refused(t, e, Sec, UDP("192.168.50.11:500", "203.0.113.10:500", IKEMsg(1, 0, false, 40)), ipsec.DropIPsecOff)
		refused(t, e, Sec, ESP("192.168.50.11", "203.0.113.10", 0x1000, "a"), ipsec.DropIPsecOff)
		refused(t, e, Sec, UDP("192.168.50.12:1701", "203.0.113.10:1701", L2TPSCCRQ(9, false)), l2tp.DropL2TPOff)
		if s := e.Stats(); s.ProhibitedSent != 5 {
			t.Fatalf("prohibited sent %d, want 5", s.ProhibitedSent)
		}
	})
	t.Run("host share", func(t *testing.T) {
		e := NewEngine(t, func(c *Config) { c.MaxFlowsPerHost = 4 })
		for p := 0; p < 4; p++ {
			o := Pass(t, e, 0, LAN, UDP(fmt.Sprintf("192.168.50.10:%d", 2000+p), "203.0.113.10:1", nil), WAN)
			ext := packet.UDP(packet.IPv4(o).Payload()).SrcPort()
			Pass(t, e, 0, WAN, UDP("203.0.113.10:1", "203.0.113.1:"+Itoa(ext), nil), LAN)
		}
		refused(t, e, Sec, ESP("192.168.50.10", "203.0.113.10", 0x1000, "a"), DropHostLimit)
		refused(t, e, 2*Sec, TCP("192.168.50.10:43001", "203.0.113.10:1723", packet.TCPSyn, 1, 0, nil, nil), DropHostLimit)
	})
	t.Run("pptp pool share", func(t *testing.T) {
		e := NewEngine(t, nil)
		for i := 0; i < 64; i++ {
			c := &PPTPClient{T: t, E: e, Host: "192.168.50.10", Port: uint16(40000 + i), CSeq: 1, SSeq: 1}
			c.Connect()
		}
		refused(t, e, Sec, TCP("192.168.50.10:41000", "203.0.113.10:1723", packet.TCPSyn, 1, 0, nil, nil), pptp.DropPPTPHostShare)
	})
	t.Run("never", func(t *testing.T) {
		e := NewEngine(t, nil)
		ah := ESP("192.168.50.10", "203.0.113.10", 0x1000, "a")
		ah[9] = packet.ProtoAH
		packet.IPv4(ah).ComputeChecksum()
		silent(t, e, 0, LAN, ah, ipsec.DropAH)
		silent(t, e, 0, LAN, GRE("192.168.50.10", "203.0.113.10", 1, "x"), pptp.DropGRENoControl)
		cfg := LabConfig()
		cfg.Helpers = map[string]Switch{"pptp": Off}
		if err := e.Reconfigure(cfg, 0); err != nil {
			t.Fatal(err)
		}
		// A PPTP client on the WAN reaching a LAN server is not the
		// passthrough's: nothing is ever sent toward the WAN.
		silent(t, e, 0, WAN, GRE("203.0.113.10", "203.0.113.1", 1, "x"), pptp.DropGRENoControl)
		if s := e.Stats(); s.ProhibitedSent != 0 {
			t.Fatalf("prohibited sent %d, want 0", s.ProhibitedSent)
		}
	})
}
