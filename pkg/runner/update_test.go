package runner_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/egressconf/egressconf/pkg/backend/sim"
	"github.com/egressconf/egressconf/pkg/catalog"
	"github.com/egressconf/egressconf/pkg/istiovalidate"
	"github.com/egressconf/egressconf/pkg/report"
	"github.com/egressconf/egressconf/pkg/runner"
)

// TestLaterFileUpdatesAnObject runs testdata/update on the offline backend: validate accepts a
// later file that updates an object an earlier file created, the later content is what Istio
// serves, deleting the earlier file deletes the object, and deleting the later file afterwards is
// not an error (docs/catalog.md, "Applying and deleting").
func TestLaterFileUpdatesAnObject(t *testing.T) {
	c, err := catalog.LoadPaths("testdata/update")
	if err != nil {
		t.Fatal(err)
	}
	if err := catalog.Validate(c, catalog.ValidateOptions{Objects: istiovalidate.Object}); err != nil {
		t.Fatalf("validate: %v", err)
	}
	var out bytes.Buffer
	r := runner.New(runner.Options{Backend: sim.New(), Progress: &out})
	if err := r.RunScenario(context.Background(), c.Scenarios[0]); err != nil {
		t.Fatal(err)
	}
	got := map[string]report.Result{}
	for _, res := range r.Results() {
		got[res.ID] = res
	}
	for _, id := range c.IDs() {
		if res, ok := got[id]; !ok || res.Verdict != report.Pass {
			t.Errorf("%s: %s: %s", id, res.Verdict, res.Message)
		}
	}
	if t.Failed() {
		t.Log(out.String())
	}
}
