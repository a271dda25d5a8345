package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"passgate/admin"
	"passgate/config"
	"passgate/control"
	"passgate/nat"
)

type fakeBackend struct {
	applied []nat.Config
	pppoe   control.PPPoE
}

func (f *fakeBackend) Status() control.Status        { return control.Status{Version: "fake"} }
func (f *fakeBackend) Flows(func(control.Flow) bool) {}
func (f *fakeBackend) Events() []control.Event       { return nil }
func (f *fakeBackend) PPPoE() control.PPPoE          { return f.pppoe }
func (f *fakeBackend) Reconfigure(s *config.Settings) error {
	f.applied = append(f.applied, s.NAT)
	return nil
}
func (f *fakeBackend) lastApplied() (nat.Config, bool) {
	n := len(f.applied)
	if n == 0 {
		return nat.Config{}, false
	}
	return f.applied[n-1], true
}

// fakeDaemon serves the control socket as passgate run does, over a fake
// gateway.
func fakeDaemon(t *testing.T) (sock, cfgPath string, fb *fakeBackend, auth *admin.Auth) {
	t.Helper()
	dir := t.TempDir()
	cfgPath = filepath.Join(dir, "pg.json")
	os.WriteFile(cfgPath, []byte(`{"lan":{"interface":"lan0","address":"192.168.50.1/24"},"wan":{"interface":"wan0","address":"203.0.113.1/24"},
	  "port_forwards":[{"name":"web","proto":"tcp","outside_port":8080,"host":"192.168.50.10","inside_port":80}]}`), 0o600)
	store := config.NewStore(cfgPath)
	c, err := store.Load()
	if err != nil {
		t.Fatal(err)
	}
	fb = &fakeBackend{}
	log := slog.New(slog.DiscardHandler)
	svc, err := admin.NewService(admin.Options{Backend: fb, Reconfigure: fb.Reconfigure, Store: store, Config: *c, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	auth, err = admin.NewAuth(admin.AuthPath(cfgPath))
	if err != nil {
		t.Fatal(err)
	}
	auth.SetLogger(log)
	sock = filepath.Join(dir, "pg.sock")
	ln, err := control.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- control.ServeHandler(ctx, ln, control.WithAdmin(control.NewHandler(fb), admin.NewLocalAPI(svc, auth)), nil)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("control server did not stop")
		}
	})
	return sock, cfgPath, fb, auth
}

func TestPassthroughCLI(t *testing.T) {
	sock, cfgPath, fb, _ := fakeDaemon(t)
	code, o, e := runCLI("passthrough", "--control", sock)
	if code != 0 || !strings.Contains(o, "pptp   PPTP         on") || !strings.Contains(o, "not available") || !strings.Contains(o, "MS-CHAPv2") {
		t.Fatalf("list: %d\n%s%s", code, o, e)
	}
	code, o, e = runCLI("passthrough", "pptp", "off", "--control", sock)
	if code != 0 || strings.TrimSpace(o) != "PPTP passthrough: on -> off" {
		t.Fatalf("off: %d %q %q", code, o, e)
	}
	if a, _ := fb.lastApplied(); a.Helpers["pptp"] != nat.Off {
		t.Fatalf("applied %+v", a.Helpers)
	}
	if b, _ := os.ReadFile(cfgPath); !strings.Contains(string(b), `"pptp": false`) {
		t.Fatalf("file:\n%s", b)
	}
	code, o, _ = runCLI("passthrough", "--control", sock, "pptp", "off")
	if code != 0 || strings.TrimSpace(o) != "PPTP is off already" {
		t.Fatalf("off again: %d %q", code, o)
	}
	code, o, _ = runCLI("passthrough", "pptp", "--json", "--control", sock)
	var list []admin.Passthrough
	if code != 0 || json.Unmarshal([]byte(o), &list) != nil || len(list) != 1 || list[0].On {
		t.Fatalf("json: %d %s", code, o)
	}
	code, o, _ = runCLI("passthrough", "pptp", "on", "--control", sock)
	if code != 0 || !strings.Contains(o, "PPTP passthrough: off -> on") || !strings.Contains(o, "warning: Obsolete and insecure") {
		t.Fatalf("on: %d %q", code, o)
	}
	if code, _, e := runCLI("passthrough", "pppoe", "on", "--control", sock); code != 1 || !strings.Contains(e, "not available") {
		t.Fatalf("pppoe without a relay: %d %q", code, e)
	}
	if code, o, e := runCLI("passthrough", "sip", "on", "--control", sock); code != 0 || strings.TrimSpace(o) != "SIP helper: off -> on" {
		t.Fatalf("sip: %d %q %q", code, o, e)
	}
	if code, _, e := runCLI("passthrough", "pptp", "maybe", "--control", sock); code != 2 || !strings.Contains(e, "want on or off") {
		t.Fatalf("maybe: %d %q", code, e)
	}
	if code, _, e := runCLI("passthrough", "gopher", "on", "--control", sock); code != 1 || !strings.Contains(e, `no passthrough "gopher"`) {
		t.Fatalf("gopher: %d %q", code, e)
	}
}

func TestForwardAndDMZCLI(t *testing.T) {
	sock, _, fb, _ := fakeDaemon(t)
	code, o, e := runCLI("forward", "list", "--control", sock)
	if code != 0 || !strings.Contains(o, "web   tcp    8080          192.168.50.10  80") || !strings.Contains(o, "1 port forwards") {
		t.Fatalf("list: %d\n%s%s", code, o, e)
	}
	code, o, e = runCLI("forward", "add", "ssh", "tcp", "2222", "192.168.50.11:22", "--control", sock)
	if code != 0 || strings.TrimSpace(o) != "port forward ssh added: tcp 2222 -> 192.168.50.11:22" {
		t.Fatalf("add: %d %q %q", code, o, e)
	}
	if a, _ := fb.lastApplied(); len(a.PortForwards) != 2 || a.PortForwards[1].InsidePort != 22 {
		t.Fatalf("applied %+v", a.PortForwards)
	}
	code, _, e = runCLI("forward", "add", "bad", "tcp", "70000", "192.168.50.11", "--control", sock)
	if code != 1 || strings.TrimSpace(e) != "port_forwards[2].outside_port: 70000 out of range 1-65535" {
		t.Fatalf("bad add: %d %q", code, e)
	}
	code, _, e = runCLI("forward", "add", "over", "tcp", "2200-2300", "192.168.50.12", "--control", sock)
	if code != 1 || !strings.Contains(e, `port_forwards[2].outside_port: 2200-2300 overlaps port_forwards[1] "ssh" (tcp 2222)`) {
		t.Fatalf("overlap: %d %q", code, e)
	}
	if code, _, e := runCLI("forward", "add", "x", "tcp", "1", "192.168.50.11:http", "--control", sock); code != 2 || !strings.Contains(e, "not a number") {
		t.Fatalf("inside port: %d %q", code, e)
	}
	code, o, _ = runCLI("forward", "del", "web", "--json", "--control", sock)
	var cr admin.ChangesResponse
	if code != 0 || json.Unmarshal([]byte(o), &cr) != nil || len(cr.Changes) != 1 {
		t.Fatalf("del: %d %s", code, o)
	}
	if code, _, e := runCLI("forward", "del", "web", "--control", sock); code != 1 || !strings.Contains(e, "not found") {
		t.Fatalf("del again: %d %q", code, e)
	}
	if code, _, e := runCLI("forward", "frob", "--control", sock); code != 2 || !strings.Contains(e, "unknown subcommand") {
		t.Fatalf("frob: %d %q", code, e)
	}
	// A range to another first port lists the whole inside range.
	if code, o, e := runCLI("forward", "add", "games", "tcp", "65000-65535", "192.168.50.12:1000", "--control", sock); code != 0 {
		t.Fatalf("add range: %d %q %q", code, o, e)
	}
	if code, o, e := runCLI("forward", "list", "--control", sock); code != 0 || !regexp.MustCompile(`(?m)^games\s+tcp\s+65000-65535\s+192\.168\.50\.12\s+1000-1535$`).MatchString(o) {
		t.Fatalf("list range: %d\n%s%s", code, o, e)
	}

	code, o, _ = runCLI("dmz", "--control", sock)
	if code != 0 || strings.TrimSpace(o) != "DMZ host: off" {
		t.Fatalf("dmz: %d %q", code, o)
	}
	code, o, _ = runCLI("dmz", "192.168.50.20", "--control", sock)
	if code != 0 || strings.TrimSpace(o) != "DMZ host: off -> 192.168.50.20" {
		t.Fatalf("dmz set: %d %q", code, o)
	}
	if code, _, e := runCLI("dmz", "10.0.0.1", "--control", sock); code != 1 || !strings.Contains(e, "dmz: 10.0.0.1 is not a host on the LAN") {
		t.Fatalf("dmz bad: %d %q", code, e)
	}
	code, o, _ = runCLI("dmz", "off", "--control", sock)
	if code != 0 || strings.TrimSpace(o) != "DMZ host: 192.168.50.20 -> off" {
		t.Fatalf("dmz off: %d %q", code, o)
	}
}

func TestPasswdAndTokenCLI(t *testing.T) {
	sock, cfgPath, _, auth := fakeDaemon(t)
	defer func() { stdin = os.Stdin }()
	stdin = strings.NewReader("short\n")
	if code, _, e := runCLI("passwd", "--control", sock); code != 1 || !strings.Contains(e, "at least 8 characters") {
		t.Fatalf("short: %d %q", code, e)
	}
	stdin = strings.NewReader("a good password\n")
	if code, o, e := runCLI("passwd", "--control", sock); code != 0 || !strings.Contains(o, "admin password set") {
		t.Fatalf("passwd: %d %q %q", code, o, e)
	}
	if auth.SetupNeeded() {
		t.Fatal("password not set in the daemon")
	}
	code, o, e := runCLI("token", "create", "grafana", "--control", sock)
	tok := strings.TrimSpace(o)
	if code != 0 || !strings.HasPrefix(tok, admin.TokenPrefix) || !strings.Contains(e, "shown this once only") {
		t.Fatalf("token create: %d %q %q", code, o, e)
	}
	code, o, _ = runCLI("token", "list", "--json", "--control", sock)
	var list []admin.TokenInfo
	if code != 0 || json.Unmarshal([]byte(o), &list) != nil || len(list) != 1 || list[0].Name != "grafana" {
		t.Fatalf("token list: %d %s", code, o)
	}
	if code != 0 || list[0].Scope != admin.ScopeAdmin {
		t.Fatalf("default scope: %+v", list[0])
	}
	if code, o, e := runCLI("token", "create", "prometheus", "--scope", "read", "--control", sock); code != 0 || !strings.HasPrefix(o, admin.TokenPrefix) || !strings.Contains(e, "scope read") {
		t.Fatalf("token create --scope read: %d %q %q", code, o, e)
	}
	if code, _, e := runCLI("token", "create", "x", "--scope", "root", "--control", sock); code == 0 || !strings.Contains(e, "scope") {
		t.Fatalf("token create --scope root: %d %q", code, e)
	}
	if code, o, _ := runCLI("token", "list", "--control", sock); code != 0 || !strings.Contains(o, "SCOPE") || !regexp.MustCompile(`(?m)^\S+\s+prometheus\s+read\s`).MatchString(o) {
		t.Fatalf("token list shows no scope: %d\n%s", code, o)
	}
	if code, o, _ := runCLI("token", "revoke", list[0].ID, "--control", sock); code != 0 || !strings.Contains(o, "revoked") {
		t.Fatalf("revoke: %d %q", code, o)
	}

	// With passgate stopped, --config writes the state file itself.
	none := filepath.Join(t.TempDir(), "none.sock")
	stdin = strings.NewReader("offline password\n")
	if code, o, e := runCLI("passwd", "--control", none, "--config", cfgPath); code != 0 || !strings.Contains(e, "writing "+admin.AuthPath(cfgPath)) {
		t.Fatalf("offline passwd: %d %q %q", code, o, e)
	}
	if code, _, e := runCLI("passwd", "--control", none); code != 1 || !strings.Contains(e, "is passgate running?") {
		t.Fatalf("no daemon, no config: %d %q", code, e)
	}
	if code, o, _ := runCLI("token", "create", "offline", "--control", none, "--config", cfgPath); code != 0 || !strings.HasPrefix(o, admin.TokenPrefix) {
		t.Fatalf("offline token: %d %q", code, o)
	}
}

func TestAdminWithoutConfigFile(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "pg.sock")
	ln, err := control.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go control.ServeHandler(ctx, ln, control.WithAdmin(control.NewHandler(&fakeBackend{}), nil), nil)
	code, _, e := runCLI("passthrough", "pptp", "off", "--control", sock)
	if code != 1 || !strings.Contains(e, "runs without a configuration file") {
		t.Fatalf("%d %q", code, e)
	}
	if code, o, _ := runCLI("status", "--control", sock, "--json"); code != 0 || !strings.Contains(o, `"version": "fake"`) {
		t.Fatalf("status still works: %d %q", code, o)
	}
}

// A daemon whose configuration file is broken starts with the last good
// copy, loudly. (Here it then stops at the missing interfaces: what
// matters is that the configuration was taken.)
func TestRunStartsFromLastGood(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "pg.json")
	sock := filepath.Join(dir, "pg.sock")
	good := `{"lan":{"interface":"pgnolan0","address":"192.168.50.1/24"},"wan":{"interface":"pgnowan0","address":"203.0.113.1/24"},"control_socket":"` + sock + `"}`
	os.WriteFile(cfg+config.LastGoodSuffix, []byte(good), 0o600)
	os.WriteFile(cfg, []byte(`{"lan":{"interface":"pgnolan0","address":"192.168.50.1/24"},"wan":{"interface":"pgnowan0","address":"203.0.113.1/24"`), 0o600)
	code, _, e := runCLI("run", "--config", cfg)
	if code != 1 || !strings.Contains(e, "CONFIGURATION FILE IS BROKEN") || !strings.Contains(e, "invalid JSON: unexpected end of input") || !strings.Contains(e, "pgnolan0") {
		t.Fatalf("%d\n%s", code, e)
	}
	// Without a last good copy, the file's errors and nothing else.
	os.Remove(cfg + config.LastGoodSuffix)
	code, _, e = runCLI("run", "--config", cfg)
	if code != 1 || !strings.Contains(e, "pg.json: line 1, column") || strings.Contains(e, "pgnolan0") {
		t.Fatalf("no last good: %d\n%s", code, e)
	}
}

func TestConntrackPPPoE(t *testing.T) {
	sock, _, fb, _ := fakeDaemon(t)
	code, o, e := runCLI("conntrack", "--pppoe", "--control", sock)
	if code != 0 || !strings.Contains(o, "PPPoE relay off, 0 sessions, 0 drops") || strings.Contains(o, "SESSION") {
		t.Fatalf("empty: %d\n%s%s", code, o, e)
	}
	fb.pppoe = control.PPPoE{On: true, Counters: map[string]uint64{"drop_unknown_session": 3, "drop_malformed": 0, "sessions": 2}, Sessions: []control.PPPoESession{
		{ID: 7, Host: "02:00:00:00:00:0b", AC: "02:00:00:00:01:01", AgeSec: 5, FramesToWAN: 3, FramesToLAN: 4},
		{ID: 4660, Host: "02:00:00:00:00:0a", AC: "02:00:00:00:01:01", AgeSec: 125, IdleSec: 2, FramesToWAN: 40, FramesToLAN: 38},
	}}
	code, o, e = runCLI("conntrack", "--pppoe", "--control", sock)
	if code != 0 {
		t.Fatalf("list: %d %s", code, e)
	}
	lines := strings.Split(strings.TrimSpace(o), "\n")
	if len(lines) != 4 || lines[0] != "PPPoE relay on, 2 sessions, 3 drops: unknown_session 3" ||
		!strings.HasPrefix(lines[1], "SESSION") || !strings.Contains(lines[1], "HOST MAC") || !strings.Contains(lines[1], "FRAMES TO WAN/LAN") ||
		strings.Join(strings.Fields(lines[2]), " ") != "4660 02:00:00:00:00:0a 02:00:00:00:01:01 2m5s 2s 40/38" ||
		strings.Join(strings.Fields(lines[3]), " ") != "7 02:00:00:00:00:0b 02:00:00:00:01:01 5s 0s 3/4" {
		t.Fatalf("list:\n%s", o)
	}
	code, o, _ = runCLI("conntrack", "--pppoe", "--json", "--control", sock)
	var p control.PPPoE
	if code != 0 || json.Unmarshal([]byte(o), &p) != nil || !p.On || len(p.Sessions) != 2 || p.Sessions[1].FramesToLAN != 38 {
		t.Fatalf("json: %d %s", code, o)
	}
	if code, _, e := runCLI("conntrack", "--pppoe", "--proto", "tcp", "--control", sock); code == 0 || !strings.Contains(e, "--pppoe") {
		t.Fatalf("--pppoe with --proto: %d %s", code, e)
	}
	// passgate status shows the relay too.
	code, o, e = runCLI("status", "--control", sock)
	if code != 0 || !strings.Contains(o, "\nPPPOE RELAY\n  on, 2 sessions, 3 drops") || !strings.Contains(o, "02:00:00:00:00:0a") {
		t.Fatalf("status: %d\n%s%s", code, o, e)
	}
}
