package standin

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/egressconf/egressconf/pkg/pki"
)

func testInCluster(t *testing.T) *InCluster {
	t.Helper()
	hosts := builtinHosts(t)
	certs, err := pki.Generate(HostNames(hosts), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &InCluster{RunID: "run-1", Certs: certs, Hosts: hosts}
}

func TestObjects(t *testing.T) {
	c := testInCluster(t)
	o, err := c.Objects()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := LoadHosts([]byte(o.HostsConfig.Data["hosts.yaml"])); err != nil || !reflect.DeepEqual(got, c.Hosts) {
		t.Errorf("the hosts ConfigMap does not hold the hosts: %v", err)
	}
	for _, obj := range o.List() {
		m := obj.(metav1.Object)
		if m.GetLabels()[LabelManagedBy] != "egressconf" || m.GetLabels()[LabelRun] != "run-1" {
			t.Errorf("%T %s labels %v", obj, m.GetName(), m.GetLabels())
		}
		if _, isNS := obj.(*corev1.Namespace); !isNS && m.GetNamespace() != Namespace {
			t.Errorf("%T %s in namespace %q", obj, m.GetName(), m.GetNamespace())
		}
	}
	if o.Namespace.Name != "egressconf-internet" || o.Namespace.Labels["istio-injection"] != "disabled" {
		t.Errorf("namespace %s labels %v", o.Namespace.Name, o.Namespace.Labels)
	}
	// The Secret is the directory cmd/standin --certs loads.
	b, err := pki.FromFiles(o.Secret.Data)
	if err != nil {
		t.Fatalf("secret does not load: %v", err)
	}
	if len(b.Leaves) != len(builtinHosts(t)) {
		t.Errorf("secret has %d leaves", len(b.Leaves))
	}

	d := o.Deployment
	pod := d.Spec.Template
	ctr := pod.Spec.Containers[0]
	if ctr.Image != DefaultImage || ctr.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("image %s %s", ctr.Image, ctr.ImagePullPolicy)
	}
	if strings.Join(ctr.Args, " ") != "--certs=/etc/egressconf/certs --hosts=/etc/egressconf/hosts/hosts.yaml" {
		t.Errorf("args %v", ctr.Args)
	}
	if ctr.VolumeMounts[0].MountPath != CertsMountPath || pod.Spec.Volumes[0].Secret.SecretName != o.Secret.Name {
		t.Errorf("certs not mounted: %+v %+v", ctr.VolumeMounts, pod.Spec.Volumes)
	}
	if pod.Labels["sidecar.istio.io/inject"] != "false" || pod.Labels[LabelRun] != "run-1" {
		t.Errorf("pod labels %v", pod.Labels)
	}
	for k, v := range d.Spec.Selector.MatchLabels {
		if pod.Labels[k] != v {
			t.Errorf("selector %s=%s does not match the pod", k, v)
		}
	}
	sc := ctr.SecurityContext
	if *sc.RunAsUser != 0 || len(sc.Capabilities.Add) != 1 || sc.Capabilities.Add[0] != "NET_BIND_SERVICE" {
		t.Errorf("security context %+v", sc)
	}

	svc := o.Service
	if svc.Name != "internet" || svc.Annotations[AnnotationIstioExportTo] != "~" {
		t.Errorf("service %s annotations %v", svc.Name, svc.Annotations)
	}
	ports := map[string]string{}
	for _, p := range svc.Spec.Ports {
		ports[fmt.Sprintf("%d/%s", p.Port, p.Protocol)] = p.TargetPort.String()
	}
	if ports["80/TCP"] != "http" || ports["443/TCP"] != "https" || ports["53/UDP"] != "53" || ports["53/TCP"] != "53" || len(ports) != 4 {
		t.Errorf("service ports %v", ports)
	}
	for k, v := range svc.Spec.Selector {
		if pod.Labels[k] != v {
			t.Errorf("service selector %s=%s does not match the pod", k, v)
		}
	}
	if got := c.ServiceFQDN(""); got != "internet.egressconf-internet.svc.cluster.local" {
		t.Errorf("ServiceFQDN = %s", got)
	}

	y, err := o.YAML()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kind: Namespace", "kind: Secret", "kind: Deployment", "kind: Service", `networking.istio.io/exportTo: "~"`} {
		if !strings.Contains(string(y), want) {
			t.Errorf("YAML lacks %q", want)
		}
	}
}

func TestObjectsCustomHostsAndErrors(t *testing.T) {
	c := testInCluster(t)
	c.Hosts = builtinHosts(t)[:2]
	c.Image = "docker.io/local/standin:1"
	c.ImagePullPolicy = corev1.PullNever
	o, err := c.Objects()
	if err != nil {
		t.Fatal(err)
	}
	if o.HostsConfig == nil {
		t.Fatal("custom hosts need the ConfigMap")
	}
	got, err := LoadHosts([]byte(o.HostsConfig.Data["hosts.yaml"]))
	if err != nil || len(got) != 2 {
		t.Fatalf("hosts.yaml: %v %v", got, err)
	}
	ctr := o.Deployment.Spec.Template.Spec.Containers[0]
	if ctr.Image != "docker.io/local/standin:1" || ctr.ImagePullPolicy != corev1.PullNever || ctr.Args[len(ctr.Args)-1] != "--hosts=/etc/egressconf/hosts/hosts.yaml" {
		t.Errorf("container %+v", ctr)
	}

	c.Hosts = append(c.Hosts, Host{Name: "new.example.com", HTTP: &Behaviour{Status: 200}, HTTPS: &Behaviour{Status: 200}})
	if _, err := c.Objects(); err == nil || !strings.Contains(err.Error(), "no certificate for host new.example.com") {
		t.Errorf("host without a leaf: %v", err)
	}
	if _, err := (&InCluster{Certs: c.Certs}).Objects(); err == nil || !strings.Contains(err.Error(), "RunID") {
		t.Errorf("no run id: %v", err)
	}
}

func TestCABundle(t *testing.T) {
	c := testInCluster(t)
	cm := c.CABundleConfigMap("demo")
	if cm.Name != "egressconf-ca" || cm.Namespace != "demo" || cm.Data["ca.crt"] != string(c.Certs.CAPEM) || cm.Labels[LabelRun] != "run-1" {
		t.Errorf("configmap %+v", cm)
	}
	cred := c.CACredentialConfigMap("istio-system")
	if cred.Name != "egressconf-standin-ca" || cred.Namespace != "istio-system" || cred.Data["ca.crt"] != string(c.Certs.CAPEM) || cred.Labels[LabelRun] != "run-1" {
		t.Errorf("CA credential %+v", cred)
	}
	if e := CABundleEnv(); e.Name != "CURL_CA_BUNDLE" || e.Value != "/etc/egressconf/ca/ca.crt" {
		t.Errorf("env %+v", e)
	}
	if v, m := CABundleVolume(), CABundleVolumeMount(); v.ConfigMap.Name != cm.Name || m.Name != v.Name || m.MountPath+"/"+CABundleKey != CABundleEnv().Value {
		t.Errorf("volume %+v mount %+v", v, m)
	}
}

func TestApplyWithFakeClientset(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	// The API server allocates the ClusterIP on create; the fake does not.
	cs.PrependReactor("create", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
		a.(k8stesting.CreateAction).GetObject().(*corev1.Service).Spec.ClusterIP = "10.96.7.7"
		return false, nil, nil
	})
	c := testInCluster(t)
	if err := c.Apply(ctx, cs); err != nil {
		t.Fatal(err)
	}
	d, _ := cs.AppsV1().Deployments(Namespace).Get(ctx, AppName, metav1.GetOptions{})
	if args := strings.Join(d.Spec.Template.Spec.Containers[0].Args, " "); !strings.Contains(args, "--dns-answer=10.96.7.7 --dns-addr=:53") {
		t.Errorf("the stand-in's resolver does not answer with the Service's ClusterIP: args %s", args)
	}

	// A second run re-applies over the first: new certificates, new run label, same ClusterIP.
	c2 := testInCluster(t)
	c2.RunID = "run-2"
	if err := c2.Apply(ctx, cs); err != nil {
		t.Fatal(err)
	}
	sec, err := cs.CoreV1().Secrets(Namespace).Get(ctx, CertsSecretName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(sec.Data["ca.crt"]) != string(c2.Certs.CAPEM) || sec.Labels[LabelRun] != "run-2" {
		t.Error("secret not updated to the second run")
	}
	svc, _ := cs.CoreV1().Services(Namespace).Get(ctx, ServiceName, metav1.GetOptions{})
	if svc.Spec.ClusterIP != "10.96.7.7" || svc.Labels[LabelRun] != "run-2" {
		t.Errorf("service after update: ip %s labels %v", svc.Spec.ClusterIP, svc.Labels)
	}
	d, _ = cs.AppsV1().Deployments(Namespace).Get(ctx, AppName, metav1.GetOptions{})
	if d.Spec.Template.Labels[LabelRun] != "run-2" {
		t.Error("deployment not updated")
	}

	if err := c2.ApplyCABundle(ctx, cs, "default", "otherns"); err != nil {
		t.Fatal(err)
	}
	if err := c2.ApplyCABundle(ctx, cs, "default"); err != nil { // idempotent
		t.Fatal(err)
	}
	if err := c2.ApplyCACredential(ctx, cs, "istio-system"); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ConfigMaps("otherns").Get(ctx, CABundleName, metav1.GetOptions{}); err != nil {
		t.Error(err)
	}
	if _, err := cs.CoreV1().ConfigMaps("istio-system").Get(ctx, CACredentialName, metav1.GetOptions{}); err != nil {
		t.Error(err)
	}

	// WaitReady: not ready until the deployment reports an available replica.
	short, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	if err := c2.WaitReady(short, cs, time.Second); err == nil || !strings.Contains(err.Error(), "available 0 of 1") {
		t.Errorf("WaitReady on a fresh deployment: %v", err)
	}
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 1, UpdatedReplicas: 1, AvailableReplicas: 1, ReadyReplicas: 1}
	if _, err := cs.AppsV1().Deployments(Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c2.WaitReady(ctx, cs, 5*time.Second); err != nil {
		t.Errorf("WaitReady: %v", err)
	}

	if err := c2.Delete(ctx, cs); err != nil {
		t.Fatal(err)
	}
	if err := c2.Delete(ctx, cs); err != nil { // already gone is fine
		t.Fatal(err)
	}
}

func TestObjectsServiceIP(t *testing.T) {
	c := testInCluster(t)
	c.ServiceIP = "fd00::7"
	if _, err := c.Objects(); err == nil || !strings.Contains(err.Error(), "not an IPv4") {
		t.Errorf("IPv6 ServiceIP: %v", err)
	}
	c.ServiceIP = "10.96.0.9"
	o, err := c.Objects()
	if err != nil {
		t.Fatal(err)
	}
	ctr := o.Deployment.Spec.Template.Spec.Containers[0]
	var dnsPorts []string
	for _, p := range ctr.Ports {
		if p.ContainerPort == 53 {
			dnsPorts = append(dnsPorts, string(p.Protocol))
		}
	}
	if strings.Join(dnsPorts, ",") != "UDP,TCP" || !strings.Contains(strings.Join(ctr.Args, " "), "--dns-answer=10.96.0.9") {
		t.Errorf("ports %v args %v", ctr.Ports, ctr.Args)
	}
}

// TestObjectsExposeEveryDeclaredPort: a host on another port gets a container port and a Service
// port of the same number (the server tells a host's ports apart by the port a request came to).
func TestObjectsExposeEveryDeclaredPort(t *testing.T) {
	c := testInCluster(t)
	c.Hosts = append(c.Hosts, Host{Name: "api.example.test", Ports: []Port{{8080, ProtocolHTTP}, {8443, ProtocolHTTPS}},
		HTTP: &Behaviour{Status: 200}, HTTPS: &Behaviour{Status: 200}})
	certs, err := pki.Generate(HostNames(c.Hosts), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c.Certs = certs
	o, err := c.Objects()
	if err != nil {
		t.Fatal(err)
	}
	var ctrPorts, svcPorts []string
	for _, p := range o.Deployment.Spec.Template.Spec.Containers[0].Ports {
		ctrPorts = append(ctrPorts, fmt.Sprintf("%s=%d", p.Name, p.ContainerPort))
	}
	for _, p := range o.Service.Spec.Ports {
		svcPorts = append(svcPorts, fmt.Sprintf("%s=%d->%s", p.Name, p.Port, p.TargetPort.String()))
	}
	if got := strings.Join(ctrPorts, " "); got != "http=80 https=443 http-8080=8080 https-8443=8443" {
		t.Errorf("container ports %s", got)
	}
	if got := strings.Join(svcPorts, " "); got != "http=80->http https=443->https http-8080=8080->http-8080 https-8443=8443->https-8443 dns-udp=53->53 dns-tcp=53->53" {
		t.Errorf("service ports %s", got)
	}
	c.Hosts = nil
	if _, err := c.Objects(); err == nil || !strings.Contains(err.Error(), "Hosts is required") {
		t.Errorf("no hosts: %v", err)
	}
}
