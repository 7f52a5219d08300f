// Package buildinfo holds gidedge's version, set at link time with
// -ldflags "-X github.com/gidedge/gidedge/internal/buildinfo.Version=…".
package buildinfo

import "runtime/debug"

// Version is the release name; "dev" for untagged builds.
var Version = "0.1.0-dev"

// Commit returns the VCS revision the binary was built from, or "unknown".
func Commit() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			if len(s.Value) > 12 {
				return s.Value[:12]
			}
			return s.Value
		}
	}
	return "unknown"
}
