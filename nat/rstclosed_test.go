package nat

import (
	"fmt"
	"testing"
	"time"

	"passgate/packet"
	. "passgate/packet/pkttest"
)

// TestResetFlowsDoNotFillShare: RFC 7857 2.2 keeps a TCP session 4 min
// after a reset, the default; a reset flow is the first an early drop
// takes, so a host whose connections end in resets (SO_LINGER 0, a
// scanner doing full connects) never fills its share with them. A share
// of 64, 2 connections a second each established then reset by the
// server, Expire every second as the daemon runs it, 100 s: none of the
// 200 refused, 137 early drops (201 flows for 64 places), every one a
// reset flow, the one reset longest ago first; a connection kept
// established all along still carries data; opening and resetting one
// more with the share full allocates nothing. (With the reset flows left answered, 137 of 200 are refused and none
// early-dropped.)
func TestResetFlowsDoNotFillShare(t *testing.T) {
	e := newEngine(t, func(c *Config) { c.MaxFlowsPerHost = 64 })
	if e.timeouts.tcpClosed != Time(4*time.Minute) {
		t.Fatalf("default tcp_closed %v, want 4 min", time.Duration(e.timeouts.tcpClosed))
	}
	srv := "203.0.113.10:80"
	var kept string
	refused := 0
	now := Time(0)
	for i := 0; i <= 200; i++ {
		c := fmt.Sprintf("192.168.50.10:%d", 10000+i)
		pub, ok := openTCP(t, e, now, c, srv)
		if !ok {
			refused++
			continue
		}
		if i == 0 {
			kept = pub // stays established
		} else {
			IPv4(t, pass(t, e, now, WAN, TCP(srv, pub, packet.TCPRst, 501, 0, nil, nil), LAN), Dst(c))
		}
		if i%2 == 0 {
			now += sec
			e.Expire(now)
		}
		if err := e.ct.Check(); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	st := e.Stats()
	if refused != 0 || st.EarlyDropHostShare != 137 || st.Flows != 64 {
		t.Fatalf("%d of 200 refused, %d early drops, %d flows; want 0, 137, 64", refused, st.EarlyDropHostShare, st.Flows)
	}
	closed, est := 0, 0
	e.Flows(now, func(f FlowInfo) bool {
		switch f.State {
		case "closed":
			closed++
			// The latest 63 resets (the last 32 s): the first reset
			// went first.
			if f.ExpiresSec < 240-33 {
				t.Errorf("closed flow %v expires in %v s: an early drop kept it over a later one", f.Inside, f.ExpiresSec)
			}
		case "established":
			est++
		}
		return true
	})
	if closed != 63 || est != 1 {
		t.Fatalf("%d closed and %d established flows, want 63 and 1", closed, est)
	}
	// A connection opened, established and reset with the share full
	// (an early drop of a reset flow each) allocates nothing.
	var pkts [][4][]byte
	for i := 0; i < 21; i++ {
		c := fmt.Sprintf("192.168.50.10:%d", 20000+i)
		pub := fmt.Sprintf("203.0.113.1:%d", 20000+i)
		pkts = append(pkts, [4][]byte{TCP(c, srv, packet.TCPSyn, 100, 0, nil, nil),
			TCP(srv, pub, packet.TCPSyn|packet.TCPAck, 500, 101, nil, nil),
			TCP(c, srv, packet.TCPAck, 101, 501, nil, nil),
			TCP(srv, pub, packet.TCPRst, 501, 0, nil, nil)})
	}
	n, fwd := 0, 0
	allocs := testing.AllocsPerRun(20, func() {
		for j, b := range pkts[n] {
			if e.Process(now, [4]Iface{LAN, WAN, LAN, WAN}[j], b).Action == Forward {
				fwd++
			}
		}
		n++
	})
	if allocs != 0 || fwd != 4*21 {
		t.Fatalf("%v allocs a connection, %d of %d packets forwarded", allocs, fwd, 4*21)
	}
	data := pass(t, e, now, WAN, TCP(srv, kept, packet.TCPAck|packet.TCPPsh, 501, 101, nil, []byte("still here")), LAN)
	IPv4(t, data, Dst("192.168.50.10:10000"), L4Payload([]byte("still here")))
}

// TestFinClosedFlowsDoNotFillShare is TestResetFlowsDoNotFillShare for
// connections ended by a FIN exchange (both FINs, then the last ACK; every
// third one a FIN answered by a reset instead), kept 4 min for
// tcp_closing: a host closing its connections the ordinary way never
// fills its share with them either. Share 64, 2 connections a second,
// 100 s: none of 200 refused, 137 early drops, every one of a closed
// flow, those closed longest ago first; the connection kept established
// all along is never taken. (With FIN-closed flows left assured, as
// before, 106 of 200 are refused, and only the 31 reset ones are taken.)
func TestFinClosedFlowsDoNotFillShare(t *testing.T) {
	e := newEngine(t, func(c *Config) { c.MaxFlowsPerHost = 64 })
	if e.timeouts.tcpClose != Time(4*time.Minute) {
		t.Fatalf("default tcp_closing %v, want 4 min", time.Duration(e.timeouts.tcpClose))
	}
	srv := "203.0.113.10:80"
	var kept string
	refused := 0
	now := Time(0)
	for i := 0; i <= 200; i++ {
		c := fmt.Sprintf("192.168.50.10:%d", 10000+i)
		pub, ok := openTCP(t, e, now, c, srv)
		if !ok {
			refused++
			continue
		}
		switch {
		case i == 0:
			kept = pub // stays established
		case i%3 == 0:
			// A FIN, then the server resets.
			pass(t, e, now, LAN, TCP(c, srv, packet.TCPFin|packet.TCPAck, 101, 501, nil, nil), WAN)
			IPv4(t, pass(t, e, now, WAN, TCP(srv, pub, packet.TCPRst, 501, 0, nil, nil), LAN), Dst(c))
		default:
			pass(t, e, now, LAN, TCP(c, srv, packet.TCPFin|packet.TCPAck, 101, 501, nil, nil), WAN)
			IPv4(t, pass(t, e, now, WAN, TCP(srv, pub, packet.TCPFin|packet.TCPAck, 501, 102, nil, nil), LAN), Dst(c))
			pass(t, e, now, LAN, TCP(c, srv, packet.TCPAck, 102, 502, nil, nil), WAN)
		}
		if i%2 == 0 {
			now += sec
			e.Expire(now)
		}
		if err := e.ct.Check(); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	st := e.Stats()
	if refused != 0 || st.EarlyDropHostShare != 137 || st.Flows != 64 {
		t.Fatalf("%d of 200 refused, %d early drops, %d flows; want 0, 137, 64", refused, st.EarlyDropHostShare, st.Flows)
	}
	closed, est := 0, 0
	e.Flows(now, func(f FlowInfo) bool {
		switch f.State {
		case "closed", "closing":
			closed++
			// The latest 63 to close (the last 32 s): the first
			// closed went first.
			if f.ExpiresSec < 240-33 {
				t.Errorf("%s flow %v expires in %v s: an early drop kept it over a later one", f.State, f.Inside, f.ExpiresSec)
			}
		case "established":
			est++
		}
		return true
	})
	if closed != 63 || est != 1 {
		t.Fatalf("%d closed and %d established flows, want 63 and 1", closed, est)
	}
	data := pass(t, e, now, WAN, TCP(srv, kept, packet.TCPAck|packet.TCPPsh, 501, 101, nil, []byte("still here")), LAN)
	IPv4(t, data, Dst("192.168.50.10:10000"), L4Payload([]byte("still here")))
}

// openTCP opens a connection from c to srv at now (SYN, SYN-ACK, ACK) and
// says at which public address and port it went out; false if the SYN
// was refused.
func openTCP(t *testing.T, e *Engine, now Time, c, srv string) (string, bool) {
	t.Helper()
	b := TCP(c, srv, packet.TCPSyn, 100, 0, nil, nil)
	if v := e.Process(now, LAN, b); v.Action != Forward {
		return "", false
	}
	ip := packet.IPv4(b)
	src := ip.Src()
	pub := fmt.Sprintf("%d.%d.%d.%d:%d", src[0], src[1], src[2], src[3], packet.TCP(ip.Payload()).SrcPort())
	IPv4(t, pass(t, e, now, WAN, TCP(srv, pub, packet.TCPSyn|packet.TCPAck, 500, 101, nil, nil), LAN), Dst(c))
	pass(t, e, now, LAN, TCP(c, srv, packet.TCPAck, 101, 501, nil, nil), WAN)
	return pub, true
}
