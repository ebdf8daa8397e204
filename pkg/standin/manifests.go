package standin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/egressconf/egressconf/pkg/pki"
)

// Names and labels of the stand-in's objects in a cluster.
const (
	// Namespace holds the stand-in. It is outside the mesh: labelled istio-injection=disabled.
	Namespace = "egressconf-internet"
	// ServiceName is the Service every external host name resolves to (see pkg/clusterdns).
	ServiceName = "internet"
	// DefaultImage is the stand-in image pkg/image builds.
	DefaultImage = "docker.io/egressconf/standin:dev"

	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "egressconf"
	LabelRun       = "egressconf.io/run"
	LabelName      = "app.kubernetes.io/name"
	AppName        = "egressconf-standin"

	// CertsSecretName holds ca.crt and <host>.crt / <host>.key (pki.Bundle.Files).
	CertsSecretName = "standin-certs"
	// HostsConfigMapName holds the hosts.yaml the stand-in serves (the catalog's hosts).
	HostsConfigMapName = "standin-hosts"
	CertsMountPath     = "/etc/egressconf/certs"
	HostsMountPath     = "/etc/egressconf/hosts"

	// CABundleName is the ConfigMap (key CABundleKey) fixtures mount for curl.
	CABundleName = "egressconf-ca"
	CABundleKey  = pki.CAFile
	// CACredentialName is the ConfigMap (key CACredentialKey), in the namespace of each
	// TLS-originating DestinationRule, that the rule names in tls.credentialName as
	// configmap://<namespace>/egressconf-standin-ca (docs/standin.md). It must equal pkg/adapt's
	// OriginationCA, which writes that reference.
	CACredentialName = "egressconf-standin-ca"
	// CACredentialKey is the key istiod reads a CA from in a configmap:// credential.
	CACredentialKey = "ca.crt"
	// CABundleMountPath is where fixtures mount the CA bundle; CABundleEnv points curl at it.
	CABundleMountPath = "/etc/egressconf/ca"

	// AnnotationIstioExportTo hides the stand-in's Service from every Istio proxy. Without it
	// istiod would give sidecars and gateways a listener on the Service's ClusterIP:443 that
	// forwards any TLS there to the stand-in, so REGISTRY_ONLY would no longer block the external
	// hosts (they all resolve to that ClusterIP). Hidden, the ClusterIP is just "an address
	// outside the mesh", like the real sites' addresses.
	AnnotationIstioExportTo = "networking.istio.io/exportTo"
)

// InCluster describes one run's stand-in deployment.
type InCluster struct {
	// RunID labels every object (egressconf.io/run). Required.
	RunID string
	// Certs has the CA and a leaf for every host. Required.
	Certs *pki.Bundle
	// Hosts served (the catalog's: catalog.Catalog.Hosts). Required. They are put in a ConfigMap
	// and passed with --hosts; the Deployment and the Service expose every port they declare.
	Hosts []Host
	// Image; DefaultImage when empty. ImagePullPolicy; IfNotPresent when empty.
	Image           string
	ImagePullPolicy corev1.PullPolicy
	// Namespace; Namespace when empty.
	Namespace string
	// ServiceIP is the stand-in Service's ClusterIP. When set, the stand-in also serves DNS on
	// port 53 (DNSServer), answering the hosts with it. Apply creates the Service first and sets it.
	ServiceIP string
}

func (c *InCluster) ns() string {
	if c.Namespace != "" {
		return c.Namespace
	}
	return Namespace
}

// ServiceFQDN is the name external hosts are rewritten to, e.g.
// internet.egressconf-internet.svc.cluster.local (clusterDomain "" means cluster.local).
func (c *InCluster) ServiceFQDN(clusterDomain string) string {
	if clusterDomain == "" {
		clusterDomain = "cluster.local"
	}
	return ServiceName + "." + c.ns() + ".svc." + clusterDomain
}

// Labels are the labels every object of the run carries.
func (c *InCluster) Labels() map[string]string {
	return map[string]string{LabelManagedBy: ManagedBy, LabelRun: c.RunID}
}

// Objects are the stand-in's Kubernetes objects, TypeMeta set.
type Objects struct {
	Namespace   *corev1.Namespace
	Secret      *corev1.Secret
	HostsConfig *corev1.ConfigMap
	Deployment  *appsv1.Deployment
	Service     *corev1.Service
}

// List returns the objects in the order to create them.
func (o *Objects) List() []runtime.Object {
	out := []runtime.Object{o.Namespace, o.Secret, o.HostsConfig}
	// The Service first: its ClusterIP is the Deployment's DNS answer.
	return append(out, o.Service, o.Deployment)
}

// YAML renders the objects as one multi-document YAML stream (for reports and kubectl).
func (o *Objects) YAML() ([]byte, error) {
	var buf bytes.Buffer
	for i, obj := range o.List() {
		if i > 0 {
			buf.WriteString("---\n")
		}
		b, err := sigsyaml.Marshal(obj)
		if err != nil {
			return nil, err
		}
		buf.Write(b)
	}
	return buf.Bytes(), nil
}

// Objects builds the namespace, Secret, hosts ConfigMap, Deployment and Service.
func (c *InCluster) Objects() (*Objects, error) {
	if c.RunID == "" {
		return nil, errors.New("standin: InCluster.RunID is required")
	}
	if c.Certs == nil {
		return nil, errors.New("standin: InCluster.Certs is required")
	}
	hosts := c.Hosts
	if len(hosts) == 0 {
		return nil, errors.New("standin: InCluster.Hosts is required (the catalog's hosts)")
	}
	if err := ValidateHosts(hosts); err != nil {
		return nil, err
	}
	for _, h := range hosts {
		if _, ok := c.Certs.Leaf(normalizeName(h.Name)); !ok && h.HTTPS != nil {
			return nil, fmt.Errorf("standin: no certificate for host %s", normalizeName(h.Name))
		}
	}
	image := c.Image
	if image == "" {
		image = DefaultImage
	}
	pull := c.ImagePullPolicy
	if pull == "" {
		pull = corev1.PullIfNotPresent
	}
	ns := c.ns()
	meta := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: ns, Labels: c.Labels()}
	}

	o := &Objects{}
	nsLabels := c.Labels()
	nsLabels["istio-injection"] = "disabled"
	o.Namespace = &corev1.Namespace{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: nsLabels},
	}
	files := c.Certs.Files()
	o.Secret = &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: meta(CertsSecretName),
		Type:       corev1.SecretTypeOpaque,
		Data:       files,
	}

	args := []string{"--certs=" + CertsMountPath}
	// Every port a host declares, the same number on the container and on the Service: the
	// server tells a host's ports apart by the port a request arrived on.
	var ports []corev1.ContainerPort
	var svcPorts []corev1.ServicePort
	ready := intstr.FromInt32(0)
	for _, p := range ServerPorts(hosts) {
		name := PortName(p)
		ports = append(ports, corev1.ContainerPort{Name: name, ContainerPort: int32(p.Port), Protocol: corev1.ProtocolTCP})
		svcPorts = append(svcPorts, corev1.ServicePort{Name: name, Port: int32(p.Port), TargetPort: intstr.FromString(name), Protocol: corev1.ProtocolTCP})
		if ready.IntVal == 0 {
			// The listeners open together: the first one answering means the server is up.
			ready = intstr.FromInt32(int32(p.Port))
		}
	}
	if c.ServiceIP != "" {
		if ip := net.ParseIP(c.ServiceIP); ip == nil || ip.To4() == nil {
			return nil, fmt.Errorf("standin: Service IP %q is not an IPv4 address", c.ServiceIP)
		}
		args = append(args, "--dns-answer="+c.ServiceIP, "--dns-addr="+DefaultDNSAddr)
		ports = append(ports,
			corev1.ContainerPort{Name: "dns-udp", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
			corev1.ContainerPort{Name: "dns-tcp", ContainerPort: 53, Protocol: corev1.ProtocolTCP})
	}
	volumes := []corev1.Volume{{
		Name:         "certs",
		VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: CertsSecretName}},
	}}
	mounts := []corev1.VolumeMount{{Name: "certs", MountPath: CertsMountPath, ReadOnly: true}}
	sum := sha256.New()
	for _, k := range sortedKeys(files) {
		sum.Write([]byte(k))
		sum.Write(files[k])
	}
	data, err := MarshalHosts(hosts)
	if err != nil {
		return nil, err
	}
	sum.Write(data)
	o.HostsConfig = &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: meta(HostsConfigMapName),
		Data:       map[string]string{"hosts.yaml": string(data)},
	}
	args = append(args, "--hosts="+HostsMountPath+"/hosts.yaml")
	volumes = append(volumes, corev1.Volume{
		Name: "hosts",
		VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: HostsConfigMapName},
		}},
	})
	mounts = append(mounts, corev1.VolumeMount{Name: "hosts", MountPath: HostsMountPath, ReadOnly: true})

	selector := map[string]string{LabelName: AppName}
	podLabels := c.Labels()
	podLabels[LabelName] = AppName
	podLabels["sidecar.istio.io/inject"] = "false"
	deployLabels := c.Labels()
	deployLabels[LabelName] = AppName
	root := int64(0)
	no, yes := false, true
	grace := int64(10)
	o.Deployment = &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: AppName, Namespace: ns, Labels: deployLabels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: selector},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels: podLabels,
					Annotations: map[string]string{
						// Rolls the pod when the run's certificates or hosts change.
						"egressconf.io/config-sha256": hex.EncodeToString(sum.Sum(nil)),
					},
				},
				Spec: corev1.PodSpec{
					AutomountServiceAccountToken:  &no,
					EnableServiceLinks:            &no,
					TerminationGracePeriodSeconds: &grace,
					Containers: []corev1.Container{{
						Name:            "standin",
						Image:           image,
						ImagePullPolicy: pull,
						Args:            args,
						Ports:           ports,
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: ready}},
							PeriodSeconds: 2,
						},
						// The server binds 80, 443 (any declared port) itself: root with only NET_BIND_SERVICE.
						SecurityContext: &corev1.SecurityContext{
							RunAsUser:                &root,
							RunAsGroup:               &root,
							RunAsNonRoot:             &no,
							AllowPrivilegeEscalation: &no,
							ReadOnlyRootFilesystem:   &yes,
							Capabilities: &corev1.Capabilities{
								Drop: []corev1.Capability{"ALL"},
								Add:  []corev1.Capability{"NET_BIND_SERVICE"},
							},
						},
						VolumeMounts: mounts,
					}},
					Volumes: volumes,
				},
			},
		},
	}
	o.Service = &corev1.Service{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{
			Name: ServiceName, Namespace: ns, Labels: c.Labels(),
			Annotations: map[string]string{AnnotationIstioExportTo: "~"},
		},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: selector,
			Ports: append(svcPorts,
				// The resolver of scoped DNS (pods whose dnsConfig names this ClusterIP).
				corev1.ServicePort{Name: "dns-udp", Port: 53, TargetPort: intstr.FromInt32(53), Protocol: corev1.ProtocolUDP},
				corev1.ServicePort{Name: "dns-tcp", Port: 53, TargetPort: intstr.FromInt32(53), Protocol: corev1.ProtocolTCP},
			),
		},
	}
	return o, nil
}

// CABundleConfigMap is the ConfigMap egressconf-ca (key ca.crt: the run's CA) for namespace ns.
// Fixtures mount it (CABundleVolume, CABundleVolumeMount) and set CABundleEnv so curl trusts
// the stand-in.
func (c *InCluster) CABundleConfigMap(ns string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: CABundleName, Namespace: ns, Labels: c.Labels()},
		Data:       map[string]string{CABundleKey: string(c.Certs.CAPEM)},
	}
}

// CACredentialConfigMap is the ConfigMap egressconf-standin-ca (key ca.crt: the run's CA) for
// namespace ns: a DestinationRule of ns with tls.mode SIMPLE and
// tls.credentialName: configmap://<ns>/egressconf-standin-ca then verifies the stand-in, at
// sidecars and gateways alike (docs/standin.md).
func (c *InCluster) CACredentialConfigMap(ns string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: CACredentialName, Namespace: ns, Labels: c.Labels()},
		Data:       map[string]string{CACredentialKey: string(c.Certs.CAPEM)},
	}
}

// CABundleVolume mounts the egressconf-ca ConfigMap.
func CABundleVolume() corev1.Volume {
	return corev1.Volume{
		Name: CABundleName,
		VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: CABundleName},
		}},
	}
}

// CABundleVolumeMount mounts CABundleVolume at CABundleMountPath.
func CABundleVolumeMount() corev1.VolumeMount {
	return corev1.VolumeMount{Name: CABundleName, MountPath: CABundleMountPath, ReadOnly: true}
}

// CABundleEnv is CURL_CA_BUNDLE=<CABundleMountPath>/ca.crt: curl then trusts the run's CA (and
// only it, which is what a hermetic run wants).
func CABundleEnv() corev1.EnvVar {
	return corev1.EnvVar{Name: "CURL_CA_BUNDLE", Value: CABundleMountPath + "/" + CABundleKey}
}

// PortName names a stand-in port in its Deployment and Service: http and https for 80 and 443,
// else the protocol and the number (http-8080).
func PortName(p Port) string {
	switch {
	case p.Port == 80 && p.Protocol == ProtocolHTTP:
		return "http"
	case p.Port == 443 && p.Protocol == ProtocolHTTPS:
		return "https"
	}
	return p.Protocol + "-" + strconv.Itoa(p.Port)
}

// MarshalHosts renders hosts in the hosts.yaml format LoadHosts reads.
func MarshalHosts(hosts []Host) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(hostsFile{Hosts: hosts}); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Apply creates the stand-in's objects, or updates them when they exist.
func (c *InCluster) Apply(ctx context.Context, cs kubernetes.Interface) error {
	o, err := c.Objects()
	if err != nil {
		return err
	}
	ns := o.Namespace.Name
	if err := upsert(ctx, "namespace "+ns,
		func() error {
			_, err := cs.CoreV1().Namespaces().Create(ctx, o.Namespace, metav1.CreateOptions{})
			return err
		},
		func() error {
			cur, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if cur.Labels == nil {
				cur.Labels = map[string]string{}
			}
			for k, v := range o.Namespace.Labels {
				cur.Labels[k] = v
			}
			_, err = cs.CoreV1().Namespaces().Update(ctx, cur, metav1.UpdateOptions{})
			return err
		}); err != nil {
		return err
	}
	if err := upsert(ctx, "secret "+o.Secret.Name,
		func() error {
			_, err := cs.CoreV1().Secrets(ns).Create(ctx, o.Secret, metav1.CreateOptions{})
			return err
		},
		func() error {
			cur, err := cs.CoreV1().Secrets(ns).Get(ctx, o.Secret.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			o.Secret.ResourceVersion = cur.ResourceVersion
			_, err = cs.CoreV1().Secrets(ns).Update(ctx, o.Secret, metav1.UpdateOptions{})
			return err
		}); err != nil {
		return err
	}
	if o.HostsConfig != nil {
		if err := upsertConfigMap(ctx, cs, o.HostsConfig); err != nil {
			return err
		}
	}
	if err := upsert(ctx, "service "+o.Service.Name,
		func() error {
			_, err := cs.CoreV1().Services(ns).Create(ctx, o.Service, metav1.CreateOptions{})
			return err
		},
		func() error {
			cur, err := cs.CoreV1().Services(ns).Get(ctx, o.Service.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			// Keep the allocated ClusterIP(s); the rest is ours.
			o.Service.ResourceVersion = cur.ResourceVersion
			o.Service.Spec.ClusterIP = cur.Spec.ClusterIP
			o.Service.Spec.ClusterIPs = cur.Spec.ClusterIPs
			_, err = cs.CoreV1().Services(ns).Update(ctx, o.Service, metav1.UpdateOptions{})
			return err
		}); err != nil {
		return err
	}
	// The Deployment's resolver answers with the Service's ClusterIP: read it, rebuild.
	svc, err := cs.CoreV1().Services(ns).Get(ctx, o.Service.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("standin: get service %s: %w", o.Service.Name, err)
	}
	if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
		return fmt.Errorf("standin: service %s/%s has no ClusterIP", ns, o.Service.Name)
	}
	c.ServiceIP = svc.Spec.ClusterIP
	if o, err = c.Objects(); err != nil {
		return err
	}
	return upsert(ctx, "deployment "+o.Deployment.Name,
		func() error {
			_, err := cs.AppsV1().Deployments(ns).Create(ctx, o.Deployment, metav1.CreateOptions{})
			return err
		},
		func() error {
			cur, err := cs.AppsV1().Deployments(ns).Get(ctx, o.Deployment.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			o.Deployment.ResourceVersion = cur.ResourceVersion
			_, err = cs.AppsV1().Deployments(ns).Update(ctx, o.Deployment, metav1.UpdateOptions{})
			return err
		})
}

// ApplyCABundle creates or updates the egressconf-ca ConfigMap in each namespace.
func (c *InCluster) ApplyCABundle(ctx context.Context, cs kubernetes.Interface, namespaces ...string) error {
	for _, ns := range namespaces {
		if err := upsertConfigMap(ctx, cs, c.CABundleConfigMap(ns)); err != nil {
			return err
		}
	}
	return nil
}

// ApplyCACredential creates or updates the egressconf-standin-ca ConfigMap in each namespace.
func (c *InCluster) ApplyCACredential(ctx context.Context, cs kubernetes.Interface, namespaces ...string) error {
	for _, ns := range namespaces {
		if err := upsertConfigMap(ctx, cs, c.CACredentialConfigMap(ns)); err != nil {
			return err
		}
	}
	return nil
}

// WaitReady polls until the stand-in Deployment has an available, updated replica.
func (c *InCluster) WaitReady(ctx context.Context, cs kubernetes.Interface, timeout time.Duration) error {
	ns := c.ns()
	var last string
	err := wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, AppName, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		st := d.Status
		last = fmt.Sprintf("observedGeneration %d/%d, updated %d, available %d of %d",
			st.ObservedGeneration, d.Generation, st.UpdatedReplicas, st.AvailableReplicas, want)
		return st.ObservedGeneration >= d.Generation && st.UpdatedReplicas >= want &&
			st.AvailableReplicas >= want && st.Replicas == st.UpdatedReplicas, nil
	})
	if err != nil {
		return fmt.Errorf("standin: deployment %s/%s not ready: %s: %w", ns, AppName, last, err)
	}
	return nil
}

// Delete removes the stand-in's namespace (and everything in it). Missing is fine.
func (c *InCluster) Delete(ctx context.Context, cs kubernetes.Interface) error {
	err := cs.CoreV1().Namespaces().Delete(ctx, c.ns(), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("standin: delete namespace %s: %w", c.ns(), err)
	}
	return nil
}

func upsertConfigMap(ctx context.Context, cs kubernetes.Interface, cm *corev1.ConfigMap) error {
	ns := cm.Namespace
	return upsert(ctx, "configmap "+ns+"/"+cm.Name,
		func() error { _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); return err },
		func() error {
			cur, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, cm.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			cm.ResourceVersion = cur.ResourceVersion
			_, err = cs.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{})
			return err
		})
}

// upsert creates, and on AlreadyExists updates (retrying update conflicts a few times).
func upsert(ctx context.Context, what string, create, update func() error) error {
	err := create()
	if err == nil {
		return nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("standin: create %s: %w", what, err)
	}
	for i := 0; ; i++ {
		err = update()
		if err == nil {
			return nil
		}
		if !apierrors.IsConflict(err) || i == 4 || ctx.Err() != nil {
			return fmt.Errorf("standin: update %s: %w", what, err)
		}
	}
}

func sortedKeys(m map[string][]byte) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func ptr[T any](v T) *T { return &v }
