// Package browsertest drives a real headless Chromium for tests, the way a
// person uses a web page: navigate, type, click, read what is shown,
// download, take screenshots. It is the only package that imports chromedp;
// tests reach the browser through a Browser.
//
// Start finds Debian's chromium at /usr/bin/chromium (or $EDGESEAL_CHROMIUM)
// and calls testenv.Missing when it is absent. Each Browser runs its own
// browser process with a new, empty profile directory, headless, without
// sandbox, GPU, QUIC, background networking, component updates or sync, and
// accepts the self-signed certificates tests serve. Every wait is bounded
// (Timeout); a failure fails the test with what the page showed.
package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/edgeseal/edgeseal/internal/testenv"
)

// Timeout bounds every wait of a Browser.
const Timeout = 30 * time.Second

// Browser is one headless Chromium with one tab.
type Browser struct {
	t         testing.TB
	ctx       context.Context // the tab
	downloads string

	mu        sync.Mutex
	problems  []string // console errors, exceptions, CSP violations
	methods   map[network.RequestID]string
	responses []response
}

type response struct {
	id     network.RequestID
	url    string
	status int
	header map[string]string
}

// Response is an HTTP response the page received (its document, scripts,
// fetches, event streams; a completed Download counts as a 200).
type Response struct {
	Method, URL string
	Status      int
	// Header holds the response's headers as the browser received them,
	// by lowercase name (nil for a Download).
	Header map[string]string
}

// ExecPath is the Chromium binary: $EDGESEAL_CHROMIUM, else
// /usr/bin/chromium; "" when neither exists.
func ExecPath() string {
	for _, p := range []string{os.Getenv("EDGESEAL_CHROMIUM"), "/usr/bin/chromium"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	return ""
}

// Start starts a headless Chromium with a new profile for the test and
// stops it when the test ends.
func Start(t testing.TB) *Browser {
	t.Helper()
	path := ExecPath()
	if path == "" {
		testenv.Missing(t, "chromium (/usr/bin/chromium): scripts/deps.sh test installs it (apt-get install chromium)")
	}
	profile, err := os.MkdirTemp("", "edgeseal-chromium")
	if err != nil {
		t.Fatal(err)
	}
	b := &Browser{t: t, downloads: filepath.Join(profile, "downloads"), methods: map[network.RequestID]string{}}
	if err := os.Mkdir(b.downloads, 0o700); err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(profile),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.WindowSize(1440, 900),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.Flag("password-store", "basic"),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithLogf(func(string, ...any) {}))
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		// Chromium's children may still write into the profile for a moment.
		for range 50 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	// The first Run starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior:      browser.SetDownloadBehaviorBehaviorAllowAndName,
			DownloadPath:  b.downloads,
			EventsEnabled: new(true),
		})
		return err
	})); err != nil {
		t.Fatalf("browsertest: starting %s: %v", path, err)
	}
	b.ctx = ctx
	go b.watchConsole()
	go b.watchRequests()
	go b.watchResponses()
	return b
}

func (b *Browser) watchRequests() {
	for ev, err := range chromedp.Events(b.ctx, network.RequestWillBeSent) {
		if err != nil {
			return
		}
		b.mu.Lock()
		b.methods[ev.RequestID] = ev.Request.Method
		b.mu.Unlock()
	}
}

func (b *Browser) watchResponses() {
	for ev, err := range chromedp.Events(b.ctx, network.ResponseReceived) {
		if err != nil {
			return
		}
		h := make(map[string]string, len(ev.Response.Headers))
		for k, v := range ev.Response.Headers {
			h[strings.ToLower(k)] = fmt.Sprint(v)
		}
		b.mu.Lock()
		b.responses = append(b.responses, response{ev.RequestID, ev.Response.URL, int(ev.Response.Status), h})
		b.mu.Unlock()
	}
}

// Responses are the HTTP responses the page has received so far, in the
// order they came.
func (b *Browser) Responses() []Response {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Response, len(b.responses))
	for i, r := range b.responses {
		out[i] = Response{Method: b.methods[r.id], URL: r.url, Status: r.status, Header: r.header}
	}
	return out
}

// watchConsole keeps the page's errors: exceptions nobody caught, console
// errors and the browser log's errors but a failed request's (a CSP
// violation is one).
func (b *Browser) watchConsole() {
	for m, err := range chromedp.Console(b.ctx) {
		if err != nil {
			return
		}
		// A failed request is the browser log's "network" error: the
		// tests provoke those (a wrong password is a 401).
		if m.IsException() || (m.Type == chromedp.ConsoleError && m.Source != "network") {
			b.mu.Lock()
			b.problems = append(b.problems, m.String())
			b.mu.Unlock()
		}
	}
}

// Problems are the page's errors so far: uncaught exceptions, console
// errors and browser log errors such as Content-Security-Policy
// violations (not the HTTP errors of requests).
func (b *Browser) Problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.problems...)
}

// do runs the steps with the Timeout, failing the test with what the page
// shows when they fail.
func (b *Browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, Timeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browsertest: %s: %v\npage %s:\n%s\nproblems: %v", what, err, b.location(), b.bodyText(), b.Problems())
	}
}

func (b *Browser) location() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	l, _ := chromedp.Run(ctx, chromedp.Location())
	return l
}

func (b *Browser) bodyText() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if len(s) > 4000 {
		s = s[:4000] + "..."
	}
	return s
}

// Navigate loads url and waits for the page's load event.
func (b *Browser) Navigate(url string) {
	b.t.Helper()
	b.do("navigate to "+url, chromedp.Navigate(url))
}

// Location is the address the tab shows.
func (b *Browser) Location() string { return b.location() }

// WaitVisible waits until an element matching the CSS selector is shown.
func (b *Browser) WaitVisible(sel string) {
	b.t.Helper()
	b.do("wait for "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
}

// WaitGone waits until no element matches the CSS selector.
func (b *Browser) WaitGone(sel string) {
	b.t.Helper()
	b.do("wait for "+sel+" to go", chromedp.WaitNotPresent(chromedp.CSS(sel)))
}

// Click clicks the first shown element matching the CSS selector.
func (b *Browser) Click(sel string) {
	b.t.Helper()
	b.do("click "+sel, chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel)))
}

// Type clears the input matching the CSS selector and types text into it
// key by key.
func (b *Browser) Type(sel, text string) {
	b.t.Helper()
	b.do("type into "+sel, chromedp.WaitVisible(chromedp.CSS(sel)),
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`(function(e){e.value="";return true})(document.querySelector(%q))`, sel)))
			return err
		}),
		chromedp.SendKeys(chromedp.CSS(sel), text))
}

// SetValue sets the value of the form control matching the CSS selector
// (a select, a date) and fires its change event.
func (b *Browser) SetValue(sel, value string) {
	b.t.Helper()
	b.do("set "+sel, chromedp.WaitReady(chromedp.CSS(sel)), chromedp.SetValue(chromedp.CSS(sel), value),
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(
				`(function(e){e.dispatchEvent(new Event('change',{bubbles:true}));return true})(document.querySelector(%q))`, sel)))
			return err
		}))
}

// Text is the shown text of the first element matching the CSS selector.
func (b *Browser) Text(sel string) string {
	b.t.Helper()
	var s string
	b.do("read "+sel, chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		var err error
		s, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		return err
	}))
	return s
}

// Count is the number of elements matching the CSS selector now.
func (b *Browser) Count(sel string) int {
	b.t.Helper()
	return Eval[int](b, fmt.Sprintf(`document.querySelectorAll(%q).length`, sel))
}

// WaitText waits until the shown text of an element matching the CSS
// selector contains want, and returns that text.
func (b *Browser) WaitText(sel, want string) string {
	b.t.Helper()
	js := fmt.Sprintf(`Array.from(document.querySelectorAll(%q)).map(e => e.innerText).filter(s => s.includes(%q))[0] || ""`, sel, want)
	deadline := time.Now().Add(Timeout)
	for {
		if s := Eval[string](b, js); s != "" {
			return s
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("browsertest: no %s shows %q after %v\npage %s:\n%s\nproblems: %v", sel, want, Timeout, b.location(), b.bodyText(), b.Problems())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Eval evaluates a JavaScript expression in the page and returns its value
// (awaiting a promise).
func Eval[T any](b *Browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, Timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("browsertest: eval %s: %v", expr, err)
	}
	return v
}

// Download clicks the element matching the CSS selector and waits for the
// download it starts; it returns the name the page suggested and the bytes.
func (b *Browser) Download(sel string) (string, []byte) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, Timeout)
	defer cancel()
	begin := chromedp.Events(ctx, browser.DownloadWillBegin)
	progress := chromedp.Events(ctx, browser.DownloadProgress)
	b.Click(sel)
	var guid, name, url string
	for ev, err := range begin {
		if err != nil {
			b.t.Fatalf("browsertest: clicking %s started no download: %v", sel, err)
		}
		guid, name, url = ev.GUID, ev.SuggestedFilename, ev.URL
		break
	}
	for ev, err := range progress {
		if err != nil {
			b.t.Fatalf("browsertest: download %s (%s): %v", name, sel, err)
		}
		if ev.GUID != guid {
			continue
		}
		if ev.State == browser.DownloadProgressStateCanceled {
			b.t.Fatalf("browsertest: download %s (%s) canceled", name, sel)
		}
		if ev.State == browser.DownloadProgressStateCompleted {
			break
		}
	}
	data, err := os.ReadFile(filepath.Join(b.downloads, guid))
	if err != nil {
		b.t.Fatalf("browsertest: download %s: %v", name, err)
	}
	// A download's response is not the page's: count it here.
	b.mu.Lock()
	id := network.RequestID("download-" + guid)
	b.methods[id] = "GET"
	b.responses = append(b.responses, response{id: id, url: url, status: 200})
	b.mu.Unlock()
	return name, data
}

// Screenshot writes a PNG of the whole page to path.
func (b *Browser) Screenshot(path string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, Timeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("browsertest: screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// ScreenshotsEnv names the directory Shot writes into; unset, Shot does
// nothing (so a test run does not rewrite committed images).
const ScreenshotsEnv = "EDGESEAL_SCREENSHOTS"

// Shot writes a PNG of the whole page as $EDGESEAL_SCREENSHOTS/name when
// that variable is set.
func (b *Browser) Shot(name string) {
	b.t.Helper()
	dir := os.Getenv(ScreenshotsEnv)
	if dir == "" {
		return
	}
	b.Screenshot(filepath.Join(dir, name))
}
