package control

import (
	"bytes"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"passgate/dataplane/link"
	"passgate/dataplane/router"
	"passgate/nat"
)

var update = flag.Bool("update", false, "rewrite the golden JSON under testdata/")

// The API's JSON is read by the web page and by users' scripts: these
// tests pin it byte for byte (testdata/*.json), whatever the Go types
// behind it become.

// wireFlows are a plain TCP flow and one of each VPN passthrough, every
// field set.
func wireFlows() []nat.FlowInfo {
	ap := netip.MustParseAddrPort
	return []nat.FlowInfo{
		{Proto: "tcp", Inside: ap("192.168.50.10:40000"), Outside: ap("203.0.113.1:40001"), Remote: ap("198.51.100.10:21"),
			State: "established", Origin: "lan", PacketsOut: 12, PacketsIn: 10, BytesOut: 1234, BytesIn: 5678,
			AgeSec: 12.5, ExpiresSec: 7187.5, Helper: "ftp"},
		{Proto: "esp", Inside: ap("192.168.50.11:0"), Outside: ap("203.0.113.1:0"), Remote: ap("198.51.100.20:0"),
			State: "established", Origin: "lan", PacketsOut: 3, PacketsIn: 2, BytesOut: 300, BytesIn: 200, AgeSec: 1, ExpiresSec: 179,
			VPN: "ipsec", IKESPIs: []string{"0x0123456789abcdef", "0xfedcba9876543210"}, ESPSPIOut: "0xc0ffee01", ESPSPIIn: "0xc0ffee02"},
		{Proto: "gre", Inside: ap("192.168.50.12:0"), Outside: ap("203.0.113.1:0"), Remote: ap("198.51.100.30:0"),
			State: "new", Origin: "wan", VPN: "pptp", CallIDInside: 7, CallIDOutside: 122, CallIDServer: 9},
		{Proto: "udp", Inside: ap("192.168.50.13:1701"), Outside: ap("203.0.113.1:1701"), Remote: ap("198.51.100.40:1701"),
			State: "established", Origin: "hairpin", VPN: "l2tp", TunnelIDs: []uint16{5, 6}},
	}
}

// wireEvents are an event with every field and one with only the required.
func wireEvents() []router.EventInfo {
	return []router.EventInfo{
		{Time: time.Date(2026, 12, 6, 0, 5, 23, 123456789, time.UTC), Kind: "passthrough_off", Host: "192.168.50.10",
			Peer: "198.51.100.20", Message: "PPTP passthrough is off: GRE dropped", Suppressed: 4},
		{Time: time.Date(2026, 12, 6, 0, 6, 0, 0, time.UTC), Kind: "ah_dropped", Message: "AH cannot cross NAT"},
	}
}

func wireARP() link.NeighbourStats {
	return link.NeighbourStats{Entries: 1, Resolved: 2, Incomplete: 3, Waiting: 4, RequestsSent: 5, RepliesSent: 6,
		RequestsReceived: 7, RepliesReceived: 8, Learned: 9, Queued: 10, Released: 11, DropQueueFull: 12,
		DropPoolEmpty: 13, DropTooBig: 14, DropUnresolved: 15, DropTableFull: 16, DropBadNextHop: 17}
}

func wireNAT() nat.Stats {
	var s nat.Stats
	s.Packets = [2]uint64{100, 200}
	s.Bytes = [2]uint64{1000, 2000}
	s.Drops[nat.DropUnsolicited] = 3
	s.ICMPSent = 4
	s.Flows = 4
	s.FlowsByProto = map[string]int{"tcp": 1, "udp": 1, "esp": 1, "gre": 1}
	s.Mappings = 5
	s.Created = 6
	s.Expired = 2
	s.ESPAmbiguous = 1
	s.L2TPFallback = 2
	s.IKEFallback, s.SharedToOnlyHost = 4, 5
	s.PPTPUnparsed = 3
	s.EarlyDropTableFull, s.EarlyDropHostShare, s.EarlyDropMACShare, s.EarlyDropRuleShare = 7, 8, 9, 12
	s.RSTInWindow, s.RSTOutOfWindow = 10, 11
	s.TCPStateIgnored = 13
	s.ProhibitedSent, s.ProhibitedSuppressed = 14, 15
	s.VPNSessions = map[string]int{"ipsec": 1, "pptp": 1, "l2tp": 1}
	s.Helpers = map[string]nat.HelperCounters{"ftp": {On: true, Flows: 1, Rewrites: 2, Expectations: 3, Expected: 4, Unparsed: 5}, "sip": {}}
	return s
}

func wireStatus() Status {
	return Status{
		Version: "1.2.3", PID: 4242, Started: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC), UptimeSec: 323.5, Workers: 2,
		Interfaces: []Interface{
			{Role: "lan", Name: "lan0", Index: 3, Address: "192.168.50.1/24", MAC: "02:00:00:00:00:01", MTU: 1500, ARP: ARPStatsFrom(wireARP())},
			{Role: "wan", Name: "wan0", Index: 4, Address: "203.0.113.1/24", Gateway: "203.0.113.254", MAC: "02:00:00:00:00:02", MTU: 1500},
		},
		NAT:         NATStatsFrom(wireNAT()),
		Passthrough: map[string]bool{"ipsec": true, "pptp": false, "l2tp": true},
		Dataplane:   map[string]uint64{"rx_frames": 10, "forwarded": 8},
		Driver:      "afpacket", XDPMode: "native/generic", DriverFallback: "afxdp: XDP program on lan0: the interface already has an XDP program",
		Losses: map[string]uint64{"rx_ring_full": 6, "rx_no_buffer": 7, "tx_full": 8, "lan0_rx_dropped": 9},
		Sockets: []SocketStats{{Interface: "lan0", Worker: 1, Loop: "lan0", Kind: "rx", RxPackets: 1, RxDrops: 2, RxFreezes: 3},
			{Interface: "wan0", Worker: 1, Loop: "lan0", Kind: "tx", TxPackets: 4, TxErrors: 5}},
		PPPoE: &PPPoE{On: true, Sessions: []PPPoESession{{ID: 17, Host: "02:00:00:00:00:0a", AC: "02:00:00:00:00:0b",
			AgeSec: 60, IdleSec: 1.5, FramesToWAN: 20, FramesToLAN: 30}}, Counters: map[string]uint64{"drop_no_session": 1}},
	}
}

type wireBackend struct{}

func (wireBackend) Status() Status { return wireStatus() }
func (wireBackend) Flows(fn func(Flow) bool) {
	for _, f := range wireFlows() {
		if !fn(FlowFrom(f)) {
			return
		}
	}
}
func (wireBackend) Events() []Event { return EventsFrom(wireEvents()) }
func (wireBackend) PPPoE() PPPoE    { return *wireStatus().PPPoE }

// TestWireJSON pins what GET /v1/flows, /v1/events and /v1/status send.
func TestWireJSON(t *testing.T) {
	srv := httptest.NewServer(NewHandler(wireBackend{}))
	defer srv.Close()
	for path, golden := range map[string]string{"/v1/flows": "flows.json", "/v1/events": "events.json", "/v1/status": "status.json"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join("testdata", golden)
		if *update {
			if err := os.WriteFile(file, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: the JSON changed:\n got %s\nwant %s", path, got, want)
		}
	}
}
