package tftp

import (
	"bytes"
	"fmt"
	"testing"

	"passgate/nat"
	"passgate/nat/nattest"
	"passgate/packet"
	. "passgate/packet/pkttest"
)

const sec = nat.Time(1e9)

func engine(t testing.TB, on bool) *nat.Engine {
	t.Helper()
	sw := nat.On
	if !on {
		sw = nat.Off
	}
	return nattest.Engine(t, func(c *nat.Config) {
		c.Filtering = nat.AddressAndPortDependent
		c.Helpers = map[string]nat.Switch{"tftp": sw}
	}, &Helper{})
}

func rrq(file, mode string, opts ...string) []byte {
	b := []byte{0, OpRRQ}
	b = append(append(b, file...), 0)
	b = append(append(b, mode...), 0)
	for _, o := range opts {
		b = append(append(b, o...), 0)
	}
	return b
}

func data(block uint16, payload []byte) []byte {
	return append([]byte{0, OpDATA, byte(block >> 8), byte(block)}, payload...)
}

// transfer sends a read request from lan1 and the server's first DATA
// packet from a new port, and returns the verdict on the DATA packet.
func transfer(t *testing.T, e *nat.Engine) (nat.Verdict, []byte) {
	t.Helper()
	req := UDP("192.168.50.10:40000", "203.0.113.10:69", rrq("boot/pxelinux.0", "octet"))
	if v := e.Process(0, nat.LAN, req); v.Action != nat.Forward {
		t.Fatalf("request: %+v (%v)", v, v.Reason)
	}
	IPv4(t, req, Src("203.0.113.1:40000"), Dst("203.0.113.10:69"))
	d := UDP("203.0.113.10:51000", "203.0.113.1:40000", data(1, bytes.Repeat([]byte{0xab}, 512)))
	return e.Process(sec, nat.WAN, d), d
}

func TestReplyFromNewPortDroppedWithoutHelper(t *testing.T) {
	e := engine(t, false)
	if v, _ := transfer(t, e); v.Action != nat.Drop || v.Reason != nat.DropFiltered {
		t.Fatalf("without the helper the server's reply from a new port: %+v (%v), want dropped as filtered", v, v.Reason)
	}
}

func TestReplyFromNewPortReachesClient(t *testing.T) {
	e := engine(t, true)
	v, d := transfer(t, e)
	if v.Action != nat.Forward {
		t.Fatalf("server's DATA from a new port: %+v (%v)", v, v.Reason)
	}
	IPv4(t, d, Src("203.0.113.10:51000"), Dst("192.168.50.10:40000"))
	// The client's ACK goes back to the server's new port through the
	// same flow, from the same public port.
	ack := UDP("192.168.50.10:40000", "203.0.113.10:51000", []byte{0, OpACK, 0, 1})
	if v := e.Process(sec, nat.LAN, ack); v.Action != nat.Forward {
		t.Fatalf("ACK: %+v (%v)", v, v.Reason)
	}
	IPv4(t, ack, Src("203.0.113.1:40000"), Dst("203.0.113.10:51000"))
	// The next DATA packet matches the flow.
	d2 := UDP("203.0.113.10:51000", "203.0.113.1:40000", data(2, []byte("end")))
	if v := e.Process(2*sec, nat.WAN, d2); v.Action != nat.Forward {
		t.Fatalf("second DATA: %+v (%v)", v, v.Reason)
	}
	st := e.HelperStats()["tftp"]
	if !st.On || st.Flows != 1 || st.Expectations != 1 || st.Expected != 1 || st.Unparsed != 0 || st.Rewrites != 0 {
		t.Fatalf("counters %+v", st)
	}
	// Another host of the same server address, other than the one the
	// client asked, is still filtered.
	other := UDP("203.0.113.20:51000", "203.0.113.1:40000", data(1, nil))
	if v := e.Process(2*sec, nat.WAN, other); v.Action != nat.Drop {
		t.Fatalf("a packet from another address: %+v", v)
	}
}

func TestExpectationUsedOnce(t *testing.T) {
	e := engine(t, true)
	if v, _ := transfer(t, e); v.Action != nat.Forward {
		t.Fatal(v)
	}
	// A second new port of the server without a second request: filtered.
	d := UDP("203.0.113.10:52000", "203.0.113.1:40000", data(1, nil))
	if v := e.Process(2*sec, nat.WAN, d); v.Action != nat.Drop || v.Reason != nat.DropFiltered {
		t.Fatalf("unrequested second port: %+v (%v)", v, v.Reason)
	}
}

func TestWriteRequestAndUnparsed(t *testing.T) {
	e := engine(t, true)
	wrq := append([]byte{0, OpWRQ}, "up.bin\x00NetASCII\x00blksize\x001428\x00"...)
	if v := e.Process(0, nat.LAN, UDP("192.168.50.11:40001", "203.0.113.10:69", wrq)); v.Action != nat.Forward {
		t.Fatal(v)
	}
	ack := UDP("203.0.113.10:50001", "203.0.113.1:40001", []byte{0, OpOACK, 'b', 0})
	if v := e.Process(sec, nat.WAN, ack); v.Action != nat.Forward {
		t.Fatalf("OACK to a write request: %+v (%v)", v, v.Reason)
	}
	IPv4(t, ack, Dst("192.168.50.11:40001"))
	// Garbage to port 69 passes untouched, counted, and expects nothing.
	bad := []byte("\x00\x01nofinalnul")
	g := UDP("192.168.50.12:40002", "203.0.113.10:69", bad)
	if v := e.Process(sec, nat.LAN, g); v.Action != nat.Forward {
		t.Fatal(v)
	}
	IPv4(t, g, L4Payload(bad))
	if st := e.HelperStats()["tftp"]; st.Unparsed != 1 || st.Expectations != 1 {
		t.Fatalf("counters %+v", st)
	}
	if v := e.Process(2*sec, nat.WAN, UDP("203.0.113.10:50002", "203.0.113.1:40002", data(1, nil))); v.Action != nat.Drop {
		t.Fatalf("reply to an unparsed request: %+v", v)
	}
}

func TestParseRequest(t *testing.T) {
	for _, c := range []struct {
		in         string
		ok         bool
		file, mode string
	}{
		{"\x00\x01a.txt\x00octet\x00", true, "a.txt", "octet"},
		{"\x00\x02dir/b\x00NETASCII\x00", true, "dir/b", "NETASCII"},
		{"\x00\x01f\x00mail\x00tsize\x000\x00", true, "f", "mail"},
		{"\x00\x01f\x00octet\x00tsize\x000", false, "", ""}, // option cut
		{"\x00\x01f\x00binary\x00", false, "", ""},
		{"\x00\x01\x00octet\x00", false, "", ""},
		{"\x00\x01f\x00octet", false, "", ""},
		{"\x00\x03f\x00octet\x00", false, "", ""},
		{"\x01\x01f\x00octet\x00", false, "", ""},
		{"\x00", false, "", ""},
	} {
		r, ok := ParseRequest([]byte(c.in))
		if ok != c.ok || string(r.Filename) != c.file || string(r.Mode) != c.mode {
			t.Errorf("ParseRequest(%q) = %q %q %v", c.in, r.Filename, r.Mode, ok)
		}
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"\x00\x01a.txt\x00octet\x00",
		"\x00\x02dir/b\x00NETASCII\x00",
		"\x00\x01f\x00mail\x00blksize\x001428\x00tsize\x000\x00",
		"\x00\x01f\x00octet\x00tsize",
		"\x00\x01\x00\x00",
		"\x00\x03\x00\x01data",
		"\x00\x05\x00\x01error\x00",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, ok := ParseRequest(b)
		if !ok {
			return
		}
		if r.Op != OpRRQ && r.Op != OpWRQ || len(r.Filename) == 0 || bytes.IndexByte(r.Filename, 0) >= 0 || bytes.IndexByte(r.Mode, 0) >= 0 {
			t.Fatalf("accepted %q as %+v", b, r)
		}
		if len(b) > 1400 {
			return
		}
		// Through the engine: the request passes untouched.
		e := engine(t, true)
		p := UDP("192.168.50.10:40000", "203.0.113.10:69", b)
		if v := e.Process(0, nat.LAN, p); v.Action != nat.Forward {
			t.Fatalf("verdict %+v", v)
		}
		IPv4(t, p, Src("203.0.113.1:40000"), L4Payload(b))
	})
}

// BenchmarkData is the helper's cost on a DATA packet it reads and leaves
// alone (sent to port 69 on the request's flow).
func BenchmarkData(b *testing.B) {
	e := engine(b, true)
	e.Process(0, nat.LAN, UDP("192.168.50.10:40000", "203.0.113.10:69", rrq("f", "octet")))
	pkt := UDP("192.168.50.10:40000", "203.0.113.10:69", data(7, bytes.Repeat([]byte{1}, 512)))
	nattest.Bench(b, e, sec, nat.LAN, pkt, nat.Forward)
}

// BenchmarkTransferData is a server DATA packet on the expected flow, the
// bulk of a transfer (the helper is not called).
func BenchmarkTransferData(b *testing.B) {
	e := engine(b, true)
	e.Process(0, nat.LAN, UDP("192.168.50.10:40000", "203.0.113.10:69", rrq("f", "octet")))
	pkt := UDP("203.0.113.10:51000", "203.0.113.1:40000", data(1, bytes.Repeat([]byte{1}, 512)))
	p := append([]byte(nil), pkt...)
	if v := e.Process(sec, nat.WAN, p); v.Action != nat.Forward {
		b.Fatal(v)
	}
	nattest.Bench(b, e, sec, nat.WAN, pkt, nat.Forward)
}

// TestForgedAddressesCannotTakeExpectations: one LAN host (one MAC)
// sending read requests from eight forged LAN addresses, 512 from each,
// took every one of the 4096 expectations (a host's share was counted by
// address alone) for the minute they live: no other host's transfer
// could be predicted. Expectations count against the share of the MAC
// whose flow made them too.
func TestForgedAddressesCannotTakeExpectations(t *testing.T) {
	e := nattest.Engine(t, func(c *nat.Config) {
		c.Filtering = nat.AddressAndPortDependent
		c.Helpers = map[string]nat.Switch{"tftp": nat.On}
		c.MaxFlows = 16384
		c.MaxFlowsPerHost = 8192
	}, &Helper{})
	evil, good := [6]byte{2, 0, 0, 0, 0, 0xee}, [6]byte{2, 0, 0, 0, 0, 0x11}
	for i := 0; i < 4096; i++ {
		src := fmt.Sprintf("192.168.50.%d:%d", 20+i/512, 10000+i%512)
		if v := e.ProcessFrom(0, nat.LAN, evil, UDP(src, "203.0.113.10:69", rrq("x", "octet"))); v.Action != nat.Forward {
			t.Fatalf("request %d: %+v", i, v)
		}
	}
	req := UDP("192.168.50.10:40000", "203.0.113.10:69", rrq("boot/pxelinux.0", "octet"))
	if v := e.ProcessFrom(sec, nat.LAN, good, req); v.Action != nat.Forward {
		t.Fatalf("request: %+v (%v)", v, v.Reason)
	}
	pub := fmt.Sprintf("203.0.113.1:%d", packet.UDP(packet.IPv4(req).Payload()).SrcPort())
	d := UDP("203.0.113.10:51000", pub, data(1, []byte("x")))
	if v := e.Process(sec, nat.WAN, d); v.Action != nat.Forward {
		t.Fatalf("the other host's DATA: %+v (%v)", v, v.Reason)
	}
	IPv4(t, d, Dst("192.168.50.10:40000"))
}

// TestForgedAddressesCannotTakeExpectedFlows: one LAN host (one MAC)
// forging 40 LAN addresses, with a WAN accomplice answering each read
// request from a new port, held 48 answered flows, three times its MAC's
// share of 16 (the flows made from expectations were charged to the
// forged address with no MAC, and made no room by early drop); three
// other hosts then opened only 16 of 30 flows, the rest refused as
// table_full. A flow made from an expectation is charged to the owner of
// the flow that predicted it (the MAC) and goes through the early drop.
func TestForgedAddressesCannotTakeExpectedFlows(t *testing.T) {
	e := nattest.Engine(t, func(c *nat.Config) {
		c.Filtering = nat.AddressAndPortDependent
		c.Helpers = map[string]nat.Switch{"tftp": nat.On}
		c.MaxFlows = 64
		c.MaxFlowsPerHost = 16
	}, &Helper{})
	evil := [6]byte{2, 0, 0, 0, 0, 0xee}
	answered := 0
	for i := 0; i < 400; i++ {
		src := fmt.Sprintf("192.168.50.%d:%d", 20+i%40, 10000+i)
		req := UDP(src, "203.0.113.10:69", rrq("x", "octet"))
		if v := e.ProcessFrom(sec, nat.LAN, evil, req); v.Action != nat.Forward {
			continue
		}
		pub := fmt.Sprintf("203.0.113.1:%d", packet.UDP(packet.IPv4(req).Payload()).SrcPort())
		server := fmt.Sprintf("203.0.113.10:%d", 30000+i)
		if v := e.Process(sec, nat.WAN, UDP(server, pub, data(1, []byte("x")))); v.Action != nat.Forward {
			continue
		}
		if v := e.ProcessFrom(sec, nat.LAN, evil, UDP(src, server, []byte{0, OpACK, 0, 1})); v.Action == nat.Forward {
			answered++
		}
	}
	if answered < 16 {
		t.Fatalf("the forging host's transfers: %d answered, want at least its share of 16", answered)
	}
	held := 0
	e.Flows(sec, func(f nat.FlowInfo) bool {
		if a := f.Inside.Addr().As4(); a[3] >= 20 && a[3] < 60 {
			held++
		}
		return true
	})
	if held > 16 {
		t.Fatalf("the forging MAC holds %d flows, more than its share of 16", held)
	}
	if s := e.Stats(); s.EarlyDropMACShare == 0 {
		t.Errorf("no early drop counted for the MAC's share: %+v", s)
	}
	// Three other hosts (their own MACs) each open ten answered flows.
	for j := 0; j < 30; j++ {
		mac := [6]byte{2, 0, 0, 0, byte(j / 10), 0x11}
		inside := fmt.Sprintf("192.168.50.%d:%d", 10+j/10, 40000+j)
		q := UDP(inside, "203.0.113.20:53", []byte("q"))
		if v := e.ProcessFrom(2*sec, nat.LAN, mac, q); v.Action != nat.Forward {
			t.Fatalf("other host's flow %d: %+v (%v)", j, v, v.Reason)
		}
		pub := fmt.Sprintf("203.0.113.1:%d", packet.UDP(packet.IPv4(q).Payload()).SrcPort())
		a := UDP("203.0.113.20:53", pub, []byte("a"))
		if v := e.Process(2*sec, nat.WAN, a); v.Action != nat.Forward {
			t.Fatalf("answer %d: %+v (%v)", j, v, v.Reason)
		}
		IPv4(t, a, Dst(inside))
	}
}
