package xdsprobe

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

// IstiodXDSPort is istiod's plaintext xDS port.
const IstiodXDSPort = 15010

// ForwardIstiod port-forwards a local port to a ready istiod pod's plaintext xDS port, as
// `kubectl port-forward` does, and returns the local address and a stop function.
func ForwardIstiod(ctx context.Context, cfg *rest.Config, cs kubernetes.Interface, namespace string) (string, func(), error) {
	pods, err := cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=istiod"})
	if err != nil {
		return "", nil, fmt.Errorf("finding istiod in %s: %w", namespace, err)
	}
	var pod *corev1.Pod
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			pod = p
			break
		}
	}
	if pod == nil {
		return "", nil, fmt.Errorf("no running istiod pod (label app=istiod) in namespace %s", namespace)
	}
	return Forward(cfg, pod.Namespace, pod.Name, IstiodXDSPort)
}

// Forward port-forwards a local port on 127.0.0.1 to a pod's port.
func Forward(cfg *rest.Config, namespace, pod string, port int) (string, func(), error) {
	transport, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		return "", nil, err
	}
	u, err := url.Parse(strings.TrimSuffix(cfg.Host, "/") + fmt.Sprintf("/api/v1/namespaces/%s/pods/%s/portforward", namespace, pod))
	if err != nil {
		return "", nil, err
	}
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)
	stop, ready := make(chan struct{}), make(chan struct{})
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", port)}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		return "", nil, err
	}
	errc := make(chan error, 1)
	go func() { errc <- fw.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-errc:
		return "", nil, fmt.Errorf("port-forward to %s/%s:%d: %w", namespace, pod, port, err)
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) == 0 {
		close(stop)
		return "", nil, fmt.Errorf("port-forward to %s/%s:%d: no local port: %v", namespace, pod, port, err)
	}
	var once bool
	return fmt.Sprintf("127.0.0.1:%d", ports[0].Local), func() {
		if !once {
			once = true
			close(stop)
		}
	}, nil
}
