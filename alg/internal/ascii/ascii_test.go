package ascii

import "testing"

func TestFold(t *testing.T) {
	for _, c := range []struct {
		b, s           string
		prefix, suffix bool
		equal          bool
	}{
		{"PORT 1,2,3,4,5,6", "port ", true, false, false},
		{"port 1,2", "PORT ", true, false, false},
		{"227 Entering", "227 ", true, false, false},
		{"INVITE sip:a SIP/2.0", " sip/2.0", false, true, false},
		{"NetASCII", "netascii", true, true, true},
		{"octet", "OCTET", true, true, true},
		{"POR", "PORT ", false, false, false},
		{"[ORT ", "{ort ", false, false, false}, // '[' and '{' are no letters: never folded
		{"@", "`", false, false, false},
		{"", "", true, true, true},
	} {
		b := []byte(c.b)
		if got := HasPrefixFold(b, c.s); got != c.prefix {
			t.Errorf("HasPrefixFold(%q, %q) = %v", c.b, c.s, got)
		}
		if got := HasSuffixFold(b, c.s); got != c.suffix {
			t.Errorf("HasSuffixFold(%q, %q) = %v", c.b, c.s, got)
		}
		if got := EqualFold(b, c.s); got != c.equal {
			t.Errorf("EqualFold(%q, %q) = %v", c.b, c.s, got)
		}
	}
	if n := testing.AllocsPerRun(100, func() { HasPrefixFold([]byte("SETUP rtsp://x"), "setup ") }); n != 0 {
		t.Errorf("HasPrefixFold allocates %v times", n)
	}
}
