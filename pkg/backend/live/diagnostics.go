package live

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// diagLogLines bounds each log written into diagnostics.
const diagLogLines = 2000

// Diagnostics implements backend.Backend. Before any cleanup it writes into dir: the scenario's
// objects as they are in the cluster (applied.yaml), pods and events of the scenario's
// namespaces, istiod's log, sync status and mesh config, the egress gateways' logs, each involved
// sidecar's log, and the config dump of every involved proxy that runs Envoy (through
// pilot-agent). It keeps going past a failed part and reports them together.
func (b *Backend) Diagnostics(ctx context.Context, dir string) (err error) {
	defer explain(&err)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var errs []error
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			errs = append(errs, err)
		}
	}
	note := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	sc := b.sc
	namespaces := map[string]bool{IstioNamespace: true}
	if sc != nil {
		var applied strings.Builder
		fmt.Fprintf(&applied, "# objects of scenario %s (run %s), as they are in the cluster, in creation order\n", sc.s.Metadata.Group, b.o.RunID)
		for _, r := range sc.created {
			rc := b.dyn.Resource(r.GVR)
			var obj *unstructured.Unstructured
			var err error
			if r.Namespace != "" {
				obj, err = rc.Namespace(r.Namespace).Get(ctx, r.Name, metav1.GetOptions{})
			} else {
				obj, err = rc.Get(ctx, r.Name, metav1.GetOptions{})
			}
			if err != nil {
				fmt.Fprintf(&applied, "---\n# %s: %v\n", r, err)
				continue
			}
			unstructured.RemoveNestedField(obj.Object, "metadata", "managedFields")
			y, _ := yaml.Marshal(obj.Object)
			applied.WriteString("---\n")
			applied.Write(y)
		}
		write("applied.yaml", []byte(applied.String()))
		for _, ns := range sc.s.Spec.Namespaces {
			namespaces[ns.Name] = true
		}
		for _, st := range sc.workloads {
			namespaces[st.w.Namespace] = true
		}
		var unobs strings.Builder
		for _, w := range sc.s.Spec.Workloads {
			if why := b.Unobservable(w); why != "" {
				fmt.Fprintf(&unobs, "%s: %s\n", w.Ref(), why)
			}
		}
		if unobs.Len() > 0 {
			write("unobservable.txt", []byte(unobs.String()))
		}
		for _, name := range sc.s.Spec.Gateways {
			if g := b.gateways[name]; g != nil {
				namespaces[g.gw.Namespace] = true
			}
		}
	}
	nsList := make([]string, 0, len(namespaces))
	for ns := range namespaces {
		nsList = append(nsList, ns)
	}
	sort.Strings(nsList)
	var pods strings.Builder
	for _, ns := range nsList {
		list, err := b.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			note(err)
			continue
		}
		for _, p := range list.Items {
			fmt.Fprintf(&pods, "%s/%s %s %s\n", p.Namespace, p.Name, p.Status.Phase, containerSummary(&p))
		}
		note(b.writeEvents(ctx, filepath.Join(dir, "events-"+ns+".txt"), ns))
	}
	write("pods.txt", []byte(pods.String()))

	if ipods, err := b.istiodPods(ctx); err == nil {
		for i := range ipods {
			p := &ipods[i]
			note(b.writeLog(ctx, filepath.Join(dir, "istiod-"+p.Name+".log"), p.Namespace, p.Name, "discovery"))
			for _, d := range []struct{ path, file string }{{"/debug/syncz", "syncz"}, {"/debug/mesh", "mesh"}} {
				out, err := b.istiodDebug(ctx, p, d.path)
				note(err)
				if err == nil {
					write(d.file+"-"+p.Name+".json", out)
				}
			}
		}
	} else {
		note(err)
	}
	if cm, err := b.cs.CoreV1().ConfigMaps(IstioNamespace).Get(ctx, MeshConfigMap, metav1.GetOptions{}); err == nil {
		write("mesh-config.yaml", []byte(cm.Data[MeshKey]))
	}

	// Proxies: gateways of the scenario and the workloads' sidecars.
	var proxies []*corev1.Pod
	if sc != nil {
		for _, name := range sc.s.Spec.Gateways {
			g := b.gateways[name]
			if g == nil || !g.present {
				continue
			}
			gp, err := b.gatewayPods(ctx, g)
			note(err)
			proxies = append(proxies, gp...)
		}
		refs := make([]string, 0, len(sc.workloads))
		for ref := range sc.workloads {
			refs = append(refs, ref)
		}
		sort.Strings(refs)
		for _, ref := range refs {
			st := sc.workloads[ref]
			if !st.w.HasSidecar() {
				continue
			}
			p, err := b.workloadPod(ctx, st.w)
			note(err)
			if err == nil {
				proxies = append(proxies, p)
			}
		}
	}
	for _, p := range proxies {
		base := p.Namespace + "." + p.Name
		note(b.writeLog(ctx, filepath.Join(dir, "proxy-"+base+".log"), p.Namespace, p.Name, ProxyContainer))
		why, err := b.envoyState(ctx, p)
		if err != nil {
			note(err)
			continue
		}
		if why != "" {
			write("config_dump-"+base+".txt", []byte("no config dump: "+why+"\n"))
			continue
		}
		res, err := b.exec(ctx, p.Namespace, p.Name, ProxyContainer, []string{"pilot-agent", "request", "GET", "config_dump"})
		if err != nil {
			note(err)
			continue
		}
		write("config_dump-"+base+".json", []byte(res.Stdout))
	}
	return errors.Join(errs...)
}

func containerSummary(p *corev1.Pod) string {
	var parts []string
	for _, cs := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		s := cs.Name
		switch {
		case cs.State.Running != nil && cs.Ready:
			s += "=ready"
		case cs.State.Running != nil:
			s += "=running"
		case cs.State.Waiting != nil:
			s += "=waiting:" + cs.State.Waiting.Reason
		case cs.State.Terminated != nil:
			s += fmt.Sprintf("=terminated:%s(%d)", cs.State.Terminated.Reason, cs.State.Terminated.ExitCode)
		}
		if cs.RestartCount > 0 {
			s += fmt.Sprintf(",restarts=%d", cs.RestartCount)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

func (b *Backend) writeLog(ctx context.Context, path, ns, pod, container string) error {
	tail := int64(diagLogLines)
	data, err := b.cs.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: container, TailLines: &tail, Timestamps: true}).DoRaw(ctx)
	if err != nil {
		return fmt.Errorf("logs of %s/%s %s: %w", ns, pod, container, err)
	}
	return os.WriteFile(path, data, 0o644)
}

func (b *Backend) writeEvents(ctx context.Context, path, ns string) error {
	ev, err := b.cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	items := ev.Items
	sort.Slice(items, func(i, j int) bool { return eventTime(&items[i]).Before(eventTime(&items[j])) })
	var sb strings.Builder
	for _, e := range items {
		fmt.Fprintf(&sb, "%s %s %s/%s %s: %s\n", eventTime(&e).Format(time.RFC3339), e.Type, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, strings.TrimSpace(e.Message))
	}
	return os.WriteFile(path, []byte(sb.String()), 0o644)
}

func eventTime(e *corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}
