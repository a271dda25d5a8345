package conntrack

import (
	"math/rand/v2"
	"testing"
)

// unkeyedHash is the flow index's hash before it had a key: anyone could
// compute where a tuple lands, so a LAN host choosing its ports could pile
// its flows into one region of the index.
func unkeyedHash(k *Tuple) uint64 {
	a := uint64(k.Src[0])<<56 | uint64(k.Src[1])<<48 | uint64(k.Src[2])<<40 | uint64(k.Src[3])<<32 |
		uint64(k.Dst[0])<<24 | uint64(k.Dst[1])<<16 | uint64(k.Dst[2])<<8 | uint64(k.Dst[3])
	b := uint64(k.SrcID)<<32 | uint64(k.DstID)<<16 | uint64(k.Proto)<<8 | uint64(k.Side)
	h := a*0x9e3779b97f4a7c15 ^ b*0xc2b2ae3d27d4eb4f
	h ^= h >> 29
	h *= 0x94d049bb133111eb
	return h ^ h>>32
}

const (
	benchTable = 1 << 16 // flows: the index has 1<<18 slots
	benchFlows = 2000
)

// adversarialTuples are UDP tuples of one LAN host whose ports it chose so
// that the unkeyed hash puts them all within the first 4 of the
// index's 1<<18 slots: one long probe run.
func adversarialTuples(n int) []Tuple {
	r := rand.New(rand.NewPCG(1, 2))
	mask := uint64(4*benchTable - 1)
	out := make([]Tuple, 0, n)
	seen := map[Tuple]bool{}
	for len(out) < n {
		k := Tuple{Src: [4]byte{192, 168, 50, 10}, Dst: [4]byte{203, 0, 113, 10}, SrcID: uint16(r.Uint32()), DstID: uint16(r.Uint32()), Proto: 17}
		if unkeyedHash(&k)&mask < 4 && !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

func randomTuples(n int) []Tuple {
	r := rand.New(rand.NewPCG(3, 4))
	out := make([]Tuple, n)
	for i := range out {
		out[i] = Tuple{Src: [4]byte{192, 168, 50, 10}, Dst: [4]byte{203, 0, 113, 10}, SrcID: uint16(r.Uint32()), DstID: uint16(r.Uint32()), Proto: 17}
	}
	return out
}

func benchLookup(b *testing.B, keys []Tuple) {
	tb := New(benchTable, 0, 0)
	for i, k := range keys {
		reply := Tuple{Src: k.Dst, Dst: [4]byte{203, 0, 113, 1}, SrcID: k.DstID, DstID: uint16(i), Proto: 17, Side: 1}
		if _, err := tb.Insert(k, reply, [4]byte{}, 0, 1<<40); err != nil && err != ErrExists {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, ok := tb.Lookup(keys[i%len(keys)]); !ok {
			b.Fatal("lost a flow")
		}
	}
}

// BenchmarkLookupAdversarial and BenchmarkLookupRandom compare lookups of
// 2000 flows whose ports were chosen against the unkeyed hash with 2000
// random ones; with the keyed hash they cost the same.
func BenchmarkLookupAdversarial(b *testing.B) { benchLookup(b, adversarialTuples(benchFlows)) }
func BenchmarkLookupRandom(b *testing.B)      { benchLookup(b, randomTuples(benchFlows)) }
