package main

import (
	"context"
	"encoding/json"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"passgate/config"
	"passgate/control"
	"passgate/portmap"
	"passgate/portmap/portmaptest"
)

// mappingBackend is a control backend with real port mapping leases
// over an engine.
type mappingBackend struct {
	fakeBackend
	*portMapping
}

func TestMappingsCLI(t *testing.T) {
	m, e := portmaptest.Manager(t)
	b := &mappingBackend{portMapping: &portMapping{m: m, set: config.PortMappingSettings{UPnP: true, NATPMP: true}}}
	sock := filepath.Join(t.TempDir(), "pg.sock")
	ln, err := control.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- control.ServeHandler(ctx, ln, control.NewHandler(b), nil) }()
	defer func() { cancel(); <-done }()

	if _, err := m.Map(time.Now(), portmap.Request{Client: portmaptest.LAN1, Proto: portmap.TCP, Inside: 5000, Outside: 40000, Exact: true, By: "upnp", Desc: "game", Lease: time.Hour}); err != nil {
		t.Fatal(err)
	}
	code, o, e2 := runCLI("mappings", "--control", sock)
	if code != 0 || !strings.Contains(o, "pcp off, natpmp on, upnp on; leases up to 2h0m0s") || !strings.Contains(o, "tcp    40000         192.168.50.10  5000         upnp") || !strings.Contains(o, "game") || !strings.Contains(o, "1 mappings") {
		t.Fatalf("list: %d\n%s%s", code, o, e2)
	}
	code, o, _ = runCLI("mappings", "--json", "--control", sock)
	var got control.Mappings
	if code != 0 || json.Unmarshal([]byte(o), &got) != nil || len(got.Mappings) != 1 || got.Mappings[0].Host != netip.MustParseAddr("192.168.50.10") || got.Mappings[0].By != "upnp" {
		t.Fatalf("json: %d %s", code, o)
	}
	code, o, _ = runCLI("mappings", "del", "tcp", "40000", "--control", sock)
	if code != 0 || strings.TrimSpace(o) != "deleted tcp 40000" || len(e.DynamicForwards()) != 0 {
		t.Fatalf("del: %d %q, engine %+v", code, o, e.DynamicForwards())
	}
	if code, _, e2 = runCLI("mappings", "del", "tcp", "40000", "--control", sock); code == 0 || !strings.Contains(e2, "no such mapping") {
		t.Fatalf("del again: %d %q", code, e2)
	}
	if code, _, _ = runCLI("mappings", "del", "sctp", "1", "--control", sock); code == 0 {
		t.Fatal("del sctp accepted")
	}
}
