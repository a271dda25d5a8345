package packet

import "testing"

func TestWScale(t *testing.T) {
	for _, c := range []struct {
		opts  []byte
		shift uint8
		ok    bool
	}{
		{[]byte{2, 4, 5, 0xb4, 1, 3, 3, 7}, 7, true}, // MSS, NOP, window scale 7
		{[]byte{1, 1, 1, 1}, 0, false},
		{[]byte{3, 4, 7, 0}, 0, false}, // malformed: window scale of length 4
		{[]byte{1, 1, 1, 3}, 0, false}, // malformed: cut short at the header end
	} {
		opts := append([]byte(nil), c.opts...)
		for len(opts)%4 != 0 {
			opts = append(opts, 0)
		}
		tcp := make([]byte, 20+len(opts))
		tcp[12] = byte((20+len(opts))/4) << 4
		tcp[14], tcp[15] = 0x12, 0x34
		copy(tcp[20:], opts)
		shift, ok := TCP(tcp).WScale()
		if shift != c.shift || ok != c.ok {
			t.Errorf("options % x: shift %d %v, want %d %v", c.opts, shift, ok, c.shift, c.ok)
		}
		if w := TCP(tcp).Window(); w != 0x1234 {
			t.Errorf("window %#x", w)
		}
	}
}
