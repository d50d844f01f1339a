package dashboard

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browser starts headless Debian chromium with no network chatter (the machine and CI have no
// internet) and returns a chromedp context. Missing chromium fails the test unless
// CROWSNEST_SKIP_BROWSER=1.
func browser(t *testing.T) context.Context {
	t.Helper()
	if os.Getenv("CROWSNEST_SKIP_BROWSER") == "1" {
		t.Skip("CROWSNEST_SKIP_BROWSER=1")
	}
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		t.Fatal("chromium is not installed: apt-get install -y chromium (or set CROWSNEST_SKIP_BROWSER=1 to skip the browser tests)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	// The first run starts the browser; it must not carry a timeout (that would end the browser).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium %s: %v", path, err)
	}
	return ctx
}

// shots is where screenshots go: CROWSNEST_SCREENSHOTS (docs/screenshots is refreshed that way)
// or a temporary directory.
func shots(t *testing.T) string {
	if d := os.Getenv("CROWSNEST_SCREENSHOTS"); d != "" {
		return d
	}
	return t.TempDir()
}

func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	buf := get1(t, ctx, "screenshot "+name, chromedp.CaptureScreenshot())
	if err := os.WriteFile(filepath.Join(dir, name), buf, 0o644); err != nil {
		t.Fatal(err)
	}
}

// stepTimeout bounds one step, so a missing element fails the test instead of hanging it.
const stepTimeout = 20 * time.Second

func run(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	get1(t, ctx, what, chromedp.Steps(steps...))
}

func get1[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

func css(s string) chromedp.CSS { return chromedp.CSS(s) }

func visible(s string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS(s))
}

func textOf(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return get1(t, ctx, "text of "+sel, chromedp.Text(chromedp.CSS(sel)))
}

func location(t *testing.T, ctx context.Context) string {
	t.Helper()
	return get1(t, ctx, "location", chromedp.Location())
}

func count(t *testing.T, ctx context.Context, sel string) int {
	t.Helper()
	return get1(t, ctx, "count "+sel, chromedp.Evaluate[int](`document.querySelectorAll(`+strconv.Quote(sel)+`).length`))
}

func TestBrowser(t *testing.T) {
	f := newFixture(t)
	ctx := browser(t)
	dir := shots(t)
	base := f.srv.URL

	// Sign-in is required: the overview sends the browser to the sign-in form.
	run(t, ctx, "open overview", chromedp.Navigate(base+"/ui/"), visible("#token"))
	if loc := location(t, ctx); !strings.Contains(loc, "/ui/signin?next=") {
		t.Fatalf("unauthenticated overview went to %s", loc)
	}
	run(t, ctx, "wrong token", chromedp.SendKeys(css("#token"), "cn_wrong"), chromedp.Submit(css("#token")), visible(".error"))
	if text := textOf(t, ctx, ".error"); !strings.Contains(text, "not valid") {
		t.Fatalf("wrong token message: %q", text)
	}
	screenshot(t, ctx, dir, "signin.png")
	run(t, ctx, "sign in", chromedp.Clear(css("#token")), chromedp.SendKeys(css("#token"), f.read),
		chromedp.Submit(css("#token")), visible(".stats"))
	if loc, text := location(t, ctx), textOf(t, ctx, ".stats"); !strings.HasSuffix(loc, "/ui/") || !strings.HasPrefix(strings.TrimSpace(text), "3") {
		t.Fatalf("overview after sign-in at %s: %q", loc, text)
	}
	// The overview's charts and lists hold real data.
	text := textOf(t, ctx, "main")
	for _, want := range []string{"ALPINE-CVE-2025-26519", webRepo, "registry.example/team/broken:2.0", "Open findings, last 30 days"} {
		if !strings.Contains(text, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	if n := count(t, ctx, "svg.chart circle"); n != trendDays {
		t.Errorf("trend chart has %d points, want %d", n, trendDays)
	}
	if n := count(t, ctx, "svg.chart rect.bar"); n != 6 {
		t.Errorf("severity chart has %d bars, want 6", n)
	}
	screenshot(t, ctx, dir, "overview.png")

	// "/" focuses the search box; a CVE id answers which images have it, in one step.
	run(t, ctx, "slash", chromedp.KeyEvent("/"))
	if active := get1(t, ctx, "active", chromedp.Evaluate[string](`document.activeElement.id`)); active != "q" {
		t.Errorf("'/' focused %q, not the search box", active)
	}
	// The protocol's key event also sends a separate "char" event, which a real keystroke whose
	// keydown was cancelled would not: clear what it typed.
	get1(t, ctx, "clear", chromedp.Evaluate[string](`document.getElementById("q").value = ""`))
	run(t, ctx, "search CVE", chromedp.SendKeys(css("#q"), "CVE-2025-26519\r"), visible("#affected"))
	loc, text := location(t, ctx), textOf(t, ctx, "main")
	if n := count(t, ctx, "#affected tbody tr"); !strings.Contains(loc, "/ui/vulnerabilities/ALPINE-CVE-2025-26519") || n != 3 ||
		!strings.Contains(text, "You searched for CVE-2025-26519") || !strings.Contains(text, baseRepo+":3.19") {
		t.Fatalf("CVE search: %s, %d rows\n%s", loc, n, text)
	}
	if !strings.Contains(text, "1.2.4_git20230717-r5") {
		t.Error("vulnerability page lacks the fixed version")
	}
	screenshot(t, ctx, dir, "vulnerability.png")

	// Navigation and filters: Images, filter by package, open the image.
	run(t, ctx, "images", chromedp.Click(css(`nav a[href="/ui/images"]`)), visible("#images"))
	if n := count(t, ctx, "#images tbody tr"); n != 3 {
		t.Fatalf("images list: %d rows", n)
	}
	run(t, ctx, "filter", chromedp.SendKeys(css("#f-pkg"), "ansi-html"), chromedp.SendKeys(css("#f-ver"), "0.0.7"),
		chromedp.Click(css(`form.filters button[type=submit]`)), visible(`#images`), chromedp.WaitReady(css(`a[href="/ui/images"]:not(nav a)`)))
	loc, text = location(t, ctx), textOf(t, ctx, "#images")
	if n := count(t, ctx, "#images tbody tr"); !strings.Contains(loc, "package=ansi-html") || n != 1 || !strings.Contains(text, webRepo+":1.0") {
		t.Fatalf("package filter: %s, %d rows: %s", loc, n, text)
	}
	// A select applies at once (the page's script submits its form).
	run(t, ctx, "sort", chromedp.Navigate(base+"/ui/images"), visible("#f-sort"),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[any](`(function(){var s=document.getElementById("f-sort"); s.value="-indexed"; s.dispatchEvent(new Event("change"));})()`)(ctx, tg)
			return err
		}),
		chromedp.WaitReady(css(`#f-sort option[value="-indexed"][selected]`)))
	loc, text = location(t, ctx), textOf(t, ctx, "#images tbody tr:first-child")
	if !strings.Contains(loc, "sort=-indexed") || !strings.Contains(text, webRepo+":1.1") {
		t.Fatalf("sort newest first: %s: %q", loc, text)
	}
	run(t, ctx, "open image", chromedp.Click(css(`#images tbody tr:first-child td a`)), visible("#findings"))
	text = textOf(t, ctx, "main")
	for _, want := range []string{"Base images", baseRepo, "8080/tcp", "APP_SECRET_KEY", "payments", "musl", "ansi-html", "Tag history"} {
		if !strings.Contains(text, want) {
			t.Errorf("image page lacks %q", want)
		}
	}
	if strings.Contains(text, "s3cret") {
		t.Error("the image page shows an environment value")
	}
	screenshot(t, ctx, dir, "image.png")

	// Packages explorer: name prefix, then name and version to images.
	run(t, ctx, "packages", chromedp.Click(css(`nav a[href="/ui/packages"]`)), visible("#p-prefix"),
		chromedp.SendKeys(css("#p-prefix"), "requ\r"), visible("#package-names"),
		chromedp.Click(css(`#package-names a`)), visible("#package-images"),
		chromedp.Click(css(`.versions a[href*="version=2.28.1"]`)), chromedp.WaitReady(css(`.versions a[aria-current=true][href*="2.28.1"]`)))
	if n, text := count(t, ctx, "#package-images tbody tr"), textOf(t, ctx, "#package-images"); n != 1 || !strings.Contains(text, webRepo+":1.0") {
		t.Fatalf("requests 2.28.1: %d rows: %s", n, text)
	}

	// Compare two tags: the upgrade fixed the npm and PyPI vulnerabilities.
	run(t, ctx, "compare", chromedp.Click(css(`nav a[href="/ui/compare"]`)), visible("#c-from"),
		chromedp.SendKeys(css("#c-from"), webRepo+":1.0"), chromedp.SendKeys(css("#c-to"), webRepo+":1.1\r"), visible("#fixed-findings"))
	if text := textOf(t, ctx, "#fixed-findings"); !strings.Contains(text, "GHSA-whgm-jr23-g3j9") || !strings.Contains(text, "PYSEC-2023-74") {
		t.Fatalf("fixed findings: %s", text)
	}
	if text := textOf(t, ctx, "#package-diff"); !strings.Contains(text, "ansi-html") || !strings.Contains(text, "0.0.8") {
		t.Errorf("package diff: %s", text)
	}
	screenshot(t, ctx, dir, "compare.png")

	// Settings.
	run(t, ctx, "settings", chromedp.Click(css(`nav a[href="/ui/settings"]`)), visible("#h-reg"))
	text = textOf(t, ctx, "main")
	for _, want := range []string{"registry.example", "osv", "None configured", "needs an admin token"} {
		if !strings.Contains(text, want) {
			t.Errorf("settings lacks %q", want)
		}
	}

	// A phone: no sideways scrolling of the page itself (wide tables scroll in their box).
	overflow := `document.documentElement.scrollWidth > window.innerWidth + 1`
	run(t, ctx, "phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)), chromedp.Navigate(base+"/ui/"), visible(".stats"))
	if get1(t, ctx, "overflow", chromedp.Evaluate[bool](overflow)) {
		t.Error("the overview scrolls sideways on a 390 px phone")
	}
	screenshot(t, ctx, dir, "overview-phone.png")
	run(t, ctx, "phone image", chromedp.Navigate(base+"/ui/images/"+f.web1), visible("#findings"))
	if get1(t, ctx, "overflow", chromedp.Evaluate[bool](overflow)) {
		t.Error("the image page scrolls sideways on a 390 px phone: " + get1(t, ctx, "wide", chromedp.Evaluate[string](
			`Array.from(document.querySelectorAll("body *")).filter(e => (!e.parentElement.closest(".table-wrap")) && e.getBoundingClientRect().right > window.innerWidth + 1).slice(0, 5).map(e => e.tagName + "." + e.className).join(" ")`)))
	}

	// Sign out ends the session.
	run(t, ctx, "sign out", chromedp.EmulateViewport(1280, 900), chromedp.Navigate(base+"/ui/"), visible(".signout button"),
		chromedp.Click(css(".signout button")), visible("#token"),
		chromedp.Navigate(base+"/ui/images?"+url.Values{"q": {"x"}}.Encode()), visible("#token"))
	if loc := location(t, ctx); !strings.Contains(loc, "/ui/signin") {
		t.Fatalf("after sign-out: %s", loc)
	}
	t.Logf("screenshots in %s", dir)
}
