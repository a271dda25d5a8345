package router

import (
	"net/netip"
	"strings"
	"testing"

	"passgate/nat"
)

func TestFenceLetsAdminThroughOnLANOnly(t *testing.T) {
	s := fenceScriptWith(fenceNetdev, "pgt", [2]string{"lan0", "wan0"}, []netip.AddrPort{netip.MustParseAddrPort("192.168.50.1:8080")})
	lan, wan, ok := strings.Cut(s, "chain wan_ingress")
	if !ok {
		t.Fatalf("no WAN chain:\n%s", s)
	}
	accept := "ip daddr 192.168.50.1 tcp dport 8080 counter accept"
	if !strings.Contains(lan, accept) || strings.Index(lan, accept) > strings.Index(lan, "meta protocol ip counter drop") {
		t.Errorf("LAN chain lacks the accept before the drop:\n%s", s)
	}
	if strings.Contains(wan, "accept\n") || !strings.Contains(wan, "meta protocol ip counter drop") {
		t.Errorf("WAN chain must drop all IPv4:\n%s", s)
	}
}

func TestAllowLANTCP(t *testing.T) {
	r := &Router{opts: Options{FenceTable: "pgallowtest", NAT: nat.Config{
		LANAddr: netip.MustParsePrefix("192.168.50.1/24"), WANAddr: netip.MustParsePrefix("203.0.113.1/24"),
	}}}
	if err := r.AllowLANTCP(netip.MustParseAddrPort("203.0.113.1:8080")); err == nil {
		t.Fatal("WAN address let through")
	}
	if err := r.AllowLANTCP(netip.MustParseAddrPort("192.168.50.1:0")); err == nil {
		t.Fatal("port 0 let through")
	}
	for range 2 {
		if err := r.AllowLANTCP(netip.MustParseAddrPort("192.168.50.1:8080")); err != nil {
			t.Fatal(err)
		}
	}
	s := fenceScript(fenceNetdev, "pgallowtest", [2]string{"lan0", "wan0"})
	if strings.Count(s, "tcp dport 8080 counter accept") != 1 {
		t.Fatalf("script:\n%s", s)
	}
	if strings.Contains(fenceScript(fenceIP, "passgate", [2]string{"lan0", "wan0"}), "accept\n") {
		t.Fatal("accept leaked into another table")
	}
}

func TestFenceLetsPortMappingUDPThroughOnLANOnly(t *testing.T) {
	s := fenceScriptWith(fenceNetdev, "pgt", [2]string{"lan0", "wan0"}, nil, netip.MustParseAddrPort("192.168.50.1:5351"), netip.MustParseAddrPort("239.255.255.250:1900"))
	lan, wan, _ := strings.Cut(s, "chain wan_ingress")
	for _, accept := range []string{"ip daddr 192.168.50.1 udp dport 5351 counter accept", "ip daddr 239.255.255.250 udp dport 1900 counter accept"} {
		if !strings.Contains(lan, accept) || strings.Index(lan, accept) > strings.Index(lan, "meta protocol ip counter drop") || strings.Contains(wan, accept) {
			t.Errorf("want %q before the LAN drop and not on the WAN:\n%s", accept, s)
		}
	}
	r := &Router{opts: Options{FenceTable: "pgudptest", NAT: nat.Config{LANAddr: netip.MustParsePrefix("192.168.50.1/24")}}}
	if err := r.AllowLANUDP(netip.MustParseAddrPort("203.0.113.1:5351")); err == nil {
		t.Error("UDP to another address than the LAN's let through")
	}
}

// TestFenceIPFamily: the AF_PACKET fence is an ip table hooked at
// prerouting before defragmentation (-400) and conntrack, jumping per
// interface to the same accept-then-drop chains.
func TestFenceIPFamily(t *testing.T) {
	s := fenceScriptWith(fenceIP, "pgt", [2]string{"lan0", "wan0"}, []netip.AddrPort{netip.MustParseAddrPort("192.168.50.1:8080")})
	for _, want := range []string{
		"delete table netdev pgt\n", "delete table ip pgt\n", "table ip pgt {",
		"type filter hook prerouting priority -450; policy accept;",
		`iifname "lan0" jump lan_ingress`, `iifname "wan0" jump wan_ingress`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("no %q in:\n%s", want, s)
		}
	}
	lan, wan, ok := strings.Cut(s, "chain wan_ingress")
	accept := "ip daddr 192.168.50.1 tcp dport 8080 counter accept"
	if !ok || strings.Index(lan, accept) < strings.Index(lan, "chain lan_ingress") ||
		strings.Index(lan, accept) > strings.LastIndex(lan, "meta protocol ip counter drop") {
		t.Errorf("LAN chain lacks the accept before the drop:\n%s", s)
	}
	if strings.Contains(wan, "accept\n") || !strings.Contains(wan, "meta protocol ip counter drop") || strings.Contains(s, "hook ingress") {
		t.Errorf("WAN chain must drop all IPv4, no netdev hook:\n%s", s)
	}
}
