package config

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"passgate/alg"
	"passgate/nat"
)

const full = `{
 "lan":{"interface":"lan0","address":"192.168.50.1/24","mtu":1500},
 "wan":{"interface":"wan0","address":"203.0.113.1/24","gateway":"203.0.113.254","mtu":1400},
 "nat":{"filtering":"endpoint-independent","port_range":"2000-3000","max_flows":1000,"max_flows_per_host":100,"mss_clamp":1400,
        "timeouts":{"udp":"3m","tcp_established":"3h","tcp_transitory":"5m","tcp_closing":"6m","tcp_closed":"20s","icmp":"90s"}},
 "port_forwards":[
   {"name":"web","proto":"tcp","outside_port":8080,"host":"192.168.50.10","inside_port":80},
   {"name":"game","proto":"udp","outside_port":"27000-27010","host":"192.168.50.11","inside_port":27000},
   {"name":"ssh","proto":"tcp","outside_port":"2222","host":"192.168.50.12"}
 ],
 "dmz":"192.168.50.20",
 "workers":2,
 "driver":"afxdp",
 "offload":true,
 "keep_rx_offloads":true,
 "control_socket":"/tmp/pg.sock"
}`

func TestFullConfig(t *testing.T) {
	c, err := Parse([]byte(full))
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Validate()
	if err != nil {
		t.Fatal(err)
	}
	n := s.NAT
	want := nat.Config{
		LANAddr:         netip.MustParsePrefix("192.168.50.1/24"),
		WANAddr:         netip.MustParsePrefix("203.0.113.1/24"),
		WANGateway:      netip.MustParseAddr("203.0.113.254"),
		LANMTU:          1500,
		WANMTU:          1400,
		Filtering:       nat.EndpointIndependent,
		MaxFlows:        1000,
		MaxFlowsPerHost: 100,
		MaxFlowsPerRule: 100, // max_flows_per_host unless set
		MSSClamp:        1400,
		PortLo:          2000,
		PortHi:          3000,
		DMZ:             netip.MustParseAddr("192.168.50.20"),
		KernelTCP:       []uint16{8080}, // the admin page, on by default
		Timeouts: nat.Timeouts{
			UDP: 3 * time.Minute, TCPEstablished: 3 * time.Hour,
			// tcp_opening left out: tcp_transitory's.
			TCPOpening: 5 * time.Minute, TCPClosing: 6 * time.Minute,
			TCPTransitory: 5 * time.Minute, TCPClosed: 20 * time.Second, ICMP: 90 * time.Second,
			Fragment: nat.DefaultTimeouts.Fragment, Expectation: nat.DefaultTimeouts.Expectation,
		},
	}
	fw := n.PortForwards
	n.PortForwards = nil
	if !reflect.DeepEqual(n, want) {
		t.Errorf("nat config\n got %+v\nwant %+v", n, want)
	}
	wantFw := []nat.PortForward{
		{Name: "web", Proto: 6, OutsideLo: 8080, OutsideHi: 8080, Host: netip.MustParseAddr("192.168.50.10"), InsidePort: 80},
		{Name: "game", Proto: 17, OutsideLo: 27000, OutsideHi: 27010, Host: netip.MustParseAddr("192.168.50.11"), InsidePort: 27000},
		{Name: "ssh", Proto: 6, OutsideLo: 2222, OutsideHi: 2222, Host: netip.MustParseAddr("192.168.50.12"), InsidePort: 2222},
	}
	if len(fw) != len(wantFw) {
		t.Fatalf("forwards %+v", fw)
	}
	for i := range fw {
		if fw[i] != wantFw[i] {
			t.Errorf("forward %d: got %+v want %+v", i, fw[i], wantFw[i])
		}
	}
	if s.LANInterface != "lan0" || s.WANInterface != "wan0" || s.Workers != 2 || s.ControlSocket != "/tmp/pg.sock" ||
		s.Driver != "afxdp" || !s.Offload || !s.KeepRxOffloads {
		t.Errorf("settings %+v", s)
	}
	if _, err := nat.New(s.NAT, 0); err != nil {
		t.Errorf("engine refuses the converted config: %v", err)
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte(`{"lan":{"interface":"lan0","address":"192.168.50.1/24"},"wan":{"interface":"wan0","address":"203.0.113.1/24"}}`))
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Validate()
	if err != nil {
		t.Fatal(err)
	}
	n := s.NAT
	if n.LANMTU != 1500 || n.WANMTU != 1500 || n.Filtering != nat.AddressDependent || n.PortLo != 1024 || n.PortHi != 65535 ||
		n.MaxFlows != 65536 || n.MaxFlowsPerHost != 16384 || n.MSSClamp != 0 || n.WANGateway.IsValid() || n.DMZ.IsValid() {
		t.Errorf("defaults: %+v", n)
	}
	wantT := nat.DefaultTimeouts
	if n.Timeouts != wantT {
		t.Errorf("timeouts %+v, want %+v", n.Timeouts, wantT)
	}
	if s.ControlSocket != DefaultControlSocket || s.Workers != 0 || s.Driver != "auto" || !s.Offload || s.KeepRxOffloads {
		t.Errorf("settings %+v", s)
	}
	// Defaults are filled into the file form too.
	if c.NAT.Timeouts.TCPEstablished != "2h4m" || c.NAT.Filtering != DefaultFiltering || c.LAN.MTU != 1500 {
		t.Errorf("file form not filled: %+v", c.NAT)
	}
	if _, err := nat.New(n, 0); err != nil {
		t.Errorf("engine refuses defaults: %v", err)
	}
	if pm := s.PortMapping; pm.On() || pm.MaxLease != 2*time.Hour || pm.MaxPerHost != 32 || pm.MaxMappings != 1024 || pm.AllowLowPorts || pm.AllowThirdParty || len(n.KernelUDP) != 0 {
		t.Errorf("port mapping defaults (all off): %+v, kernel UDP %v", pm, n.KernelUDP)
	}
}

func TestPortMappingPorts(t *testing.T) {
	c, err := Parse([]byte(`{"lan":{"interface":"lan0","address":"192.168.50.1/24"},"wan":{"interface":"wan0","address":"203.0.113.1/24"},
		"port_mapping":{"pcp":true,"upnp":true,"max_lease":"30m","max_per_host":4,"max_mappings":100,"allow_low_ports":true,"allow_third_party":true}}`))
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Validate()
	if err != nil {
		t.Fatal(err)
	}
	want := PortMappingSettings{PCP: true, UPnP: true, MaxLease: 30 * time.Minute, MaxPerHost: 4, MaxMappings: 100, AllowLowPorts: true, AllowThirdParty: true}
	if s.PortMapping != want || !reflect.DeepEqual(s.NAT.KernelUDP, []uint16{5351, 1900}) || !reflect.DeepEqual(s.NAT.KernelTCP, []uint16{8080, 5431}) {
		t.Fatalf("%+v, kernel UDP %v TCP %v", s.PortMapping, s.NAT.KernelUDP, s.NAT.KernelTCP)
	}
}

func TestShortTimeoutsAllowed(t *testing.T) {
	c, _ := Parse([]byte(`{"lan":{"interface":"lan0","address":"192.168.50.1/24"},"wan":{"interface":"wan0","address":"203.0.113.1/24"},
		"nat":{"allow_short_timeouts":true,"timeouts":{"udp":"2s","tcp_established":"5s","tcp_transitory":"1s","icmp":"1s"}}}`))
	s, err := c.Validate()
	if err != nil {
		t.Fatal(err)
	}
	if s.NAT.Timeouts.UDP != 2*time.Second || s.NAT.Timeouts.TCPEstablished != 5*time.Second {
		t.Errorf("timeouts %+v", s.NAT.Timeouts)
	}
}

// base is a valid configuration; each case changes one thing.
func base() map[string]any {
	var m map[string]any
	if err := json.Unmarshal([]byte(`{
	 "lan":{"interface":"lan0","address":"192.168.50.1/24"},
	 "wan":{"interface":"wan0","address":"203.0.113.1/24"},
	 "nat":{"timeouts":{}},
	 "port_forwards":[{"name":"web","proto":"tcp","outside_port":"8080","host":"192.168.50.10","inside_port":80}]}`), &m); err != nil {
		panic(err)
	}
	return m
}

func set(m map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	cur := m
	for _, p := range parts[:len(parts)-1] {
		if strings.HasPrefix(p, "port_forwards[") {
			var i int
			for _, ch := range p[len("port_forwards["):] {
				if ch >= '0' && ch <= '9' {
					i = i*10 + int(ch-'0')
				}
			}
			fws := cur["port_forwards"].([]any)
			for len(fws) <= i {
				fws = append(fws, map[string]any{})
			}
			cur["port_forwards"] = fws
			cur = fws[i].(map[string]any)
			continue
		}
		next, ok := cur[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			cur[p] = next
		}
		cur = next
	}
	if v == nil {
		delete(cur, parts[len(parts)-1])
	} else {
		cur[parts[len(parts)-1]] = v
	}
}

func TestValidationErrors(t *testing.T) {
	fw := func(proto, out, host string, in int) map[string]any {
		return map[string]any{"name": proto + out, "proto": proto, "outside_port": out, "host": host, "inside_port": in}
	}
	cases := []struct {
		name  string
		edit  func(m map[string]any)
		field string
		msg   string
	}{
		{"lan iface missing", func(m map[string]any) { set(m, "lan.interface", nil) }, "lan.interface", "required"},
		{"wan iface too long", func(m map[string]any) { set(m, "wan.interface", "abcdefghijklmnop") }, "wan.interface", "longer than 15"},
		{"iface slash", func(m map[string]any) { set(m, "wan.interface", "a/b") }, "wan.interface", "not a valid interface name"},
		{"same iface", func(m map[string]any) { set(m, "wan.interface", "lan0") }, "wan.interface", "also the LAN interface"},
		{"lan addr missing", func(m map[string]any) { set(m, "lan.address", nil) }, "lan.address", "required"},
		{"lan addr no prefix", func(m map[string]any) { set(m, "lan.address", "192.168.50.1") }, "lan.address", "not an IPv4 address with prefix length"},
		{"lan addr v6", func(m map[string]any) { set(m, "lan.address", "fd00::1/64") }, "lan.address", "not an IPv4"},
		{"lan addr network", func(m map[string]any) { set(m, "lan.address", "192.168.50.0/24") }, "lan.address", "network or broadcast"},
		{"lan addr broadcast", func(m map[string]any) { set(m, "lan.address", "192.168.50.255/24") }, "lan.address", "network or broadcast"},
		{"lan /31", func(m map[string]any) { set(m, "lan.address", "192.168.50.1/31") }, "lan.address", "out of range 8-30"},
		{"wan /32", func(m map[string]any) { set(m, "wan.address", "203.0.113.1/32") }, "wan.address", "out of range 8-31"},
		{"wan loopback", func(m map[string]any) { set(m, "wan.address", "127.0.0.1/8") }, "wan.address", "cannot be a router address"},
		{"overlap", func(m map[string]any) { set(m, "wan.address", "192.168.50.200/24") }, "wan.address", "overlaps the LAN"},
		{"gateway bad", func(m map[string]any) { set(m, "wan.gateway", "gw") }, "wan.gateway", "not an IPv4 address"},
		{"max lease bad", func(m map[string]any) { set(m, "port_mapping.max_lease", "forever") }, "port_mapping.max_lease", "not a duration"},
		{"max lease long", func(m map[string]any) { set(m, "port_mapping.max_lease", "48h") }, "port_mapping.max_lease", "out of range 1m-24h"},
		{"max per host", func(m map[string]any) { set(m, "port_mapping.max_per_host", -1) }, "port_mapping.max_per_host", "out of range 1-1024"},
		{"admin on UPnP's port", func(m map[string]any) { set(m, "port_mapping.upnp", true); set(m, "admin.listen", "192.168.50.1:5431") }, "admin.listen", "UPnP's"},
		{"gateway off-link", func(m map[string]any) { set(m, "wan.gateway", "198.51.100.1") }, "wan.gateway", "not a host on the WAN"},
		{"gateway is us", func(m map[string]any) { set(m, "wan.gateway", "203.0.113.255") }, "wan.gateway", "not a host on the WAN"},
		{"mtu low", func(m map[string]any) { set(m, "lan.mtu", 100) }, "lan.mtu", "100 out of range 576-9000"},
		{"mtu high", func(m map[string]any) { set(m, "wan.mtu", 9001) }, "wan.mtu", "out of range 576-9000"},
		{"filtering", func(m map[string]any) { set(m, "nat.filtering", "full-cone") }, "nat.filtering", "not one of"},
		{"port range text", func(m map[string]any) { set(m, "nat.port_range", "low-high") }, "nat.port_range", "not a port number"},
		{"port range order", func(m map[string]any) { set(m, "nat.port_range", "5000-4000") }, "nat.port_range", "ends before it starts"},
		{"port range high", func(m map[string]any) { set(m, "nat.port_range", "1024-70000") }, "nat.port_range", "70000 out of range 1-65535"},
		{"port range small", func(m map[string]any) { set(m, "nat.port_range", "1024-1030") }, "nat.port_range", "at least 64"},
		{"max flows", func(m map[string]any) { set(m, "nat.max_flows", 5) }, "nat.max_flows", "5 out of range 16-4194304"},
		{"per host", func(m map[string]any) { set(m, "nat.max_flows_per_host", 70000) }, "nat.max_flows_per_host", "out of range 1-65536"},
		{"mss", func(m map[string]any) { set(m, "nat.mss_clamp", 100) }, "nat.mss_clamp", "out of range 536-8960"},
		{"timeout syntax", func(m map[string]any) { set(m, "nat.timeouts.udp", "5 minutes") }, "nat.timeouts.udp", "not a duration"},
		{"timeout negative", func(m map[string]any) { set(m, "nat.timeouts.tcp_closed", "-1s") }, "nat.timeouts.tcp_closed", "must be positive"},
		{"udp short", func(m map[string]any) { set(m, "nat.timeouts.udp", "30s") }, "nat.timeouts.udp", "below the RFC minimum 2m"},
		{"tcp est short", func(m map[string]any) { set(m, "nat.timeouts.tcp_established", "2h") }, "nat.timeouts.tcp_established", "below the RFC minimum 2h4m"},
		{"tcp trans short", func(m map[string]any) { set(m, "nat.timeouts.tcp_transitory", "1m") }, "nat.timeouts.tcp_transitory", "below the RFC minimum 4m"},
		{"tcp opening short", func(m map[string]any) { set(m, "nat.timeouts.tcp_opening", "3m59s") }, "nat.timeouts.tcp_opening", "below the RFC minimum 4m"},
		{"tcp closing syntax", func(m map[string]any) { set(m, "nat.timeouts.tcp_closing", "4") }, "nat.timeouts.tcp_closing", "not a duration"},
		{"tcp closing negative", func(m map[string]any) { set(m, "nat.timeouts.tcp_closing", "-5m") }, "nat.timeouts.tcp_closing", "must be positive"},
		{"icmp short", func(m map[string]any) { set(m, "nat.timeouts.icmp", "10s") }, "nat.timeouts.icmp", "below the RFC minimum 1m"},
		{"fw proto", func(m map[string]any) { set(m, "port_forwards[0].proto", "sctp") }, "port_forwards[0].proto", `"sctp" is not tcp or udp`},
		{"fw proto missing", func(m map[string]any) { set(m, "port_forwards[0].proto", nil) }, "port_forwards[0].proto", "required"},
		{"fw port high", func(m map[string]any) {
			m["port_forwards"] = append(m["port_forwards"].([]any), fw("udp", "70000", "192.168.50.10", 1))
		},
			"port_forwards[1].outside_port", "70000 out of range 1-65535"},
		{"fw port number high", func(m map[string]any) { set(m, "port_forwards[0].outside_port", 70000) }, "port_forwards[0].outside_port", "70000 out of range 1-65535"},
		{"fw port missing", func(m map[string]any) { set(m, "port_forwards[0].outside_port", nil) }, "port_forwards[0].outside_port", "required"},
		{"fw port garbage", func(m map[string]any) { set(m, "port_forwards[0].outside_port", true) }, "port_forwards[0].outside_port", `"true" is not a port number`},
		{"fw inside high", func(m map[string]any) { set(m, "port_forwards[0].inside_port", 65536) }, "port_forwards[0].inside_port", "65536 out of range 1-65535"},
		{"fw inside overflow", func(m map[string]any) {
			set(m, "port_forwards[0].outside_port", "8000-8010")
			set(m, "port_forwards[0].inside_port", 65530)
		}, "port_forwards[0].inside_port", "passes 65535"},
		{"fw host off lan", func(m map[string]any) { set(m, "port_forwards[0].host", "203.0.113.5") }, "port_forwards[0].host", "not a host on the LAN 192.168.50.0/24"},
		{"fw host router", func(m map[string]any) { set(m, "port_forwards[0].host", "192.168.50.1") }, "port_forwards[0].host", "not a host on the LAN"},
		{"fw host bad", func(m map[string]any) { set(m, "port_forwards[0].host", "host") }, "port_forwards[0].host", "not an IPv4 address"},
		{"fw host missing", func(m map[string]any) { set(m, "port_forwards[0].host", nil) }, "port_forwards[0].host", "required"},
		{"fw name long", func(m map[string]any) { set(m, "port_forwards[0].name", strings.Repeat("x", 65)) }, "port_forwards[0].name", "longer than 64"},
		{"fw name missing", func(m map[string]any) { set(m, "port_forwards[0].name", nil) }, "port_forwards[0].name", "required"},
		{"fw name chars", func(m map[string]any) { set(m, "port_forwards[0].name", "a/b") }, "port_forwards[0].name", "only letters, digits"},
		{"fw name space", func(m map[string]any) { set(m, "port_forwards[0].name", " web") }, "port_forwards[0].name", "starts or ends with a space"},
		{"fw name dup", func(m map[string]any) {
			f := fw("udp", "9000", "192.168.50.11", 9000)
			f["name"] = "web"
			m["port_forwards"] = append(m["port_forwards"].([]any), f)
		}, "port_forwards[1].name", `"web" is already the name of port_forwards[0]`},
		{"admin listen wan", func(m map[string]any) { set(m, "admin.listen", "203.0.113.1:8080") }, "admin.listen", "is not the LAN address 192.168.50.1"},
		{"admin listen any", func(m map[string]any) { set(m, "admin.listen", "0.0.0.0:8080") }, "admin.listen", "every address, the WAN one too"},
		{"admin listen no port", func(m map[string]any) { set(m, "admin.listen", "192.168.50.1") }, "admin.listen", "not IPv4ADDRESS:PORT"},
		{"admin listen port 0", func(m map[string]any) { set(m, "admin.listen", "192.168.50.1:0") }, "admin.listen", "port 0 out of range"},
		{"admin enabled type", func(m map[string]any) { set(m, "admin.listen", "[::1]:80") }, "admin.listen", "not IPv4ADDRESS:PORT"},
		{"admin cert without key", func(m map[string]any) { set(m, "admin.tls_cert", "/etc/passgate/admin.crt") }, "admin.tls_key", "required with admin.tls_cert"},
		{"admin key without cert", func(m map[string]any) { set(m, "admin.tls_key", "/etc/passgate/admin.key") }, "admin.tls_cert", "required with admin.tls_key"},
		{"admin cert relative", func(m map[string]any) {
			set(m, "admin.tls_cert", "admin.crt")
			set(m, "admin.tls_key", "/etc/passgate/admin.key")
		}, "admin.tls_cert", "not an absolute path"},
		{"admin max connections", func(m map[string]any) { set(m, "admin.max_connections", 5000) }, "admin.max_connections", "5000 out of range 1-4096"},
		{"admin max connections negative", func(m map[string]any) { set(m, "admin.max_connections", -1) }, "admin.max_connections", "out of range"},
		{"control group", func(m map[string]any) { set(m, "control_group", "wheel;rm") }, "control_group", "not a group name"},
		{"fw overlap", func(m map[string]any) {
			m["port_forwards"] = append(m["port_forwards"].([]any), fw("tcp", "8000-8080", "192.168.50.11", 1000))
		}, "port_forwards[1].outside_port", `8000-8080 overlaps port_forwards[0] "web" (tcp 8080)`},
		{"dmz bad", func(m map[string]any) { m["dmz"] = "10.0.0.1" }, "dmz", "not a host on the LAN"},
		{"dmz syntax", func(m map[string]any) { m["dmz"] = "x" }, "dmz", "not an IPv4 address"},
		{"workers", func(m map[string]any) { m["workers"] = -1 }, "workers", "-1 out of range 0-256"},
		{"driver", func(m map[string]any) { m["driver"] = "dpdk" }, "driver", `"dpdk" is not one of auto, afxdp, afpacket`},
		{"control relative", func(m map[string]any) { m["control_socket"] = "pg.sock" }, "control_socket", "not an absolute path"},
		{"control long", func(m map[string]any) { m["control_socket"] = "/" + strings.Repeat("a", 120) }, "control_socket", "shorter than 108"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := base()
			c.edit(m)
			data, _ := json.Marshal(m)
			cfg, err := Parse(data)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			_, err = cfg.Validate()
			es := AsErrors(err)
			if len(es) == 0 {
				t.Fatalf("no error; want %s: %s", c.field, c.msg)
			}
			for _, e := range es {
				if e.Field == c.field && strings.Contains(e.Msg, c.msg) {
					return
				}
			}
			t.Fatalf("want %s: ...%s...; got\n%v", c.field, c.msg, err)
		})
	}
}

func TestSameForwardOtherProtoAllowed(t *testing.T) {
	m := base()
	m["port_forwards"] = append(m["port_forwards"].([]any), map[string]any{"name": "web-udp", "proto": "udp", "outside_port": 8080, "host": "192.168.50.10"})
	data, _ := json.Marshal(m)
	c, _ := Parse(data)
	if _, err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestAllErrorsReported(t *testing.T) {
	c, err := Parse([]byte(`{"lan":{"mtu":1},"wan":{"interface":"wan0","address":"x"},"workers":-3}`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Validate()
	es := AsErrors(err)
	fields := map[string]bool{}
	for _, e := range es {
		fields[e.Field] = true
	}
	for _, f := range []string{"lan.interface", "lan.address", "lan.mtu", "wan.address", "workers"} {
		if !fields[f] {
			t.Errorf("missing error for %s in:\n%v", f, err)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := []struct {
		name, doc, field, msg string
	}{
		{"unknown top", `{"lan":{},"bogus":1}`, "bogus", "unknown field"},
		{"unknown nested", `{"lan":{"interface":"lan0","mtuu":1500}}`, "lan.mtuu", "unknown field"},
		{"unknown timeout", `{"nat":{"timeouts":{"udp":"5m","sctp":"1m"}}}`, "nat.timeouts.sctp", "unknown field"},
		{"unknown admin", `{"admin":{"tls_certificate":"/x"}}`, "admin.tls_certificate", "unknown field"},
		{"type admin", `{"admin":{"max_connections":"64"}}`, "admin.max_connections", "expected a whole number"},
		{"type admin bool", `{"admin":{"metrics_localhost":1}}`, "admin.metrics_localhost", "expected true or false"},
		{"unknown in forward", `{"port_forwards":[{"proto":"tcp"},{"proto":"udp","hots":"x"}]}`, "port_forwards[1].hots", "unknown field"},
		{"type in forward", `{"port_forwards":[{"proto":"tcp"},{"inside_port":"80"}]}`, "port_forwards[1].inside_port", "expected a whole number, got JSON string"},
		{"type nested", `{"lan":{"mtu":"1500"}}`, "lan.mtu", "expected a whole number"},
		{"type object", `{"lan":"lan0"}`, "lan", "expected an object"},
		{"type bool", `{"nat":{"allow_short_timeouts":"yes"}}`, "nat.allow_short_timeouts", "expected true or false"},
		{"unknown port mapping", `{"port_mapping":{"upnp":true,"igd":true}}`, "port_mapping.igd", "unknown field"},
		{"port mapping type", `{"port_mapping":{"pcp":"on"}}`, "port_mapping.pcp", "expected true or false"},
		{"syntax", "{\n \"lan\": {,}\n}", "line 2, column", "invalid JSON"},
		{"truncated", `{"lan":{`, "line 1", "unexpected end"},
		{"trailing", `{} {}`, "line 1, column", "unexpected data after"},
		{"empty", ``, "(file)", "empty"},
		{"not object", `[1]`, "(top level)", "expected an object"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.doc))
			es := AsErrors(err)
			if len(es) != 1 {
				t.Fatalf("want one field error, got %v", err)
			}
			if !strings.HasPrefix(es[0].Field, c.field) || !strings.Contains(es[0].Msg, c.msg) {
				t.Fatalf("got %q: %q; want %s: ...%s...", es[0].Field, es[0].Msg, c.field, c.msg)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "pg.json")
	if err := os.WriteFile(p, []byte(full), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(filepath.Join(dir, "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Fatalf("missing file: %v", err)
	}
	os.WriteFile(p, []byte(`{"x":1}`), 0o600)
	_, err := Load(p)
	if err == nil || !strings.Contains(err.Error(), "pg.json") || AsErrors(err)[0].Field != "x" {
		t.Fatalf("bad file: %v", err)
	}
}

func TestPortSpecJSON(t *testing.T) {
	for in, want := range map[string]string{`8080`: `8080`, `"8080"`: `8080`, `"8000-8010"`: `"8000-8010"`} {
		var p PortSpec
		if err := json.Unmarshal([]byte(in), &p); err != nil {
			t.Fatal(err)
		}
		out, _ := json.Marshal(p)
		if string(out) != want {
			t.Errorf("%s -> %s, want %s", in, out, want)
		}
	}
}

func TestInsidePorts(t *testing.T) {
	for _, tc := range []struct {
		outside PortSpec
		inside  int
		want    string
	}{
		{"8080", 0, ""},
		{"8080", 80, "80"},
		{"65000-65535", 1000, "1000-1535"},
		{"8000-8010", 0, ""},
		{"8000-8000", 9000, "9000"},
		{"junk", 80, "80"},
	} {
		if got := (PortForward{OutsidePort: tc.outside, InsidePort: tc.inside}).InsidePorts(); got != tc.want {
			t.Errorf("outside %s inside %d: %q, want %q", tc.outside, tc.inside, got, tc.want)
		}
	}
}

func TestPassthroughSwitches(t *testing.T) {
	for _, tc := range []struct {
		json             string
		ipsec, pptp, l2t bool
	}{
		{`{}`, true, true, true},
		{`{"pptp":false}`, true, false, true},
		{`{"ipsec":false,"l2tp":false,"pptp":true}`, false, true, false},
	} {
		c, err := Parse([]byte(`{"lan":{"interface":"lan0","address":"192.168.50.1/24"},"wan":{"interface":"wan0","address":"203.0.113.1/24"},"passthrough":` + tc.json + `}`))
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.Validate()
		if err != nil {
			t.Fatal(err)
		}
		p := s.NAT.Helpers
		if p["ipsec"].Enabled(true) != tc.ipsec || p["pptp"].Enabled(true) != tc.pptp || p["l2tp"].Enabled(true) != tc.l2t {
			t.Errorf("%s: %+v", tc.json, p)
		}
	}
	if _, err := Parse([]byte(`{"passthrough":{"sip":true}}`)); err == nil {
		t.Error("unknown passthrough accepted")
	}
}

func TestHelperSwitches(t *testing.T) {
	c, err := Parse([]byte(`{"lan":{"interface":"lan0","address":"192.168.50.1/24"},"wan":{"interface":"wan0","address":"203.0.113.1/24"},"helpers":{"sip":true,"ftp":false}}`))
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Validate()
	if err != nil {
		t.Fatal(err)
	}
	h := s.NAT.Helpers
	if h["sip"] != nat.On || h["ftp"] != nat.Off || len(h) != 2 {
		t.Fatalf("helpers %v", h)
	}
	if _, err := Parse([]byte(`{"helpers":{"gopher":true}}`)); err == nil {
		t.Fatal("unknown helper accepted")
	}
}

// Every helper alg.All lists has its switch in the file, under the name
// the engine knows it by.
func TestEveryHelperHasASwitch(t *testing.T) {
	for _, a := range alg.All() {
		c, err := Parse([]byte(`{"lan":{"interface":"lan0","address":"192.168.50.1/24"},"wan":{"interface":"wan0","address":"203.0.113.1/24"}}`))
		if err != nil {
			t.Fatal(err)
		}
		f, path, ok := c.Switch(a.Name)
		if !ok || path == "" {
			t.Fatalf("no configuration field for helper %q", a.Name)
		}
		on := !a.DefaultOn
		*f = &on
		s, err := c.Validate()
		if err != nil {
			t.Fatal(err)
		}
		if got := a.On(s.NAT); got != on {
			t.Errorf("%s: %v in the file is %v in the engine", path, on, got)
		}
	}
}

// TestTopLevelBooleans: keep_rx_offloads is a strict boolean, false by
// default; a misspelling is refused; true is saved and false left out.
// (offload, on by default, has TestOffloadField.)
func TestTopLevelBooleans(t *testing.T) {
	for _, f := range []struct {
		name, misspelt string
		get            func(*Config) *bool
	}{
		{"keep_rx_offloads", "keep_rx_offload", func(c *Config) *bool { return &c.KeepRxOffloads }},
	} {
		for _, bad := range []string{`"yes"`, `1`} {
			_, err := Parse([]byte(`{"` + f.name + `":` + bad + `}`))
			if err == nil || !strings.Contains(err.Error(), f.name) {
				t.Errorf("%s %s: %v, want an error naming the field", f.name, bad, err)
			}
		}
		if _, err := Parse([]byte(`{"` + f.misspelt + `":true}`)); err == nil {
			t.Errorf("a misspelt %s accepted", f.name)
		}
		c, err := Parse([]byte(`{"` + f.name + `":true}`))
		if err != nil || !*f.get(c) {
			t.Fatalf("%s true: %+v %v", f.name, c, err)
		}
		if b, err := json.Marshal(c); err != nil || !strings.Contains(string(b), `"`+f.name+`":true`) {
			t.Errorf("%s marshalled: %s %v", f.name, b, err)
		}
		*f.get(c) = false
		if b, _ := json.Marshal(c); strings.Contains(string(b), f.name) {
			t.Errorf("%s false marshalled: %s", f.name, b)
		}
	}
}

// TestOffloadField: offload is a strict boolean, on by default (left out
// of the file), and false turns it off and is saved.
func TestOffloadField(t *testing.T) {
	c, err := Parse([]byte(`{"lan":{"interface":"lan0","address":"192.168.50.1/24"},"wan":{"interface":"wan0","address":"203.0.113.1/24"},"offload":false}`))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := c.Validate(); err != nil || s.Offload {
		t.Fatalf("offload false: %v, settings say %v", err, s != nil && s.Offload)
	}
	if b, err := json.Marshal(c); err != nil || !strings.Contains(string(b), `"offload":false`) {
		t.Errorf("offload false marshalled: %s %v", b, err)
	}
	for _, bad := range []string{`"yes"`, `1`} {
		_, err := Parse([]byte(`{"offload":` + bad + `}`))
		if err == nil || !strings.Contains(err.Error(), "offload") {
			t.Errorf("offload %s: %v, want an error naming the field", bad, err)
		}
	}
	if _, err := Parse([]byte(`{"offlaod":true}`)); err == nil {
		t.Error("a misspelt offload accepted")
	}
}

// TestTCPOpeningClosingTimeouts: the opening and closing phases' timeouts
// (RFC 7857 section 2.1) are set apart, or both follow tcp_transitory, as
// in the files from before they were; the engine gets them.
func TestTCPOpeningClosingTimeouts(t *testing.T) {
	base := `{"lan":{"interface":"lan0","address":"192.168.50.1/24"},"wan":{"interface":"wan0","address":"203.0.113.1/24"},"nat":{"timeouts":%s}}`
	for _, tc := range []struct {
		timeouts                string
		opening, closing, trans time.Duration
	}{
		{`{}`, 4 * time.Minute, 4 * time.Minute, 4 * time.Minute},
		{`{"tcp_transitory":"7m"}`, 7 * time.Minute, 7 * time.Minute, 7 * time.Minute},
		{`{"tcp_opening":"5m","tcp_closing":"8m"}`, 5 * time.Minute, 8 * time.Minute, 4 * time.Minute},
		{`{"tcp_transitory":"6m","tcp_opening":"9m"}`, 9 * time.Minute, 6 * time.Minute, 6 * time.Minute},
	} {
		c, err := Parse([]byte(strings.Replace(base, "%s", tc.timeouts, 1)))
		if err != nil {
			t.Fatalf("%s: %v", tc.timeouts, err)
		}
		s, err := c.Validate()
		if err != nil {
			t.Fatalf("%s: %v", tc.timeouts, err)
		}
		got := s.NAT.Timeouts
		if got.TCPOpening != tc.opening || got.TCPClosing != tc.closing || got.TCPTransitory != tc.trans {
			t.Errorf("%s: opening %v, closing %v, transitory %v; want %v, %v, %v",
				tc.timeouts, got.TCPOpening, got.TCPClosing, got.TCPTransitory, tc.opening, tc.closing, tc.trans)
		}
		if _, err := nat.New(s.NAT, 0); err != nil {
			t.Errorf("%s: the engine refuses it: %v", tc.timeouts, err)
		}
	}
}
