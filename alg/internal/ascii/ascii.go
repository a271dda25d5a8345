// Package ascii is the ASCII case-insensitive matching the text-protocol
// helpers (FTP, RTSP, SIP, TFTP) do on packet payloads: byte slices
// against literals, letters folded on both sides, no allocation.
package ascii

// Lower is c with an ASCII capital letter made small.
func Lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// HasPrefixFold says whether b begins with pre, ASCII letters folded.
func HasPrefixFold(b []byte, pre string) bool {
	if len(b) < len(pre) {
		return false
	}
	for i := 0; i < len(pre); i++ {
		if Lower(b[i]) != Lower(pre[i]) {
			return false
		}
	}
	return true
}

// HasSuffixFold says whether b ends with suf, ASCII letters folded.
func HasSuffixFold(b []byte, suf string) bool {
	return len(b) >= len(suf) && HasPrefixFold(b[len(b)-len(suf):], suf)
}

// EqualFold says whether b is s, ASCII letters folded.
func EqualFold(b []byte, s string) bool { return len(b) == len(s) && HasPrefixFold(b, s) }
