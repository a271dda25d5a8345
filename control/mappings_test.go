package control

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

type mapperBackend struct {
	*fakeBackend
	m       []Mapping
	deleted []string
}

func (b *mapperBackend) Mappings() Mappings {
	return Mappings{UPnP: true, MaxLeaseSec: 7200, Mappings: b.m}
}

func (b *mapperBackend) DeleteMapping(proto string, port uint16) error {
	for i, x := range b.m {
		if x.Proto == proto && x.OutsidePort == port {
			b.m = append(b.m[:i], b.m[i+1:]...)
			b.deleted = append(b.deleted, fmt.Sprint(proto, port))
			return nil
		}
	}
	return fmt.Errorf("%s %d: %w", proto, port, ErrNoMapping)
}

func TestMappingsEndpoints(t *testing.T) {
	b := &mapperBackend{fakeBackend: backend(), m: []Mapping{{
		Proto: "tcp", OutsidePort: 40000, Host: netip.MustParseAddr("192.168.50.10"), InsidePort: 5000, By: "upnp",
		Description: "game", Expires: time.Date(2026, 12, 6, 2, 0, 0, 0, time.UTC), LeaseLeftSec: 7000,
	}}}
	srv := httptest.NewServer(NewHandler(b))
	defer srv.Close()
	do := func(method, path string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	code, body := do("GET", "/v1/mappings")
	var m Mappings
	if code != 200 || json.Unmarshal([]byte(body), &m) != nil || len(m.Mappings) != 1 || m.Mappings[0] != b.m[0] || !m.UPnP || m.PCP {
		t.Fatalf("GET: %d %s", code, body)
	}
	for _, want := range []string{`"outside_port": 40000`, `"host": "192.168.50.10"`, `"by": "upnp"`, `"lease_left_s": 7000`, `"description": "game"`} {
		if !strings.Contains(body, want) {
			t.Errorf("GET: %s lacks %s", body, want)
		}
	}
	for path, want := range map[string]int{"/v1/mappings/sctp/1": 400, "/v1/mappings/tcp/0": 400, "/v1/mappings/udp/40000": 404} {
		if code, body := do("DELETE", path); code != want {
			t.Errorf("DELETE %s: %d %s, want %d", path, code, body, want)
		}
	}
	if code, body := do("DELETE", "/v1/mappings/TCP/40000"); code != 200 || !strings.Contains(body, `"mappings": []`) || len(b.deleted) != 1 {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	// A backend without port mapping: all off, an empty list.
	srv2 := httptest.NewServer(NewHandler(backend()))
	defer srv2.Close()
	resp, err := http.Get(srv2.URL + "/v1/mappings")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(raw), `"mappings": []`) || !strings.Contains(string(raw), `"upnp": false`) {
		t.Fatalf("no mapper: %s", raw)
	}
}
