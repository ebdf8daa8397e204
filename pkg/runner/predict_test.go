package runner_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/egressconf/egressconf/internal/fakebackend"
	"github.com/egressconf/egressconf/pkg/backend"
	"github.com/egressconf/egressconf/pkg/catalog"
	"github.com/egressconf/egressconf/pkg/outcome"
	"github.com/egressconf/egressconf/pkg/probe"
	"github.com/egressconf/egressconf/pkg/report"
)

// predicting makes b a dual backend whose predictions come from predict.
func predicting(b *fakebackend.Backend, predict fakebackend.Responder) *fakebackend.Backend {
	b.PredictOracle, b.Predictor = backend.OracleLiveControlPlane, predict
	return b
}

// predictMesh predicts as mesh observes, writing its entries to the predicted log.
func predictMesh(b *fakebackend.Backend, from catalog.Workload, req *probe.Request) (outcome.Observed, error) {
	if _, ok := b.Applied["se.yaml"]; ok && req.Host == "example.com" {
		b.PredLog("istio-egressgateway@istio-system", outcome.LogEntry{"upstream_cluster": "outbound|80||example.com"})
		return status(200), nil
	}
	return status(502), nil
}

func TestPredictionsAgree(t *testing.T) {
	b := predicting(fakebackend.New(mesh), predictMesh)
	got, _ := run(t, b)
	for id, want := range map[string]report.Verdict{"T-POS-01": report.Pass, "T-NEG-01": report.Pass, "T-LOG-01": report.Pass, "T-DEL-01": report.Pass, "T-NP-01": report.Skip} {
		res := got[id]
		if res.Verdict != want {
			t.Errorf("%s: observed verdict %s (%s), want %s", id, res.Verdict, res.Message, want)
		}
		p := res.PredictionBy(backend.OracleLiveControlPlane)
		if p == nil || len(res.Predictions) != 1 {
			t.Fatalf("%s: predictions %+v, want one of %s", id, res.Predictions, backend.OracleLiveControlPlane)
		}
		if p.Verdict != want {
			t.Errorf("%s: predicted %s (%s), want %s", id, p.Verdict, p.Message, want)
		}
	}
	// Observed with the consistency rules (3 in a row), predicted once per check.
	pos := got["T-POS-01"]
	if pos.Checks[0].Attempts != 3 || pos.Checks[0].Prediction == nil || len(pos.Checks[0].Prediction.Probes) != 1 {
		t.Errorf("T-POS-01 check: attempts %d, prediction %+v", pos.Checks[0].Attempts, pos.Checks[0].Prediction)
	}
	if p := got["T-NP-01"].Predictions[0]; p.Capability != "networkpolicy" {
		t.Errorf("T-NP-01 prediction: capability %q, want networkpolicy", p.Capability)
	}
	// The predicted log check read the predictions' own entries (marker x..), not the observed log.
	lg := got["T-LOG-01"].Checks[1].Prediction
	if lg == nil || lg.Verdict != report.Pass || lg.Observed != "log upstream_cluster=outbound|80||example.com" {
		t.Errorf("T-LOG-01 predicted log check: %+v", lg)
	}
}

func TestPredictionDisagreesWithObservation(t *testing.T) {
	// The configuration says 403 for example.com and logs nothing; Envoy answered 200.
	b := predicting(fakebackend.New(mesh), func(b *fakebackend.Backend, from catalog.Workload, req *probe.Request) (outcome.Observed, error) {
		if _, ok := b.Applied["se.yaml"]; ok && req.Host == "example.com" {
			return status(403), nil
		}
		return status(502), nil
	})
	got, progress := run(t, b)
	pos := got["T-POS-01"]
	if pos.Verdict != report.Pass {
		t.Errorf("observed verdict %s, want pass: the observation decides", pos.Verdict)
	}
	if !strings.Contains(progress, `predicted (predicted-live-control-plane): FAIL "403"`) {
		t.Errorf("progress does not say the prediction differs:\n%s", progress)
	}
	p := pos.Predictions[0]
	if p.Verdict != report.Fail || p.Observed != "403" || !strings.Contains(p.Message, "403") {
		t.Errorf("prediction %+v, want a fail observing 403", p)
	}
	// T-LOG-01's predicted log holds no entry of its predicted request: that check fails too, and
	// the probe check's prediction, first, names the result's.
	lg := got["T-LOG-01"]
	if lg.Verdict != report.Pass {
		t.Errorf("T-LOG-01 observed %s (%s)", lg.Verdict, lg.Message)
	}
	if lp := lg.Checks[1].Prediction; lp.Verdict != report.Fail {
		t.Errorf("T-LOG-01 predicted log check %+v, want a fail", lp)
	}
	if p := lg.Predictions[0]; p.Verdict != report.Fail || !strings.HasPrefix(p.Message, lg.Checks[0].Description) {
		t.Errorf("T-LOG-01 prediction %+v, want the probe check's fail", p)
	}
}

func TestPredictedLogWithoutEntryFails(t *testing.T) {
	// Same outcome predicted, but the prediction logs no entry: its log check fails on its own.
	b := predicting(fakebackend.New(mesh), func(b *fakebackend.Backend, from catalog.Workload, req *probe.Request) (outcome.Observed, error) {
		if _, ok := b.Applied["se.yaml"]; ok && req.Host == "example.com" {
			return status(200), nil
		}
		return status(502), nil
	})
	got, _ := run(t, b)
	lg := got["T-LOG-01"]
	if lg.Verdict != report.Pass {
		t.Errorf("observed %s (%s), want pass", lg.Verdict, lg.Message)
	}
	if p := lg.Predictions[0]; p.Verdict != report.Fail || !strings.Contains(p.Observed, "0 predicted entries") {
		t.Errorf("prediction %+v, want a fail with no predicted entry", p)
	}
}

func TestPredictionErrorIsAnError(t *testing.T) {
	b := predicting(fakebackend.New(mesh), func(*fakebackend.Backend, catalog.Workload, *probe.Request) (outcome.Observed, error) {
		return status(200), errors.New("istiod stream closed")
	})
	got, _ := run(t, b)
	for _, id := range []string{"T-POS-01", "T-NEG-01", "T-DEL-01"} {
		res := got[id]
		if res.Verdict != report.Pass {
			t.Errorf("%s: observed %s, want pass", id, res.Verdict)
		}
		p := res.Predictions[0]
		if p.Oracle != backend.OracleLiveControlPlane || p.Verdict != report.Error || !strings.Contains(p.Message, "istiod stream closed") {
			t.Errorf("%s: prediction %+v, want an error of %s naming the cause", id, p, backend.OracleLiveControlPlane)
		}
		if len(res.Checks[0].Prediction.Probes) != 0 {
			t.Errorf("%s: a failed prediction has probe markers %v", id, res.Checks[0].Prediction.Probes)
		}
	}
	if p := got["T-LOG-01"].Predictions[0]; p.Verdict != report.Error {
		t.Errorf("T-LOG-01 prediction %s, want error", p.Verdict)
	}
}

func TestOutOfModelPredictionIsSkip(t *testing.T) {
	b := predicting(fakebackend.New(mesh), func(*fakebackend.Backend, catalog.Workload, *probe.Request) (outcome.Observed, error) {
		return outcome.Observed{}, &outcome.OutOfModelError{Need: "a followed redirect"}
	})
	got, _ := run(t, b)
	if p := got["T-POS-01"].Predictions[0]; p.Verdict != report.Skip || p.Observed != "out of model" {
		t.Errorf("prediction %+v, want an out-of-model skip", p)
	}
}

func TestNoPredictionsWithoutOracle(t *testing.T) {
	b := fakebackend.New(mesh)
	b.Predictor = predictMesh // no oracle: the backend predicts nothing in this run
	got, _ := run(t, b)
	for id, res := range got {
		if len(res.Predictions) != 0 || b.Predictions != 0 {
			t.Errorf("%s: predictions %+v without a prediction oracle", id, res.Predictions)
		}
	}
}

func TestBrokenScenarioIsNotPredicted(t *testing.T) {
	b := predicting(fakebackend.New(mesh), predictMesh)
	b.SetupErr = errors.New("namespace stuck")
	got, _ := run(t, b)
	p := got["T-POS-01"].Predictions[0]
	if p.Verdict != report.Error || !strings.Contains(p.Message, "not predicted") || b.Predictions != 0 {
		t.Errorf("prediction %+v after %d predictions, want an error and none made", p, b.Predictions)
	}
}

// A check the cluster can observe (NetworkPolicy enforced) but the predictions do not model is a
// prediction skipped for the capability, never a prediction made without it.
func TestPredictionLacksCapability(t *testing.T) {
	b := predicting(fakebackend.New(func(b *fakebackend.Backend, from catalog.Workload, req *probe.Request) (outcome.Observed, error) {
		if from.Name == "sleep-bypass" {
			return outcome.Observed{ExitCode: 28}, nil
		}
		return mesh(b, from, req)
	}), predictMesh)
	b.Caps["networkpolicy"] = true
	got, _ := run(t, b)
	np := got["T-NP-01"]
	if np.Verdict != report.Pass {
		t.Fatalf("T-NP-01 observed %s (%s), want pass", np.Verdict, np.Message)
	}
	if p := np.Predictions[0]; p.Verdict != report.Skip || p.Capability != "networkpolicy" || !strings.Contains(p.Message, `does not model capability "networkpolicy"`) {
		t.Errorf("T-NP-01 prediction %+v, want a capability skip", p)
	}
	// T-LOG-01 declares itself independent of np.yaml: predicted.
	if p := got["T-LOG-01"].Predictions[0]; p.Verdict != report.Pass {
		t.Errorf("T-LOG-01 prediction %+v, want pass", p)
	}
	for _, c := range b.Calls {
		if c == "predict sleep-bypass@demo" {
			t.Error("T-NP-01 was predicted without the capability")
		}
	}
}
