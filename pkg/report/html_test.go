package report

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/egressconf/egressconf/pkg/backend"
	"github.com/egressconf/egressconf/pkg/catalog"
)

// parseHTML parses the page and returns, per row ID, the verdict words of its cells and the row node.
func parseHTML(t *testing.T, page []byte) (map[string][]string, map[string]*html.Node, *html.Node) {
	t.Helper()
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		t.Fatalf("the page does not parse: %v", err)
	}
	words := map[string][]string{}
	rows := map[string]*html.Node{}
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "tr" && attr(n, "data-id") != "" {
			id := attr(n, "data-id")
			rows[id] = n
			for c := n.FirstChild; c != nil; c = c.NextSibling {
				if c.Type == html.ElementNode && c.Data == "td" && attr(c, "data-verdict") != "" {
					if v := find(c, func(x *html.Node) bool { return hasClass(x, "v") }); v != nil {
						words[id] = append(words[id], text(v))
					}
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return words, rows, doc
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func hasClass(n *html.Node, c string) bool {
	return n.Type == html.ElementNode && strings.Contains(" "+attr(n, "class")+" ", " "+c+" ")
}

func find(n *html.Node, ok func(*html.Node) bool) *html.Node {
	if ok(n) {
		return n
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if f := find(c, ok); f != nil {
			return f
		}
	}
	return nil
}

func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}

// TestHTMLRun: report.html of a run is written by WriteAll beside summary.md, parses, and has every
// ID with its verdict word (NOT RUN for an ID that did not run), the source quote and the checks.
func TestHTMLRun(t *testing.T) {
	run := sampleRun()
	run.Results[0].Source = &catalog.Citation{Doc: "asm-authz-deny-namespace-egress.txt", Section: "Step 3", Says: "A 301 response confirms"}
	run.Results[0].Checks = []CheckResult{{Description: "probe", Expected: "301", Observed: "301", Verdict: Pass, Attempts: 1, Probes: []string{"p-1"}}}
	run.Results = append(run.Results, Result{ID: "ETP-BASE-02", Group: "G2", Verdict: Error, NotRun: true, Message: "the run was interrupted before it"})
	dir := t.TempDir()
	if _, err := WriteAll(dir, run); err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(filepath.Join(dir, HTMLFile))
	if err != nil {
		t.Fatal(err)
	}
	words, rows, doc := parseHTML(t, page)
	want := map[string]string{"DENYNS-01": "PASS", "DENYNS-02": "FAIL", "DENYNS-05": "SKIP", "ETP-BASE-01": "ERROR", "ETP-BASE-02": "NOT RUN"}
	for _, r := range run.Results {
		if got := words[r.ID]; len(got) != 1 || got[0] != want[r.ID] {
			t.Errorf("%s: cells %q, want [%s]", r.ID, got, want[r.ID])
		}
	}
	if len(rows) != len(run.Results) {
		t.Errorf("%d rows for %d results", len(rows), len(run.Results))
	}
	row := text(rows["DENYNS-01"])
	for _, w := range []string{"A 301 response confirms", "asm-authz-deny-namespace-egress.txt", "Step 3", "p-1"} {
		if !strings.Contains(row, w) {
			t.Errorf("row DENYNS-01 lacks %q", w)
		}
	}
	if a := find(rows["DENYNS-02"], func(n *html.Node) bool { return n.Data == "a" }); a == nil || attr(a, "href") != "diagnostics/DENYNS-02/" {
		t.Errorf("DENYNS-02's diagnostics link: %v", a)
	}
	title := find(doc, func(n *html.Node) bool { return n.Data == "title" })
	if title == nil || text(title) != "egressconf run r1: FAILED" {
		t.Errorf("title %v", title)
	}
	// Self-contained: no element loads anything, and the CSS imports nothing.
	if n := find(doc, func(n *html.Node) bool {
		switch {
		case n.Type != html.ElementNode:
			return false
		case n.Data == "link" || n.Data == "img" || n.Data == "iframe" || attr(n, "src") != "":
			return true
		}
		h := attr(n, "href")
		return strings.Contains(h, "//")
	}); n != nil {
		t.Errorf("the page loads something: <%s %v>", n.Data, n.Attr)
	}
	for _, bad := range []string{"@import", "url(", "@font-face"} {
		if bytes.Contains(page, []byte(bad)) {
			t.Errorf("page contains %q: it must load nothing", bad)
		}
	}
	// A run's page has no class filter: classes need two runs.
	if find(doc, func(n *html.Node) bool { return attr(n, "id") == "f-class" }) != nil {
		t.Error("a single run's page has a class filter")
	}
}

// TestHTMLEscapesHostileStrings: catalog text, observations and run IDs are data, never markup.
func TestHTMLEscapesHostileStrings(t *testing.T) {
	hostile := `</script><script>alert(1)</script><img src=x onerror=alert(2)>"'&`
	run := sampleRun()
	run.ID = hostile
	r := &run.Results[0]
	r.Observed, r.Message, r.Request, r.From, r.Expected, r.Group = hostile, hostile, hostile, hostile, hostile, hostile
	r.Source = &catalog.Citation{Doc: hostile, Says: hostile}
	r.Checks = []CheckResult{{Description: hostile, Observed: hostile, Probes: []string{hostile}}}
	other := sampleRun()
	other.ID = "b" + hostile
	other.Backend.Oracle = backend.OracleLiveDataPlane
	var b bytes.Buffer
	if err := WriteHTML(&b, NewDifferential(run, other)); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	if strings.Contains(page, "<script>alert") || strings.Contains(page, "<img") {
		t.Fatalf("a hostile string reached the page unescaped")
	}
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	// Exactly the page's own script and no img element; the hostile text is there as text.
	scripts := 0
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			switch n.Data {
			case "script":
				scripts++
			case "img":
				t.Error("an img element from a hostile string")
			}
			for _, a := range n.Attr {
				if strings.HasPrefix(a.Key, "on") {
					t.Errorf("an event handler attribute %s=%q", a.Key, a.Val)
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if scripts != 1 {
		t.Errorf("%d script elements, want the page's own 1", scripts)
	}
	if !strings.Contains(text(doc), hostile) {
		t.Error("the hostile string is not shown as text")
	}
}

// TestHTMLDifferential: the compare page has one cell per run and the row's classes, and a class
// filter offering every class.
func TestHTMLDifferential(t *testing.T) {
	a := oracleRun("sim", off, "1.31", dres("X", Pass, "403"), dres("Y", Fail, "200"))
	b := oracleRun("curl", obs, "1.31", dres("X", Fail, "502"), dres("Y", Fail, "200"))
	var buf bytes.Buffer
	if err := WriteHTML(&buf, NewDifferential(a, b)); err != nil {
		t.Fatal(err)
	}
	words, rows, doc := parseHTML(t, buf.Bytes())
	if strings.Join(words["X"], ",") != "PASS,FAIL" || strings.Join(words["Y"], ",") != "FAIL,FAIL" {
		t.Errorf("cells %q", words)
	}
	if got := attr(rows["X"], "data-classes"); got != "model-gap" {
		t.Errorf("X classes %q", got)
	}
	if got := attr(rows["Y"], "data-classes"); got != "documentation-drift" {
		t.Errorf("Y classes %q", got)
	}
	sel := find(doc, func(n *html.Node) bool { return attr(n, "id") == "f-class" })
	if sel == nil {
		t.Fatal("no class filter")
	}
	for _, c := range Classes {
		if find(sel, func(n *html.Node) bool { return n.Data == "option" && attr(n, "value") == string(c) }) == nil {
			t.Errorf("class filter lacks %s", c)
		}
	}
}
