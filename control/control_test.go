package control

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"passgate/nat"
)

type fakeBackend struct {
	flows  []Flow
	events []Event
	pppoe  PPPoE
}

func (f *fakeBackend) PPPoE() PPPoE { return f.pppoe }

func (f *fakeBackend) Status() Status {
	var s nat.Stats
	s.Packets = [2]uint64{10, 20}
	s.Drops[nat.DropUnsolicited] = 3
	s.Flows = len(f.flows)
	s.FlowsByProto = map[string]int{"tcp": 1, "udp": 1}
	return Status{
		Version: "test", Workers: 2,
		Interfaces: []Interface{{Role: "lan", Name: "lan0", Address: "192.168.50.1/24", MAC: "02:00:00:00:00:01", MTU: 1500}},
		NAT:        NATStatsFrom(s),
		Sockets:    []SocketStats{{Interface: "lan0", Worker: 0, Kind: "rx", RxPackets: 5}},
	}
}

func (f *fakeBackend) Flows(fn func(Flow) bool) {
	for _, fl := range f.flows {
		if !fn(fl) {
			return
		}
	}
}

func (f *fakeBackend) Events() []Event { return f.events }

func backend() *fakeBackend {
	return &fakeBackend{flows: []Flow{
		{Proto: "tcp", Inside: netip.MustParseAddrPort("192.168.50.10:40000"), Outside: netip.MustParseAddrPort("203.0.113.1:40000"),
			Remote: netip.MustParseAddrPort("203.0.113.10:80"), State: "established", Origin: "lan", PacketsOut: 5},
		{Proto: "udp", Inside: netip.MustParseAddrPort("192.168.50.11:5000"), Outside: netip.MustParseAddrPort("203.0.113.1:5000"),
			Remote: netip.MustParseAddrPort("203.0.113.20:53"), State: "new", Origin: "lan"},
	}}
}

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(NewHandler(backend()))
	defer srv.Close()
	get := func(path string) (int, []byte) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: content type %q", path, ct)
		}
		return resp.StatusCode, body
	}

	code, body := get("/v1/flows")
	var flows []Flow
	if code != 200 || json.Unmarshal(body, &flows) != nil || len(flows) != 2 {
		t.Fatalf("flows: %d %s", code, body)
	}
	if flows[0].Inside != netip.MustParseAddrPort("192.168.50.10:40000") {
		t.Errorf("flow round trip: %+v", flows[0])
	}
	for q, want := range map[string]int{
		"?proto=udp": 1, "?proto=TCP": 1, "?proto=icmp": 0,
		"?host=192.168.50.10": 1, "?host=203.0.113.1": 2, "?host=203.0.113.20": 1, "?host=10.0.0.1&proto=tcp": 0,
	} {
		code, body := get("/v1/flows" + q)
		flows = nil
		if code != 200 || json.Unmarshal(body, &flows) != nil || len(flows) != want {
			t.Errorf("%s: %d %s, want %d flows", q, code, body, want)
		}
		if want == 0 && strings.TrimSpace(string(body)) != "[]" {
			t.Errorf("%s: empty result is %s, want []", q, body)
		}
	}
	for q, want := range map[string]string{
		"?host=nope":  `host: "nope" is not an IP address`,
		"?proto=sctp": `proto: "sctp" is not tcp, udp, icmp, gre or esp`,
	} {
		code, body := get("/v1/flows" + q)
		var e apiError
		if err := json.Unmarshal(body, &e); err != nil || code != 400 || e.Error != want {
			t.Errorf("%s: %d %s, want 400 %q", q, code, body, want)
		}
	}

	code, body = get("/v1/status")
	var st Status
	if code != 200 || json.Unmarshal(body, &st) != nil {
		t.Fatalf("status: %d %s", code, body)
	}
	if st.NAT.Drops["unsolicited_inbound"] != 3 || st.NAT.PacketsIn != 20 || len(st.NAT.Drops) != len(nat.DropReasons())-1 {
		t.Errorf("status nat: %+v", st.NAT)
	}
	if !strings.Contains(string(body), `"packets_lan_to_wan": 10`) {
		t.Errorf("status JSON names: %s", body)
	}
	if code, _ := get("/v1/nothing"); code != 404 {
		t.Errorf("unknown path: %d", code)
	}
	resp, err := http.Post(srv.URL+"/v1/status", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == 200 {
		t.Errorf("POST /v1/status accepted")
	}
}

func shortTemp(t *testing.T) string {
	// t.TempDir can exceed the 108-byte unix socket limit.
	d, err := os.MkdirTemp("", "pgctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func TestServeAndClient(t *testing.T) {
	dir := shortTemp(t)
	sock := filepath.Join(dir, "sub", "pg.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- ServeListener(ctx, l, backend(), nil) }()

	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want 0600", fi.Mode().Perm())
	}
	// A second server refuses to take over a live socket.
	if _, err := Listen(sock); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second Listen: %v", err)
	}

	c := NewClient(sock)
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != "test" || st.Interfaces[0].Name != "lan0" || st.Sockets[0].RxPackets != 5 {
		t.Errorf("status %+v", st)
	}
	flows, err := c.Flows(ctx, FlowFilter{Proto: "tcp"})
	if err != nil || len(flows) != 1 || flows[0].Remote.Port() != 80 {
		t.Fatalf("flows %+v %v", flows, err)
	}
	flows, err = c.Flows(ctx, FlowFilter{Host: netip.MustParseAddr("192.168.50.11")})
	if err != nil || len(flows) != 1 || flows[0].Proto != "udp" {
		t.Fatalf("flows by host %+v %v", flows, err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server did not stop")
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
	if _, err := c.Status(context.Background()); err == nil || !strings.Contains(err.Error(), "is passgate running") {
		t.Errorf("client against a stopped server: %v", err)
	}
}

func TestStaleSocketReplaced(t *testing.T) {
	dir := shortTemp(t)
	sock := filepath.Join(dir, "pg.sock")
	// A socket file with no listener, as a killed run leaves.
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Stat(sock); err != nil {
		t.Fatal("stale socket not there")
	}
	if _, err := NewClient(sock).Status(context.Background()); err == nil || !strings.Contains(err.Error(), "is passgate running") {
		t.Errorf("client on stale socket: %v", err)
	}
	l2, err := Listen(sock)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	l2.Close()

	// A regular file is never removed.
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	if _, err := Listen(file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen over a file: %v", err)
	}
}

func TestClientServerError(t *testing.T) {
	dir := shortTemp(t)
	sock := filepath.Join(dir, "pg.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ServeListener(ctx, l, backend(), nil)
	_, err = NewClient(sock).Flows(ctx, FlowFilter{Proto: "sctp"})
	if err == nil || !strings.Contains(err.Error(), `"sctp" is not tcp`) {
		t.Errorf("server error not passed on: %v", err)
	}
}

func TestEventsEndpoint(t *testing.T) {
	b := backend()
	srv := httptest.NewServer(NewHandler(b))
	defer srv.Close()
	read := func() []Event {
		resp, err := http.Get(srv.URL + "/v1/events")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var evs []Event
		if err := json.NewDecoder(resp.Body).Decode(&evs); err != nil {
			t.Fatal(err)
		}
		return evs
	}
	if evs := read(); evs == nil || len(evs) != 0 {
		t.Fatalf("no events: want [], got %v", evs)
	}
	b.events = []Event{{Kind: "ah_dropped", Host: "192.168.50.10", Message: "AH cannot cross NAT"}}
	if evs := read(); len(evs) != 1 || evs[0].Kind != "ah_dropped" {
		t.Fatalf("events %+v", evs)
	}
}

func TestPPPoEEndpoint(t *testing.T) {
	b := backend()
	srv := httptest.NewServer(NewHandler(b))
	defer srv.Close()
	get := func(path string, v any) string {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || json.Unmarshal(body, v) != nil {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
		return string(body)
	}
	// Off, no sessions: the list is [] and status carries the section.
	var p PPPoE
	if body := get("/v1/pppoe", &p); p.On || p.Sessions == nil || !strings.Contains(body, `"sessions": []`) {
		t.Fatalf("empty relay: %s", body)
	}
	b.pppoe = PPPoE{On: true, Counters: map[string]uint64{"drop_unknown_session": 2}, Sessions: []PPPoESession{
		{ID: 0x1234, Host: "02:00:00:00:00:0a", AC: "02:00:00:00:01:01", AgeSec: 90, IdleSec: 1, FramesToWAN: 40, FramesToLAN: 38},
	}}
	body := get("/v1/pppoe", &p)
	if !p.On || len(p.Sessions) != 1 || p.Sessions[0] != b.pppoe.Sessions[0] || p.Counters["drop_unknown_session"] != 2 {
		t.Fatalf("relay %+v", p)
	}
	for _, k := range []string{`"session_id": 4660`, `"host_mac": "02:00:00:00:00:0a"`, `"ac_mac"`, `"age_s": 90`, `"frames_to_wan": 40`, `"frames_to_lan": 38`} {
		if !strings.Contains(body, k) {
			t.Errorf("pppoe JSON lacks %s: %s", k, body)
		}
	}
	var st Status
	get("/v1/status", &st)
	if st.PPPoE == nil || !st.PPPoE.On || len(st.PPPoE.Sessions) != 1 || st.PPPoE.Sessions[0].ID != 0x1234 {
		t.Fatalf("status pppoe %+v", st.PPPoE)
	}

	// And through the client over the socket.
	sock := filepath.Join(shortTemp(t), "pg.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ServeListener(ctx, l, b, nil)
	cp, err := NewClient(sock).PPPoE(ctx)
	if err != nil || !cp.On || len(cp.Sessions) != 1 || cp.Sessions[0].Host != "02:00:00:00:00:0a" {
		t.Fatalf("client: %+v %v", cp, err)
	}
}
