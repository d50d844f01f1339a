// Package demo runs crowsnest's whole watch workflow on one machine, with no external service and
// no network, for a newcomer: an in-process registry with the Artifactory emulator in front of it
// holding a few generated images, a bundled set of genuine OSV advisories, the watcher backfilling
// the repository with --all-images and then indexing a push that arrives by signed webhook, and
// the results as `crowsnest images` and `crowsnest cves` print them.
//
// Everything it creates lives in one directory (Options.Dir), which is kept so the newcomer can
// run the other commands against it afterwards.
package demo

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/crowsnest-dev/crowsnest/internal/findings"
	"github.com/crowsnest-dev/crowsnest/internal/image"
	"github.com/crowsnest-dev/crowsnest/internal/index"
	"github.com/crowsnest-dev/crowsnest/internal/registry"
	"github.com/crowsnest-dev/crowsnest/internal/store"
	"github.com/crowsnest-dev/crowsnest/internal/testutil/artifactory"
	"github.com/crowsnest-dev/crowsnest/internal/watch"
)

// advisories are genuine OSV records (see advisories/README.md for origin and license).
//
//go:embed advisories
var advisories embed.FS

// Repository is the Artifactory repository key the demo pushes to and watches.
const Repository = "docker-local"

// Include and Exclude are the --registry globs of the demo's watcher.
const (
	Include = "*/frontend*"
	Exclude = "*/dta/*"
)

// AdvisorySource names the bundled advisories in the store (`crowsnest db status`).
const AdvisorySource = "crowsnest demo (bundled OSV records)"

// marker marks a directory as the demo's own, so a later run may replace it; it is also locked
// while a demo runs so two runs cannot share one directory.
const marker = ".crowsnest-demo"

// maxWait bounds each wait for the watcher (the backfill, the webhook push).
const maxWait = 2 * time.Minute

// Options configure a demo run.
type Options struct {
	// Dir is the demo's data directory. A previous demo's directory is replaced; any other
	// non-empty directory is refused.
	Dir string
	// KeepRunning keeps the registry, the emulator and the watcher up until ctx ends.
	KeepRunning bool
	// Out receives the results; Log the progress.
	Out io.Writer
	Log *slog.Logger
	// Command is how the user runs crowsnest, used in the commands printed at the end
	// (default "crowsnest").
	Command string
}

// Run runs the demo and returns when the results are printed (with KeepRunning, when ctx ends).
func Run(ctx context.Context, opts Options) (err error) {
	if opts.Dir == "" {
		return errors.New("demo: no directory")
	}
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Command == "" {
		opts.Command = "crowsnest"
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return err
	}
	lock, err := prepareDir(dir)
	if err != nil {
		return err
	}
	defer lock.Close()
	d := &demo{opts: opts, dir: dir, log: opts.Log}
	defer d.close()
	return d.run(ctx)
}

type demo struct {
	opts Options
	dir  string
	log  *slog.Logger

	// password and secret are generated per run and never printed: the password is written to
	// a 0600 file for --keep-running, the secret only travels between emulator and watcher.
	password, secret string

	upstream    *http.Server
	emulatorSrv *http.Server
	emu         *artifactory.Emulator
	emuAddr     string
	store       *store.Store
	svc         *findings.Service
	watcher     *watch.Watcher
	webhookPort int
	stopWatch   context.CancelFunc
	watchDone   chan error
}

func (d *demo) run(ctx context.Context) error {
	start := time.Now()
	d.password, d.secret = randomHex(16), randomHex(32)
	if err := d.startRegistry(); err != nil {
		return err
	}
	if err := d.openStore(ctx); err != nil {
		return err
	}
	if err := d.importAdvisories(ctx); err != nil {
		return err
	}
	seeds, err := seedImages()
	if err != nil {
		return err
	}
	for _, f := range seeds {
		if err := d.push(ctx, f); err != nil {
			return err
		}
	}
	if err := d.subscribe(); err != nil {
		return err
	}
	if err := d.startWatcher(ctx); err != nil {
		return err
	}
	d.log.Info("waiting for the backfill (--all-images)")
	if err := d.waitFor(ctx, "the backfill", Repository+"/frontend-web:1.0", Repository+"/frontend-api:1.0"); err != nil {
		return err
	}
	pushed, err := pushedImage()
	if err != nil {
		return err
	}
	if err := d.push(ctx, pushed); err != nil {
		return err
	}
	d.log.Info("waiting for the webhook-driven index (the polling interval is an hour: only the webhook brings it in)")
	if err := d.waitFor(ctx, "the webhook push", Repository+"/"+pushed.Name+":"+pushed.Tag); err != nil {
		return err
	}
	d.log.Info("demo workflow done", "took", time.Since(start).Round(time.Millisecond))
	if err := d.printResults(ctx, seeds, pushed); err != nil {
		return err
	}
	if !d.opts.KeepRunning {
		return nil
	}
	pwFile, err := d.printRunning()
	if err != nil {
		return err
	}
	// The password dies with this run.
	defer os.Remove(pwFile)
	select {
	case <-ctx.Done():
	case err := <-d.watchDone:
		d.watchDone = nil
		return fmt.Errorf("watcher stopped: %w", err)
	}
	d.log.Info("stopping")
	return nil
}

// prepareDir makes dir an empty demo directory and locks it for this run.
func prepareDir(dir string) (*os.File, error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("demo directory: %w", err)
	case len(entries) > 0:
		if _, err := os.Stat(filepath.Join(dir, marker)); err != nil {
			return nil, fmt.Errorf("demo directory %s exists and was not made by crowsnest demo; choose another --data-dir", dir)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("demo directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, marker), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("demo directory: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("another crowsnest demo is running in %s", dir)
	}
	// A previous run's results would make the watcher skip the backfill: start afresh.
	for _, e := range entries {
		if e.Name() == marker {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			lock.Close()
			return nil, fmt.Errorf("clear the previous demo: %w", err)
		}
	}
	return lock, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// listen serves h on a free loopback port.
func listen(h http.Handler) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return srv, ln.Addr().String(), nil
}

// freePort picks a loopback port for the webhook receiver, which opens its own listener.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (d *demo) startRegistry() error {
	upstream, upAddr, err := listen(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	if err != nil {
		return fmt.Errorf("start the registry: %w", err)
	}
	d.upstream = upstream
	emu, err := artifactory.New(artifactory.Options{
		Upstream: "http://" + upAddr,
		Users:    []artifactory.User{{Name: artifactory.DefaultUser, Password: d.password, Admin: true}},
		Webhook:  artifactory.WebhookOptions{Backoff: []time.Duration{500 * time.Millisecond, 2 * time.Second}},
		Logf:     func(format string, args ...any) { d.log.Debug(fmt.Sprintf(format, args...)) },
	})
	if err != nil {
		return err
	}
	d.emu = emu
	srv, addr, err := listen(emu)
	if err != nil {
		return fmt.Errorf("start the Artifactory emulator: %w", err)
	}
	d.emulatorSrv, d.emuAddr = srv, addr
	d.log.Info("registry and Artifactory emulator started", "registry", upAddr, "artifactory", "http://"+addr+"/artifactory")
	return nil
}

func (d *demo) dsn() string { return "sqlite://" + filepath.Join(d.dir, "crowsnest.db") }

func (d *demo) openStore(ctx context.Context) error {
	st, err := store.Open(ctx, d.dsn(), d.log)
	if err != nil {
		return err
	}
	d.store = st
	d.svc = &findings.Service{Store: st, Log: d.log}
	return nil
}

// importAdvisories writes the embedded records to a directory and imports it as `db import`
// does: one transaction, a full snapshot of its source.
func (d *demo) importAdvisories(ctx context.Context) error {
	tmp := filepath.Join(d.dir, "tmp", "advisories")
	defer os.RemoveAll(tmp)
	err := fs.WalkDir(advisories, "advisories", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(p, ".json") {
			return err
		}
		b, err := advisories.ReadFile(p)
		if err != nil {
			return err
		}
		dst := filepath.Join(tmp, filepath.FromSlash(strings.TrimPrefix(p, "advisories/")))
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o600)
	})
	if err != nil {
		return fmt.Errorf("write the bundled advisories: %w", err)
	}
	rep, err := d.svc.Import(ctx, tmp, AdvisorySource, true)
	if err != nil {
		return fmt.Errorf("import the bundled advisories: %w", err)
	}
	d.log.Info("advisories imported", "source", AdvisorySource, "read", rep.Read.Read, "added", rep.Import.Added,
		"withdrawn", rep.Read.Withdrawn)
	return nil
}

func (d *demo) ref(f fixture) string {
	return d.emuAddr + "/" + Repository + "/" + f.Name + ":" + f.Tag
}

// push writes an image through the emulator, as `docker push` to Artifactory would.
func (d *demo) push(ctx context.Context, f fixture) error {
	ref, err := name.ParseReference(d.ref(f), name.Insecure)
	if err != nil {
		return err
	}
	auth := remote.WithAuth(&authn.Basic{Username: artifactory.DefaultUser, Password: d.password})
	if err := remote.Write(ref, f.Image, auth, remote.WithContext(ctx)); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	digest, _ := f.Image.Digest()
	d.log.Info("pushed", "image", Repository+"/"+f.Name+":"+f.Tag, "digest", digest.String(), "note", f.Why)
	return nil
}

// subscribe registers the watcher's receiver for docker pushes and deletes, signed with HMAC.
func (d *demo) subscribe() error {
	port, err := freePort()
	if err != nil {
		return fmt.Errorf("webhook port: %w", err)
	}
	d.webhookPort = port
	return d.emu.Subscribe(artifactory.Subscription{Key: "crowsnest-demo",
		EventFilter: artifactory.EventFilter{Domain: "docker", EventTypes: []string{"pushed", "deleted"},
			Criteria: artifactory.Criteria{RepoKeys: []string{Repository}}},
		Handlers: []artifactory.Handler{{HandlerType: "webhook", URL: "http://127.0.0.1:" + strconv.Itoa(port) + "/",
			Secret: d.secret, UseSecretForSigning: true}}})
}

// registryFlag is the watcher's --registry value (Docker Scout's canonical form).
func (d *demo) registryFlag() string {
	return fmt.Sprintf("type=artifactory,registry=%s,api=http://%s/artifactory,include=%s,exclude=%s,repository=%s,port=%d",
		d.emuAddr, d.emuAddr, Include, Exclude, Repository, d.webhookPort)
}

// startWatcher wires the watcher as `crowsnest watch --all-images` does and runs it in the
// background. Credentials come from this run, not from the environment.
func (d *demo) startWatcher(ctx context.Context) error {
	env := map[string]string{
		"CROWSNEST_ARTIFACTORY_API_USER":       artifactory.DefaultUser,
		"CROWSNEST_ARTIFACTORY_API_PASSWORD":   d.password,
		"CROWSNEST_ARTIFACTORY_WEBHOOK_SECRET": d.secret,
	}
	cfg, err := registry.ParseConfigEnv(d.registryFlag(), func(k string) string { return env[k] })
	if err != nil {
		return fmt.Errorf("--registry: %w", err)
	}
	lister, err := registry.New(cfg, registry.Options{})
	if err != nil {
		return err
	}
	ix, err := index.New(d.dir, d.log)
	if err != nil {
		return err
	}
	opts := watch.Options{Registry: cfg, AllImages: true, Interval: time.Hour, Workers: 3, MaxAttempts: 3, SBOM: true,
		WebhookAddr:  "127.0.0.1:" + strconv.Itoa(d.webhookPort),
		ImageOptions: image.Options{Insecure: []string{d.emuAddr}, CacheDir: filepath.Join(d.dir, "blobs")}}
	w, err := watch.New(ctx, opts, lister, d.svc, ix, d.dsn(), d.log)
	if err != nil {
		return err
	}
	d.watcher = w
	wctx, cancel := context.WithCancel(ctx)
	d.stopWatch, d.watchDone = cancel, make(chan error, 1)
	d.log.Info("watcher started", "registry", "type=artifactory,...,include="+Include+",exclude="+Exclude+",repository="+Repository,
		"allImages", true, "webhook", opts.WebhookAddr)
	go func() { d.watchDone <- w.Run(wctx) }()
	return nil
}

// waitFor polls the store until every repository:tag in want is indexed. An image the watcher
// gave up on ends the wait with its error.
func (d *demo) waitFor(ctx context.Context, what string, want ...string) error {
	ctx, cancel := context.WithTimeout(ctx, maxWait)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		rows, err := d.store.Images(ctx, "")
		if err != nil && ctx.Err() == nil {
			return err
		}
		have := map[string]bool{}
		for _, r := range rows {
			have[r.Repository+":"+r.Tag] = true
		}
		missing := 0
		for _, w := range want {
			if !have[w] {
				missing++
			}
		}
		if missing == 0 {
			return nil
		}
		if fails, err := d.store.Failures(ctx); err == nil && len(fails) > 0 {
			f := fails[0]
			return fmt.Errorf("waiting for %s: %s:%s failed to index: %s", what, f.Repository, f.Tag, f.Error)
		}
		select {
		case <-ctx.Done():
			if err := context.Cause(ctx); errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("waiting for %s: %d of %d images not indexed after %s", what, missing, len(want), maxWait)
			}
			return ctx.Err()
		case err := <-d.watchDone:
			d.watchDone = nil
			return fmt.Errorf("waiting for %s: the watcher stopped: %v", what, err)
		case <-tick.C:
		}
	}
}

// close stops everything in reverse order of starting; the directory stays.
func (d *demo) close() {
	if d.stopWatch != nil {
		d.stopWatch()
		if d.watchDone != nil {
			if err := <-d.watchDone; err != nil {
				d.log.Warn("watcher", "err", err)
			}
		}
	}
	if d.watcher != nil {
		d.watcher.Close()
	}
	if d.emu != nil {
		d.emu.Close()
	}
	for _, s := range []*http.Server{d.emulatorSrv, d.upstream} {
		if s != nil {
			s.Close()
		}
	}
	if d.store != nil {
		d.store.Close()
	}
}
