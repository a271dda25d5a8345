// Package portmaptest makes what the protocol packages' tests share: an
// engine with a configured forward and a Manager over it.
package portmaptest

import (
	"net/netip"
	"testing"
	"time"

	"passgate/nat"
	"passgate/portmap"
)

// Addresses of the test LAN.
var (
	Router = netip.MustParseAddr("192.168.50.1")
	LAN1   = netip.MustParseAddr("192.168.50.10")
	LAN2   = netip.MustParseAddr("192.168.50.11")
	Public = netip.MustParseAddr("203.0.113.1")
	T0     = time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
)

// StaticPort is the outside TCP port of the configured forward (to LAN1:443).
const StaticPort = 8443

// Engine makes an engine with the forward of StaticPort.
func Engine(t testing.TB) *nat.Engine {
	t.Helper()
	e, err := nat.New(nat.Config{
		LANAddr:      netip.MustParsePrefix("192.168.50.1/24"),
		WANAddr:      netip.MustParsePrefix("203.0.113.1/24"),
		WANGateway:   netip.MustParseAddr("203.0.113.254"),
		MaxFlows:     256,
		PortForwards: []nat.PortForward{{Name: "web", Proto: 6, OutsideLo: StaticPort, OutsideHi: StaticPort, Host: LAN1, InsidePort: 443}},
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// Manager makes a Manager (max lease 2 h, 4 a host) over a new Engine.
func Manager(t testing.TB) (*portmap.Manager, *nat.Engine) {
	t.Helper()
	e := Engine(t)
	m, err := portmap.New(portmap.Config{LAN: netip.MustParsePrefix("192.168.50.1/24"), MaxPerHost: 4, RouterPorts: []uint16{5351, 1900}}, e, "", T0, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m, e
}
