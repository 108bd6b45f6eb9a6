package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chrome is Debian's headless Chromium driven by a test, keeping
// screenshots in XAVYO_SCREENSHOTS (else a temporary directory). Without
// chromium the test is skipped, or fails on CI.
type chrome struct {
	t     *testing.T
	ctx   context.Context
	shots string
	taken []string
}

func newChrome(t *testing.T, width, height int) *chrome {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is required on CI")
		}
		t.Skip("no chromium here")
	}
	shots := os.Getenv("XAVYO_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.Flag("disable-gpu", true), chromedp.WindowSize(width, height))...)
	ctx, cancel := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	return &chrome{t: t, ctx: ctx, shots: shots}
}

// step runs one action or fails the test, saying what it was.
func (b *chrome) step(what string, a chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, a); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// location is the page's URL.
func (b *chrome) location() string {
	b.t.Helper()
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		b.t.Fatal(err)
	}
	return loc
}

// text is the page's text.
func (b *chrome) text() string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS("body")))
	if err != nil {
		b.t.Fatal(err)
	}
	return s
}

// shot keeps a screenshot of the page under name.
func (b *chrome) shot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o600); err != nil {
		b.t.Fatal(err)
	}
	b.taken = append(b.taken, name)
}

// checkShots fails the test unless every screenshot is there and not
// empty, and says where they are.
func (b *chrome) checkShots(names ...string) {
	b.t.Helper()
	for _, name := range names {
		if st, err := os.Stat(filepath.Join(b.shots, name+".png")); err != nil || st.Size() < 1000 {
			b.t.Errorf("screenshot %s: %v", name, err)
		}
	}
	b.t.Logf("screenshots in %s", b.shots)
}
