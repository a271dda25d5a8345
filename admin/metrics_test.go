package admin

import (
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"passgate/control"
)

// statusBackend answers with a fixed status.
type statusBackend struct {
	*fakeGateway
	st control.Status
}

func (b statusBackend) Status() control.Status { return b.st }

// notMetrics are the numbers of the status that are not counters: ids and
// sizes, and the per-session figures of the PPPoE relay (one series per
// session would be unbounded; /metrics has the session count).
var notMetrics = []string{"pid", "interfaces[].index", "interfaces[].mtu", "sockets[].worker", "pppoe.sessions[]."}

// fillStatus sets every number of v (a control.Status) to a value of its
// own, with every drop reason and guard name as keys and one made-up key
// in every other map, and returns the numbers by their JSON path.
func fillStatus(v reflect.Value, path string, next *float64, leaves map[string]float64) {
	num := func(set func(float64)) {
		*next++
		set(*next)
		leaves[path] = *next
	}
	switch v.Kind() {
	case reflect.Int, reflect.Int64:
		num(func(f float64) { v.SetInt(int64(f)) })
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		num(func(f float64) { v.SetUint(uint64(f)) })
	case reflect.Float64:
		num(v.SetFloat)
	case reflect.String:
		*next++
		v.SetString("s" + strconv.Itoa(int(*next)))
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fillStatus(v.Elem(), path, next, leaves)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() || v.Type() == reflect.TypeFor[netip.Addr]() {
			return
		}
		for i := range v.NumField() {
			name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
			if path != "" {
				name = path + "." + name
			}
			fillStatus(v.Field(i), name, next, leaves)
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fillStatus(v.Index(0), path+"[]", next, leaves)
	case reflect.Map:
		keys := []string{"made_up"}
		switch path {
		case "nat.drops":
			keys = control.DropReasons()
		case "nat.guards":
			keys = control.GuardNames()
		}
		v.Set(reflect.MakeMap(v.Type()))
		for _, k := range keys {
			e := reflect.New(v.Type().Elem()).Elem()
			fillStatus(e, path+"["+k+"]", next, leaves)
			v.SetMapIndex(reflect.ValueOf(k), e)
		}
	}
}

// TestMetricsHaveStatus: every counter status shows (GET /v1/status, what
// passgate status prints) is on /metrics, however the status grows. A
// number added to control.Status without a metric fails here.
func TestMetricsHaveStatus(t *testing.T) {
	e := newEnv(t)
	var st control.Status
	leaves := map[string]float64{}
	next := 1000.0
	fillStatus(reflect.ValueOf(&st).Elem(), "", &next, leaves)
	if len(leaves) < 60 {
		t.Fatalf("only %d numbers in the status: %v", len(leaves), leaves)
	}
	e.gw.maps = []control.Mapping{{Proto: "udp", OutsidePort: 40000, Host: netip.MustParseAddr("192.168.50.10"), InsidePort: 5000, By: "pcp"}}
	e.svc.backend = statusBackend{e.gw, st}
	rec := httptest.NewRecorder()
	MetricsHandler(e.svc).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	values := map[string][]string{} // value -> the series that have it
	for line := range strings.Lines(rec.Body.String()) {
		if !strings.HasPrefix(line, "passgate_") {
			continue
		}
		series, val, _ := strings.Cut(strings.TrimSpace(line), " ")
		values[val] = append(values[val], series)
	}
next:
	for path, v := range leaves {
		for _, skip := range notMetrics {
			if strings.HasPrefix(path, skip) {
				continue next
			}
		}
		if _, ok := values[strconv.FormatFloat(v, 'g', -1, 64)]; !ok {
			t.Errorf("status %s (%v) is not on /metrics", path, v)
		}
	}
	for _, want := range []string{
		`passgate_drops_total{reason="mac_limit"} `,
		`passgate_drops_total{reason="lan_source_off_prefix"} `,
		`passgate_drops_total{reason="inbound_rule_limit"} `,
		`passgate_guards_total{guard="early_drop_mac_share"} `,
		`passgate_guards_total{guard="icmp_prohibited_sent"} `,
		`passgate_guards_total{guard="icmp_prohibited_suppressed"} `,
		`passgate_ike_fallback_total `,
		`passgate_shared_port_to_only_host_total `,
		`passgate_lost_frames_total{reason="made_up"} `,
		`passgate_port_mappings{by="pcp",proto="udp"} 1`,
		`passgate_port_mappings{by="upnp",proto="tcp"} 0`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
