//go:build !(linux && cgo)

package malloctrim

func trim() bool { return false }
