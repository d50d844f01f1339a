// Command crowsnest watches container registries, indexes images into SBOMs and matches them
// against vulnerability advisories.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/crowsnest-dev/crowsnest/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
