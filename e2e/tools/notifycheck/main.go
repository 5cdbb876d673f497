// notifycheck runs Argo Rollouts' notification engine (notifications-engine, at the version
// Argo Rollouts pins) on a notification ConfigMap, offline: it parses the ConfigMap and Secret as
// the controller does, creates every notification service, compiles every trigger and template,
// then runs the given triggers on given Rollouts and AnalysisRuns and prints what would be sent.
//
// Built from the same module graph as the rollouts controller (e2e/tools/build.sh). Input on
// stdin, JSON:
//
//	{"configMap": {...data...}, "secret": {...data...},
//	 "cases": [{"trigger": "on-rollout-paused", "rollout": {...}, "analysisRuns": [...]}]}
//
// Output on stdout, JSON: {"error": "...", "cases": [{"error": "...", "sent": [{"template":
// "...", "oncePer": "...", "message": "...", "webhook": {"name": {"method": "...", "body":
// "..."}}}]}]}. A condition sends when it holds: what the engine's controller does for
// triggers named after no Kubernetes event (pkg/controller, processResourceWithAPI).
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/argoproj/notifications-engine/pkg/api"
	"github.com/argoproj/notifications-engine/pkg/services"
	"github.com/argoproj/notifications-engine/pkg/templates"
	"github.com/argoproj/notifications-engine/pkg/triggers"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

type input struct {
	ConfigMap map[string]string `json:"configMap"`
	Secret    map[string]string `json:"secret"`
	Cases     []struct {
		Trigger      string         `json:"trigger"`
		Rollout      map[string]any `json:"rollout"`
		AnalysisRuns any            `json:"analysisRuns"`
	} `json:"cases"`
}

type sent struct {
	Template string                                  `json:"template"`
	OncePer  string                                  `json:"oncePer,omitempty"`
	Message  string                                  `json:"message"`
	Webhook  map[string]services.WebhookNotification `json:"webhook,omitempty"`
}

type result struct {
	Error string `json:"error,omitempty"`
	Sent  []sent `json:"sent"`
}

type output struct {
	Error string   `json:"error,omitempty"`
	Cases []result `json:"cases"`
}

func main() {
	out := run()
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}

func run() output {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		return output{Error: "input: " + err.Error()}
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "argo-rollouts-notification-secret"},
		Data: map[string][]byte{}}
	for k, v := range in.Secret {
		secret.Data[k] = []byte(v)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "argo-rollouts-notification-configmap",
		Namespace: "argo-rollouts"}, Data: in.ConfigMap}
	cfg, err := api.ParseConfig(cm, secret)
	if err != nil {
		return output{Error: "config: " + err.Error()}
	}
	for name, create := range cfg.Services {
		if _, err := create(); err != nil {
			return output{Error: fmt.Sprintf("service %s: %v", name, err)}
		}
	}
	trig, err := triggers.NewService(cfg.Triggers)
	if err != nil {
		return output{Error: "triggers: " + err.Error()}
	}
	tmpl, err := templates.NewService(cfg.Templates)
	if err != nil {
		return output{Error: "templates: " + err.Error()}
	}
	out := output{Cases: []result{}}
	for _, c := range in.Cases {
		vars := map[string]any{
			"rollout":      c.Rollout,
			"analysisRuns": c.AnalysisRuns,
			"time":         map[string]any{"Now": time.Now},
			"secrets":      secret.Data,
		}
		out.Cases = append(out.Cases, runCase(trig, tmpl, c.Trigger, vars))
	}
	return out
}

func runCase(trig triggers.Service, tmpl templates.Service, name string,
	vars map[string]any) result {
	res := result{Sent: []sent{}}
	conds, err := trig.Run(name, vars)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	for _, c := range conds {
		if !c.Triggered {
			continue
		}
		for _, t := range c.Templates {
			n, err := tmpl.FormatNotification(vars, t)
			if err != nil {
				res.Error = fmt.Sprintf("template %s: %v", t, err)
				return res
			}
			res.Sent = append(res.Sent, sent{Template: t, OncePer: c.OncePer, Message: n.Message,
				Webhook: n.Webhook})
		}
	}
	return res
}
