package reportbrowser

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/egressconf/egressconf/pkg/adapt"
	"github.com/egressconf/egressconf/pkg/backend/sim"
	"github.com/egressconf/egressconf/pkg/conformance"
	"github.com/egressconf/egressconf/pkg/report"
)

// chromium finds the browser; without one the test skips, unless EGRESSCONF_BROWSER_TEST=1 says
// this run is the browser test (make report-test, CI), where a missing browser is a failure.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("EGRESSCONF_BROWSER_TEST") == "1" {
		t.Fatal("EGRESSCONF_BROWSER_TEST=1 but no chromium binary on PATH (apt-get install chromium)")
	}
	t.Skip("no chromium binary on PATH (apt-get install chromium); EGRESSCONF_BROWSER_TEST=1 makes this a failure")
	return ""
}

// headless runs Chromium on the page with args; it waits for Chromium to exit, bounded by a
// deadline rather than a sleep (it is slow on a loaded machine).
func headless(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

type renderedRow struct {
	words  []string
	hidden bool
	// open: a details element of the row is expanded
	open bool
}

// rendered reads the truth table out of a DOM Chromium dumped: per ID, the verdict words of its
// cells and whether the filter hid it; and the body's data-filter (set only by the page's JS).
func rendered(t *testing.T, dom []byte) (map[string]renderedRow, string, string) {
	t.Helper()
	doc, err := html.Parse(bytes.NewReader(dom))
	if err != nil {
		t.Fatalf("the dumped DOM does not parse: %v", err)
	}
	rows := map[string]renderedRow{}
	filter, shown := "", ""
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			switch {
			case n.Data == "body":
				filter = attr(n, "data-filter")
			case attr(n, "id") == "shown":
				shown = text(n)
			case n.Data == "tr" && attr(n, "data-id") != "":
				r := renderedRow{hidden: hasAttr(n, "hidden")}
				r.open = findOpen(n)
				for c := n.FirstChild; c != nil; c = c.NextSibling {
					if c.Type == html.ElementNode && c.Data == "td" && hasAttr(c, "data-verdict") {
						r.words = append(r.words, strings.TrimSpace(text(find(c, "v"))))
					}
				}
				rows[attr(n, "data-id")] = r
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return rows, filter, shown
}

func findOpen(n *html.Node) bool {
	if n.Type == html.ElementNode && n.Data == "details" && hasAttr(n, "open") {
		return true
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if findOpen(c) {
			return true
		}
	}
	return false
}

func attr(n *html.Node, k string) string {
	for _, a := range n.Attr {
		if a.Key == k {
			return a.Val
		}
	}
	return ""
}

func hasAttr(n *html.Node, k string) bool {
	for _, a := range n.Attr {
		if a.Key == k {
			return true
		}
	}
	return false
}

// find returns the first element below n with CSS class c, or n itself when there is none (so its
// text shows in the failure).
func find(n *html.Node, c string) *html.Node {
	var found *html.Node
	var walk func(*html.Node)
	walk = func(x *html.Node) {
		if found == nil && x.Type == html.ElementNode && strings.Contains(" "+attr(x, "class")+" ", " "+c+" ") {
			found = x
		}
		for y := x.FirstChild; y != nil && found == nil; y = y.NextSibling {
			walk(y)
		}
	}
	walk(n)
	if found == nil {
		return n
	}
	return found
}

func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(x *html.Node) {
		if x.Type == html.TextNode {
			b.WriteString(x.Data)
		}
		for y := x.FirstChild; y != nil; y = y.NextSibling {
			walk(y)
		}
	}
	walk(n)
	return b.String()
}

// TestReportInBrowser runs G1 on the offline backend in process, loads the run's report.html in
// headless Chromium, and checks what a person would see: every ID of results.json with its verdict
// word after the page's JS ran, the verdict filter taken from the address, and a screenshot
// (EGRESSCONF_SCREENSHOT_DIR, default a temporary directory).
func TestReportInBrowser(t *testing.T) {
	bin := chromium(t)
	reports := t.TempDir()
	_, dir, err := conformance.Run(t, conformance.Options{
		Backend: sim.New(), ReportsDir: reports, RunID: "browser", Groups: []string{"G1"},
		Transform: adapt.New(adapt.Options{TranslateASM: true, HermeticTrust: true}),
	})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, report.ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	var run report.Run
	if err := json.Unmarshal(data, &run); err != nil {
		t.Fatalf("%s: %v", filepath.Join(dir, report.ResultsFile), err)
	}
	if len(run.Results) == 0 {
		t.Fatalf("%s has no results", filepath.Join(dir, report.ResultsFile))
	}
	page := filepath.Join(dir, report.HTMLFile)
	url := "file://" + page

	t.Run("every ID with its verdict", func(t *testing.T) {
		rows, filter, shown := rendered(t, headless(t, bin, "--dump-dom", url))
		if filter != "group=&verdict=&class=" {
			t.Errorf("body data-filter %q: the page's script did not run", filter)
		}
		if want := len(run.Results); shown != strconv.Itoa(want)+" of "+strconv.Itoa(want)+" IDs shown" {
			t.Errorf("shown %q", shown)
		}
		if len(rows) != len(run.Results) {
			t.Errorf("%d rows rendered, results.json has %d", len(rows), len(run.Results))
		}
		for id, r := range rows {
			if r.open {
				t.Errorf("%s is expanded without open=", id)
			}
		}
		for _, r := range run.Results {
			got, ok := rows[r.ID]
			if want := report.VerdictWord(&r); !ok || len(got.words) != 1 || got.words[0] != want || got.hidden {
				t.Errorf("%s: rendered %+v (present %v), results.json says %s", r.ID, got, ok, want)
			}
		}
	})

	t.Run("verdict filter from the address", func(t *testing.T) {
		want := map[string]bool{}
		for _, r := range run.Results {
			if r.Verdict == report.Skip {
				want[r.ID] = true
			}
		}
		if len(want) == 0 || len(want) == len(run.Results) {
			t.Fatalf("G1 offline should have some skips and some not: %d of %d", len(want), len(run.Results))
		}
		// open= expands one shown row's evidence; the address is the only way in without a click.
		var open string
		for id := range want {
			open = id
		}
		rows, filter, shown := rendered(t, headless(t, bin, "--dump-dom", url+"#group=G1&verdict=skip&open="+open))
		if filter != "group=G1&verdict=skip&class=" {
			t.Errorf("body data-filter %q", filter)
		}
		if exp := strconv.Itoa(len(want)) + " of " + strconv.Itoa(len(run.Results)) + " IDs shown"; shown != exp {
			t.Errorf("shown %q, want %q", shown, exp)
		}
		for _, r := range run.Results {
			if rows[r.ID].hidden == want[r.ID] {
				t.Errorf("%s (%s): hidden=%v under verdict=skip", r.ID, r.Verdict, rows[r.ID].hidden)
			}
			if rows[r.ID].open != (r.ID == open) {
				t.Errorf("%s: expanded=%v with open=%s", r.ID, rows[r.ID].open, open)
			}
		}
	})

	t.Run("screenshot", func(t *testing.T) {
		out := os.Getenv("EGRESSCONF_SCREENSHOT_DIR")
		if out == "" {
			out = t.TempDir()
		}
		if err := os.MkdirAll(out, 0o755); err != nil {
			t.Fatal(err)
		}
		shot, err := filepath.Abs(filepath.Join(out, "report.png"))
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(shot) // a stale one must not pass for this run's
		headless(t, bin, "--screenshot="+shot, "--window-size=1400,1000", "--hide-scrollbars", url)
		f, err := os.Open(shot)
		if err != nil {
			t.Fatalf("no screenshot: %v", err)
		}
		defer f.Close()
		img, err := png.Decode(f)
		if err != nil {
			t.Fatalf("%s: %v", shot, err)
		}
		if b := img.Bounds(); b.Dx() != 1400 || b.Dy() != 1000 {
			t.Errorf("%s is %v, want 1400x1000", shot, b)
		}
		t.Logf("screenshot: %s", shot)
	})
}
