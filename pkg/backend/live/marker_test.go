package live

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/egressconf/egressconf/pkg/outcome"
	"github.com/egressconf/egressconf/pkg/probe"
)

func TestProbeMarks(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "sleep-1"}, Status: corev1.PodStatus{PodIP: "10.244.0.7"}}
	var m probeMarks
	m1, o1 := m.next(pod, &probe.Request{Scheme: "http"}, probe.Options{})
	m2, o2 := m.next(pod, &probe.Request{Scheme: "https"}, probe.Options{})
	if m1 == m2 || o1.LocalPort == o2.LocalPort {
		t.Fatalf("markers %s %s ports %d %d: want distinct", m1, m2, o1.LocalPort, o2.LocalPort)
	}
	if len(o1.Headers) != 1 || o1.Headers[0] != outcome.ProbeHeader+": "+m1 {
		t.Errorf("plain HTTP probe headers %v: want the marker header", o1.Headers)
	}
	if len(o2.Headers) != 0 {
		t.Errorf("HTTPS probe headers %v: its headers are inside TLS, no marker header", o2.Headers)
	}
	// A probe that follows redirects gets a range of source ports that no other probe's overlaps
	// (curl binds one per hop while the first connection is still open).
	_, o3 := m.next(pod, &probe.Request{Scheme: "http", FollowRedirects: true}, probe.Options{})
	_, o4 := m.next(pod, &probe.Request{Scheme: "http"}, probe.Options{})
	if o3.LocalPorts != redirectPorts || o4.LocalPort < o3.LocalPort+o3.LocalPorts || o2.LocalPorts != 1 {
		t.Errorf("a -L probe's ports %d+%d, the next probe's %d, a plain probe's span %d: want a range of %d not reused", o3.LocalPort, o3.LocalPorts, o4.LocalPort, o2.LocalPorts, redirectPorts)
	}
	// A sidecar entry carrying the header marker, one tied by the client address, one of another
	// request; then the gateway's entries tied through the sidecar's upstream address.
	side := []outcome.LogEntry{
		{outcome.LogFieldProbe: m1, "downstream_remote_address": "10.244.0.7:1", "upstream_local_address": "10.244.0.7:40000"},
		{outcome.LogFieldProbe: "-", "downstream_remote_address": "10.244.0.7:" + itoa(o2.LocalPort), "upstream_local_address": "10.244.0.7:40001"},
		{outcome.LogFieldProbe: "-", "downstream_remote_address": "10.244.0.7:33333", "upstream_local_address": "10.244.0.7:40002"},
	}
	markEntries(side, clientAddresses(m.since(metav1.Now().Add(-3600e9))))
	if side[0][outcome.LogFieldProbe] != m1 || side[1][outcome.LogFieldProbe] != m2 {
		t.Errorf("sidecar entries %v: want %s and %s", side, m1, m2)
	}
	if _, ok := side[2][outcome.LogFieldProbe]; ok {
		t.Errorf("another request's entry was marked: %v", side[2])
	}
	gw := []outcome.LogEntry{
		{"downstream_remote_address": "10.244.0.7:40001"},
		{"downstream_remote_address": "10.244.0.7:40002"},
	}
	markEntries(gw, sidecarHops(side))
	if gw[0][outcome.LogFieldProbe] != m2 {
		t.Errorf("gateway entry %v: want %s", gw[0], m2)
	}
	if _, ok := gw[1][outcome.LogFieldProbe]; ok {
		t.Errorf("gateway entry of another request marked: %v", gw[1])
	}
}

func itoa(n int) string { return fmt.Sprint(n) }

// A probe from a pod without a sidecar is recorded as such: a gateway's log is never tied through
// a proxy log that pod does not have.
func TestProbeMarksKnowTheSidecar(t *testing.T) {
	bare := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "d", Name: "bare"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "sleep"}}}}
	injected := bare.DeepCopy()
	injected.Name = "injected"
	injected.Spec.InitContainers = []corev1.Container{{Name: ProxyContainer}}
	var m probeMarks
	m.next(bare, &probe.Request{Scheme: "http"}, probe.Options{})
	m.next(injected, &probe.Request{Scheme: "http"}, probe.Options{})
	got := m.since(time.Time{})
	if len(got) != 2 || got[0].sidecar || !got[1].sidecar {
		t.Errorf("probe records %+v: want the bare pod without and the injected one with a sidecar", got)
	}
}

func TestSyncIDIs(t *testing.T) {
	p := proxyRef{pod: "istio-egressgateway-9dc6c4cb4-6s29b", namespace: "istio-system", gateway: true}
	for id, want := range map[string]bool{
		"istio-egressgateway-9dc6c4cb4-6s29b.istio-system":                                                  true, // measured: Istio 1.31's syncz
		"router~10.244.0.9~istio-egressgateway-9dc6c4cb4-6s29b.istio-system~istio-system.svc.cluster.local": true,
		"istio-egressgateway-9dc6c4cb4-6s29b.istio-system2":                                                 false,
		"xistio-egressgateway-9dc6c4cb4-6s29b.istio-system":                                                 false,
	} {
		if got := syncIDIs(id, p); got != want {
			t.Errorf("syncIDIs(%q) = %v, want %v", id, got, want)
		}
	}
}
