package admin

import (
	"context"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"passgate/control"
)

// What /metrics may cost the gateway, however often it is asked: the
// counters are gathered at most once per metricsCacheTTL (later requests
// get the same figures), and each client address gets at most one answer
// per metricsGap; requests beyond that wait their turn (a sleep costs no
// CPU), and one that would wait longer than metricsMaxWait is refused
// with 429. Prometheus scrapes every 15 s or so.
const (
	metricsCacheTTL = time.Second
	metricsGap      = 100 * time.Millisecond
	metricsMaxWait  = 10 * time.Second
	maxPacedClients = 4096
)

// collector reads the gateway's counters at scrape time: nothing is
// counted twice, and the packet path keeps its own counters.
type collector struct {
	svc *Service

	packets, bytes, drops, icmpSent                  *prometheus.Desc
	flows, flowsActive, tableCap, tableUse, mappings *prometheus.Desc
	created, expired                                 *prometheus.Desc
	vpnSessions, passthrough                         *prometheus.Desc
	espAmbiguous, l2tpFallback, pptpUnparsed         *prometheus.Desc
	dataplane, sockRx, sockDrops, sockTx, sockTxErr  *prometheus.Desc
	uptime, info                                     *prometheus.Desc
}

// NewCollector is a Prometheus collector for the gateway behind svc:
// packets and bytes by direction, drops by reason, flows by protocol, the
// flow table's use, VPN passthrough sessions by protocol and the data
// plane's counters.
func NewCollector(svc *Service) prometheus.Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("passgate_"+name, help, labels, nil)
	}
	return &collector{
		svc:          svc,
		packets:      d("packets_total", "Packets translated, by direction (lan_to_wan, wan_to_lan).", "direction"),
		bytes:        d("bytes_total", "Bytes translated, by direction (lan_to_wan, wan_to_lan).", "direction"),
		drops:        d("drops_total", "Packets dropped by the engine, by reason.", "reason"),
		icmpSent:     d("icmp_sent_total", "ICMP messages the gateway generated (errors, echo replies)."),
		flows:        d("flows", "Live flows, by protocol.", "proto"),
		flowsActive:  d("flow_table_used", "Live flows in the flow table."),
		tableCap:     d("flow_table_size", "Capacity of the flow table (nat.max_flows)."),
		tableUse:     d("flow_table_use_ratio", "Share of the flow table in use, 0 to 1."),
		mappings:     d("mappings", "Live NAT mappings (outside address and port in use)."),
		created:      d("flows_created_total", "Flows created."),
		expired:      d("flows_expired_total", "Flows expired or ended."),
		vpnSessions:  d("vpn_sessions", "Live VPN passthrough flows, by protocol (ipsec, pptp, l2tp).", "proto"),
		passthrough:  d("passthrough_enabled", "Whether a switch of the NAT Passthrough page is on (1) or off (0): VPN passthroughs, helpers, PPPoE relay.", "proto"),
		espAmbiguous: d("esp_ambiguous_total", "Inbound ESP SPIs bound with more than one candidate LAN host."),
		l2tpFallback: d("l2tp_fallback_total", "L2TP tunnels given an ordinary port mapping instead of port 1701."),
		pptpUnparsed: d("pptp_unparsed_total", "PPTP control connections that could not be followed."),
		dataplane:    d("dataplane_total", "Data plane counters of the router loop, by name.", "counter"),
		sockRx:       d("socket_rx_packets_total", "Packets received by the AF_PACKET sockets, by interface.", "interface"),
		sockDrops:    d("socket_rx_drops_total", "Packets the kernel dropped before passgate read them (ring full), by interface.", "interface"),
		sockTx:       d("socket_tx_packets_total", "Packets sent by the AF_PACKET sockets, by interface.", "interface"),
		sockTxErr:    d("socket_tx_errors_total", "Send errors of the AF_PACKET sockets, by interface.", "interface"),
		uptime:       d("uptime_seconds", "Seconds since passgate started."),
		info:         d("build_info", "passgate's version, as a label; always 1.", "version"),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.packets, c.bytes, c.drops, c.icmpSent, c.flows, c.flowsActive, c.tableCap, c.tableUse, c.mappings,
		c.created, c.expired, c.vpnSessions, c.passthrough, c.espAmbiguous, c.l2tpFallback, c.pptpUnparsed,
		c.dataplane, c.sockRx, c.sockDrops, c.sockTx, c.sockTxErr, c.uptime, c.info,
	} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.svc.Status()
	set := c.svc.Settings()
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	n := st.NAT
	counter(c.packets, float64(n.PacketsOut), "lan_to_wan")
	counter(c.packets, float64(n.PacketsIn), "wan_to_lan")
	counter(c.bytes, float64(n.BytesOut), "lan_to_wan")
	counter(c.bytes, float64(n.BytesIn), "wan_to_lan")
	for _, r := range control.DropReasons() {
		counter(c.drops, float64(n.Drops[r]), r)
	}
	counter(c.icmpSent, float64(n.ICMPSent))
	for _, p := range []string{"tcp", "udp", "icmp", "gre", "esp"} {
		gauge(c.flows, float64(n.FlowsByProto[p]), p)
	}
	for p, v := range n.FlowsByProto {
		switch p {
		case "tcp", "udp", "icmp", "gre", "esp":
		default:
			gauge(c.flows, float64(v), p)
		}
	}
	gauge(c.flowsActive, float64(n.Flows))
	gauge(c.tableCap, float64(set.NAT.MaxFlows))
	if set.NAT.MaxFlows > 0 {
		gauge(c.tableUse, float64(n.Flows)/float64(set.NAT.MaxFlows))
	}
	gauge(c.mappings, float64(n.Mappings))
	counter(c.created, float64(n.Created))
	counter(c.expired, float64(n.Expired))
	for _, p := range []string{"ipsec", "pptp", "l2tp"} {
		gauge(c.vpnSessions, float64(n.VPNSessions[p]), p)
	}
	for _, p := range c.svc.Passthroughs() {
		if !p.Available {
			continue
		}
		v := 0.0
		if p.On {
			v = 1
		}
		gauge(c.passthrough, v, p.Name)
	}
	counter(c.espAmbiguous, float64(n.ESPAmbiguous))
	counter(c.l2tpFallback, float64(n.L2TPFallback))
	counter(c.pptpUnparsed, float64(n.PPTPUnparsed))
	keys := make([]string, 0, len(st.Dataplane))
	for k := range st.Dataplane {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		counter(c.dataplane, float64(st.Dataplane[k]), k)
	}
	type sock struct{ rx, drops, tx, txErr uint64 }
	socks := map[string]*sock{}
	for _, s := range st.Sockets {
		v := socks[s.Interface]
		if v == nil {
			v = &sock{}
			socks[s.Interface] = v
		}
		v.rx += s.RxPackets
		v.drops += s.RxDrops
		v.tx += s.TxPackets
		v.txErr += s.TxErrors
	}
	for name, v := range socks {
		counter(c.sockRx, float64(v.rx), name)
		counter(c.sockDrops, float64(v.drops), name)
		counter(c.sockTx, float64(v.tx), name)
		counter(c.sockTxErr, float64(v.txErr), name)
	}
	gauge(c.uptime, st.UptimeSec)
	gauge(c.info, 1, st.Version)
}

// MetricsHandler serves /metrics: the gateway's collector plus the Go
// runtime's and the process's metrics, gathered at most once a second.
func MetricsHandler(svc *Service) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(svc), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	g := &cachedGatherer{g: reg, ttl: metricsCacheTTL, now: time.Now}
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// cachedGatherer gathers at most once per ttl.
type cachedGatherer struct {
	g   prometheus.Gatherer
	ttl time.Duration
	now func() time.Time

	mu   sync.Mutex
	at   time.Time
	mfs  []*dto.MetricFamily
	err  error
	have bool
}

func (c *cachedGatherer) Gather() ([]*dto.MetricFamily, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := c.now(); !c.have || now.Sub(c.at) >= c.ttl || now.Before(c.at) {
		c.mfs, c.err = c.g.Gather()
		c.at, c.have = now, true
	}
	return c.mfs, c.err
}

// pacer spaces the requests of each client address gap apart.
type pacer struct {
	gap, maxWait time.Duration
	now          func() time.Time

	mu   sync.Mutex
	next map[string]time.Time // when the client's next request may be answered
}

func newPacer(gap, maxWait time.Duration) *pacer {
	return &pacer{gap: gap, maxWait: maxWait, now: time.Now, next: map[string]time.Time{}}
}

// wait returns when the client's turn comes; false if it would wait longer
// than maxWait, or ctx ends first.
func (p *pacer) wait(ctx context.Context, key string) bool {
	p.mu.Lock()
	now := p.now()
	if len(p.next) >= maxPacedClients {
		for k, t := range p.next {
			if t.Before(now) {
				delete(p.next, k)
			}
		}
	}
	at := now
	if t, ok := p.next[key]; ok && t.After(now) {
		at = t
	}
	if at.Sub(now) > p.maxWait || len(p.next) >= maxPacedClients {
		p.mu.Unlock()
		return false
	}
	p.next[key] = at.Add(p.gap)
	p.mu.Unlock()
	if d := at.Sub(now); d > 0 {
		tm := time.NewTimer(d)
		defer tm.Stop()
		select {
		case <-tm.C:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// paced answers each client's requests metricsGap apart at most.
func (p *pacer) paced(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !p.wait(r.Context(), clientKey(r)) {
			w.Header().Set("Retry-After", "10")
			http.Error(w, "too many requests for /metrics from this address", http.StatusTooManyRequests)
			return
		}
		h.ServeHTTP(w, r)
	})
}
