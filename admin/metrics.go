package admin

import (
	"context"
	"net/http"
	"slices"
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
	ikeFallback, sharedToHost, guards, helpers       *prometheus.Desc
	dataplane, sockRx, sockDrops, sockTx, sockTxErr  *prometheus.Desc
	sockFreezes, losses, arp, arpTotal               *prometheus.Desc
	pppoeSessions, pppoe, portMappings               *prometheus.Desc
	uptime, workers, info                            *prometheus.Desc
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
		svc:           svc,
		packets:       d("packets_total", "Packets translated, by direction (lan_to_wan, wan_to_lan).", "direction"),
		bytes:         d("bytes_total", "Bytes translated, by direction (lan_to_wan, wan_to_lan).", "direction"),
		drops:         d("drops_total", "Packets dropped by the engine, by reason.", "reason"),
		icmpSent:      d("icmp_sent_total", "ICMP messages the gateway generated (errors, echo replies)."),
		flows:         d("flows", "Live flows, by protocol.", "proto"),
		flowsActive:   d("flow_table_used", "Live flows in the flow table."),
		tableCap:      d("flow_table_size", "Capacity of the flow table (nat.max_flows)."),
		tableUse:      d("flow_table_use_ratio", "Share of the flow table in use, 0 to 1."),
		mappings:      d("mappings", "Live NAT mappings (outside address and port in use)."),
		created:       d("flows_created_total", "Flows created."),
		expired:       d("flows_expired_total", "Flows expired or ended."),
		vpnSessions:   d("vpn_sessions", "Live VPN passthrough sessions (tunnels: IPsec LAN host and server pairs, PPTP control connections, L2TP tunnels), by protocol (ipsec, pptp, l2tp).", "proto"),
		passthrough:   d("passthrough_enabled", "Whether a switch of the NAT Passthrough page is on (1) or off (0): VPN passthroughs, helpers, PPPoE relay.", "proto"),
		espAmbiguous:  d("esp_ambiguous_total", "Inbound ESP SPIs bound with more than one candidate LAN host."),
		l2tpFallback:  d("l2tp_fallback_total", "L2TP tunnels given an ordinary port mapping instead of port 1701."),
		pptpUnparsed:  d("pptp_unparsed_total", "PPTP control connections that could not be followed."),
		ikeFallback:   d("ike_fallback_total", "Non-IKE traffic from UDP port 500 given its own port instead of 500."),
		sharedToHost:  d("shared_port_to_only_host_total", "Inbound packets on UDP 500 or 1701 that could not be demultiplexed, sent to the one LAN host using the port."),
		guards:        d("guards_total", "What the limits against floods and spoofing did besides dropping: flows ended early because the table's, a host's, a MAC's or a rule's share was full, RSTs passed without ending their flow, ICMP administratively prohibited sent to LAN hosts whose new flow a limit refused and held back by its rate limits.", "guard"),
		helpers:       d("helper_total", "Application-level gateways' counters (flows, rewrites, expectations, expected_flows, unparsed), by helper.", "helper", "counter"),
		dataplane:     d("dataplane_total", "Data plane counters of the router loop, by name.", "counter"),
		sockRx:        d("socket_rx_packets_total", "Packets received by the AF_PACKET sockets, by interface.", "interface"),
		sockDrops:     d("socket_rx_drops_total", "Packets the kernel dropped before passgate read them (ring full), by interface.", "interface"),
		sockTx:        d("socket_tx_packets_total", "Packets sent by the AF_PACKET sockets, by interface.", "interface"),
		sockTxErr:     d("socket_tx_errors_total", "Send errors of the AF_PACKET sockets, by interface.", "interface"),
		sockFreezes:   d("socket_rx_freezes_total", "Receive queue freezes of the packet sockets, by interface.", "interface"),
		losses:        d("lost_frames_total", "Frames lost on the way through, by reason: the driver's (rx_ring_full, rx_no_buffer, rx_invalid, tx_full, tx_bad_frame, tx_down) and the interfaces' own drop counters (IFACE_rx_dropped, IFACE_tx_dropped).", "reason"),
		arp:           d("arp_neighbours", "Neighbour (ARP) table of each side: entries, resolved, incomplete, and packets waiting for a next hop.", "interface", "state"),
		arpTotal:      d("arp_total", "Neighbour (ARP) table counters of each side: requests and replies sent and received, learned, queued, released, drop_REASON.", "interface", "counter"),
		pppoeSessions: d("pppoe_sessions", "PPPoE sessions the relay follows."),
		pppoe:         d("pppoe_total", "PPPoE relay counters, drops as drop_REASON.", "counter"),
		portMappings:  d("port_mappings", "Active port mappings LAN applications made, by the protocol that made them (pcp, natpmp, upnp) and transport.", "by", "proto"),
		uptime:        d("uptime_seconds", "Seconds since passgate started."),
		workers:       d("workers", "Packet worker loops."),
		info:          d("build_info", "passgate's version, as a label; always 1.", "version"),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.packets, c.bytes, c.drops, c.icmpSent, c.flows, c.flowsActive, c.tableCap, c.tableUse, c.mappings,
		c.created, c.expired, c.vpnSessions, c.passthrough, c.espAmbiguous, c.l2tpFallback, c.pptpUnparsed,
		c.ikeFallback, c.sharedToHost, c.guards, c.helpers,
		c.dataplane, c.sockRx, c.sockDrops, c.sockTx, c.sockTxErr, c.sockFreezes, c.losses, c.arp, c.arpTotal,
		c.pppoeSessions, c.pppoe, c.portMappings, c.uptime, c.workers, c.info,
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
	for _, r := range withKeys(control.DropReasons(), n.Drops) {
		counter(c.drops, float64(n.Drops[r]), r)
	}
	counter(c.icmpSent, float64(n.ICMPSent))
	for _, p := range withKeys([]string{"tcp", "udp", "icmp", "gre", "esp"}, n.FlowsByProto) {
		gauge(c.flows, float64(n.FlowsByProto[p]), p)
	}
	gauge(c.flowsActive, float64(n.Flows))
	gauge(c.tableCap, float64(set.NAT.MaxFlows))
	if set.NAT.MaxFlows > 0 {
		gauge(c.tableUse, float64(n.Flows)/float64(set.NAT.MaxFlows))
	}
	gauge(c.mappings, float64(n.Mappings))
	counter(c.created, float64(n.Created))
	counter(c.expired, float64(n.Expired))
	for _, p := range withKeys([]string{"ipsec", "pptp", "l2tp"}, n.VPNSessions) {
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
	counter(c.ikeFallback, float64(n.IKEFallback))
	counter(c.sharedToHost, float64(n.SharedToHost))
	for _, g := range withKeys(control.GuardNames(), n.Guards) {
		counter(c.guards, float64(n.Guards[g]), g)
	}
	for _, name := range withKeys(nil, n.Helpers) {
		h := n.Helpers[name]
		counter(c.helpers, float64(h.Flows), name, "flows")
		counter(c.helpers, float64(h.Rewrites), name, "rewrites")
		counter(c.helpers, float64(h.Expectations), name, "expectations")
		counter(c.helpers, float64(h.Expected), name, "expected_flows")
		counter(c.helpers, float64(h.Unparsed), name, "unparsed")
	}
	for _, k := range withKeys(nil, st.Dataplane) {
		counter(c.dataplane, float64(st.Dataplane[k]), k)
	}
	for _, k := range withKeys(nil, st.Losses) {
		counter(c.losses, float64(st.Losses[k]), k)
	}
	for _, i := range st.Interfaces {
		a := i.ARP
		gauge(c.arp, float64(a.Entries), i.Name, "entries")
		gauge(c.arp, float64(a.Resolved), i.Name, "resolved")
		gauge(c.arp, float64(a.Incomplete), i.Name, "incomplete")
		gauge(c.arp, float64(a.Waiting), i.Name, "waiting")
		for _, v := range []struct {
			name string
			n    uint64
		}{
			{"requests_sent", a.RequestsSent}, {"replies_sent", a.RepliesSent},
			{"requests_received", a.RequestsReceived}, {"replies_received", a.RepliesReceived},
			{"learned", a.Learned}, {"queued", a.Queued}, {"released", a.Released},
			{"drop_queue_full", a.DropQueueFull}, {"drop_pool_empty", a.DropPoolEmpty}, {"drop_too_big", a.DropTooBig},
			{"drop_unresolved", a.DropUnresolved}, {"drop_table_full", a.DropTableFull}, {"drop_bad_next_hop", a.DropBadNextHop},
		} {
			counter(c.arpTotal, float64(v.n), i.Name, v.name)
		}
	}
	pp := st.PPPoE
	if pp == nil {
		p := c.svc.backend.PPPoE()
		pp = &p
	}
	gauge(c.pppoeSessions, float64(len(pp.Sessions)))
	for _, k := range withKeys(nil, pp.Counters) {
		counter(c.pppoe, float64(pp.Counters[k]), k)
	}
	maps := map[[2]string]int{}
	for _, by := range []string{"pcp", "natpmp", "upnp"} {
		for _, proto := range []string{"tcp", "udp"} {
			maps[[2]string{by, proto}] = 0
		}
	}
	for _, m := range c.svc.Mappings().Mappings {
		maps[[2]string{m.By, m.Proto}]++
	}
	for k, v := range maps {
		gauge(c.portMappings, float64(v), k[0], k[1])
	}
	type sock struct{ rx, drops, freezes, tx, txErr uint64 }
	socks := map[string]*sock{}
	for _, s := range st.Sockets {
		v := socks[s.Interface]
		if v == nil {
			v = &sock{}
			socks[s.Interface] = v
		}
		v.rx += s.RxPackets
		v.drops += s.RxDrops
		v.freezes += s.RxFreezes
		v.tx += s.TxPackets
		v.txErr += s.TxErrors
	}
	for name, v := range socks {
		counter(c.sockRx, float64(v.rx), name)
		counter(c.sockDrops, float64(v.drops), name)
		counter(c.sockTx, float64(v.tx), name)
		counter(c.sockTxErr, float64(v.txErr), name)
		counter(c.sockFreezes, float64(v.freezes), name)
	}
	gauge(c.uptime, st.UptimeSec)
	gauge(c.workers, float64(st.Workers))
	gauge(c.info, 1, st.Version)
}

// withKeys is names followed by m's other keys, sorted: every name a
// status counter list has (zero or not), and whatever else the status
// carries, so nothing status shows is missing from /metrics.
func withKeys[V any](names []string, m map[string]V) []string {
	out := slices.Clone(names)
	var more []string
	for k := range m {
		if !slices.Contains(names, k) {
			more = append(more, k)
		}
	}
	slices.Sort(more)
	return append(out, more...)
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
