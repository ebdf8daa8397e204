// Package mutate checks the catalog's checks: for every change a scenario makes (a resource file
// applied or deleted, a mesh policy switched, a workload deployed or removed, and the setup's
// starting mesh policy and gateways), it runs the scenario again with that one change left out and
// records, for every expectation the change can affect (those of its step and later), whether the
// verdict flips. An expectation that passes with and without every change before it certifies
// nothing: it is not discriminating, unless the catalog declares it holdsRegardless with a reason.
//
// Each mutation is a deep copy of the catalog.Scenario data with one change taken out, run by the
// ordinary runner on a backend the caller provides (the offline one: a mutation run is one group,
// and there are dozens per group).
package mutate

import (
	"fmt"
	"slices"

	"github.com/egressconf/egressconf/pkg/catalog"
)

// Kind is what a mutation leaves out.
type Kind string

const (
	// KindApply leaves out one resource file of a step's apply.
	KindApply Kind = "apply"
	// KindDelete leaves out one resource file of a step's delete (the objects stay).
	KindDelete Kind = "delete"
	// KindMeshPolicy leaves out a step's switch of the outbound traffic policy.
	KindMeshPolicy Kind = "meshPolicy"
	// KindDeploy leaves out a step's deploy of a deferred workload.
	KindDeploy Kind = "deploy"
	// KindRemove leaves out a step's removal of a workload.
	KindRemove Kind = "remove"
	// KindSetupMeshPolicy starts the scenario under the other outbound traffic policy than the one
	// its setup sets (the setup's switch left out on a mesh that had the other one).
	KindSetupMeshPolicy Kind = "setup-meshPolicy"
	// KindGateway starts the scenario without one of its gateways.
	KindGateway Kind = "gateway"
)

// DefaultMeshPolicy is Istio's outbound traffic policy when nothing sets one.
const DefaultMeshPolicy = "ALLOW_ANY"

// otherMeshPolicy is the outbound traffic policy that is not mode.
func otherMeshPolicy(mode string) string {
	if mode == "REGISTRY_ONLY" {
		return DefaultMeshPolicy
	}
	return "REGISTRY_ONLY"
}

// Setup is the Step of a mutation of the scenario's setup: it affects every expectation.
const Setup = -1

// Mutation is one change of a scenario left out.
type Mutation struct {
	// Name is short and unique within the scenario, e.g. "s2 -apply gateway.yaml"; the table's
	// column header.
	Name string `json:"name"`
	Kind Kind   `json:"kind"`
	// Step is the index of the step whose change is left out, or Setup.
	Step int `json:"step"`
	// StepName is the step's name ("setup" for Setup).
	StepName string `json:"stepName"`
	// Target is the resource file key, workload ref, mesh policy or gateway left out.
	Target string `json:"target"`
}

// Describe is the mutation in words, for reports.
func (m Mutation) Describe() string {
	switch m.Kind {
	case KindApply:
		return fmt.Sprintf("step %q without applying %s", m.StepName, m.Target)
	case KindDelete:
		return fmt.Sprintf("step %q without deleting %s", m.StepName, m.Target)
	case KindMeshPolicy:
		return fmt.Sprintf("step %q without switching the mesh to %s", m.StepName, m.Target)
	case KindDeploy:
		return fmt.Sprintf("step %q without deploying %s", m.StepName, m.Target)
	case KindRemove:
		return fmt.Sprintf("step %q without removing %s", m.StepName, m.Target)
	case KindSetupMeshPolicy:
		return fmt.Sprintf("setup without setting the mesh to %s: it starts under %s", otherMeshPolicy(m.Target), m.Target)
	case KindGateway:
		return fmt.Sprintf("setup without gateway %s", m.Target)
	}
	return m.Name
}

// Affects reports whether the mutation can change the expectation in step index step: a change
// is made before its own step's expectations and every later step's.
func (m Mutation) Affects(step int) bool { return m.Step == Setup || m.Step <= step }

// Mutations lists every change of s that can be left out, setup first, then the steps in order
// and, within a step, in the runner's order of actions (meshPolicy, delete, remove, deploy,
// apply). A step's meshPolicy that does not change the policy in force is no change and is not
// listed. The setup's policy is always a change: a mesh may have had the other one.
func Mutations(s *catalog.Scenario) []Mutation {
	var out []Mutation
	policy := s.Spec.MeshPolicy
	if policy == "" {
		policy = DefaultMeshPolicy
	}
	// Target is the policy the scenario then starts under.
	out = append(out, Mutation{Name: "setup -meshPolicy " + policy, Kind: KindSetupMeshPolicy, Step: Setup, StepName: "setup", Target: otherMeshPolicy(policy)})
	for _, g := range s.Spec.Gateways {
		out = append(out, Mutation{Name: "setup -gateway " + g, Kind: KindGateway, Step: Setup, StepName: "setup", Target: g})
	}
	for i, st := range s.Spec.Steps {
		add := func(k Kind, target string) {
			out = append(out, Mutation{Name: fmt.Sprintf("s%d -%s %s", i+1, k, target), Kind: k, Step: i, StepName: st.Name, Target: target})
		}
		if st.MeshPolicy != "" && st.MeshPolicy != policy {
			add(KindMeshPolicy, st.MeshPolicy)
		}
		if st.MeshPolicy != "" {
			policy = st.MeshPolicy
		}
		for _, r := range st.Delete {
			add(KindDelete, r.Key())
		}
		for _, ref := range st.Remove {
			add(KindRemove, ref)
		}
		for _, ref := range st.Deploy {
			add(KindDeploy, ref)
		}
		for _, r := range st.Apply {
			add(KindApply, r.Key())
		}
	}
	return out
}

// Mutate returns a deep copy of s (its steps and their lists; the expectations are shared and
// never written) with the change m left out. What only made sense after that change goes too: a
// later delete of a file that is then not applied, a later removal of a workload that is then not
// deployed. The original is not modified.
func Mutate(s *catalog.Scenario, m Mutation) (*catalog.Scenario, error) {
	cp := clone(s)
	found := false
	switch m.Kind {
	case KindSetupMeshPolicy:
		found = cp.Spec.MeshPolicy != m.Target
		cp.Spec.MeshPolicy = m.Target
	case KindGateway:
		n := len(cp.Spec.Gateways)
		cp.Spec.Gateways = slices.DeleteFunc(cp.Spec.Gateways, func(g string) bool { return g == m.Target })
		found = len(cp.Spec.Gateways) < n
	default:
		if m.Step < 0 || m.Step >= len(cp.Spec.Steps) {
			return nil, fmt.Errorf("mutation %s: scenario %s has no step %d", m.Name, s.Metadata.Name, m.Step+1)
		}
		st := &cp.Spec.Steps[m.Step]
		key := func(r catalog.Resources) bool { return r.Key() == m.Target }
		ref := func(x string) bool { return x == m.Target }
		switch m.Kind {
		case KindMeshPolicy:
			found = st.MeshPolicy == m.Target
			st.MeshPolicy = ""
		case KindApply:
			found = slices.ContainsFunc(st.Apply, key)
			st.Apply = slices.DeleteFunc(st.Apply, key)
		case KindDelete:
			found = slices.ContainsFunc(st.Delete, key)
			st.Delete = slices.DeleteFunc(st.Delete, key)
		case KindDeploy:
			found = slices.Contains(st.Deploy, m.Target)
			st.Deploy = slices.DeleteFunc(st.Deploy, ref)
		case KindRemove:
			found = slices.Contains(st.Remove, m.Target)
			st.Remove = slices.DeleteFunc(st.Remove, ref)
		default:
			return nil, fmt.Errorf("mutation %s: unknown kind %q", m.Name, m.Kind)
		}
	}
	if !found {
		return nil, fmt.Errorf("mutation %s: scenario %s has no such change", m.Name, s.Metadata.Name)
	}
	dropOrphans(cp)
	return cp, nil
}

// dropOrphans removes deletes of files not applied at that point and removals of workloads not
// deployed at that point: after a left-out apply or deploy they would fail the step, and the
// mutation would then measure a broken run instead of the missing change.
func dropOrphans(s *catalog.Scenario) {
	applied := map[string]bool{}
	deployed := map[string]bool{}
	for _, w := range s.Spec.Workloads {
		deployed[w.Ref()] = !w.Deferred
	}
	for i := range s.Spec.Steps {
		st := &s.Spec.Steps[i]
		st.Delete = slices.DeleteFunc(st.Delete, func(r catalog.Resources) bool { return !applied[r.Key()] })
		for _, r := range st.Delete {
			delete(applied, r.Key())
		}
		st.Remove = slices.DeleteFunc(st.Remove, func(ref string) bool { return !deployed[ref] })
		for _, ref := range st.Remove {
			deployed[ref] = false
		}
		for _, ref := range st.Deploy {
			deployed[ref] = true
		}
		for _, r := range st.Apply {
			applied[r.Key()] = true
		}
	}
}

// clone copies the scenario and every list a mutation edits. The copy keeps the original's
// files (resource files are read from the same place).
func clone(s *catalog.Scenario) *catalog.Scenario {
	cp := *s
	cp.Spec.Gateways = slices.Clone(s.Spec.Gateways)
	cp.Spec.Workloads = slices.Clone(s.Spec.Workloads)
	cp.Spec.Steps = make([]catalog.Step, len(s.Spec.Steps))
	for i, st := range s.Spec.Steps {
		st.Apply = slices.Clone(st.Apply)
		st.Delete = slices.Clone(st.Delete)
		st.Deploy = slices.Clone(st.Deploy)
		st.Remove = slices.Clone(st.Remove)
		st.Expect = slices.Clone(st.Expect)
		cp.Spec.Steps[i] = st
	}
	return &cp
}
