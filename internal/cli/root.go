// Package cli implements crowsnest's commands: flag parsing, wiring and output rendering.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"

	"github.com/spf13/cobra"
)

// ExitError ends the program with a specific exit code (e.g. 2 for "vulnerabilities found").
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit code %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// globals are the flags every command shares.
type globals struct {
	dataDir     string
	cpuProfile  string
	stopProfile func()
	db          string
	logLevel    string
	logFormat   string
	stdin       io.Reader
	stdout      io.Writer
	stderr      io.Writer
}

// Main runs the CLI with args and returns the process exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRoot(g)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if g.stopProfile != nil {
		g.stopProfile()
	}
	if err == nil {
		return 0
	}
	var exit *ExitError
	if errors.As(err, &exit) {
		if exit.Err != nil {
			fmt.Fprintln(stderr, "crowsnest:", exit.Err)
		}
		return exit.Code
	}
	fmt.Fprintln(stderr, "crowsnest:", err)
	return 1
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "crowsnest",
		Short: "Self-hosted container image supply-chain watcher",
		Long: `crowsnest indexes container images into SBOMs, matches them against vulnerability
advisories and keeps the results current. Commands work on one image without any server
(registry://, oci-dir://, archive://, fs:// inputs).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.dataDir, "data-dir", envOr("CROWSNEST_DATA_DIR", defaultDataDir()),
		"directory for the layer cache and the embedded store (env CROWSNEST_DATA_DIR)")
	root.PersistentFlags().StringVar(&g.db, "db", os.Getenv("CROWSNEST_DB"),
		"store: sqlite://PATH or postgres://... (default: SQLite in --data-dir; env CROWSNEST_DB)")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", envOr("CROWSNEST_LOG_LEVEL", "info"), "log level: debug, info, warn, error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", envOr("CROWSNEST_LOG_FORMAT", "text"), "log format: text or json")
	// A CPU profile of a long-running command (watch, serve) for finding where its time goes;
	// hidden because it is a developer's tool.
	root.PersistentFlags().StringVar(&g.cpuProfile, "cpuprofile", "", "write a CPU profile to this file")
	_ = root.PersistentFlags().MarkHidden("cpuprofile")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if g.cpuProfile == "" {
			return nil
		}
		f, err := os.Create(g.cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("cpu profile: %w", err)
		}
		g.stopProfile = func() { pprof.StopCPUProfile(); f.Close() }
		return nil
	}
	root.AddCommand(newVersionCmd(g), newSBOMCmd(g), newCVEsCmd(g), newDBCmd(g), newWatchCmd(g), newImagesCmd(g), newDemoCmd(g), newServeCmd(g), newTokenCmd(g), newLoginCmd(g), newNotifyCmd(g))
	return root
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

// defaultDataDir follows the XDG base directory specification.
func defaultDataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "crowsnest")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "crowsnest")
	}
	return filepath.Join(os.TempDir(), "crowsnest")
}

// logger writes structured logs to stderr; results go to stdout.
func (g *globals) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", g.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(g.logFormat) {
	case "text":
		return slog.New(slog.NewTextHandler(g.stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(g.stderr, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", g.logFormat)
	}
}
