package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// existingPreflightTimeout bounds the first request to the API server: an unreachable address
// otherwise waits for the TCP connect timeout before the user hears anything.
const existingPreflightTimeout = 15 * time.Second

// existingConfig loads the kubeconfig and context of --backend existing and checks that the API
// server answers, before anything else: a wrong context or a stopped cluster is one message
// naming it and what to run instead, not a failure deep inside the install.
func existingConfig(ctx context.Context, kubeconfig, kubeContext string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext})
	where := "the default kubeconfig ($KUBECONFIG or ~/.kube/config)"
	if kubeconfig != "" {
		where = "--kubeconfig " + kubeconfig
	}
	raw, err := cc.RawConfig()
	if err != nil {
		return nil, existingError(fmt.Sprintf("%s cannot be read", where), err.Error())
	}
	name := kubeContext
	if name == "" {
		name = raw.CurrentContext
	}
	if _, ok := raw.Contexts[name]; !ok || name == "" {
		contexts := make([]string, 0, len(raw.Contexts))
		for c := range raw.Contexts {
			contexts = append(contexts, c)
		}
		sort.Strings(contexts)
		what := fmt.Sprintf("context %q is not in %s", name, where)
		if name == "" {
			what = fmt.Sprintf("%s has no current context and --context is not given", where)
		}
		avail := "it has no contexts"
		if len(contexts) > 0 {
			avail = "its contexts: " + strings.Join(contexts, ", ")
		}
		return nil, existingError(what, avail)
	}
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, existingError(fmt.Sprintf("context %q of %s is unusable", name, where), err.Error())
	}
	dc, err := discovery.NewDiscoveryClientForConfig(rest.CopyConfig(cfg))
	if err != nil {
		return nil, existingError(fmt.Sprintf("context %q: no client for %s", name, cfg.Host), err.Error())
	}
	pctx, cancel := context.WithTimeout(ctx, existingPreflightTimeout)
	defer cancel()
	if _, err := dc.RESTClient().Get().AbsPath("/version").Do(pctx).Raw(); err != nil {
		if errors.Is(pctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("no answer in %s", existingPreflightTimeout)
		}
		return nil, existingError(fmt.Sprintf("the API server of context %q (%s) does not answer", name, cfg.Host), err.Error())
	}
	return cfg, nil
}

// existingError says what is missing for --backend existing and what to run instead.
func existingError(what, detail string) error {
	return fmt.Errorf("existing backend: %s:\n   %s\n   --backend existing runs on a cluster you already have: check --kubeconfig and --context "+
		"(and that the cluster is up), or run without one: `make sim` (the offline backend) or `make e2e` (a kind cluster, needs Docker)", what, detail)
}
