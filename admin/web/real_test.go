package web

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"passgate/admin"
	"passgate/config"
	"passgate/control"
)

// stillBackend is a gateway that never changes: enough for admin.Service.
type stillBackend struct{}

func (stillBackend) Status() control.Status {
	return control.Status{Passthrough: map[string]bool{"ipsec": true, "pptp": true, "l2tp": true}, NAT: control.NATStats{Drops: map[string]uint64{}}}
}
func (stillBackend) Flows(fn func(control.Flow) bool) {}
func (stillBackend) Events() []control.Event          { return nil }
func (stillBackend) PPPoE() control.PPPoE             { return control.PPPoE{} }

// TestRealService drives the exported Handler with the real admin.Service
// and admin.Auth: the errors of the real validation land next to the
// fields, applies reach the engine and the file.
func TestRealService(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "passgate.json")
	cfgText := `{
	  "lan":{"interface":"lan0","address":"192.168.50.1/24"},
	  "wan":{"interface":"wan0","address":"203.0.113.1/24"},
	  "port_forwards":[{"name":"web","proto":"tcp","outside_port":8080,"host":"192.168.50.10","inside_port":80}]
	}`
	if err := os.WriteFile(path, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	store := config.NewStore(path)
	cfg, err := store.Load()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var applied []config.Settings
	svc, err := admin.NewService(admin.Options{
		Backend: stillBackend{},
		Reconfigure: func(s *config.Settings) error {
			mu.Lock()
			defer mu.Unlock()
			applied = append(applied, *s)
			return nil
		},
		Store:  store,
		Config: *cfg,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	auth := newAuth(t, "")
	c := newClient(t, Handler(svc, auth))

	if code, _, hd := c.post("/setup", url.Values{"setup_code": {auth.SetupCode()}, "password": {"correct horse"}, "confirm": {"correct horse"}}); code != http.StatusSeeOther || hd.Get("Location") != "/status" {
		t.Fatalf("setup: %d %v", code, hd)
	}
	code, body, _ := c.get("/passthrough")
	if code != http.StatusOK {
		t.Fatalf("passthrough: %d", code)
	}
	mustContain(t, "passthrough", body, `id="pptp" name="pptp" value="on" checked`, "Obsolete · insecure")
	// Every switch the service lists is on the page: the helpers not built
	// yet disabled and saying so, the others live.
	for _, p := range svc.Passthroughs() {
		box := fmt.Sprintf(`id="%s" name="%s" value="on"`, p.Name, p.Name)
		if p.On {
			box += " checked"
		}
		if !p.Available {
			box += " disabled"
			row := body[strings.Index(body, `id="row-`+p.Name+`"`):]
			if !strings.Contains(row[:strings.Index(row, "</tr>")], "not available yet") {
				t.Errorf("%s: not marked as not available yet", p.Name)
			}
		}
		mustContain(t, "passthrough", body, box+` aria-describedby=`)
	}

	// Untick PPTP and apply: the form sends every other box as it was.
	form := url.Values{}
	for _, p := range svc.Passthroughs() {
		if p.Available && p.On && p.Name != "pptp" {
			form.Set(p.Name, "on")
		}
	}
	code, body, _ = c.post("/passthrough", form)
	if code != http.StatusOK {
		t.Fatalf("apply: %d\n%s", code, body)
	}
	mustContain(t, "apply", body, `<ul id="changes"><li>PPTP passthrough: on -&gt; off</li></ul>`)
	mu.Lock()
	if len(applied) != 1 || applied[0].NAT.Helpers["pptp"].Enabled(true) || !applied[0].NAT.Helpers["ipsec"].Enabled(true) {
		t.Errorf("engine got %+v", applied)
	}
	mu.Unlock()
	if p := svc.Passthroughs()[1]; p.Name != "pptp" || p.On {
		t.Errorf("service says %+v", p)
	}
	if b, _ := os.ReadFile(path); !strings.Contains(string(b), `"pptp": false`) {
		t.Errorf("file not saved:\n%s", b)
	}

	// Port forwarding: the real validation's errors are at the fields.
	code, body, _ = c.post("/forwarding/add", url.Values{"name": {"game"}, "proto": {"udp"}, "outside_port": {"70000"}, "host": {"192.168.60.5"}})
	if code != http.StatusUnprocessableEntity {
		t.Fatalf("bad rule: %d\n%s", code, body)
	}
	mustContain(t, "bad rule", body, `id="fw-outside-error"`, `id="fw-host-error"`, `name="outside_port" value="70000"`)
	_, body, _ = c.post("/forwarding/add", url.Values{"name": {"web2"}, "proto": {"tcp"}, "outside_port": {"8000-8090"}, "host": {"192.168.50.11"}})
	// Another rule is named as the page shows it, not by its place in the file.
	mustContain(t, "overlapping rule", body, `id="fw-outside-error">8000-8090 overlaps rule &#34;web&#34; (tcp 8080)<`)
	_, body, _ = c.post("/forwarding/add", url.Values{"name": {"web"}, "proto": {"tcp"}, "outside_port": {"9000"}, "host": {"192.168.50.11"}})
	mustContain(t, "same name", body, `id="fw-name-error">&#34;web&#34; is already the name of another rule; names must be unique<`)
	code, body, _ = c.post("/forwarding/add", url.Values{"name": {"game"}, "proto": {"udp"}, "outside_port": {"27000-27010"}, "host": {"192.168.50.11"}})
	if code != http.StatusOK {
		t.Fatalf("add: %d\n%s", code, body)
	}
	mustContain(t, "add", body, `id="fwd-game"`, "port forward game added")
	// Editing the first rule into an overlap with the second: the error
	// names the second rule, so it is shown above the form, not at a field.
	code, body, _ = c.post("/forwarding/update", url.Values{"original": {"web"}, "name": {"web"}, "proto": {"udp"}, "outside_port": {"27005"}, "host": {"192.168.50.10"}})
	if code != http.StatusUnprocessableEntity {
		t.Fatalf("overlapping edit: %d", code)
	}
	mustContain(t, "overlapping edit", body, `<ul id="errors"><li>port_forwards[1].outside_port: `, `name="original" value="web"`)
	if strings.Contains(body, `id="fw-outside-error"`) {
		t.Error("another rule's error shown at the edited rule's field")
	}
	code, body, _ = c.post("/forwarding/update", url.Values{"original": {"game"}, "name": {"game"}, "proto": {"udp"}, "outside_port": {"27015"}, "host": {"192.168.50.11"}})
	if code != http.StatusOK || svc.Forwards()[1].OutsidePort != "27015" {
		t.Fatalf("update: %d %+v\n%s", code, svc.Forwards(), body)
	}
	code, _, _ = c.post("/forwarding/delete", url.Values{"name": {"game"}})
	if code != http.StatusOK || len(svc.Forwards()) != 1 {
		t.Fatalf("delete: %d %+v", code, svc.Forwards())
	}
	if code, _, _ = c.post("/forwarding/delete", url.Values{"name": {"game"}}); code != http.StatusNotFound {
		t.Errorf("delete again: %d", code)
	}
	// DMZ.
	code, body, _ = c.post("/forwarding/dmz", url.Values{"dmz": {"10.9.9.9"}})
	if code != http.StatusUnprocessableEntity {
		t.Fatalf("bad dmz: %d", code)
	}
	mustContain(t, "bad dmz", body, `id="dmz-host-error"`)
	if code, _, _ = c.post("/forwarding/dmz", url.Values{"dmz": {"192.168.50.12"}}); code != http.StatusOK || svc.DMZ() != "192.168.50.12" {
		t.Fatalf("dmz: %d %q", code, svc.DMZ())
	}
	// Every page renders with the real service.
	for _, p := range []string{"/status", "/connections", "/events", "/forwarding", "/password"} {
		if code, body, _ := c.get(p); code != http.StatusOK {
			t.Errorf("%s: %d\n%s", p, code, body)
		}
	}
	// Without the CSRF token nothing changes.
	form.Set("pptp", "on")
	form.Set("csrf_token", "")
	if code, _, _ = c.post("/passthrough", form); code != http.StatusForbidden {
		t.Errorf("apply without CSRF: %d", code)
	}
	if svc.Passthroughs()[1].On {
		t.Error("PPTP switched on without the CSRF token")
	}
}
