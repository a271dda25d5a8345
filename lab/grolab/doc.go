// Package grolab holds the namespace-lab test (build tag lab, prefix pggro)
// of passgate on interfaces whose receive offloads are on, as a real NIC's
// are by default: GRO on the router's lan0 and wan0 (veth then receives
// through NAPI and merges a TCP stream's segments into frames of up to
// 64 KiB, as a NIC driver's GRO does). passgate runs on AF_PACKET, which
// sees frames after GRO (native XDP on veth runs before it). The test
// checks that passgate turns the offloads off while it runs and back on
// when it stops (after a run killed by SIGKILL, the next run's stop), that
// a bulk TCP transfer from srv1 to lan1 then arrives whole and quickly, and, with keep_rx_offloads, what happens otherwise.
// testdata/bulk.py is the transfer's two ends. The package has no code
// besides its test.
package grolab
