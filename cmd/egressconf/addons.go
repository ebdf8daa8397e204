package main

import (
	"context"
	"io"

	"k8s.io/client-go/rest"

	"github.com/egressconf/egressconf/pkg/backend/live"
	"github.com/egressconf/egressconf/pkg/backend/live/addons"
	"github.com/egressconf/egressconf/pkg/runner"
)

// applyManifests applies --apply-manifest files to the kind cluster (after the image archives are
// loaded, so their images are there) and waits for their workloads, bounded by the provisioning
// timeout.
func applyManifests(ctx context.Context, cfg *rest.Config, files []string, t runner.Timeouts, out io.Writer) error {
	objs, err := addons.Load(files)
	if err != nil {
		return err
	}
	return live.Phase(out, "apply manifests "+addons.Summary(objs), func() error {
		return addons.Apply(ctx, cfg, objs, addons.Options{Timeout: t.Provision, Poll: t.Poll, Progress: out})
	})
}
