package pppstub

import (
	"bytes"
	"encoding/hex"
	"testing"
)

func TestFCS16KnownValues(t *testing.T) {
	// The FCS of "123456789" is the CRC-16/X.25 check value 0x906E
	// (complemented register), and the register over data plus its own
	// FCS is the "good FCS" constant of RFC 1662.
	data := []byte("123456789")
	fcs := ^fcs16(fcsInit, data)
	if fcs != 0x906e {
		t.Fatalf("FCS(123456789) = %#04x, want 0x906e", fcs)
	}
	withFCS := append(append([]byte{}, data...), byte(fcs), byte(fcs>>8))
	if got := fcs16(fcsInit, withFCS); got != fcsGood {
		t.Fatalf("FCS over data+FCS = %#04x, want %#04x", got, fcsGood)
	}
	if fcs16(fcsInit, nil) != fcsInit {
		t.Fatal("FCS of nothing changed the register")
	}
}

func TestFCS16LCPFrame(t *testing.T) {
	// An LCP Configure-Request as pppd sends it on an async link (ACCM 0,
	// magic 0x01020304): it survives encoding and decoding, and its FCS
	// goes out least significant byte first.
	frame, _ := hex.DecodeString("ff03c021010100" + "0e" + "0206" + "00000000" + "0506" + "01020304")
	enc := hdlcEncode(nil, frame)
	// Decode what we encoded and check the FCS independently.
	var d hdlcDecoder
	var got [][]byte
	d.Feed(enc, func(f []byte) { got = append(got, bytes.Clone(f)) })
	if len(got) != 1 || !bytes.Equal(got[0], frame) {
		t.Fatalf("round trip: got %x, want %x", got, frame)
	}
	// The FCS bytes are the last two before the closing flag (unstuffed).
	unstuffed := unstuff(t, enc)
	fcs := ^fcs16(fcsInit, frame)
	if n := len(unstuffed); unstuffed[n-2] != byte(fcs) || unstuffed[n-1] != byte(fcs>>8) {
		t.Fatalf("FCS not sent least significant byte first: % x", unstuffed[n-2:])
	}
}

// unstuff removes the flags and undoes the escaping, without checking.
func unstuff(t *testing.T, enc []byte) []byte {
	t.Helper()
	if enc[0] != hdlcFlag || enc[len(enc)-1] != hdlcFlag {
		t.Fatalf("frame not enclosed in flags: % x", enc)
	}
	var out []byte
	esc := false
	for _, b := range enc[1 : len(enc)-1] {
		switch {
		case esc:
			out = append(out, b^hdlcXor)
			esc = false
		case b == hdlcEscape:
			esc = true
		default:
			out = append(out, b)
		}
	}
	return out
}

func TestByteStuffing(t *testing.T) {
	frame := []byte{0xff, 0x03, 0x7e, 0x7d, 0x00, 0x1f, 0x20, 0x41, 0x11, 0x13}
	enc := hdlcEncode(nil, frame)
	// The body (between the flags) must contain no flag, no bare control
	// character, and every escape must be followed by an escaped byte.
	body := enc[1 : len(enc)-1]
	for i := 0; i < len(body); i++ {
		b := body[i]
		if b == hdlcFlag {
			t.Fatalf("flag inside body at %d: % x", i, body)
		}
		if b < 0x20 {
			t.Fatalf("unescaped control byte %#02x at %d: % x", b, i, body)
		}
		if b == hdlcEscape {
			i++
			if i == len(body) {
				t.Fatalf("escape at end of body: % x", body)
			}
			if orig := body[i] ^ hdlcXor; !needsEscape(orig) {
				t.Fatalf("needless escape of %#02x at %d", orig, i)
			}
		}
	}
	want := []byte{hdlcFlag, 0xff, 0x7d, 0x23, 0x7d, 0x5e, 0x7d, 0x5d, 0x7d, 0x20, 0x7d, 0x3f, 0x20, 0x41, 0x7d, 0x31, 0x7d, 0x33}
	if !bytes.HasPrefix(enc, want) {
		t.Fatalf("stuffed frame\n got % x\nwant % x ...", enc, want)
	}
}

func TestDecoderChunksAndErrors(t *testing.T) {
	f1 := []byte{0xff, 0x03, 0xc0, 0x21, 0x09, 0x01, 0x00, 0x0c, 1, 2, 3, 4, 'h', 'i'}
	f2 := []byte{0xff, 0x03, 0x00, 0x21, 0x7e, 0x7d, 0x00}
	var stream []byte
	stream = hdlcEncode(stream, f1)
	bad := hdlcEncode(nil, []byte{0xff, 0x03, 0xc0, 0x21, 0x55})
	bad[len(bad)-2] ^= 0x01 // corrupt the FCS (its second byte is never escaped here)
	stream = append(stream, bad...)
	stream = append(stream, hdlcFlag, hdlcFlag, 0x41, hdlcFlag) // empty frames and a runt
	stream = append(stream, 0x41, 0x42, hdlcEscape, hdlcFlag)   // aborted frame
	stream = hdlcEncode(stream, f2)

	for _, chunk := range []int{1, 2, 3, 7, len(stream)} {
		var d hdlcDecoder
		var got [][]byte
		for i := 0; i < len(stream); i += chunk {
			end := min(i+chunk, len(stream))
			d.Feed(stream[i:end], func(f []byte) { got = append(got, bytes.Clone(f)) })
		}
		if len(got) != 2 || !bytes.Equal(got[0], f1) || !bytes.Equal(got[1], f2) {
			t.Fatalf("chunk %d: frames %x, want %x and %x", chunk, got, f1, f2)
		}
		if d.BadFCS != 1 || d.Runts != 1 || d.Aborts != 1 {
			t.Fatalf("chunk %d: bad FCS %d, runts %d, aborts %d; want 1 each", chunk, d.BadFCS, d.Runts, d.Aborts)
		}
	}
}

func TestPPPMessageRoundTrip(t *testing.T) {
	for _, m := range []pppMessage{
		{Code: lcpEchoRequest, ID: 7, Text: "lan1 #7"},
		{Code: lcpEchoReply, ID: 200, Text: "echo srv1-42 #3 by lan2"},
	} {
		got, ok := parsePPPMessage(m.encode())
		if !ok || got != m {
			t.Fatalf("round trip of %+v: got %+v, %v", m, got, ok)
		}
	}
	// PFC/ACFC-compressed or foreign frames are not ours.
	if _, ok := parsePPPMessage([]byte{0xc0, 0x21, 0x09}); ok {
		t.Fatal("accepted a frame without address and control")
	}
	if _, ok := parsePPPMessage([]byte{0xff, 0x03, 0x00, 0x21, 0x45}); ok {
		t.Fatal("accepted an IP frame")
	}
}
