package live

import "github.com/egressconf/egressconf/deploy/rbac"

// explain turns an API server's refusal in *err into an error naming the verb, the resource and
// the role file of deploy/rbac that grants it. Every exported method defers it: refusals come from
// anywhere below (typed, dynamic and Istio clients, exec's upgrade, pkg/standin, pkg/clusterdns).
func explain(err *error) { *err = rbac.Explain(*err) }
