// Package version reports the build's version, set at link time.
package version

import "runtime/debug"

// Version is overridden with -ldflags "-X github.com/crowsnest-dev/crowsnest/internal/version.Version=v1.2.3".
var Version = "dev"

// String returns the version and, when the binary was built from a VCS checkout, its revision.
func String() string {
	v := Version
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
	}
	return v
}
