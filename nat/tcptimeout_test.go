package nat

import (
	"testing"
	"time"

	"passgate/packet"
	. "passgate/packet/pkttest"
)

// TestTCPOpeningClosingTimeouts: a connection being opened lasts
// TCPOpening idle, one being closed TCPClosing (RFC 7857 section 2.1),
// each TCPTransitory unless set; established and closed keep theirs.
func TestTCPOpeningClosingTimeouts(t *testing.T) {
	for _, tc := range []struct {
		name             string
		mod              func(*Timeouts)
		opening, closing time.Duration
	}{
		{"defaults", func(*Timeouts) {}, 4 * time.Minute, 4 * time.Minute},
		{"apart", func(t *Timeouts) { t.TCPOpening, t.TCPClosing = 5*time.Minute, 7*time.Minute }, 5 * time.Minute, 7 * time.Minute},
		{"transitory only", func(t *Timeouts) { t.TCPTransitory = 6 * time.Minute }, 6 * time.Minute, 6 * time.Minute},
		{"closing apart", func(t *Timeouts) { t.TCPTransitory, t.TCPClosing = 6*time.Minute, 9*time.Minute }, 6 * time.Minute, 9 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, func(c *Config) { tc.mod(&c.Timeouts) })
			c, s, pub := "192.168.50.10:40000", "203.0.113.10:80", "203.0.113.1:40000"
			now := Time(0)
			expect := func(state string, d time.Duration) {
				t.Helper()
				var fi FlowInfo
				e.Flows(now, func(f FlowInfo) bool { fi = f; return false })
				if fi.State != state || fi.ExpiresSec != d.Seconds() {
					t.Fatalf("%s, expires in %v s; want %s, %v s", fi.State, fi.ExpiresSec, state, d.Seconds())
				}
			}
			pass(t, e, now, LAN, TCP(c, s, packet.TCPSyn, 100, 0, nil, nil), WAN)
			expect("syn-sent", tc.opening)
			now += sec
			pass(t, e, now, WAN, TCP(s, pub, packet.TCPSyn|packet.TCPAck, 500, 101, nil, nil), LAN)
			expect("syn-recv", tc.opening)
			pass(t, e, now, LAN, TCP(c, s, packet.TCPAck, 101, 501, nil, nil), WAN)
			expect("established", 2*time.Hour+4*time.Minute)
			now += sec
			pass(t, e, now, LAN, TCP(c, s, packet.TCPFin|packet.TCPAck, 101, 501, nil, nil), WAN)
			expect("fin-wait", tc.closing)
			now += sec
			pass(t, e, now, WAN, TCP(s, pub, packet.TCPFin|packet.TCPAck, 501, 102, nil, nil), LAN)
			expect("closing", tc.closing)
			// Gone once the closing timeout has passed.
			e.Expire(now + Time(tc.closing) - 1)
			if e.Stats().Flows != 1 {
				t.Fatal("expired before the closing timeout")
			}
			e.Expire(now + Time(tc.closing) + Time(time.Second))
			if e.Stats().Flows != 0 {
				t.Fatal("not expired after the closing timeout")
			}
		})
	}
}
