// Package buildinfo says which build of Beacon is running, from what the
// Go toolchain records in the binary (runtime/debug.ReadBuildInfo): the
// module version, the VCS revision and time, whether the tree had local
// changes, and the Go version. "beacon --version" prints it and the
// relay's metrics carry it as beacon_build_info.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Info is what is known of the running build. Fields the toolchain did
// not record are empty: "go run" and test binaries have no VCS stamp, and
// a build from a clone has the module version "(devel)".
type Info struct {
	Path      string // main module path
	Version   string // module version, e.g. "v1.2.0" or "(devel)"
	Revision  string // VCS commit
	Time      string // VCS commit time, RFC 3339
	Modified  bool   // the working tree had uncommitted changes
	GoVersion string
}

// Read returns the running binary's build information.
func Read() Info {
	info := Info{Version: "(unknown)", GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return info
	}
	info.Path, info.GoVersion = bi.Main.Path, bi.GoVersion
	if bi.Main.Version != "" {
		info.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.time":
			info.Time = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
}

// String is the multi-line text "beacon --version" prints.
func (i Info) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "beacon %s\n", i.Version)
	if i.Revision != "" {
		fmt.Fprintf(&b, "revision %s", i.Revision)
		if i.Time != "" {
			fmt.Fprintf(&b, " (%s)", i.Time)
		}
		if i.Modified {
			b.WriteString(" with local changes")
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "%s %s/%s\n", i.GoVersion, runtime.GOOS, runtime.GOARCH)
	return b.String()
}
