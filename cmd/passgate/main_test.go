package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"passgate/config"
	"passgate/control"
	"passgate/dataplane/router"
	"passgate/nat"
)

// labMain runs the tests; with the lab tag, lab_test.go makes it
// labtest.Main.
var labMain = func(m *testing.M) { os.Exit(m.Run()) }

func TestMain(m *testing.M) {
	// The lab tests re-execute this binary as passgate itself.
	if os.Getenv("PASSGATE_TEST_MAIN") == "1" {
		os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
	}
	labMain(m)
}

func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = runMain(args, &o, &e)
	return code, o.String(), e.String()
}

func TestUsage(t *testing.T) {
	if code, _, e := runCLI(); code != 2 || !strings.Contains(e, "Usage:") {
		t.Errorf("no args: %d %q", code, e)
	}
	if code, _, e := runCLI("frobnicate"); code != 2 || !strings.Contains(e, `unknown command "frobnicate"`) {
		t.Errorf("unknown: %d %q", code, e)
	}
	if code, o, _ := runCLI("help"); code != 0 || !strings.Contains(o, "passgate conntrack") {
		t.Errorf("help: %d %q", code, o)
	}
	// The overview names every flag run takes.
	_, help, _ := runCLI("help")
	_, ro, re := runCLI("run", "-h")
	flags := regexp.MustCompile(`(?m)^  -([a-z-]+)`).FindAllStringSubmatch(ro+re, -1)
	if len(flags) < 10 {
		t.Fatalf("run -h lists %d flags:\n%s%s", len(flags), ro, re)
	}
	for _, f := range flags {
		if !strings.Contains(help, "--"+f[1]) {
			t.Errorf("passgate help does not name run's --%s", f[1])
		}
	}
	if _, o, e := runCLI("token", "-h"); !strings.Contains(o+e, "-scope scope") {
		t.Errorf("token -h names --scope's value oddly:\n%s%s", o, e)
	}
	if code, o, _ := runCLI("version"); code != 0 || !strings.HasPrefix(o, "passgate ") {
		t.Errorf("version: %d %q", code, o)
	}
	if code, _, e := runCLI("status", "--bogus"); code != 1 || !strings.Contains(e, "flag provided but not defined") {
		t.Errorf("bad flag: %d %q", code, e)
	}
	if code, _, _ := runCLI("status", "-h"); code != 0 {
		t.Errorf("status -h: %d", code)
	}
	if code, _, e := runCLI("status", "extra"); code != 2 || !strings.Contains(e, `unexpected argument "extra"`) {
		t.Errorf("stray arg: %d %q", code, e)
	}
	if code, _, e := runCLI("conntrack", "--proto", "sctp"); code != 2 || !strings.Contains(e, "want tcp, udp, icmp, gre or esp") {
		t.Errorf("bad proto: %d %q", code, e)
	}
	if code, _, e := runCLI("conntrack", "--host", "nohost"); code != 2 || !strings.Contains(e, "not an IP address") {
		t.Errorf("bad host: %d %q", code, e)
	}
	if code, _, e := runCLI("config"); code != 2 || !strings.Contains(e, "config check FILE") {
		t.Errorf("config: %d %q", code, e)
	}
}

func TestClientWithoutServer(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	for _, cmd := range []string{"status", "conntrack"} {
		code, _, e := runCLI(cmd, "--control", sock)
		if code != 1 || !strings.Contains(e, "is passgate running?") {
			t.Errorf("%s: %d %q", cmd, code, e)
		}
	}
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, []byte(`{"lan":{"interface":"lan0","address":"192.168.50.1/24"},"wan":{"interface":"wan0","address":"203.0.113.1/24"}}`), 0o600)
	if code, o, e := runCLI("config", "check", good); code != 0 || !strings.Contains(o, "good.json: ok") {
		t.Errorf("good: %d %q %q", code, o, e)
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"lan":{"interface":"lan0","address":"192.168.50.1/24"},"wan":{"interface":"wan0","address":"203.0.113.1/24"},
		"port_forwards":[{"name":"web","proto":"tcp","outside_port":80,"host":"192.168.50.10"},{"name":"bad","proto":"tcp","outside_port":"70000","host":"192.168.50.10"}],
		"nat":{"timeouts":{"udp":"10s"}}}`), 0o600)
	code, o, _ := runCLI("config", "check", bad)
	lines := strings.Split(strings.TrimSpace(o), "\n")
	if code != 1 || len(lines) != 2 ||
		lines[0] != "nat.timeouts.udp: 10s is below the RFC minimum 2m (set nat.allow_short_timeouts for tests)" ||
		lines[1] != "port_forwards[1].outside_port: 70000 out of range 1-65535" {
		t.Errorf("bad: %d\n%s", code, o)
	}
	unknown := filepath.Join(dir, "unknown.json")
	os.WriteFile(unknown, []byte(`{"lan":{"iface":"lan0"}}`), 0o600)
	if code, o, _ := runCLI("config", "check", unknown); code != 1 || strings.TrimSpace(o) != "lan.iface: unknown field" {
		t.Errorf("unknown: %d %q", code, o)
	}
	if code, _, e := runCLI("config", "check", filepath.Join(dir, "missing.json")); code != 1 || !strings.Contains(e, "no such file") {
		t.Errorf("missing: %d %q", code, e)
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	// Validation happens before anything touches the system.
	code, _, e := runCLI("run", "--lan", "lan0", "--lan-addr", "192.168.50.1/24", "--wan", "wan0", "--wan-addr", "nonsense")
	if code != 1 || !strings.Contains(e, `flags: wan.address: "nonsense" is not an IPv4 address`) {
		t.Errorf("%d %q", code, e)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.json")
	os.WriteFile(cfg, []byte(`{"lan":{"interface":"lan0","address":"192.168.50.1/24"},"wan":{"interface":"wan0","address":"203.0.113.1/24"},"workers":-1}`), 0o600)
	// A flag overrides the file's bad value... and the file's others stay.
	code, _, e = runCLI("run", "--config", cfg, "--wan-addr", "192.168.50.2/24", "--workers", "1")
	if code != 1 || !strings.Contains(e, "wan.address: 192.168.50.2/24 overlaps the LAN") || strings.Contains(e, "workers") {
		t.Errorf("%d %q", code, e)
	}
	if code, _, e := runCLI("run", "--log-level", "loud"); code != 2 || !strings.Contains(e, "--log-level") {
		t.Errorf("log level: %d %q", code, e)
	}
}

func TestPrinters(t *testing.T) {
	var b bytes.Buffer
	st := &control.Status{Version: "x", Workers: 2, UptimeSec: 61,
		Interfaces:  []control.Interface{{Role: "lan", Name: "lan0", Address: "192.168.50.1/24", MAC: "02:00:00:00:00:01", MTU: 1500}},
		NAT:         control.NATStats{Drops: map[string]uint64{"filtered": 2, "malformed": 0}, FlowsByProto: map[string]int{"udp": 1}, Flows: 1, VPNSessions: map[string]int{"ipsec": 1, "pptp": 2}},
		Sockets:     []control.SocketStats{{Interface: "lan0", Kind: "rx", RxPackets: 7}},
		Dataplane:   map[string]uint64{"rx_frames": 7},
		Passthrough: map[string]bool{"ipsec": true, "pptp": true},
	}
	printStatus(&b, st)
	out := b.String()
	for _, want := range []string{"up 1m1s", "lan0", "192.168.50.1/24", "drops      2: filtered 2", "flows      1 (udp 1)", "rx_frames", "RX PACKETS",
		"IPsec  on   1 session    (", "PPTP   on   2 sessions   (", "L2TP   off  0 sessions   ("} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "malformed") {
		t.Errorf("zero drop reasons printed:\n%s", out)
	}
	// The PPPoE relay off: its zero counters are left out of the text
	// (said), a non-zero one is shown; on, all are.
	st.Dataplane = map[string]uint64{"rx_frames": 7, "pppoe_padi": 0, "pppoe_sessions": 0, "pppoe_drop_not_pppoe": 3}
	st.PPPoE = &control.PPPoE{On: false}
	b.Reset()
	printStatus(&b, st)
	out = b.String()
	if strings.Contains(out, "pppoe_padi") || strings.Contains(out, "pppoe_sessions") || !strings.Contains(out, "pppoe_drop_not_pppoe  3") ||
		!strings.Contains(out, "(2 zero pppoe_ counters of the PPPoE relay, which is off, not shown; --json has every counter)") {
		t.Errorf("status with the PPPoE relay off:\n%s", out)
	}
	st.PPPoE.On = true
	b.Reset()
	printStatus(&b, st)
	if out = b.String(); !strings.Contains(out, "pppoe_padi") || strings.Contains(out, "not shown") {
		t.Errorf("status with the PPPoE relay on:\n%s", out)
	}
	st.PPPoE, st.Dataplane = nil, map[string]uint64{"rx_frames": 7}
	b.Reset()
	printStatus(&b, st)
	if out = b.String(); strings.Contains(out, "PPPOE") {
		t.Errorf("PPPoE section without PPPoE state:\n%s", out)
	}
	b.Reset()
	st.PPPoE = &control.PPPoE{On: true, Sessions: []control.PPPoESession{{ID: 1, Host: "02:00:00:00:00:0a", AC: "02:00:00:00:01:01", AgeSec: 61, FramesToWAN: 5, FramesToLAN: 6}}}
	printStatus(&b, st)
	if out := b.String(); !strings.Contains(out, "\nPPPOE RELAY\n  on, 1 session, 0 drops\n  SESSION") || !strings.Contains(out, "1m1s") || !strings.Contains(out, "5/6") {
		t.Errorf("status PPPoE section:\n%s", out)
	}
	// Root sees the admin page's address, fingerprint and setup code.
	b.Reset()
	st.Admin = &control.AdminInfo{URL: "https://192.168.50.1:8080/", Fingerprint: "AB:CD", SetupCode: "ABCD-EFGH-JKMN"}
	printStatus(&b, st)
	if out := b.String(); !strings.Contains(out, "admin page  https://192.168.50.1:8080/\n  certificate SHA-256 AB:CD\n  no password yet: setup code ABCD-EFGH-JKMN") {
		t.Errorf("status admin lines:\n%s", out)
	}
	st.Admin.SetupCode = ""
	b.Reset()
	printStatus(&b, st)
	if strings.Contains(b.String(), "setup code") {
		t.Errorf("a setup code line without a code:\n%s", b.String())
	}
	if bytesText(1536) != "1.5 KiB" || bytesText(10) != "10 B" || bytesText(3<<30) != "3.0 GiB" {
		t.Errorf("bytesText: %s %s %s", bytesText(1536), bytesText(10), bytesText(3<<30))
	}
	var j bytes.Buffer
	if err := writeJSON(&j, st); err != nil {
		t.Fatal(err)
	}
	var back control.Status
	if err := json.Unmarshal(j.Bytes(), &back); err != nil || back.Version != "x" {
		t.Errorf("json: %v", err)
	}
	_ = time.Second
}

func TestPPPoEFrom(t *testing.T) {
	p := pppoeFrom(true, []router.PPPoESession{{ID: 9, Host: "02:00:00:00:00:0a", AC: "02:00:00:00:01:01", Age: 90 * time.Second, Idle: 1500 * time.Millisecond, FramesToWAN: 4, FramesToLAN: 5}},
		func(fn func(string, uint64)) { fn("drop_unknown_session", 2) })
	want := control.PPPoESession{ID: 9, Host: "02:00:00:00:00:0a", AC: "02:00:00:00:01:01", AgeSec: 90, IdleSec: 1.5, FramesToWAN: 4, FramesToLAN: 5}
	if !p.On || len(p.Sessions) != 1 || p.Sessions[0] != want || p.Counters["drop_unknown_session"] != 2 {
		t.Fatalf("%+v", p)
	}
	if p := pppoeFrom(false, nil, nil); p.Sessions == nil || len(p.Sessions) != 0 {
		t.Fatalf("no sessions: %+v", p)
	}
}

// The file's settings reach the data plane's options: interfaces, workers,
// the engine configuration and the PPPoE relay switch.
func TestRouterOptions(t *testing.T) {
	c, err := config.Parse([]byte(`{"lan":{"interface":"lan0","address":"192.168.50.1/24"},"wan":{"interface":"wan0","address":"203.0.113.1/24"},"workers":3,"driver":"afpacket","passthrough":{"pppoe":true,"pptp":false}}`))
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Validate()
	if err != nil {
		t.Fatal(err)
	}
	o := routerOptions(s)
	if o.LAN != "lan0" || o.WAN != "wan0" || o.Workers != 3 || !o.PPPoERelay || o.Driver != "afpacket" {
		t.Errorf("options %+v", o)
	}
	if o.NAT.LANAddr != s.NAT.LANAddr || o.NAT.WANAddr != s.NAT.WANAddr || o.NAT.Helpers["pptp"] != nat.Off {
		t.Errorf("engine configuration %+v, want %+v", o.NAT, s.NAT)
	}
	// Each start seeds the outside port choice anew (RFC 7857 section 9).
	if o2 := routerOptions(s); o.NAT.PortSeed == 0 || o2.NAT.PortSeed == o.NAT.PortSeed {
		t.Errorf("port seeds %#x, %#x: want random ones", o.NAT.PortSeed, o2.NAT.PortSeed)
	}
}

// TestDrivers: the configuration accepts exactly the data plane's drivers.
// TestRxOffloadsStatus: passgate status names the receive offloads it
// turned off, or says it found them off, and shouts those still on.
func TestRxOffloadsStatus(t *testing.T) {
	line := func(offs ...control.RxOffload) string {
		var b bytes.Buffer
		printRxOffloads(&b, offs)
		return b.String()
	}
	if got := line(); got != "" {
		t.Errorf("no offloads known: %q", got)
	}
	off := []control.RxOffload{{Interface: "lan0", Feature: "rx-gro", State: "turned off"},
		{Interface: "lan0", Feature: "rx-lro", State: "off"}, {Interface: "wan0", Feature: "rx-gro", State: "turned off"}}
	if got, want := line(off...), "receive offloads turned off by passgate (back on at exit): lan0 rx-gro, wan0 rx-gro\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := line(off[1]), "receive offloads (GRO, LRO, VLAN stripping): found off\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	got := line(off[1], control.RxOffload{Interface: "wan0", Feature: "rx-lro", State: "fixed on"}, control.RxOffload{Interface: "lan0", Feature: "rx-gro", State: "on"})
	if want := "RECEIVE OFFLOADS ON (frames over the MTU or without their VLAN tag are dropped): lan0 rx-gro, wan0 rx-lro (fixed)\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	var b bytes.Buffer
	printStatus(&b, &control.Status{Version: "x", Driver: "afpacket", RxOffloads: off})
	if !strings.Contains(b.String(), "driver afpacket\nreceive offloads turned off by passgate") {
		t.Errorf("status:\n%s", b.String())
	}
	if !routerOptions(&config.Settings{KeepRxOffloads: true}).KeepRxOffloads || routerOptions(&config.Settings{}).KeepRxOffloads {
		t.Error("keep_rx_offloads not passed to the router")
	}
}

func TestDrivers(t *testing.T) {
	if !slices.Equal(config.Drivers, router.Drivers) || config.DriverAuto != router.DriverAuto {
		t.Fatalf("config knows drivers %v (default %s), the router %v (%s)", config.Drivers, config.DriverAuto, router.Drivers, router.DriverAuto)
	}
}
