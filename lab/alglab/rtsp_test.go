//go:build lab

package alglab

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"passgate/lab"
	"passgate/lab/labtest"
)

var audioKB = regexp.MustCompile(`audio:(\d+)kB`)

// TestRTSP plays a stream from gst-rtsp-server on srv1 with ffmpeg on lan1
// over RTSP with RTP on UDP, through passgate with the rtsp helper
// switched on and address-and-port-dependent filtering: the SETUP's
// client_port is rewritten to expected public ports, the reply mapped
// back, and the media arrives.
func TestRTSP(t *testing.T) {
	l := getLab(t)
	srv, err := filepath.Abs("testdata/rtsp_server.py")
	if err != nil {
		t.Fatal(err)
	}
	const port = 8554
	p := labtest.StartT(t, l, lab.Server1, lab.Python, srv, lab.Srv1, strconv.Itoa(port))
	if err := labtest.WaitListen(l, lab.Server1, "tcp", lab.Srv1, port, 15*time.Second, p); err != nil {
		t.Fatal(err)
	}
	g := startGate(t, l, `"filtering": "address-and-port-dependent"`, `"rtsp": true`)
	url := fmt.Sprintf("rtsp://%s:%d/test", lab.Srv1, port)
	out, err := labtest.Run(l, 30*time.Second, lab.Lan1, "ffmpeg", "-hide_banner", "-nostdin", "-nostats",
		"-rtsp_transport", "udp", "-timeout", "5000000", "-i", url, "-t", "3", "-f", "null", "-")
	if err != nil {
		t.Fatalf("ffmpeg: %v\nserver: %s", err, p.Tail(3000))
	}
	m := audioKB.FindStringSubmatch(out)
	if m == nil || m[1] == "0" {
		t.Fatalf("ffmpeg received no audio:\n%s", out)
	}
	c := g.helperCounters(t, "rtsp")
	if !c.On {
		t.Fatalf("rtsp helper not on: %+v", c)
	}
	if c.Rewrites < 2 || c.Expectations < 2 {
		t.Errorf("rtsp rewrites %d, expectations %d; want at least 2 each (SETUP and its reply; RTP and RTCP): %+v", c.Rewrites, c.Expectations, c)
	}
	if c.Unparsed != 0 {
		t.Errorf("rtsp unparsed = %d: %+v", c.Unparsed, c)
	}
	var control, media bool
	fs := g.flows(t)
	for _, f := range fs {
		if f.Inside.Addr().String() != lab.LAN1 || f.Remote.Addr().String() != lab.Srv1 {
			continue
		}
		if f.Proto == "tcp" && f.Helper == "rtsp" {
			control = true
		}
		if f.Proto == "udp" && f.State == "replied" || f.Proto == "udp" && f.Origin == "expected" {
			media = true
		}
	}
	if !control || !media {
		t.Fatalf("want the RTSP control flow with helper rtsp and a UDP media flow; flows: %+v", fs)
	}
	t.Logf("ffmpeg received %s kB of audio; rtsp counters %v", m[1], c)
}
