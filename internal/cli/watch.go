package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/crowsnest-dev/crowsnest/internal/image"
	"github.com/crowsnest-dev/crowsnest/internal/index"
	"github.com/crowsnest-dev/crowsnest/internal/refresh"
	"github.com/crowsnest-dev/crowsnest/internal/registry"
	"github.com/crowsnest-dev/crowsnest/internal/report"
	"github.com/crowsnest-dev/crowsnest/internal/server"
	"github.com/crowsnest-dev/crowsnest/internal/store"
	"github.com/crowsnest-dev/crowsnest/internal/watch"
)

type watchFlags struct {
	registry        string
	repositories    []string
	tags            []string
	allImages       bool
	refreshRegistry bool
	interval        int
	workers         int
	maxAttempts     int
	dryRun          bool
	sbom            bool
	insecure        []string
	webhookAddr     string
	advisoryRefresh time.Duration
	osvMirror       string
	server          string
	listen          string
	notifyInterval  time.Duration
}

func newWatchCmd(g *globals) *cobra.Command {
	var f watchFlags
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Watch a registry: index every new image, keep findings current",
		Long: `Watch a registry (Docker Scout's watch): list its repositories, optionally index every
existing image once (--all-images), re-list periodically, receive push webhooks on a local port,
and index each new or moved tag (every platform) into the store.

--registry is a bare host (an OCI registry) or a key=value list; a value may be double-quoted to
hold commas. For Artifactory:
  type=artifactory,registry=HOST,api=URL,repository=KEY[,include=GLOB][,exclude=GLOB]
    [,port=PORT][,subdomain-mode=true|false][,registry-template={server}-{repo}.jfrog.io]
with CROWSNEST_ARTIFACTORY_API_USER, _API_PASSWORD and _WEBHOOK_SECRET in the environment
(DOCKER_SCOUT_ARTIFACTORY_* accepted). For an OCI registry: type=oci,registry=HOST[,port=PORT]
with CROWSNEST_REGISTRY_USER/_PASSWORD/_TOKEN and CROWSNEST_OCI_WEBHOOK_TOKEN.`,
		Example: `  crowsnest watch --registry "type=artifactory,registry=example.jfrog.io,api=https://example.jfrog.io/artifactory,include=*/frontend*,exclude=*/dta/*,repository=docker-local,port=9000,subdomain-mode=true" --all-images
  crowsnest watch --registry registry.example.com --repository team/app --tag '^v[0-9]'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.runWatch(cmd.Context(), &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.registry, "registry", "", "the registry to watch: a host, or type=...,key=value,... (see above)")
	fl.StringSliceVar(&f.repositories, "repository", nil, "watch only these repositories (repeatable; globs allowed)")
	fl.StringArrayVar(&f.tags, "tag", nil, "watch only tags matching this regular expression (repeatable)")
	fl.BoolVar(&f.allImages, "all-images", false, "index every existing image once (resumes after a restart)")
	fl.BoolVar(&f.refreshRegistry, "refresh-registry", false, "re-list the registry's repositories every interval")
	fl.IntVar(&f.interval, "interval", 60, "seconds between listings")
	fl.IntVar(&f.workers, "workers", 3, "images indexed at once")
	fl.IntVar(&f.maxAttempts, "max-attempts", 5, "attempts to index an image before it is recorded as failed")
	fl.BoolVar(&f.dryRun, "dry-run", false, "list and resolve the images that would be indexed; index nothing")
	fl.BoolVar(&f.sbom, "sbom", true, "index packages (false: store image metadata only)")
	fl.StringSliceVar(&f.insecure, "insecure-registry", splitEnv("CROWSNEST_INSECURE_REGISTRIES"), "registry hosts reached over plain HTTP")
	fl.StringVar(&f.webhookAddr, "webhook-addr", "", "listen address of the webhook receiver (default :PORT from --registry)")
	fl.StringVar(&f.listen, "listen", "", "also serve the JSON API, dashboard and /metrics on this address (embedded mode), e.g. 127.0.0.1:8080")
	fl.StringVar(&f.server, "server", os.Getenv("CROWSNEST_SERVER"), "push results to this crowsnest server (agent mode; token from CROWSNEST_TOKEN or crowsnest login)")
	fl.DurationVar(&f.advisoryRefresh, "advisory-refresh", 0, "refresh advisories (osv.dev or --osv-mirror) this often and re-match stored images, e.g. 6h (0: never; use crowsnest db update)")
	fl.DurationVar(&f.notifyInterval, "notify-interval", defaultNotifyInterval, "how often new finding changes are turned into notifications (crowsnest notify; not in agent mode)")
	fl.StringVar(&f.osvMirror, "osv-mirror", os.Getenv("CROWSNEST_OSV_MIRROR"), "base URL of an OSV mirror for --advisory-refresh (env CROWSNEST_OSV_MIRROR)")
	cmd.MarkFlagRequired("registry")
	return cmd
}

// watchOptions validates the flags; every configuration error is reported before anything starts.
func (f *watchFlags) options(dataDir string) (watch.Options, error) {
	var opts watch.Options
	cfg, err := registry.ParseConfig(f.registry)
	if err != nil {
		return opts, fmt.Errorf("--registry: %w", err)
	}
	if f.interval <= 0 {
		return opts, fmt.Errorf("--interval %d: must be a positive number of seconds", f.interval)
	}
	if f.workers <= 0 || f.workers > 64 {
		return opts, fmt.Errorf("--workers %d: must be between 1 and 64", f.workers)
	}
	if f.maxAttempts <= 0 || f.maxAttempts > 100 {
		return opts, fmt.Errorf("--max-attempts %d: must be between 1 and 100", f.maxAttempts)
	}
	for _, t := range f.tags {
		re, err := regexp.Compile(t)
		if err != nil {
			return opts, fmt.Errorf("--tag %q: %w", t, err)
		}
		opts.Tags = append(opts.Tags, re)
	}
	for _, r := range f.repositories {
		if _, err := filepath.Match(r, ""); err != nil {
			return opts, fmt.Errorf("--repository %q: bad glob: %w", r, err)
		}
	}
	insecure := append([]string(nil), f.insecure...)
	if cfg.Insecure {
		insecure = append(insecure, cfg.Registry)
		// The subdomain method pulls from <key>.<registry>.
		for _, key := range cfg.Repositories {
			if cfg.SubdomainMode && !strings.ContainsAny(key, "*?[") {
				insecure = append(insecure, key+"."+cfg.Registry)
			}
		}
	}
	opts = watch.Options{Registry: cfg, Repositories: f.repositories, Tags: opts.Tags, AllImages: f.allImages,
		RefreshRegistry: f.refreshRegistry, Interval: time.Duration(f.interval) * time.Second, Workers: f.workers, MaxAttempts: f.maxAttempts,
		SBOM: f.sbom, WebhookAddr: f.webhookAddr,
		ImageOptions: image.Options{Insecure: insecure, CacheDir: filepath.Join(dataDir, "blobs"),
			Transports: image.NewTransportCache(1024)},
		Refresh: refresh.Config{Interval: f.advisoryRefresh, Mirror: f.osvMirror, TempDir: filepath.Join(dataDir, "tmp")}}
	return opts, nil
}

func (g *globals) runWatch(ctx context.Context, f *watchFlags) error {
	opts, err := f.options(g.dataDir)
	if err != nil {
		return err
	}
	log, err := g.logger()
	if err != nil {
		return err
	}
	opts.Refresh.Log = log
	if f.server != "" {
		client, err := serverClient(f.server)
		if err != nil {
			return err
		}
		opts.Pusher = client
	}
	lister, err := registry.New(opts.Registry, registry.Options{})
	if err != nil {
		return err
	}
	svc, closeFn, err := g.openImportingService(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	ix, err := index.New(g.dataDir, log)
	if err != nil {
		return err
	}
	var metrics *server.Metrics
	if f.listen != "" {
		if f.server != "" {
			return errors.New("--listen serves the local store's API; with --server the server does")
		}
		metrics = server.NewMetrics()
		opts.Metrics = watchMetrics{metrics}
	}
	w, err := watch.New(ctx, opts, lister, svc, ix, g.dbDSN(), log)
	if err != nil {
		return err
	}
	defer w.Close()
	if f.dryRun {
		tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "REPOSITORY\tTAG\tDIGEST\tREFERENCE")
		err := w.DryRun(ctx, func(m registry.Manifest, ref string) {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.Repository, m.Tag, m.Digest, ref)
		})
		tw.Flush()
		return err
	}
	if f.server == "" {
		// Agent mode notifies from the server; otherwise this process is the one that knows.
		stopNotify, err := startNotifications(ctx, log, svc.Store, g.dbDSN(), nil, f.notifyInterval)
		if err != nil {
			return err
		}
		defer stopNotify()
	}
	log.Info("watching", "registry", opts.Registry.String(), "allImages", opts.AllImages,
		"refreshRegistry", opts.RefreshRegistry, "interval", opts.Interval, "workers", opts.Workers)
	if metrics == nil {
		return w.Run(ctx)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	apiErr := make(chan error, 1)
	go func() {
		apiErr <- serveAPI(ctx, log, svc, w.Queue(), metrics, f.listen, server.DefaultMaxBodyBytes, g.dbDSN())
		cancel() // the watcher stops when the API cannot serve
	}()
	runErr := w.Run(ctx)
	cancel()
	if err := <-apiErr; err != nil && runErr == nil {
		return err
	}
	return runErr
}

func newImagesCmd(g *globals) *cobra.Command {
	var failed bool
	var repository, serverURL string
	cmd := &cobra.Command{
		Use:   "images",
		Short: "List the images the watcher indexed (or failed to)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if serverURL != "" {
				return g.serverImages(ctx, serverURL, repository)
			}
			svc, closeFn, err := g.openService(ctx)
			if err != nil {
				return err
			}
			defer closeFn()
			tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
			if failed {
				fails, err := svc.Store.Failures(ctx)
				if err != nil {
					return err
				}
				fmt.Fprintln(tw, "REPOSITORY\tTAG\tDIGEST\tATTEMPTS\tFAILED AT\tERROR")
				for _, f := range fails {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", f.Repository, f.Tag, report.ShortDigest(f.Digest), f.Attempts,
						f.FailedAt.UTC().Format(time.RFC3339), oneLine(f.Error))
				}
				return tw.Flush()
			}
			rows, err := svc.Store.Images(ctx, repository)
			if err != nil {
				return err
			}
			return report.ImagesTable(g.stdout, rows)
		},
	}
	cmd.Flags().BoolVar(&failed, "failed", false, "list images that failed to index, with their error")
	cmd.Flags().StringVar(&repository, "repository", "", "only this repository")
	cmd.Flags().StringVar(&serverURL, "server", os.Getenv("CROWSNEST_SERVER"), "list the images stored on this crowsnest server")
	return cmd
}

// serverImages prints a server's images, one row per tag, like the local listing.
func (g *globals) serverImages(ctx context.Context, serverURL, repository string) error {
	c, err := serverClient(serverURL)
	if err != nil {
		return err
	}
	list, err := remoteImages(ctx, c, repository)
	if err != nil {
		return err
	}
	var rows []store.ImageRow
	for _, im := range list {
		tags := im.Tags
		if len(tags) == 0 {
			tags = []string{im.Repository + ":"}
		}
		for _, t := range tags {
			i := strings.LastIndex(t, ":")
			rows = append(rows, store.ImageRow{Repository: t[:i], Tag: t[i+1:], Digest: im.Digest, Platform: im.Platform,
				Packages: im.Packages, Findings: im.Findings, IndexedAt: im.IndexedAt})
		}
	}
	return report.ImagesTable(g.stdout, rows)
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
