package live

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func daemonSet(ns, name string, ready, desired int32) *appsv1.DaemonSet {
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Status:     appsv1.DaemonSetStatus{NumberReady: ready, DesiredNumberScheduled: desired},
	}
}

// --network-policy auto names the enforcer it found (with its DaemonSet), in any of the namespaces
// the CNIs install into; an agent without a ready pod, or a DaemonSet of that name elsewhere, is
// not an enforcer; without one the record says what was looked for; the flag wins over detection.
func TestDetectNetworkPolicy(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		name     string
		flag     *bool
		objs     []runtime.Object
		enforced bool
		how      string
	}{
		{name: "bridge CNI only", objs: []runtime.Object{daemonSet("kube-system", "kube-proxy", 1, 1)},
			how: "auto: no NetworkPolicy-enforcing CNI found (no DaemonSet with a ready pod among kube-system/kindnet, kube-system/calico-node, calico-system/calico-node, kube-system/canal, kube-system/cilium, kube-system/antrea-agent, kube-system/weave-net, kube-system/kube-router)"},
		{name: "kube-router", objs: []runtime.Object{daemonSet("kube-system", "kube-router", 1, 1)},
			enforced: true, how: "auto: enforcing CNI kube-router (DaemonSet kube-system/kube-router, 1/1 ready)"},
		{name: "kindnet", objs: []runtime.Object{daemonSet("kube-system", "kindnet", 3, 3)},
			enforced: true, how: "auto: enforcing CNI kindnet (DaemonSet kube-system/kindnet, 3/3 ready)"},
		{name: "calico operator", objs: []runtime.Object{daemonSet("calico-system", "calico-node", 2, 3)},
			enforced: true, how: "auto: enforcing CNI calico (DaemonSet calico-system/calico-node, 2/3 ready)"},
		{name: "cilium", objs: []runtime.Object{daemonSet("kube-system", "cilium", 1, 1)},
			enforced: true, how: "auto: enforcing CNI cilium (DaemonSet kube-system/cilium, 1/1 ready)"},
		{name: "two", objs: []runtime.Object{daemonSet("kube-system", "kube-router", 1, 1), daemonSet("kube-system", "kindnet", 1, 1)},
			enforced: true, how: "auto: enforcing CNI kindnet (DaemonSet kube-system/kindnet, 1/1 ready), kube-router (DaemonSet kube-system/kube-router, 1/1 ready)"},
		{name: "not ready", objs: []runtime.Object{daemonSet("kube-system", "kube-router", 0, 1)},
			how: "auto: no NetworkPolicy-enforcing CNI found"},
		{name: "elsewhere", objs: []runtime.Object{daemonSet("default", "cilium", 1, 1)},
			how: "auto: no NetworkPolicy-enforcing CNI found"},
		{name: "flag no", flag: &no, objs: []runtime.Object{daemonSet("kube-system", "kube-router", 1, 1)}, how: "--network-policy no"},
		{name: "flag yes", flag: &yes, enforced: true, how: "--network-policy yes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testBackend(t, nil, tc.objs...)
			b.o.NetworkPolicy = tc.flag
			enforced, how, err := b.detectNetworkPolicy(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if enforced != tc.enforced || !strings.HasPrefix(how, tc.how) {
				t.Errorf("got %v %q, want %v %q", enforced, how, tc.enforced, tc.how)
			}
		})
	}
}
