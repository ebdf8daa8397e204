package mutate

import (
	"slices"
	"strings"
	"testing"

	"github.com/egressconf/egressconf/pkg/catalog"
)

func testScenario() *catalog.Scenario {
	return &catalog.Scenario{
		Metadata: catalog.Metadata{Name: "s", Group: "T9"},
		Spec: catalog.Spec{
			MeshPolicy: "ALLOW_ANY",
			Gateways:   []string{"gw"},
			Workloads: []catalog.Workload{
				{Name: "a", Namespace: "n"},
				{Name: "late", Namespace: "n", Deferred: true},
			},
			Steps: []catalog.Step{
				{Name: "one", MeshPolicy: "ALLOW_ANY", Apply: []catalog.Resources{{File: "se.yaml"}, {File: "dr.yaml", Namespace: "x"}}},
				{Name: "two", MeshPolicy: "REGISTRY_ONLY", Deploy: []string{"late@n"}},
				{Name: "three", Delete: []catalog.Resources{{File: "se.yaml"}}, Remove: []string{"late@n"}},
			},
		},
	}
}

func TestMutationsListEveryChange(t *testing.T) {
	var got []string
	for _, m := range Mutations(testScenario()) {
		got = append(got, m.Name)
	}
	// Step one's ALLOW_ANY is the policy already in force: no change, not listed.
	want := []string{
		"setup -meshPolicy ALLOW_ANY", "setup -gateway gw",
		"s1 -apply se.yaml", "s1 -apply dr.yaml@x",
		"s2 -meshPolicy REGISTRY_ONLY", "s2 -deploy late@n",
		"s3 -delete se.yaml", "s3 -remove late@n",
	}
	if !slices.Equal(got, want) {
		t.Errorf("mutations:\n got %q\nwant %q", got, want)
	}
}

func TestMutateLeavesOutOneChangeOnACopy(t *testing.T) {
	s := testScenario()
	byName := map[string]Mutation{}
	for _, m := range Mutations(s) {
		byName[m.Name] = m
	}
	// Leaving out the apply also drops the later delete of the file, which would fail the step.
	m, err := Mutate(s, byName["s1 -apply se.yaml"])
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Spec.Steps[0].Apply) != 1 || m.Spec.Steps[0].Apply[0].Key() != "dr.yaml@x" || len(m.Spec.Steps[2].Delete) != 0 {
		t.Errorf("without se.yaml: apply %v, step 3 delete %v", m.Spec.Steps[0].Apply, m.Spec.Steps[2].Delete)
	}
	// Leaving out the deploy drops the later removal.
	m, err = Mutate(s, byName["s2 -deploy late@n"])
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Spec.Steps[1].Deploy) != 0 || len(m.Spec.Steps[2].Remove) != 0 {
		t.Errorf("without the deploy: deploy %v, remove %v", m.Spec.Steps[1].Deploy, m.Spec.Steps[2].Remove)
	}
	if m, _ = Mutate(s, byName["s2 -meshPolicy REGISTRY_ONLY"]); m.Spec.Steps[1].MeshPolicy != "" {
		t.Errorf("step 2 meshPolicy %q, want none", m.Spec.Steps[1].MeshPolicy)
	}
	if m, _ = Mutate(s, byName["setup -meshPolicy ALLOW_ANY"]); m.Spec.MeshPolicy != "REGISTRY_ONLY" {
		t.Errorf("setup meshPolicy %q, want REGISTRY_ONLY", m.Spec.MeshPolicy)
	}
	if m, _ = Mutate(s, byName["setup -gateway gw"]); len(m.Spec.Gateways) != 0 {
		t.Errorf("gateways %v, want none", m.Spec.Gateways)
	}
	if m, _ = Mutate(s, byName["s3 -delete se.yaml"]); len(m.Spec.Steps[2].Delete) != 0 || len(m.Spec.Steps[2].Remove) != 1 {
		t.Errorf("without the delete: delete %v, remove %v", m.Spec.Steps[2].Delete, m.Spec.Steps[2].Remove)
	}
	// The original is untouched by every mutation.
	orig := testScenario()
	for _, mu := range Mutations(s) {
		if _, err := Mutate(s, mu); err != nil {
			t.Fatalf("%s: %v", mu.Name, err)
		}
	}
	for i := range s.Spec.Steps {
		a, b := s.Spec.Steps[i], orig.Spec.Steps[i]
		if a.MeshPolicy != b.MeshPolicy || !slices.Equal(a.Apply, b.Apply) || !slices.Equal(a.Delete, b.Delete) || !slices.Equal(a.Deploy, b.Deploy) || !slices.Equal(a.Remove, b.Remove) {
			t.Errorf("step %d changed: %+v, was %+v", i+1, a, b)
		}
	}
	if s.Spec.MeshPolicy != "ALLOW_ANY" || !slices.Equal(s.Spec.Gateways, []string{"gw"}) {
		t.Errorf("setup changed: %s %v", s.Spec.MeshPolicy, s.Spec.Gateways)
	}
}

func TestMutateRefusesAChangeTheScenarioDoesNotMake(t *testing.T) {
	s := testScenario()
	for _, m := range []Mutation{
		{Name: "x", Kind: KindApply, Step: 0, Target: "nope.yaml"},
		{Name: "y", Kind: KindApply, Step: 7, Target: "se.yaml"},
		{Name: "z", Kind: KindGateway, Step: Setup, Target: "other"},
		{Name: "w", Kind: KindSetupMeshPolicy, Step: Setup, Target: "ALLOW_ANY"},
	} {
		if _, err := Mutate(s, m); err == nil || !strings.Contains(err.Error(), "mutation "+m.Name) {
			t.Errorf("%+v: error %v, want one naming the mutation", m, err)
		}
	}
}

func TestAffects(t *testing.T) {
	setup, step2 := Mutation{Step: Setup}, Mutation{Step: 1}
	if !setup.Affects(0) || step2.Affects(0) || !step2.Affects(1) || !step2.Affects(2) {
		t.Error("a change affects the expectations of its own step and later ones only")
	}
}
