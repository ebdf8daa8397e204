package kuberouter

import "strings"

// Names of the manifest's objects (all in kube-system, or cluster-scoped).
const (
	Namespace = "kube-system"
	// Name is the DaemonSet's, ServiceAccount's, ClusterRole's and ClusterRoleBinding's name;
	// the live backend's CNI detection knows it (pkg/backend/live NetworkPolicyCNIs).
	Name = "kube-router"
	// HealthPort is kube-router's health endpoint (/healthz) on the node.
	HealthPort = "20244"
)

// ObjectLabel marks every object of the manifest as a test-cluster component (the same key as
// the image label, in label syntax).
const ObjectLabel = "egressconf.io/test-cluster-component"

// Manifest is the enforcer's manifest for the image ref: a ServiceAccount, a ClusterRole that
// reads what the firewall watches (pods, namespaces, nodes, NetworkPolicies; plus the services,
// endpoints and EndpointSlices its shared informers start), its binding, and a DaemonSet in
// kube-system: host network, privileged (it writes the node's iptables and ipsets), the node's
// xtables lock shared, firewall only (no routing, no service proxy, no CNI config: the node's
// bridge CNI stays). The image is loaded into the nodes, never pulled.
func Manifest(ref string) string {
	return strings.ReplaceAll(manifestTemplate, "IMAGE", ref)
}

const manifestTemplate = `# egressconf test-cluster component: kube-router ` + Version + `'s firewall as the NetworkPolicy
# enforcer of CI's throwaway kind cluster (internal/testmesh/kuberouter). Not for other clusters:
# this version has reported security advisories (README).
apiVersion: v1
kind: ServiceAccount
metadata:
  name: kube-router
  namespace: kube-system
  labels:
    ` + ObjectLabel + `: ` + ComponentName + `
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: kube-router
  labels:
    ` + ObjectLabel + `: ` + ComponentName + `
rules:
  - apiGroups: [""]
    resources: [namespaces, pods, services, nodes, endpoints]
    verbs: [get, list, watch]
  - apiGroups: [networking.k8s.io]
    resources: [networkpolicies]
    verbs: [get, list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: kube-router
  labels:
    ` + ObjectLabel + `: ` + ComponentName + `
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: kube-router
subjects:
  - kind: ServiceAccount
    name: kube-router
    namespace: kube-system
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kube-router
  namespace: kube-system
  labels:
    ` + ObjectLabel + `: ` + ComponentName + `
    k8s-app: kube-router
spec:
  selector:
    matchLabels:
      k8s-app: kube-router
  template:
    metadata:
      labels:
        ` + ObjectLabel + `: ` + ComponentName + `
        k8s-app: kube-router
    spec:
      serviceAccountName: kube-router
      priorityClassName: system-node-critical
      hostNetwork: true
      tolerations:
        - operator: Exists
      containers:
        - name: kube-router
          image: IMAGE
          imagePullPolicy: Never
          args:
            - --run-firewall=true
            - --run-router=false
            - --run-service-proxy=false
            - --enable-cni=false
            - --health-port=` + HealthPort + `
            - --v=1
          env:
            - name: NODE_NAME
              valueFrom:
                fieldRef:
                  fieldPath: spec.nodeName
          securityContext:
            privileged: true
          readinessProbe:
            httpGet:
              path: /healthz
              port: ` + HealthPort + `
            periodSeconds: 2
          livenessProbe:
            httpGet:
              path: /healthz
              port: ` + HealthPort + `
            initialDelaySeconds: 10
            periodSeconds: 5
          volumeMounts:
            - name: lib-modules
              mountPath: /lib/modules
              readOnly: true
            - name: xtables-lock
              mountPath: /run/xtables.lock
      volumes:
        - name: lib-modules
          hostPath:
            path: /lib/modules
        - name: xtables-lock
          hostPath:
            path: /run/xtables.lock
            type: FileOrCreate
`
