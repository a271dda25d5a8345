package portmap

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"passgate/nat"
)

var (
	lan1 = netip.MustParseAddr("192.168.50.10")
	lan2 = netip.MustParseAddr("192.168.50.11")
	t0   = time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
)

func engine(t *testing.T) *nat.Engine {
	t.Helper()
	e, err := nat.New(nat.Config{
		LANAddr:  netip.MustParsePrefix("192.168.50.1/24"),
		WANAddr:  netip.MustParsePrefix("203.0.113.1/24"),
		MaxFlows: 256,
		PortForwards: []nat.PortForward{
			{Name: "web", Proto: 6, OutsideLo: 8443, OutsideHi: 8443, Host: lan1, InsidePort: 443},
		},
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func testConfig() Config {
	return Config{LAN: netip.MustParsePrefix("192.168.50.1/24"), MaxPerHost: 3, RouterPorts: []uint16{5351, 8080}}
}

func manager(t *testing.T, e *nat.Engine, path string, now time.Time) (*Manager, *[]Event) {
	t.Helper()
	var evs []Event
	m, err := New(testConfig(), e, path, now, nil, func(ev Event) { evs = append(evs, ev) })
	if err != nil {
		t.Fatal(err)
	}
	return m, &evs
}

func TestPolicy(t *testing.T) {
	e := engine(t)
	m, evs := manager(t, e, "", t0)
	for name, c := range map[string]struct {
		r    Request
		want error
	}{
		"for another host":  {Request{Client: lan2, Host: lan1, Proto: TCP, Inside: 80, Outside: 40000}, ErrNotAuthorized},
		"off the LAN":       {Request{Client: netip.MustParseAddr("10.0.0.5"), Proto: TCP, Inside: 80}, ErrNotLAN},
		"the router":        {Request{Client: netip.MustParseAddr("192.168.50.1"), Proto: TCP, Inside: 80}, ErrNotLAN},
		"low port, exact":   {Request{Client: lan1, Proto: TCP, Inside: 80, Outside: 80, Exact: true}, ErrLowPort},
		"static forward":    {Request{Client: lan2, Proto: TCP, Inside: 443, Outside: 8443, Exact: true}, ErrReserved},
		"router's own port": {Request{Client: lan2, Proto: UDP, Inside: 5351, Outside: 5351, Exact: true}, ErrReserved},
		"IKE's port":        {Request{Client: lan2, Proto: UDP, Inside: 500, Outside: 500, Exact: true}, ErrLowPort},
		"protocol":          {Request{Client: lan2, Proto: 1, Inside: 1}, ErrInvalid},
	} {
		if _, err := m.Map(t0, c.r); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	if len(e.DynamicForwards()) != 0 || len(m.Leases()) != 0 {
		t.Fatal("a refused request left a mapping")
	}
	if len(*evs) != 8 || (*evs)[0].Kind != "mapping_refused" {
		t.Fatalf("events %+v", *evs)
	}

	// Suggestions that are not exact get another port.
	l, err := m.Map(t0, Request{Client: lan2, Proto: TCP, Inside: 443, Outside: 8443, By: "natpmp"})
	if err != nil || l.Outside == 8443 || l.Outside < 1024 {
		t.Fatalf("suggested forwarded port: %+v %v", l, err)
	}
	l, err = m.Map(t0, Request{Client: lan2, Proto: UDP, Inside: 80, By: "pcp"})
	if err != nil || l.Outside < 1024 {
		t.Fatalf("low inside port: %+v %v", l, err)
	}
}

func TestLeaseClampRefreshAndLimit(t *testing.T) {
	e := engine(t)
	m, _ := manager(t, e, "", t0)
	l, err := m.Map(t0, Request{Client: lan1, Proto: UDP, Inside: 6000, Outside: 40000, Lease: 0, By: "upnp", Desc: "game", Exact: true})
	if err != nil {
		t.Fatal(err)
	}
	if l.Outside != 40000 || l.Left(t0) != DefaultMaxLease {
		t.Fatalf("lease 0: %+v, left %v, want the maximum %v", l, l.Left(t0), DefaultMaxLease)
	}
	if got := e.DynamicForwards(); len(got) != 1 || got[0] != (nat.DynamicForward{Proto: UDP, Outside: 40000, Host: lan1, Inside: 6000, By: "upnp", Description: "game"}) {
		t.Fatalf("engine: %+v", got)
	}
	// Refreshing by protocol and inside port keeps the outside port.
	r, err := m.Map(t0.Add(time.Minute), Request{Client: lan1, Proto: UDP, Inside: 6000, Lease: 5 * time.Hour, By: "natpmp"})
	if err != nil || r.Outside != 40000 || r.Left(t0.Add(time.Minute)) != DefaultMaxLease {
		t.Fatalf("refresh: %+v %v", r, err)
	}
	// Another host cannot take the port.
	if _, err := m.Map(t0, Request{Client: lan2, Proto: UDP, Inside: 6000, Outside: 40000, Exact: true}); !errors.Is(err, ErrConflict) {
		t.Fatalf("other host on a mapped port: %v", err)
	}
	for p := uint16(6001); p < 6003; p++ {
		if _, err := m.Map(t0, Request{Client: lan1, Proto: TCP, Inside: p}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Map(t0, Request{Client: lan1, Proto: TCP, Inside: 7000}); !errors.Is(err, ErrHostLimit) {
		t.Fatalf("fourth mapping: %v", err)
	}
	if _, err := m.Map(t0, Request{Client: lan2, Proto: TCP, Inside: 7000}); err != nil {
		t.Fatalf("another host's first: %v", err)
	}
}

func TestDeleteAndExpire(t *testing.T) {
	e := engine(t)
	m, evs := manager(t, e, "", t0)
	a, _ := m.Map(t0, Request{Client: lan1, Proto: TCP, Inside: 5000, Lease: time.Minute})
	b, _ := m.Map(t0, Request{Client: lan1, Proto: UDP, Inside: 5000, Lease: time.Hour})
	if _, err := m.Delete(t0, lan2, "upnp", TCP, a.Outside, true, nil); !errors.Is(err, ErrNotAuthorized) {
		t.Fatalf("delete by another host: %v", err)
	}
	if m.Expire(t0.Add(59*time.Second)) != 0 || m.Expire(t0.Add(time.Minute)) != 1 {
		t.Fatal("expiry at the wrong time")
	}
	if got := e.DynamicForwards(); len(got) != 1 || got[0].Outside != b.Outside || got[0].Proto != UDP {
		t.Fatalf("after expiry the engine holds %+v", got)
	}
	if n, err := m.Delete(t0, lan1, "natpmp", UDP, 5000, false, nil); n != 1 || err != nil {
		t.Fatalf("delete: %d %v", n, err)
	}
	if len(e.DynamicForwards()) != 0 {
		t.Fatal("deleted mapping still in the engine")
	}
	last := (*evs)[len(*evs)-2:]
	if last[0].Kind != "mapping_expired" || last[1].Kind != "mapping_deleted" {
		t.Fatalf("events %+v", last)
	}
}

func TestLeasesSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "passgate.json.leases")
	m, _ := manager(t, engine(t), path, t0)
	short, _ := m.Map(t0, Request{Client: lan1, Proto: TCP, Inside: 5000, Lease: time.Minute, By: "pcp", Nonce: [12]byte{1}})
	long, _ := m.Map(t0, Request{Client: lan2, Proto: UDP, Inside: 6000, Lease: time.Hour, By: "upnp", Desc: "phone"})

	// Restart 30 s later: both come back, in a fresh engine.
	e2 := engine(t)
	m2, _ := manager(t, e2, path, t0.Add(30*time.Second))
	got := m2.Leases()
	if len(got) != 2 || got[0] != short || got[1] != long {
		t.Fatalf("after restart %+v, want %+v %+v", got, short, long)
	}
	if len(e2.DynamicForwards()) != 2 {
		t.Fatal("engine not given the saved mappings")
	}
	if m2.Expire(t0.Add(time.Minute)) != 1 {
		t.Fatal("the short lease did not expire on time after the restart")
	}
	// Restart after the long one's time: nothing comes back.
	m3, evs := manager(t, engine(t), path, t0.Add(2*time.Hour))
	if len(m3.Leases()) != 0 || len(*evs) != 1 || (*evs)[0].Kind != "mapping_expired" {
		t.Fatalf("late restart: %+v, events %+v", m3.Leases(), *evs)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("files beside the leases: %v (temporary files left?)", ents)
	}
}

func TestReconfigureEndsWhatTheNewPolicyForbids(t *testing.T) {
	e := engine(t)
	m, evs := manager(t, e, "", t0)
	low, _ := m.Map(t0, Request{Client: lan1, Proto: TCP, Inside: 5000, Outside: 40000, Exact: true, Lease: time.Hour})
	keep, _ := m.Map(t0, Request{Client: lan1, Proto: UDP, Inside: 5000, Outside: 40001, Exact: true, Lease: time.Hour})
	// A forward configured since on 40000, and leases now at most 10 min.
	if err := e.Reconfigure(nat.Config{
		LANAddr: netip.MustParsePrefix("192.168.50.1/24"), WANAddr: netip.MustParsePrefix("203.0.113.1/24"), MaxFlows: 256,
		PortForwards: []nat.PortForward{{Proto: 6, OutsideLo: 40000, OutsideHi: 40000, Host: lan2, InsidePort: 80}},
	}, 0); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.MaxLease = 10 * time.Minute
	m.Reconfigure(cfg, t0.Add(time.Minute))
	got := m.Leases()
	if len(got) != 1 || got[0].Outside != keep.Outside || got[0].Expires != t0.Add(11*time.Minute) {
		t.Fatalf("leases %+v (dropped %+v?)", got, low)
	}
	if last := (*evs)[len(*evs)-1]; last.Kind != "mapping_deleted" || !strings.Contains(last.Message, "port forward") {
		t.Fatalf("event %+v", last)
	}
	if fs := e.DynamicForwards(); len(fs) != 1 || fs[0].Proto != UDP {
		t.Fatalf("engine %+v", fs)
	}
}

// TestEpochAndCorruptLeasesFile: the epoch's start is saved with the
// leases and comes back with them (RFC 6887 8.5: the epoch restarts only
// when the state is lost); a corrupted file does not stop the start, is
// kept aside as FILE.corrupt, no lease comes from it and the epoch starts
// again. The file is 0600 and every save syncs its directory.
func TestEpochAndCorruptLeasesFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "passgate.json.leases")
	m, _ := manager(t, engine(t), path, t0)
	var synced []string
	m.syncDir = func(d string) error { synced = append(synced, d); return nil }
	if m.EpochStart() != t0 {
		t.Fatalf("epoch start %v, want %v", m.EpochStart(), t0)
	}
	if _, err := m.Map(t0, Request{Client: lan1, Proto: TCP, Inside: 5000, Lease: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if len(synced) != 1 || synced[0] != dir {
		t.Fatalf("directory syncs after a save: %v, want [%s]", synced, dir)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("leases file mode %v %v, want 0600", fi.Mode(), err)
	}
	m2, _ := manager(t, engine(t), path, t0.Add(10*time.Minute))
	if m2.EpochStart() != t0 || len(m2.Leases()) != 1 {
		t.Fatalf("after a restart epoch start %v (want %v), leases %+v", m2.EpochStart(), t0, m2.Leases())
	}

	// Corrupted: cut in the middle of the JSON.
	b, _ := os.ReadFile(path)
	os.WriteFile(path, b[:len(b)/2], 0o600)
	later := t0.Add(20 * time.Minute)
	m3, evs := manager(t, engine(t), path, later)
	if m3.EpochStart() != later || len(m3.Leases()) != 0 {
		t.Fatalf("corrupted file: epoch start %v (want %v), leases %+v", m3.EpochStart(), later, m3.Leases())
	}
	if len(*evs) != 1 || !strings.Contains((*evs)[0].Message, "not loaded") {
		t.Fatalf("events %+v", *evs)
	}
	if kept, err := os.ReadFile(path + ".corrupt"); err != nil || string(kept) != string(b[:len(b)/2]) {
		t.Fatalf("corrupted file not kept aside: %v", err)
	}
}

// TestSavedLeasesChecked: saved entries the policy refuses are dropped
// (a duplicate outside port, a broken port, more than max_per_host for a
// host) and a lease longer than max_lease is cut to it.
func TestSavedLeasesChecked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passgate.json.leases")
	var ls []string
	for i := range 5 {
		ls = append(ls, fmt.Sprintf(`{"proto":6,"host":"192.168.50.10","inside_port":%d,"outside_port":%d,"by":"upnp","expires":"2026-12-07T00:00:00Z"}`, 5000+i, 40000+i))
	}
	ls = append(ls, `{"proto":6,"host":"192.168.50.11","inside_port":22,"outside_port":40000,"by":"upnp","expires":"2026-12-07T00:00:00Z"}`,
		`{"proto":17,"host":"192.168.50.11","inside_port":0,"outside_port":40000,"by":"upnp","expires":"2026-12-07T00:00:00Z"}`)
	os.WriteFile(path, []byte(`{"leases":[`+strings.Join(ls, ",")+`]}`), 0o600)
	e := engine(t)
	m, evs := manager(t, e, path, t0)
	got := m.Leases()
	if len(got) != 3 || len(e.DynamicForwards()) != 3 {
		t.Fatalf("loaded %+v, engine %+v; want lan1's first 3 (max_per_host)", got, e.DynamicForwards())
	}
	for _, l := range got {
		if l.Host != lan1 || l.Expires != t0.Add(DefaultMaxLease) {
			t.Fatalf("lease %+v: want lan1's, cut to %v", l, t0.Add(DefaultMaxLease))
		}
	}
	if len(*evs) != 4 {
		t.Fatalf("events %+v, want 4 refusals", *evs)
	}
}

// TestBroadcastAndNetworkNotHosts: a request from (a spoofed) source
// 192.168.50.255 or 192.168.50.0 would map the Internet to the LAN's
// broadcast (a smurf amplifier) or network address: refused, as is a
// third party naming them when allowed. On a /31 both addresses are hosts.
func TestBroadcastAndNetworkNotHosts(t *testing.T) {
	e := engine(t)
	cfg := testConfig()
	cfg.AllowThirdParty = true
	m, err := New(cfg, e, "", t0, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"192.168.50.255", "192.168.50.0"} {
		bad := netip.MustParseAddr(a)
		if _, err := m.Map(t0, Request{Client: bad, Proto: UDP, Inside: 5000}); !errors.Is(err, ErrNotLAN) {
			t.Errorf("from %s: %v, want ErrNotLAN", a, err)
		}
		if _, err := m.Map(t0, Request{Client: lan1, Host: bad, ThirdParty: true, Proto: UDP, Inside: 5000}); !errors.Is(err, ErrNotLAN) {
			t.Errorf("third party %s: %v, want ErrNotLAN", a, err)
		}
	}
	if len(e.DynamicForwards()) != 0 {
		t.Fatalf("engine %+v", e.DynamicForwards())
	}
	p31 := &Manager{cfg: Config{LAN: netip.MustParsePrefix("10.0.0.0/31")}}
	if !p31.lanHost(netip.MustParseAddr("10.0.0.1")) || p31.lanHost(netip.MustParseAddr("10.0.0.0")) {
		t.Error("/31: the other address is the only host")
	}
}

// TestTotalLimitAndSaveBudget: hosts spoofed across the LAN each within
// max_per_host still stop at max_mappings (ErrTotalLimit), and a flood of
// refreshes writes the leases file at most saveBudget times a second, the
// rest saved by the next Expire (or Flush at stop).
func TestTotalLimitAndSaveBudget(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases")
	e := engine(t)
	cfg := testConfig()
	cfg.MaxMappings = 5
	m, err := New(cfg, e, path, t0, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var writes int
	m.syncDir = func(string) error { writes++; return nil }
	for i := range 6 {
		host := netip.AddrFrom4([4]byte{192, 168, 50, byte(100 + i)})
		_, err := m.Map(t0, Request{Client: host, Proto: UDP, Inside: 5000, Lease: time.Minute})
		if want := error(nil); i == 5 {
			want = ErrTotalLimit
			if !errors.Is(err, want) {
				t.Fatalf("host %d: %v, want %v", i, err, want)
			}
		} else if err != nil {
			t.Fatalf("host %d: %v", i, err)
		}
	}
	if len(e.DynamicForwards()) != 5 {
		t.Fatalf("engine holds %d", len(e.DynamicForwards()))
	}
	host := netip.MustParseAddr("192.168.50.100")
	for i := range 1000 {
		if _, err := m.Map(t0, Request{Client: host, Proto: UDP, Inside: 5000, Lease: time.Duration(i+60) * time.Second}); err != nil {
			t.Fatal(err)
		}
	}
	if writes > saveBudget {
		t.Fatalf("%d writes of the leases file in a second, want at most %d", writes, saveBudget)
	}
	m.Expire(t0.Add(time.Second))
	f, err := load(path)
	if err != nil || len(f.Leases) != 5 {
		t.Fatalf("saved %+v %v", f, err)
	}
	for _, l := range f.Leases {
		if l.Host == host && l.Expires != t0.Add(1059*time.Second) {
			t.Fatalf("the last refresh not saved by Expire: %+v", l)
		}
	}
}

// TestReconfigureLowersTheLimits: leases past a lowered max_per_host or
// max_mappings end, in the engine too.
func TestReconfigureLowersTheLimits(t *testing.T) {
	e := engine(t)
	m, _ := manager(t, e, "", t0)
	for i := range 3 {
		if _, err := m.Map(t0, Request{Client: lan1, Proto: UDP, Inside: uint16(5000 + i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Map(t0, Request{Client: lan2, Proto: UDP, Inside: 6000}); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.MaxPerHost = 2
	m.Reconfigure(cfg, t0)
	if len(m.Leases()) != 3 || len(e.DynamicForwards()) != 3 {
		t.Fatalf("max_per_host 2: leases %+v, engine %d", m.Leases(), len(e.DynamicForwards()))
	}
	cfg.MaxMappings = 1
	m.Reconfigure(cfg, t0)
	if len(m.Leases()) != 1 || len(e.DynamicForwards()) != 1 {
		t.Fatalf("max_mappings 1: leases %+v, engine %d", m.Leases(), len(e.DynamicForwards()))
	}
}

// TestRefusalFloodSummed: a host flooding refused requests gets
// refusalBudget events a second; the rest are summed up in one event
// (at the next request or expiry tick), so the event log keeps its other
// entries.
func TestRefusalFloodSummed(t *testing.T) {
	m, evs := manager(t, engine(t), "", t0)
	for range 1000 {
		m.Map(t0, Request{Client: lan1, Proto: TCP, Inside: 80, Outside: 80, Exact: true})
	}
	if len(*evs) != refusalBudget {
		t.Fatalf("%d events for 1000 refusals in a second, want %d", len(*evs), refusalBudget)
	}
	m.Expire(t0.Add(time.Second))
	last := (*evs)[len(*evs)-1]
	if len(*evs) != refusalBudget+1 || !strings.Contains(last.Message, fmt.Sprint(1000-refusalBudget)) {
		t.Fatalf("summary %+v (%d events)", last, len(*evs))
	}
	m.Map(t0.Add(time.Second), Request{Client: lan1, Proto: TCP, Inside: 80, Outside: 80, Exact: true})
	if len(*evs) != refusalBudget+2 {
		t.Fatalf("the next second's refusal not told: %d events", len(*evs))
	}
}

// TestDescriptionCleaned: a description a LAN program gives (UPnP's
// NewPortMappingDescription) loses its control characters (a terminal
// escape for whoever runs `passgate mappings`, a newline forging a line)
// and bidirectional overrides, and is cut to 256 bytes.
func TestDescriptionCleaned(t *testing.T) {
	m, _ := manager(t, engine(t), "", t0)
	l, err := m.Map(t0, Request{Client: lan1, Proto: TCP, Inside: 5000, By: "upnp", Desc: "game\x1b]2;pwned\x07\r\nUDP\t1\t192.168.50.1\u202egnp.exe\xff\x9b31m"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "game]2;pwnedUDP1192.168.50.1gnp.exe\uFFFD31m"; l.Description != want {
		t.Fatalf("description %q, want %q", l.Description, want)
	}
	l, _ = m.Map(t0, Request{Client: lan1, Proto: UDP, Inside: 5000, By: "upnp", Desc: strings.Repeat("é", 300)})
	if len(l.Description) != 256 || !utf8.ValidString(l.Description) {
		t.Fatalf("long description: %d bytes", len(l.Description))
	}
}

// TestDroppedLeaseRestartsEpoch: when a saved lease cannot come back
// (here its host is no longer on the LAN) that state is lost, so the
// epoch starts again and the clients map again.
func TestDroppedLeaseRestartsEpoch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases")
	os.WriteFile(path, []byte(`{"epoch_start":"2026-12-05T23:00:00Z","leases":[`+
		`{"proto":6,"host":"192.168.50.10","inside_port":22,"outside_port":40000,"by":"pcp","expires":"2026-12-06T01:00:00Z"},`+
		`{"proto":6,"host":"10.9.9.9","inside_port":22,"outside_port":40001,"by":"pcp","expires":"2026-12-06T01:00:00Z"}]}`), 0o600)
	m, _ := manager(t, engine(t), path, t0)
	if m.EpochStart() != t0 || len(m.Leases()) != 1 {
		t.Fatalf("epoch start %v (want %v: a lease was lost), leases %+v", m.EpochStart(), t0, m.Leases())
	}
}

// TestPCPLeaseBoundToItsNonce: a PCP mapping changes or goes only with
// its nonce; UPnP from the same host (no nonce) can neither refresh,
// repoint nor delete it. And PCP does not take over a UPnP mapping (which
// would lock its maker out), while UPnP and NAT-PMP still share theirs.
func TestPCPLeaseBoundToItsNonce(t *testing.T) {
	e := engine(t)
	m, evs := manager(t, e, "", t0)
	nonce := [12]byte{7, 7, 7}
	p, err := m.Map(t0, Request{Client: lan1, Proto: TCP, Inside: 5000, Outside: 40000, Lease: time.Hour, By: "pcp", Nonce: nonce})
	if err != nil || p.Outside != 40000 {
		t.Fatalf("PCP map: %+v %v", p, err)
	}
	later := t0.Add(time.Minute)
	for name, r := range map[string]Request{
		"UPnP refresh":   {Client: lan1, Proto: TCP, Inside: 5000, Outside: 40000, Exact: true, By: "upnp", Desc: "mine now"},
		"UPnP repoint":   {Client: lan1, Proto: TCP, Inside: 6000, Outside: 40000, Exact: true, By: "upnp"},
		"UPnP AddAny":    {Client: lan1, Proto: TCP, Inside: 5000, By: "upnp"},
		"NAT-PMP":        {Client: lan1, Proto: TCP, Inside: 5000, By: "natpmp"},
		"another nonce":  {Client: lan1, Proto: TCP, Inside: 5000, By: "pcp", Nonce: [12]byte{1}},
		"zero nonce PCP": {Client: lan1, Proto: TCP, Inside: 5000, By: "pcp"},
	} {
		if _, err := m.Map(later, r); !errors.Is(err, ErrNonce) {
			t.Errorf("%s: %v, want ErrNonce", name, err)
		}
	}
	if _, err := m.Delete(later, lan1, "upnp", TCP, 40000, true, nil); !errors.Is(err, ErrNonce) {
		t.Errorf("UPnP delete: %v, want ErrNonce", err)
	}
	if _, err := m.Delete(later, lan1, "natpmp", 0, 0, false, nil); !errors.Is(err, ErrNonce) {
		t.Errorf("NAT-PMP delete all: %v, want ErrNonce", err)
	}
	if got := m.Leases(); len(got) != 1 || got[0] != p {
		t.Fatalf("the PCP lease changed: %+v, was %+v", got, p)
	}
	if got := e.DynamicForwards(); len(got) != 1 || got[0] != (nat.DynamicForward{Proto: TCP, Outside: 40000, Host: lan1, Inside: 5000, By: "pcp"}) {
		t.Fatalf("engine: %+v", got)
	}
	var refusals []string
	for _, ev := range *evs {
		if ev.Kind == "mapping_refused" && ev.Host == lan1 {
			refusals = append(refusals, ev.Message)
		}
	}
	if len(refusals) != 8 || !containsSub(refusals, "upnp delete of pcp mapping TCP outside port 40000 to 192.168.50.10:5000 refused: the mapping belongs to a PCP client") ||
		!containsSub(refusals, "upnp TCP 192.168.50.10:5000 (outside 40000) refused: the mapping belongs to a PCP client") {
		t.Errorf("refusal events:\n%s", strings.Join(refusals, "\n"))
	}
	// Its own client, with the nonce, still refreshes and deletes it.
	if r, err := m.Map(later, Request{Client: lan1, Proto: TCP, Inside: 5000, Outside: 40000, By: "pcp", Nonce: nonce, Lease: time.Hour}); err != nil || r.Expires != later.Add(time.Hour) {
		t.Fatalf("PCP refresh with the nonce: %+v %v", r, err)
	}

	// A UPnP mapping: PCP neither takes it over nor deletes it.
	u, err := m.Map(t0, Request{Client: lan1, Proto: UDP, Inside: 6000, Outside: 40001, Exact: true, Lease: time.Hour, By: "upnp", Desc: "game"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Map(later, Request{Client: lan1, Proto: UDP, Inside: 6000, By: "pcp", Nonce: nonce}); !errors.Is(err, ErrOtherProtocol) {
		t.Errorf("PCP over a UPnP mapping: %v, want ErrOtherProtocol", err)
	}
	if _, err := m.Delete(later, lan1, "pcp", UDP, 6000, false, &nonce); !errors.Is(err, ErrOtherProtocol) {
		t.Errorf("PCP delete of a UPnP mapping: %v, want ErrOtherProtocol", err)
	}
	if l, ok := m.Find(UDP, 40001); !ok || l != u {
		t.Fatalf("the UPnP lease changed: %+v, was %+v", l, u)
	}
	// NAT-PMP and UPnP share theirs (a program often asks with both).
	if r, err := m.Map(later, Request{Client: lan1, Proto: UDP, Inside: 6000, By: "natpmp"}); err != nil || r.Outside != 40001 {
		t.Fatalf("NAT-PMP refresh of a UPnP mapping: %+v %v", r, err)
	}
	if n, err := m.Delete(later, lan1, "upnp", UDP, 40001, true, nil); n != 1 || err != nil {
		t.Fatalf("UPnP delete: %d %v", n, err)
	}
	if n, err := m.Delete(later, lan1, "pcp", TCP, 5000, false, &nonce); n != 1 || err != nil {
		t.Fatalf("PCP delete with the nonce: %d %v", n, err)
	}
	if len(e.DynamicForwards()) != 0 {
		t.Fatalf("engine after the deletes: %+v", e.DynamicForwards())
	}
}

// TestFreePortNotAnotherLeaseOfTheHost: a request for any port skips the
// outside ports the host's other leases hold (the engine would let the
// host repoint its own forward, leaving two leases on one port).
func TestFreePortNotAnotherLeaseOfTheHost(t *testing.T) {
	e := engine(t)
	m, _ := manager(t, e, "", t0)
	u, err := m.Map(t0, Request{Client: lan1, Proto: TCP, Inside: 7000, Outside: 40002, Exact: true, By: "upnp"})
	if err != nil {
		t.Fatal(err)
	}
	n, err := m.Map(t0, Request{Client: lan1, Proto: TCP, Inside: 7100, Outside: 40002, By: "natpmp"})
	if err != nil || n.Outside == 40002 {
		t.Fatalf("NAT-PMP suggesting a held port: %+v %v", n, err)
	}
	if l, _ := m.Find(TCP, 40002); l != u || len(m.Leases()) != 2 {
		t.Fatalf("leases %+v", m.Leases())
	}
	for _, d := range e.DynamicForwards() {
		if d.Outside == 40002 && d.Inside != 7000 {
			t.Fatalf("engine repointed 40002: %+v", d)
		}
	}
}

func containsSub(ss []string, sub string) bool {
	return slices.ContainsFunc(ss, func(s string) bool { return strings.Contains(s, sub) })
}

// TestEpochStartsAgainWithANewPublicAddress: the public address is saved
// with the leases. A restart with the same one keeps the epoch; with
// another (renumbered while stopped) the leases stay but the epoch starts
// again (RFC 6887 section 8.5), and so it does when SetPublic changes it
// while running. Reconfigure does not touch it.
func TestEpochStartsAgainWithANewPublicAddress(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passgate.json.leases")
	a, b, c := netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("203.0.113.2"), netip.MustParseAddr("198.51.100.9")
	open := func(pub netip.Addr, now time.Time) *Manager {
		t.Helper()
		cfg := testConfig()
		cfg.Public = pub
		m, err := New(cfg, engine(t), path, now, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := open(a, t0)
	if _, err := m.Map(t0, Request{Client: lan1, Proto: TCP, Inside: 5000, Lease: 2 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	if m = open(a, t0.Add(time.Minute)); m.EpochStart() != t0 {
		t.Fatalf("same address: epoch start %v, want %v", m.EpochStart(), t0)
	}
	t1 := t0.Add(2 * time.Minute)
	if m = open(b, t1); m.EpochStart() != t1 || len(m.Leases()) != 1 || m.Public() != b {
		t.Fatalf("new address: epoch start %v (want %v), leases %+v, public %v", m.EpochStart(), t1, m.Leases(), m.Public())
	}
	if saved, _ := os.ReadFile(path); !strings.Contains(string(saved), `"public": "203.0.113.2"`) {
		t.Fatalf("public address not saved:\n%s", saved)
	}
	cfg := testConfig() // no Public
	m.Reconfigure(cfg, t1)
	if m.Public() != b || m.EpochStart() != t1 {
		t.Fatalf("after Reconfigure: public %v, epoch start %v", m.Public(), m.EpochStart())
	}
	t2 := t0.Add(3 * time.Minute)
	if !m.SetPublic(c, t2) || m.EpochStart() != t2 || m.Public() != c {
		t.Fatalf("SetPublic: epoch start %v (want %v), public %v", m.EpochStart(), t2, m.Public())
	}
	if m.SetPublic(c, t2.Add(time.Second)) || m.EpochStart() != t2 {
		t.Fatalf("SetPublic of the same address changed the epoch: %v", m.EpochStart())
	}
	if m = open(c, t2.Add(time.Minute)); m.EpochStart() != t2 {
		t.Fatalf("after SetPublic and a restart: epoch start %v, want %v", m.EpochStart(), t2)
	}
}

// TestForgedNATPMPKeepsUPnPLease: a NAT-PMP request is a UDP datagram,
// its source as easily forged by any LAN host as not (a Wi-Fi access
// point binds a station to its MAC, not to an address); a UPnP request
// comes over TCP, which a forger off the path cannot open. NAT-PMP from
// a host's address deleted its UPnP mappings (one datagram, inside port
// 0, deletes them all) and cut them to a second, so a neighbour could
// end a game console's mappings as fast as it made them. NAT-PMP may
// still keep a UPnP lease alive (a program asking with both), never
// shorten or delete it; UPnP deletes it as before.
func TestForgedNATPMPKeepsUPnPLease(t *testing.T) {
	e := engine(t)
	m, evs := manager(t, e, "", t0)
	u, err := m.Map(t0, Request{Client: lan1, Proto: UDP, Inside: 3074, Outside: 43074, Exact: true, Lease: time.Hour, By: "upnp", Desc: "console"})
	if err != nil {
		t.Fatal(err)
	}
	later := t0.Add(time.Minute)
	if _, err := m.Delete(later, lan1, "natpmp", UDP, 3074, false, nil); !errors.Is(err, ErrUPnPLease) {
		t.Errorf("NAT-PMP delete of the UPnP mapping: %v, want ErrUPnPLease", err)
	}
	if _, err := m.Delete(later, lan1, "natpmp", UDP, 0, false, nil); !errors.Is(err, ErrUPnPLease) {
		t.Errorf("NAT-PMP delete all: %v, want ErrUPnPLease", err)
	}
	r, err := m.Map(later, Request{Client: lan1, Proto: UDP, Inside: 3074, Lease: time.Second, By: "natpmp"})
	if err != nil || r != u {
		t.Errorf("NAT-PMP for a second over the UPnP mapping: %+v %v, want the lease unchanged %+v", r, err, u)
	}
	if l, ok := m.Find(UDP, 43074); !ok || l != u {
		t.Fatalf("the UPnP lease changed: %+v, was %+v", l, u)
	}
	if got := e.DynamicForwards(); len(got) != 1 || got[0].Outside != 43074 || got[0].Inside != 3074 {
		t.Fatalf("engine: %+v", got)
	}
	// A longer NAT-PMP lease keeps it alive longer.
	much := t0.Add(50 * time.Minute)
	if r, err := m.Map(much, Request{Client: lan1, Proto: UDP, Inside: 3074, Lease: time.Hour, By: "natpmp"}); err != nil || r.Expires != much.Add(time.Hour) || r.By != "upnp" {
		t.Errorf("NAT-PMP refresh: %+v %v", r, err)
	}
	refused := 0
	for _, ev := range *evs {
		if ev.Kind == "mapping_refused" && ev.Host == lan1 && strings.Contains(ev.Message, "only UPnP deletes it") {
			refused++
		}
	}
	if refused != 2 {
		t.Errorf("%d refusals logged, want 2: %+v", refused, *evs)
	}
	if n, err := m.Delete(much, lan1, "upnp", UDP, 43074, true, nil); n != 1 || err != nil {
		t.Fatalf("UPnP delete: %d %v", n, err)
	}
}
