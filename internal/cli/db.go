package cli

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/crowsnest-dev/crowsnest/internal/dsn"
	"github.com/crowsnest-dev/crowsnest/internal/findings"
	"github.com/crowsnest-dev/crowsnest/internal/store"
)

// dbDSN is the store: --db, else SQLite in the data directory.
func (g *globals) dbDSN() string {
	if g.db != "" {
		return g.db
	}
	return "sqlite://" + filepath.Join(g.dataDir, "crowsnest.db")
}

// openService opens the store (applying migrations) and the findings service over it.
func (g *globals) openService(ctx context.Context) (*findings.Service, func(), error) {
	log, err := g.logger()
	if err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(g.dataDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("data directory: %w", err)
	}
	st, err := store.Open(ctx, g.dbDSN(), log)
	if err != nil {
		return nil, nil, err
	}
	return &findings.Service{Store: st, Log: log}, func() { st.Close() }, nil
}

// openImportingService is openService for the commands that import advisories or index images
// (db import and update, watch, serve): it first finishes any re-match an earlier process was
// stopped in, so that no image keeps findings of advisories that have changed.
func (g *globals) openImportingService(ctx context.Context) (*findings.Service, func(), error) {
	svc, closeFn, err := g.openService(ctx)
	if err != nil {
		return nil, nil, err
	}
	if _, err := svc.ResumeRematches(ctx); err != nil {
		closeFn()
		return nil, nil, err
	}
	return svc, closeFn, nil
}

func newDBCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "db",
		Short: "Manage advisory data (OSV): import, update, status",
	}
	cmd.AddCommand(newDBImportCmd(g), newDBUpdateCmd(g), newDBStatusCmd(g))
	return cmd
}

func newDBImportCmd(g *globals) *cobra.Command {
	var source string
	cmd := &cobra.Command{
		Use:   "import PATH|URL...",
		Short: "Import OSV advisories from JSON files, directories, all.zip archives or URLs",
		Long: `Import OSV advisories. Each argument is an OSV JSON file, a directory of them, an OSV
bulk archive (osv.dev's per-ecosystem all.zip) or an http(s) URL of one. An import is one
transaction: a broken archive leaves the store as it was. Malformed records are skipped and
counted; withdrawn records are removed. A directory or archive is a full snapshot of its source:
advisories it no longer holds are removed. Stored images affected by the changes are re-matched.`,
		Example: `  crowsnest db import ./Debian/all.zip ./PyPI/all.zip
  crowsnest db import https://mirror.example/osv/Alpine/all.zip`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, closeFn, err := g.openImportingService(cmd.Context())
			if err != nil {
				return err
			}
			defer closeFn()
			for _, arg := range args {
				rep, err := g.importOne(cmd.Context(), svc, arg, source)
				if err != nil {
					return err
				}
				printImport(g, rep)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&source, "source", "", "name the source (default: the absolute path or URL)")
	return cmd
}

func (g *globals) importOne(ctx context.Context, svc *findings.Service, arg, source string) (findings.ImportReport, error) {
	if strings.HasPrefix(arg, "http://") || strings.HasPrefix(arg, "https://") {
		if source == "" {
			source = arg
		}
		path, _, err := svc.Download(ctx, httpClient(), source, arg, filepath.Join(g.dataDir, "tmp"), false)
		if err != nil {
			return findings.ImportReport{}, err
		}
		defer os.Remove(path)
		return svc.Import(ctx, path, source, true)
	}
	abs, err := filepath.Abs(arg)
	if err != nil {
		return findings.ImportReport{}, err
	}
	info, err := os.Stat(abs)
	if err != nil {
		return findings.ImportReport{}, fmt.Errorf("import %s: %w", arg, err)
	}
	if source == "" {
		source = abs
	}
	full := info.IsDir() || strings.HasSuffix(strings.ToLower(abs), ".zip")
	return svc.Import(ctx, abs, source, full)
}

// httpClient downloads advisory archives (hundreds of MB on slow links).
func httpClient() *http.Client { return &http.Client{Timeout: 30 * time.Minute} }

func printImport(g *globals, rep findings.ImportReport) {
	fmt.Fprintf(g.stdout, "%s: %d records read, %d skipped as malformed, %d withdrawn\n",
		rep.Source, rep.Read.Read, rep.Read.Skipped, rep.Read.Withdrawn)
	for _, e := range rep.Read.Errors {
		fmt.Fprintf(g.stdout, "  skipped: %s\n", e)
	}
	fmt.Fprintf(g.stdout, "  advisories: %d added, %d updated, %d unchanged, %d removed\n",
		rep.Import.Added, rep.Import.Updated, rep.Import.Unchanged, rep.Import.Removed)
	fmt.Fprintf(g.stdout, "  images: %d gained findings, %d lost findings (%d findings added, %d removed)\n",
		rep.Changes.ImagesGained, rep.Changes.ImagesLost, rep.Changes.Added, rep.Changes.Removed)
}

func newDBUpdateCmd(g *globals) *cobra.Command {
	var mirror string
	var ecosystems []string
	cmd := &cobra.Command{
		Use:   "update",
		Short: "Refresh advisories from osv.dev (or a mirror) for the ecosystems in the store",
		Long: `Refresh advisory sources: by default osv.dev's bulk archive of every ecosystem that stored
images use. Requests are conditional: an unchanged source costs one request and no import.
--mirror BASE_URL reads <BASE_URL>/<Ecosystem>/all.zip instead, for air-gapped installations.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			svc, closeFn, err := g.openImportingService(ctx)
			if err != nil {
				return err
			}
			defer closeFn()
			results, err := svc.Update(ctx, httpClient(), ecosystems, mirror, filepath.Join(g.dataDir, "tmp"))
			if len(results) == 0 && err == nil {
				fmt.Fprintln(g.stdout, "no ecosystems to update: index images first, or name them with --ecosystem")
				return nil
			}
			for _, r := range results {
				switch {
				case r.Err != nil: // listed in err, returned below
				case r.NotModified:
					fmt.Fprintf(g.stdout, "%s: unchanged\n", r.Name)
				default:
					printImport(g, r.Report)
				}
			}
			return err
		},
	}
	cmd.Flags().StringVar(&mirror, "mirror", os.Getenv("CROWSNEST_OSV_MIRROR"), "base URL of an OSV mirror laid out as <base>/<Ecosystem>/all.zip (env CROWSNEST_OSV_MIRROR)")
	cmd.Flags().StringSliceVar(&ecosystems, "ecosystem", nil, "update these ecosystems (Debian, Alpine, PyPI, npm, Go, Maven, ...) instead of those in the store")
	return cmd
}

func newDBStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show advisory sources, counts and age",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			svc, closeFn, err := g.openService(ctx)
			if err != nil {
				return err
			}
			defer closeFn()
			stats, err := svc.Store.Stats(ctx)
			if err != nil {
				return err
			}
			sources, err := svc.Store.Sources(ctx)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintf(w, "Store\t%s\n", dsn.Redact(g.dbDSN()))
			fmt.Fprintf(w, "Images\t%d\nPackages\t%d\nAdvisories\t%d\n", stats.Images, stats.Packages, stats.Advisories)
			fmt.Fprintln(w)
			fmt.Fprintln(w, "SOURCE\tADVISORIES\tIMPORTED\tAGE\tLAST ERROR")
			for _, s := range sources {
				imported, age := "never", "-"
				if !s.ImportedAt.IsZero() {
					imported = s.ImportedAt.UTC().Format(time.RFC3339)
					age = time.Since(s.ImportedAt).Round(time.Minute).String()
				}
				fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\n", s.Name, s.Advisories, imported, age, s.Error)
			}
			fmt.Fprintln(w)
			fmt.Fprintln(w, "ECOSYSTEM\tADVISORIES")
			ecos := make([]string, 0, len(stats.AdvisoriesByEcosystem))
			for e := range stats.AdvisoriesByEcosystem {
				ecos = append(ecos, e)
			}
			sort.Strings(ecos)
			for _, e := range ecos {
				fmt.Fprintf(w, "%s\t%d\n", e, stats.AdvisoriesByEcosystem[e])
			}
			return w.Flush()
		},
	}
}
