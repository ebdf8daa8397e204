package sim_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/egressconf/egressconf/pkg/backend/sim"
	"github.com/egressconf/egressconf/pkg/catalog"
	"github.com/egressconf/egressconf/pkg/report"
)

// TestFixturesCatalog runs testdata/fixtures offline: sleep calls the in-mesh httpbin fixture
// (through both sidecars, and without a sidecar from a namespace with injection: false) and gets
// httpbin's answer naming the request's host; an AuthorizationPolicy selecting httpbin by a custom
// label admits only the client's custom ServiceAccount; a Sidecar selecting a client by a custom
// label takes httpbin out of its registry.
func TestFixturesCatalog(t *testing.T) {
	c, err := catalog.LoadPaths("testdata/fixtures")
	if err != nil {
		t.Fatal(err)
	}
	if err := catalog.Validate(c, catalog.ValidateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The same over ADS: the inbound configuration a proxy subscribes to must give the same answers.
	for name, b := range map[string]*sim.Backend{"generated": sim.New(), "ads": sim.New(sim.WithADS())} {
		got := runAll(t, b, c.Scenarios...)
		ids := c.IDs()
		if len(got) != len(ids) {
			t.Fatalf("%s: %d results for %d IDs", name, len(got), len(ids))
		}
		for _, id := range ids {
			if res := got[id]; res.Verdict != report.Pass {
				t.Errorf("%s: %s: %s: %s", name, id, res.Verdict, res.Message)
			}
		}
	}
}

// TestUninjectedNamespaceHasNoProxy: a workload of a namespace with injection: false gets no
// proxy (no xDS is generated for it), and a log check on it is refused as for sidecar: false.
func TestUninjectedNamespaceHasNoProxy(t *testing.T) {
	c, err := catalog.LoadPaths("testdata/fixtures")
	if err != nil {
		t.Fatal(err)
	}
	s := c.Scenarios[0]
	b := sim.New()
	ctx := context.Background()
	if err := b.Setup(ctx, s); err != nil {
		t.Fatal(err)
	}
	defer b.Teardown(ctx, s)
	x, err := b.XDS()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := x["sleep@plain"]; ok {
		t.Error("sleep@plain (namespace plain, injection: false) has a proxy")
	}
	for _, ref := range []string{"sleep@demo", "httpbin@demo"} {
		if _, ok := x[ref]; !ok {
			t.Errorf("%s has no proxy", ref)
		}
	}
	w, _ := s.Workload("sleep@plain")
	if _, err := b.AccessLog(ctx, w, time.Time{}); err == nil || !strings.Contains(err.Error(), "no proxy") {
		t.Errorf("access log of sleep@plain: %v, want no proxy", err)
	}
}
