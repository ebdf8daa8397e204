package live

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/egressconf/egressconf/pkg/accesslog"
	"github.com/egressconf/egressconf/pkg/catalog"
	"github.com/egressconf/egressconf/pkg/outcome"
)

// AccessLog implements backend.Backend: the access-log entries the workload's proxy (its sidecar,
// or every pod of a gateway) wrote to stdout since the given time, read from the pods' logs.
func (b *Backend) AccessLog(ctx context.Context, w catalog.Workload, since time.Time) (_ []outcome.LogEntry, err error) {
	defer explain(&err)
	if b.predictOnly() {
		return b.xdsAccessLog(w, since), nil
	}
	var pods []*corev1.Pod
	if w.Gateway {
		g := b.gateways[w.Name]
		if g == nil || !g.present {
			return nil, fmt.Errorf("egress gateway %s is not installed", w.Ref())
		}
		var err error
		if pods, err = b.gatewayPods(ctx, g); err != nil {
			return nil, err
		}
	} else {
		if !w.HasSidecar() {
			return nil, fmt.Errorf("%s has no proxy, so no access log", w.Ref())
		}
		p, err := b.workloadPod(ctx, w)
		if err != nil {
			return nil, err
		}
		pods = []*corev1.Pod{p}
	}
	var out []outcome.LogEntry
	for _, p := range pods {
		entries, err := b.proxyEntries(ctx, p.Namespace, p.Name, since)
		if err != nil {
			return nil, err
		}
		out = append(out, entries...)
	}
	probes := b.marks.since(since)
	if !w.Gateway {
		markEntries(out, clientAddresses(probes))
		return out, nil
	}
	// A gateway's entry of a request without the marker header is tied to its probe through the
	// probing sidecar's entry of the same request.
	hops := map[string]string{}
	read := map[string]bool{}
	for _, p := range probes {
		if read[p.pod] || !p.sidecar {
			continue // a pod without a sidecar reaches the gateway only by its own address
		}
		read[p.pod] = true
		ns, name, _ := strings.Cut(p.pod, "/")
		entries, err := b.proxyEntries(ctx, ns, name, since)
		if apierrors.IsNotFound(err) {
			continue // the probing pod is gone (removed by a later step): nothing to tie
		}
		if err != nil {
			return nil, err
		}
		markEntries(entries, clientAddresses(probes))
		for a, m := range sidecarHops(entries) {
			hops[a] = m
		}
	}
	markEntries(out, hops)
	return out, nil
}

// proxyEntries reads the access-log entries a pod's proxy wrote since a time.
func (b *Backend) proxyEntries(ctx context.Context, ns, pod string, since time.Time) ([]outcome.LogEntry, error) {
	lines, err := b.PodLog(ctx, ns, pod, ProxyContainer, since)
	if err != nil {
		return nil, err
	}
	var out []outcome.LogEntry
	for _, l := range lines {
		e, ok, err := accesslog.ParseLine(l)
		if err != nil {
			return nil, fmt.Errorf("access log of %s/%s: %w", ns, pod, err)
		}
		if ok {
			out = append(out, e)
		}
	}
	return out, nil
}

// gatewayPods lists the gateway's running pods now (a pod may have been replaced since detect).
func (b *Backend) gatewayPods(ctx context.Context, g *gatewayState) ([]*corev1.Pod, error) {
	list, err := b.cs.CoreV1().Pods(g.gw.Namespace).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(g.gw.Labels).String()})
	if err != nil {
		return nil, err
	}
	var out []*corev1.Pod
	for i := range list.Items {
		if p := &list.Items[i]; p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("egress gateway %s has no running pod", g.gw.Ref())
	}
	return out, nil
}

// PodLog returns the container's log lines written at or after since. The kubelet's timestamps
// (RFC 3339, nanoseconds) decide, so lines written in the second before since are left out too.
func (b *Backend) PodLog(ctx context.Context, ns, pod, container string, since time.Time) (_ []string, err error) {
	defer explain(&err)
	opts := &corev1.PodLogOptions{Container: container, Timestamps: true}
	if !since.IsZero() {
		opts.SinceTime = &metav1.Time{Time: since.Add(-time.Second)}
	}
	rc, err := b.cs.CoreV1().Pods(ns).GetLogs(pod, opts).Stream(ctx)
	if err != nil {
		return nil, fmt.Errorf("logs of %s/%s container %s: %w", ns, pod, container, err)
	}
	defer rc.Close()
	return readTimestamped(rc, since)
}

// readTimestamped reads "TIMESTAMP line" records and keeps the lines at or after since.
func readTimestamped(r io.Reader, since time.Time) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		ts, line, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			continue
		}
		if !since.IsZero() && t.Before(since) {
			continue
		}
		out = append(out, line)
	}
	return out, sc.Err()
}
