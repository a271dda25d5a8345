package admin

import (
	"errors"
	"log/slog"
	"os"
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
