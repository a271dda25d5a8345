package admin

import (
	"errors"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"

	"passgate/config"
)

func TestReloadFromFile(t *testing.T) {
	e := newEnv(t)
	// A hand edit, then SIGHUP.
	os.WriteFile(e.path, []byte(strings.Replace(testConfig, `"port_forwards"`, `"passthrough": {"l2tp": false}, "port_forwards"`, 1)), 0o600)
	ch, err := e.svc.Reload()
	if err != nil || len(ch) != 1 || ch[0] != "L2TP passthrough: on -> off" {
		t.Fatalf("reload: %v %v", ch, err)
	}
	if applied, _ := e.gw.last(); switchOf(applied.NAT.Helpers["l2tp"]) != "off" {
		t.Fatalf("applied %+v", applied.NAT.Helpers)
	}
	good := e.file()
	// A broken edit is refused, field by field; the running one stays.
	os.WriteFile(e.path, []byte(`{"lan":{"interface":"lan0","address":"192.168.50.1/24"},"wan":{"interface":"wan0","address":"203.0.113.1/24"},"dmz":"10.1.1.1"}`), 0o600)
	_, err = e.svc.Reload()
	if es := config.AsErrors(err); len(es) != 1 || es[0].Field != "dmz" {
		t.Fatalf("broken reload: %v", err)
	}
	if e.svc.Passthroughs()[2].On {
		t.Fatal("running configuration lost")
	}
	// Restart-only fields are refused with their names.
	os.WriteFile(e.path, []byte(`{"lan":{"interface":"lan1","address":"192.168.50.1/24"},"wan":{"interface":"wan0","address":"203.0.113.1/24"},"workers":3}`), 0o600)
	_, err = e.svc.Reload()
	es := config.AsErrors(err)
	if len(es) != 2 || es[0].Field != "lan.interface" || es[1].Field != "workers" || !strings.Contains(es[0].Msg, "running: lan0") {
		t.Fatalf("restart-only: %v", err)
	}
	if _, n := e.gw.last(); n != 1 {
		t.Fatal("refused reloads reconfigured the gateway")
	}
	_ = good
}

func TestOverlayKeepsFileForm(t *testing.T) {
	e := newEnv(t)
	c := e.svc.Config()
	// As if passgate run had --workers 2 and --wan-gateway.
	svc, err := NewService(Options{
		Backend: e.gw, Reconfigure: e.gw.Reconfigure, Store: config.NewStore(e.path), Config: c, Logger: slog.New(slog.DiscardHandler),
		Overlay: func(c *config.Config) { c.Workers = 2; c.WAN.Gateway = "203.0.113.254" },
	})
	if err != nil {
		t.Fatal(err)
	}
	if s := svc.Settings(); s.Workers != 2 || s.NAT.WANGateway.String() != "203.0.113.254" {
		t.Fatalf("settings %+v", s)
	}
	if _, err := svc.SetDMZ("192.168.50.30"); err != nil {
		t.Fatal(err)
	}
	f := e.file()
	if strings.Contains(f, "workers") || strings.Contains(f, "gateway") || !strings.Contains(f, `"dmz": "192.168.50.30"`) {
		t.Fatalf("the overrides leaked into the file:\n%s", f)
	}
	if applied, _ := e.gw.last(); applied.NAT.WANGateway.String() != "203.0.113.254" {
		t.Fatalf("the overrides were not applied: %+v", applied)
	}
	// The file's own workers value can change under an override: the
	// running value is the override's, so nothing needs a restart.
	cc := svc.Config()
	cc.Workers = 7
	if _, err := svc.Apply(cc); err != nil {
		t.Fatalf("workers under an override: %v", err)
	}
}

func TestHelperErrors(t *testing.T) {
	e := newEnv(t)
	if _, err := e.svc.SetPassthrough("vpn", true); !errors.Is(err, ErrNotFound) {
		t.Fatalf("vpn: %v", err)
	}
	if _, err := e.svc.DeleteForward("none"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete: %v", err)
	}
	if _, err := e.svc.UpdateForward("none", config.PortForward{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update: %v", err)
	}
	ch, err := e.svc.AddForward(config.PortForward{Name: "range", Proto: "TCP", OutsidePort: "9000-9009", Host: "192.168.50.12", InsidePort: 10000})
	if err != nil || ch[0] != "port forward range added: tcp 9000-9009 -> 192.168.50.12:10000-10009" {
		t.Fatalf("add: %v %v", ch, err)
	}
	if got := e.svc.Flows(e.filter("gre")); len(got) != 0 {
		t.Fatalf("gre flows %+v", got)
	}
	if e.svc.Events()[0].Kind != "passthrough_off" {
		t.Fatal("events")
	}
}

// A port forward of a port a VPN passthrough uses is accepted (a VPN
// server on the LAN) and said: a note after the change line says where
// that port's traffic from the WAN goes and how LAN clients' own
// passthrough fares, as the engine does it (alg/ipsec
// TestIPsecServerBehindForwards); an ordinary forward has none.
func TestForwardOnVPNPortNoted(t *testing.T) {
	e := newEnv(t)
	ch, err := e.svc.AddForward(config.PortForward{Name: "ike", Proto: "udp", OutsidePort: "500", Host: "192.168.50.20"})
	want := []string{
		"port forward ike added: udp 500 -> 192.168.50.20:500",
		"note: port forward ike takes UDP 500, which IPsec passthrough uses: IKE from the WAN to port 500 goes to 192.168.50.20:500 (a VPN server there); " +
			"LAN clients' own IPsec passthrough still works: their servers' IKE answers on UDP 500 still reach them (told apart by IKE SPI, or as the one LAN host talking IKE with that server); " +
			"IKE no LAN client's exchange explains goes to 192.168.50.20; an IPsec server behind NAT talks NAT-T on UDP 4500: forward that to 192.168.50.20 too",
	}
	if err != nil || !slices.Equal(ch, want) {
		t.Fatalf("add udp 500: %v\n%q", err, ch)
	}
	ch, err = e.svc.AddForward(config.PortForward{Name: "natt", Proto: "udp", OutsidePort: "4500", Host: "192.168.50.20"})
	if err != nil || len(ch) != 2 || ch[1] != "note: port forward natt takes UDP 4500, which IPsec passthrough uses: NAT-T (IPsec over UDP) from the WAN to port 4500 goes to 192.168.50.20:4500 (a VPN server there); LAN clients' own IPsec passthrough still works: their NAT-T gets an outside port of its own" {
		t.Fatalf("add udp 4500: %v\n%q", err, ch)
	}
	// PPTP switched off, a range over 1723: said so.
	if _, err := e.svc.SetPassthrough("pptp", false); err != nil {
		t.Fatal(err)
	}
	ch, err = e.svc.AddForward(config.PortForward{Name: "many", Proto: "tcp", OutsidePort: "1700-1800", Host: "192.168.50.21", InsidePort: 2700})
	if err != nil || len(ch) != 2 || ch[1] != "note: port forward many takes TCP 1723, which PPTP passthrough uses: PPTP (control connections; their calls' GRE follows) from the WAN to port 1723 goes to 192.168.50.21:2723 (a VPN server there); PPTP passthrough is off: control connections still reach 192.168.50.21, but no call's GRE crosses: a PPTP server needs PPTP passthrough on too" {
		t.Fatalf("add tcp 1700-1800: %v\n%q", err, ch)
	}
	ch, err = e.svc.AddForward(config.PortForward{Name: "dns", Proto: "udp", OutsidePort: "53", Host: "192.168.50.21"})
	if err != nil || len(ch) != 1 {
		t.Fatalf("add udp 53: %v %q", err, ch)
	}
}
