package catalog

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/egressconf/egressconf/pkg/probe"
)

var updateArgv = flag.Bool("update-argv", false, "rewrite testdata/builtin-curl-argv.golden")

// TestBuiltinCurlArgvPinned pins, for every curl line of the built-in catalog, the request the
// offline backend predicts from (the parsed Request) and the argv the live backend runs (as
// exec.go and marker.go build it: the run's timeouts, the probe marker, a local port). A change to
// the curl parser must leave the catalog's requests byte for byte as they were.
func TestBuiltinCurlArgvPinned(t *testing.T) {
	c, err := LoadPaths("../../suites/catalog")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	seen := map[string]bool{}
	for _, s := range c.Scenarios {
		for _, st := range s.Spec.Steps {
			for _, e := range st.Expect {
				for _, ch := range e.Checks {
					if ch.Request == nil || seen[ch.Curl] {
						continue
					}
					seen[ch.Curl] = true
					req, _ := json.Marshal(ch.Request)
					o := probe.Options{ConnectTimeout: 5 * time.Second, MaxTime: 10 * time.Second, LocalPort: 20001}
					if ch.Request.Scheme == "http" {
						o.Headers = []string{"x-egressconf-probe: c1"}
					}
					argv, _ := json.Marshal(append([]string{"curl"}, probe.Args(ch.Request, o)...))
					fmt.Fprintf(&b, "%s\n  request %s\n  argv    %s\n", ch.Curl, req, argv)
				}
			}
		}
	}
	if len(seen) == 0 {
		t.Fatal("no curl line in the built-in catalog")
	}
	const golden = "testdata/builtin-curl-argv.golden"
	if *updateArgv {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Errorf("the built-in catalog's curl requests changed:\n--- got\n%s\n--- want\n%s", b.String(), want)
	}
}
