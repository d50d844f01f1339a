package cli

import (
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/crowsnest-dev/crowsnest/internal/demo"
)

func newDemoCmd(g *globals) *cobra.Command {
	var keepRunning bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole watch workflow locally: registry, Artifactory emulator, advisories, watcher, webhook",
		Long: `Run crowsnest's watch workflow on this machine with no external service and no network:
an in-process registry behind the Artifactory emulator holding a few generated images, a bundled
set of genuine OSV advisories, and the watcher, run as

  crowsnest watch --all-images --registry type=artifactory,registry=...,api=...,` + "\n    include=" + demo.Include +
			",exclude=" + demo.Exclude + ",repository=" + demo.Repository + `,port=...

backfilling the repository; then one more push, indexed from Artifactory's signed webhook. Prints
the results as ` + "`crowsnest images`" + ` and ` + "`crowsnest cves`" + ` show them.

The demo keeps its own SQLite store in <data-dir>/demo (replaced on the next run; --db is not
used) for the other commands.`,
		Example: `  crowsnest demo
  crowsnest demo --keep-running      # then push your own images and watch them being indexed`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			if g.db != "" {
				log.Warn("the demo keeps its own SQLite store under --data-dir; --db is not used")
			}
			return demo.Run(cmd.Context(), demo.Options{Dir: filepath.Join(g.dataDir, "demo"), KeepRunning: keepRunning,
				Out: g.stdout, Log: log})
		},
	}
	cmd.Flags().BoolVar(&keepRunning, "keep-running", false, "keep the registry, the emulator and the watcher up until Ctrl-C")
	return cmd
}
