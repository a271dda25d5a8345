//go:build lab

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"passgate/lab"
	"passgate/lab/labtest"
)

// pyFill sends one UDP datagram from lan3 to each of N ports of HOST: N
// flows in passgate's table (they live 5 minutes).
const pyFill = `
import socket, sys, time
host, n = sys.argv[1], int(sys.argv[2])
sent = 0
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range((n + 63999) // 64000)]
for j, so in enumerate(socks):
    for p in range(1024, 65024):
        if sent == n:
            break
        so.sendto(b"x", (host, p))
        sent += 1
        if sent % 2000 == 0:
            time.sleep(0.01)
print("sent", sent, flush=True)
`

// pyHammer requests URL over one kept-alive connection, as fast as it
// answers, for SECS seconds; it prints the count and the latencies.
const pyHammer = `
import http.client, ssl, sys, time, urllib.parse
url, secs, token, cafile = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
u = urllib.parse.urlsplit(url)
def conn():
    if u.scheme == "https":
        ctx = ssl.create_default_context(cafile=cafile)
        return http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=10)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=10)
c = conn()
hdr = {"Authorization": "Bearer " + token} if token != "-" else {}
n, bad, lat = 0, 0, []
end = time.time() + secs
while time.time() < end:
    t0 = time.time()
    try:
        c.request("GET", u.path, headers=hdr)
        r = c.getresponse()
        body = r.read()
        if r.status != 200 or b"passgate_flows" not in body:
            bad += 1
    except OSError:
        bad += 1
        c = conn()
    lat.append(time.time() - t0)
    n += 1
lat.sort()
print("requests %d bad %d p50_ms %.2f p99_ms %.2f" % (n, bad, 1000*lat[len(lat)//2], 1000*lat[int(len(lat)*0.99)]), flush=True)
`

// TestLabMetricsHammer (namespaces "pgmx-*"): with 150,000 flows in the
// table, lan2 requests /metrics in a loop for 20 s while lan1's iperf3 to
// srv1 runs; lan1 must keep at least 90% of the rate it had before. (The
// old /metrics walked the whole table under the data plane's lock on every
// request.) PG_OLD_PASSGATE=BINARY runs an older passgate instead, whose
// /metrics is plain HTTP without a token, to measure it the same way.
func TestLabMetricsHammer(t *testing.T) {
	const flows = 150000
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l := labtest.Up(t, "pgmx", 5*time.Minute)
	dir := t.TempDir()
	sock := filepath.Join(dir, "pg.sock")
	for name, text := range map[string]string{"fill.py": pyFill, "hammer.py": pyHammer} {
		os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644)
	}
	bin, env := os.Args[0], []string{"PASSGATE_TEST_MAIN=1"}
	old := os.Getenv("PG_OLD_PASSGATE")
	if old != "" {
		bin, env = old, nil
	}
	if exe, err := os.Executable(); err == nil && old == "" {
		bin = exe
	}
	g := labtest.StartGateT(ctx, t, l, labtest.GateOptions{
		Bin: bin, Dir: dir, Name: "pg", Sock: sock, Env: env, Wait: 30 * time.Second,
		Config: fmt.Sprintf(`{
  "lan": {"interface": "lan0", "address": "192.168.50.1/24"},
  "wan": {"interface": "wan0", "address": "203.0.113.1/24"},
  "nat": {"max_flows": 262144, "max_flows_per_host": 262144},
  "control_socket": %q
}
`, sock),
	})
	defer func() {
		if t.Failed() {
			t.Logf("passgate log:\n%s", g.Proc.Tail(4000))
		}
	}()

	url, token, cacert := "http://192.168.50.1:8080/metrics", "-", "-"
	if old == "" {
		url = "https://192.168.50.1:8080/metrics"
		stdin = strings.NewReader("metrics lab password\n")
		code, o, e := runCLI("passwd", "--control", sock)
		stdin = os.Stdin
		if code != 0 {
			t.Fatalf("passwd: %d %s %s", code, o, e)
		}
		code, o, e = runCLI("token", "create", "hammer", "--control", sock)
		if code != 0 || !strings.HasPrefix(o, "pgt_") {
			t.Fatalf("token: %d %s %s", code, o, e)
		}
		token = strings.TrimSpace(o)
		var st struct {
			Admin struct {
				CertFile string `json:"cert_file"`
			} `json:"admin"`
		}
		code, o, _ = runCLI("status", "--json", "--control", sock)
		if code != 0 || json.Unmarshal([]byte(o), &st) != nil || st.Admin.CertFile == "" {
			t.Fatalf("status: %d %s", code, o)
		}
		cacert = st.Admin.CertFile
	}

	// Fill the table.
	if out, err := labtest.Run(l, 2*time.Minute, lab.Lan3, lab.Python, filepath.Join(dir, "fill.py"), lab.Srv2, strconv.Itoa(flows)); err != nil {
		t.Fatalf("fill: %v %s", err, out)
	}
	var n int
	for end := time.Now().Add(20 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		st, err := g.Status(ctx)
		if err == nil {
			n = st.NAT.Flows
		}
		if n >= flows*9/10 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("only %d flows in the table after sending %d datagrams", n, flows)
		}
	}
	t.Logf("%d flows in the table", n)

	labtest.StartT(t, l, lab.Server1, "iperf3", "-s", "-B", lab.Srv1, "-p", "5201")
	if err := labtest.WaitListen(l, lab.Server1, "tcp", lab.Srv1, 5201, 15*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	iperf := func(secs int) float64 {
		t.Helper()
		out, err := labtest.Run(l, time.Duration(secs+30)*time.Second, lab.Lan1, "iperf3", "-c", lab.Srv1, "-p", "5201", "-t", strconv.Itoa(secs), "--connect-timeout", "5000", "-J")
		if err != nil {
			t.Fatalf("iperf3: %v\n%s", err, out)
		}
		var res struct {
			End struct {
				SumReceived struct {
					BitsPerSecond float64 `json:"bits_per_second"`
				} `json:"sum_received"`
			} `json:"end"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || res.End.SumReceived.BitsPerSecond == 0 {
			t.Fatalf("iperf3 JSON: %v\n%s", err, out)
		}
		return res.End.SumReceived.BitsPerSecond / 1e6
	}
	// One measurement is three rounds, each 5 s of iperf3 alone, then 5 s
	// of iperf3 while lan2 requests /metrics (7 s of requests: 21 s in
	// all): alternating cancels the drift of a machine shared with other
	// work. On two cores the hammer's own TLS client competes with iperf3
	// and passgate for the CPU, so a burst of other work can cost a round
	// more than /metrics does: up to three measurements are taken, and one
	// keeping 90% passes. A /metrics that stalls forwarding (44% kept
	// before the counters replaced the table walk) fails all three.
	measure := func() (before, during float64) {
		var reqs, bad int
		var hs []string
		for round := 0; round < 3; round++ {
			before += iperf(5) / 3
			hammer := labtest.StartWithT(t, l, lab.Lan2, labtest.Options{Combined: true}, lab.Python, filepath.Join(dir, "hammer.py"), url, "7", token, cacert)
			time.Sleep(time.Second)
			during += iperf(5) / 3
			if err := hammer.Wait(30 * time.Second); err != nil {
				t.Fatalf("hammer: %v\n%s", err, hammer.Output())
			}
			h := strings.TrimSpace(hammer.Output())
			var r, b int
			if _, err := fmt.Sscanf(h, "requests %d bad %d", &r, &b); err != nil {
				t.Fatalf("hammer output %q", h)
			}
			reqs, bad, hs = reqs+r, bad+b, append(hs, h)
		}
		t.Logf("iperf3 lan1 -> srv1 with %d flows: %.0f Mbit/s alone, %.0f Mbit/s while lan2 requested /metrics (%d requests in 21 s: %s): %.0f%% kept",
			n, before, during, reqs, strings.Join(hs, "; "), 100*during/before)
		if reqs < 20 || bad != 0 {
			t.Fatalf("the hammer did not get its answers: %s", strings.Join(hs, "; "))
		}
		return before, during
	}
	var before, during float64
	for try := 0; try < 3; try++ {
		if before, during = measure(); during >= 0.9*before {
			return
		}
	}
	t.Fatalf("lan1's iperf3 fell from %.0f to %.0f Mbit/s (%.0f%%) while lan2 requested /metrics, in each of three measurements", before, during, 100*during/before)
}
