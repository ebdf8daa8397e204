package live

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/egressconf/egressconf/pkg/accesslog"
	"github.com/egressconf/egressconf/pkg/catalog"
	"github.com/egressconf/egressconf/pkg/outcome"
)

// AccessLog implements backend.Backend: the access-log entries the workload's proxy (its sidecar,
// or every pod of a gateway) wrote to stdout since the given time, read from the pods' logs.
func (b *Backend) AccessLog(ctx context.Context, w catalog.Workload, since time.Time) ([]outcome.LogEntry, error) {
	if b.xds != nil {
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
		lines, err := b.PodLog(ctx, p.Namespace, p.Name, ProxyContainer, since)
		if err != nil {
			return nil, err
		}
		for _, l := range lines {
			e, ok, err := accesslog.ParseLine(l)
			if err != nil {
				return nil, fmt.Errorf("access log of %s/%s: %w", p.Namespace, p.Name, err)
			}
			if ok {
				out = append(out, e)
			}
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
func (b *Backend) PodLog(ctx context.Context, ns, pod, container string, since time.Time) ([]string, error) {
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
