package server

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"passgate/nat"
	"passgate/portmap"
	"passgate/portmap/natpmp"
	"passgate/portmap/pcp"
	. "passgate/portmap/portmaptest"
)

// table is a Table that records what it is given.
type table struct {
	mu sync.Mutex
	m  map[uint32]nat.DynamicForward
}

func (t *table) AddDynamicForward(d nat.DynamicForward) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[uint32]nat.DynamicForward{}
	}
	t.m[uint32(d.Proto)<<16|uint32(d.Outside)] = d
	return nil
}

func (t *table) DeleteDynamicForward(proto uint8, outside uint16) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.m[uint32(proto)<<16|uint32(outside)]
	delete(t.m, uint32(proto)<<16|uint32(outside))
	return ok
}

func (t *table) list() []nat.DynamicForward {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []nat.DynamicForward
	for _, d := range t.m {
		out = append(out, d)
	}
	return out
}

// loopbackUDP is a UDP socket on 127.0.0.N, an ephemeral port, closed when
// the test ends.
func loopbackUDP(t *testing.T, n byte) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, n)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// serve runs Run with o until the test ends (before the sockets opened
// earlier close), and fails the test if Run returns an error.
func serve(t *testing.T, o Options) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, o) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

// TestPMPSocket runs PCP and NAT-PMP on 127.0.0.1:5351 (the "LAN"
// 127.0.0.0/8): a client on 127.0.0.2 gets the announcements at start, a
// NAT-PMP and a PCP mapping, and 127.0.0.1 itself (the router's own
// address) is not answered.
func TestPMPSocket(t *testing.T) {
	tbl := &table{}
	mgr, err := portmap.New(portmap.Config{LAN: netip.MustParsePrefix("127.0.0.1/8")}, tbl, "", time.Now(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	client := loopbackUDP(t, 2)
	ca := client.LocalAddr().(*net.UDPAddr).AddrPort()
	serve(t, Options{LAN: netip.MustParsePrefix("127.0.0.1/8"), Public: Public, PCP: true, NATPMP: true, Manager: mgr, AnnounceTo: ca})
	buf := make([]byte, 1500)
	read := func() []byte {
		client.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, err := client.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		return buf[:n]
	}
	// The announcements: NAT-PMP's public address and PCP's ANNOUNCE.
	a := read()
	if len(a) != 12 || a[1] != 128 || netip.AddrFrom4([4]byte(a[8:12])) != Public {
		t.Fatalf("first announcement % x", a)
	}
	if r, err := pcp.ParseResponse(read()); err != nil || r.Op != pcp.OpAnnounce || r.Result != pcp.Success {
		t.Fatalf("PCP announcement %+v %v", r, err)
	}
	server := netip.MustParseAddrPort("127.0.0.1:5351")
	req := binary.BigEndian.AppendUint32([]byte{0, natpmp.OpMapTCP, 0, 0, 0x13, 0x88, 0x9c, 0x40}, 60)
	client.WriteToUDPAddrPort(req, server)
	for {
		got := read()
		if got[1] == natpmp.OpMapTCP|128 {
			if got[3] != 0 || binary.BigEndian.Uint16(got[10:]) != 40000 || binary.BigEndian.Uint32(got[12:]) != 60 {
				t.Fatalf("NAT-PMP map answer % x", got)
			}
			break
		}
	}
	if fs := tbl.list(); len(fs) != 1 || fs[0].Host != netip.MustParseAddr("127.0.0.2") || fs[0].Outside != 40000 || fs[0].By != "natpmp" {
		t.Fatalf("engine %+v", fs)
	}
	// Not answered: the router's own address (not a LAN host).
	self := loopbackUDP(t, 1)
	self.WriteToUDPAddrPort([]byte{0, 0}, server)
	self.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := self.Read(buf); err == nil {
		t.Fatalf("answered the router's own address: % x", buf[:n])
	}
}

// TestEpochGoesOnWithTheLeases: leases saved an hour ago come back, and
// the announcement after the restart says the epoch is an hour old (not
// 0, which would tell every client its mappings were lost).
func TestEpochGoesOnWithTheLeases(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases")
	start := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	os.WriteFile(path, []byte(`{"epoch_start":"`+start.Format(time.RFC3339)+`","leases":[]}`), 0o600)
	mgr, err := portmap.New(portmap.Config{LAN: netip.MustParsePrefix("127.0.0.1/8")}, &table{}, path, time.Now(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	client := loopbackUDP(t, 2)
	serve(t, Options{LAN: netip.MustParsePrefix("127.0.0.1/8"), Public: Public, PCP: true, NATPMP: true, Manager: mgr,
		AnnounceTo: client.LocalAddr().(*net.UDPAddr).AddrPort()})
	buf := make([]byte, 1500)
	client.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, err := client.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if epoch := binary.BigEndian.Uint32(buf[4:8]); n != 12 || epoch < 3600 || epoch > 3605 {
		t.Fatalf("NAT-PMP announcement % x: epoch %d, want about 3600", buf[:n], epoch)
	}
}

// TestHTTPConnectionLimits: a LAN host opening connections to the UPnP
// HTTP port and sending nothing (slowloris) holds at most
// MaxHTTPConnsPerHost: the next one is closed at once, and another host
// still gets in; a closed connection frees its place.
func TestHTTPConnectionLimits(t *testing.T) {
	inner, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := newLimitListener(inner, MaxHTTPConns, MaxHTTPConnsPerHost)
	defer ln.Close()
	accepted := make(chan net.Conn, 64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func(from string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp4", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	closedAtOnce := func(c net.Conn) bool {
		c.SetReadDeadline(time.Now().Add(time.Second))
		_, err := c.Read(make([]byte, 1))
		return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
	}
	var held []net.Conn
	for range MaxHTTPConnsPerHost {
		dial("127.0.0.2")
		held = append(held, <-accepted)
	}
	if c := dial("127.0.0.2"); !closedAtOnce(c) {
		t.Fatalf("connection %d from one host not refused", MaxHTTPConnsPerHost+1)
	}
	dial("127.0.0.3")
	select {
	case <-accepted:
	case <-time.After(time.Second):
		t.Fatal("another host refused")
	}
	held[0].Close()
	dial("127.0.0.2")
	select {
	case <-accepted:
	case <-time.After(time.Second):
		t.Fatal("a freed place not given again")
	}
}

// TestSearchLimits: M-SEARCHes from one (possibly spoofed) address are
// answered MaxSearchesPerHost times a second, all addresses together
// MaxSearches times; the next second starts again.
func TestSearchLimits(t *testing.T) {
	var l searchLimiter
	a := netip.MustParseAddr("192.168.50.10")
	n := 0
	for range 100 {
		if l.allow(1000, a) {
			n++
		}
	}
	if n != MaxSearchesPerHost {
		t.Fatalf("one address answered %d times in a second, want %d", n, MaxSearchesPerHost)
	}
	n = 0
	for i := range 250 {
		if l.allow(1000, netip.AddrFrom4([4]byte{192, 168, 50, byte(i + 1)})) {
			n++
		}
	}
	if n != MaxSearches-MaxSearchesPerHost {
		t.Fatalf("all addresses answered %d more times, want %d", n, MaxSearches-MaxSearchesPerHost)
	}
	if !l.allow(1001, a) {
		t.Fatal("not answered in the next second")
	}
}

// TestNATPMPOnlyIgnoresResponses: with NAT-PMP on and PCP off, a PCP
// request gets NAT-PMP's unsupported version (so the client falls back),
// and a PCP response (R bit set) gets nothing.
func TestNATPMPOnlyIgnoresResponses(t *testing.T) {
	mgr, err := portmap.New(portmap.Config{LAN: netip.MustParsePrefix("127.0.0.1/8")}, &table{}, "", time.Now(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	client := loopbackUDP(t, 2)
	sink := loopbackUDP(t, 3)
	serve(t, Options{LAN: netip.MustParsePrefix("127.0.0.1/8"), Public: Public, NATPMP: true, Manager: mgr,
		AnnounceTo: sink.LocalAddr().(*net.UDPAddr).AddrPort()})
	server := netip.MustParseAddrPort("127.0.0.1:5351")
	buf := make([]byte, 1500)
	var got []byte
	for range 20 { // until the server is up
		client.WriteToUDPAddrPort(pcp.AppendRequest(nil, pcp.OpAnnounce, 0, netip.MustParseAddr("127.0.0.2"), nil), server)
		client.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if n, err := client.Read(buf); err == nil {
			got = buf[:n]
			break
		}
	}
	if len(got) != 8 || got[0] != 0 || got[1] != 0x80 || got[3] != byte(natpmp.UnsupportedVer) {
		t.Fatalf("PCP request answered % x, want NAT-PMP unsupported version", got)
	}
	client.WriteToUDPAddrPort(pcp.Announcement(7), server)
	client.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := client.Read(buf); err == nil {
		t.Fatalf("a PCP response answered: % x", buf[:n])
	}
}

// TestAnnounceNewPublicAddress: when the public address changes while
// running (Options.Addresses), NAT-PMP's announcement of the new address
// and PCP's ANNOUNCE go out again, ten of each, 250 ms apart and doubling
// (the timer faked), with the epoch started again at 0 (RFC 6886 3.2.1,
// RFC 6887 8.5 and 14.1.3); before, it was an hour old.
func TestAnnounceNewPublicAddress(t *testing.T) {
	start := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	mgr, err := portmap.New(portmap.Config{LAN: netip.MustParsePrefix("127.0.0.1/8"), Public: Public}, &table{}, "", start, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := start.Add(time.Hour)
	var waits []time.Duration
	fired := make(chan time.Time, 1)
	close(fired) // every wait over at once
	client := loopbackUDP(t, 2)
	addrs := make(chan netip.Addr)
	serve(t, Options{LAN: netip.MustParsePrefix("127.0.0.1/8"), Public: Public, PCP: true, NATPMP: true, Manager: mgr,
		AnnounceTo: client.LocalAddr().(*net.UDPAddr).AddrPort(), Addresses: addrs,
		Clock: func() time.Time { mu.Lock(); defer mu.Unlock(); return now },
		After: func(d time.Duration) <-chan time.Time { mu.Lock(); waits = append(waits, d); mu.Unlock(); return fired }})
	buf := make([]byte, 1500)
	// pmp and pcp count the announcements of address want (and PCP's
	// after it) until each has n, requiring the epoch to be epoch.
	read := func(want netip.Addr, n int, epoch uint32) {
		t.Helper()
		pmp, pcps := 0, 0
		for pmp < n || pcps < n {
			client.SetReadDeadline(time.Now().Add(3 * time.Second))
			k, err := client.Read(buf)
			if err != nil {
				t.Fatalf("%d NAT-PMP and %d PCP announcements of %v: %v", pmp, pcps, want, err)
			}
			b := buf[:k]
			switch {
			case k == 12 && b[1] == 128:
				if got := netip.AddrFrom4([4]byte(b[8:12])); got != want {
					continue // the last of the old address's
				}
				if e := binary.BigEndian.Uint32(b[4:8]); e != epoch {
					t.Fatalf("NAT-PMP announcement of %v: epoch %d, want %d", want, e, epoch)
				}
				pmp++
			default:
				r, err := pcp.ParseResponse(b)
				if err != nil || r.Op != pcp.OpAnnounce {
					t.Fatalf("announcement % x: %+v %v", b, r, err)
				}
				if pmp > 0 {
					if r.Epoch != epoch {
						t.Fatalf("PCP ANNOUNCE after %v's: epoch %d, want %d", want, r.Epoch, epoch)
					}
					pcps++
				}
			}
		}
	}
	read(Public, 10, 3600)
	other := netip.MustParseAddr("198.51.100.77")
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	addrs <- other
	read(other, 10, 0)
	if mgr.Public() != other || mgr.EpochStart() != start.Add(time.Hour+time.Minute) {
		t.Fatalf("manager: public %v, epoch start %v", mgr.Public(), mgr.EpochStart())
	}
	mu.Lock()
	defer mu.Unlock()
	want := []time.Duration{250 * time.Millisecond}
	for len(want) < 9 {
		want = append(want, 2*want[len(want)-1])
	}
	if len(waits) != 18 || !slices.Equal(waits[9:], want) || !slices.Equal(waits[:9], want) {
		t.Fatalf("waits %v, want %v twice", waits, want)
	}
}
