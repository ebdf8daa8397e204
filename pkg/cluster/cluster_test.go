package cluster

import (
	"bytes"
	"testing"
)

func TestLoggerKeepsResultsAndWarnings(t *testing.T) {
	var buf bytes.Buffer
	l := &logger{w: &buf}
	l.V(0).Info(" • Preparing nodes 📦   ...")
	l.V(0).Info(" ✓ Preparing nodes 📦 ")
	l.V(1).Info("debug detail")
	l.Warn("cgroup v1 is deprecated")
	l.Errorf("failed: %d", 1)
	want := "   kind:  ✓ Preparing nodes 📦\n   kind: WARN: cgroup v1 is deprecated\n   kind: ERROR: failed: 1\n"
	if buf.String() != want {
		t.Errorf("logged %q, want %q", buf.String(), want)
	}
}

func TestContext(t *testing.T) {
	if got := (&Cluster{Name: "egressconf"}).Context(); got != "kind-egressconf" {
		t.Errorf("context %q", got)
	}
}
