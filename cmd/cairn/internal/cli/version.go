package cli

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// versionInfo is what `cairn version` reports, from the build information
// the Go toolchain embeds in the binary.
type versionInfo struct {
	Version   string `json:"version"`
	Revision  string `json:"revision,omitempty"`
	Time      string `json:"time,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"go"`
	Platform  string `json:"platform"`
}

// readBuildInfo is debug.ReadBuildInfo; tests replace it.
var readBuildInfo = debug.ReadBuildInfo

func buildVersion() versionInfo {
	v := versionInfo{Version: "(unknown)", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := readBuildInfo()
	if !ok {
		return v
	}
	if bi.GoVersion != "" {
		v.GoVersion = bi.GoVersion
	}
	if mv := bi.Main.Version; mv != "" {
		v.Version = mv
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

func runVersion(_ context.Context, env *Env, args []string) error {
	fs := helpFlagSet(env, "version", "version [-o table|json|csv]")
	output := fs.String("o", "table", "output format: table, json or csv")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if !contains(formatsWithCSV, *output) {
		return usagef("-o must be table, json or csv, not %q", *output)
	}
	v := buildVersion()
	switch *output {
	case "json":
		return writeJSON(env.Stdout, v)
	case "csv":
		g := &grid{header: []string{"VERSION", "REVISION", "TIME", "MODIFIED", "GO", "PLATFORM"}}
		g.add(v.Version, v.Revision, v.Time, v.Modified, v.GoVersion, v.Platform)
		return g.print(env.Stdout, "csv")
	}
	rev := dash(v.Revision)
	if v.Modified {
		rev += " (modified)"
	}
	fmt.Fprintf(env.Stdout, "cairn %s\nrevision: %s\nbuilt:    %s\ngo:       %s %s\n", v.Version, rev, dash(v.Time), v.GoVersion, v.Platform)
	return nil
}
