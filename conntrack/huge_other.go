//go:build !linux

package conntrack

// hugeSlice makes a slice of n zero Ts (huge pages are advised on Linux
// only: huge_linux.go).
func hugeSlice[T any](n int) []T { return make([]T, n) }
