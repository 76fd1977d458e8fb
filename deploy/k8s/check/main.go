// Command check validates Kubernetes manifests offline: it renders a
// kustomization directory with the kustomize Go API (no kubectl needed),
// strictly decodes every document into its Kubernetes API type (unknown or
// mistyped fields fail), and checks a few cross-object rules that the API
// server would not catch. It is its own module, outside go.work, so that the
// services do not depend on k8s.io/api or kustomize:
//
//	cd deploy/k8s/check && GOWORK=off go run . ../base
//
// A file argument (or - for stdin) is checked as already rendered YAML.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: check KUSTOMIZATION_DIR | RENDERED.yaml | - (stdin)")
		os.Exit(2)
	}
	data, err := load(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	n, err := check(data)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("%d objects valid\n", n)
}

// load renders arg when it is a kustomization directory, and otherwise
// reads it (- for stdin) as rendered YAML.
func load(arg string) ([]byte, error) {
	if arg == "-" {
		data, err := io.ReadAll(os.Stdin)
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		return data, nil
	}
	fi, err := os.Stat(arg)
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", arg, err)
	}
	if fi.IsDir() {
		return render(arg)
	}
	data, err := os.ReadFile(arg)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", arg, err)
	}
	return data, nil
}

// render builds a kustomization directory as `kubectl kustomize` does
// (same default options: no plugins, load restrictions on).
func render(dir string) ([]byte, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("render kustomization %s: %w", dir, err)
	}
	data, err := m.AsYaml()
	if err != nil {
		return nil, fmt.Errorf("encode rendered %s: %w", dir, err)
	}
	return data, nil
}

// objects collects the decoded documents by kind.
type objects struct {
	services     map[string]*corev1.Service
	statefulSets []*appsv1.StatefulSet
	deployments  []*appsv1.Deployment
	pdbs         []*policyv1.PodDisruptionBudget
}

// check decodes every document strictly and applies the cross-object rules.
func check(data []byte) (int, error) {
	objs := objects{services: map[string]*corev1.Service{}}
	var errs []error
	n := 0
	for i, doc := range bytes.Split(data, []byte("\n---\n")) {
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		n++
		var head struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			errs = append(errs, fmt.Errorf("document %d: %w", i, err))
			continue
		}
		var obj any
		switch head.Kind {
		case "Service":
			s := &corev1.Service{}
			objs.services[head.Metadata.Name], obj = s, s
		case "ConfigMap":
			obj = &corev1.ConfigMap{}
		case "StatefulSet":
			s := &appsv1.StatefulSet{}
			objs.statefulSets, obj = append(objs.statefulSets, s), s
		case "Deployment":
			d := &appsv1.Deployment{}
			objs.deployments, obj = append(objs.deployments, d), d
		case "PodDisruptionBudget":
			p := &policyv1.PodDisruptionBudget{}
			objs.pdbs, obj = append(objs.pdbs, p), p
		default:
			errs = append(errs, fmt.Errorf("document %d: unexpected kind %q", i, head.Kind))
			continue
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", head.Kind, head.Metadata.Name, err))
		}
	}
	errs = append(errs, objs.rules()...)
	return n, errors.Join(errs...)
}

// rules checks what strict decoding cannot.
func (o objects) rules() []error {
	var errs []error
	for _, s := range o.statefulSets {
		where := "StatefulSet " + s.Name
		svc, ok := o.services[s.Spec.ServiceName]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%s: serviceName %q has no Service", where, s.Spec.ServiceName))
		case svc.Spec.ClusterIP != corev1.ClusterIPNone:
			errs = append(errs, fmt.Errorf("%s: Service %s must be headless", where, svc.Name))
		}
		if len(s.Spec.VolumeClaimTemplates) == 0 {
			errs = append(errs, fmt.Errorf("%s: no volumeClaimTemplates for the bbolt file", where))
		}
		errs = append(errs, podRules(where, s.Spec.Selector.MatchLabels, s.Spec.Template)...)
		errs = append(errs, o.hasPDB(where, s.Spec.Template.Labels)...)
	}
	for _, d := range o.deployments {
		where := "Deployment " + d.Name
		errs = append(errs, podRules(where, d.Spec.Selector.MatchLabels, d.Spec.Template)...)
		errs = append(errs, o.hasPDB(where, d.Spec.Template.Labels)...)
	}
	for name, svc := range o.services {
		if !o.selectsPods(svc.Spec.Selector) {
			errs = append(errs, fmt.Errorf("Service %s: selector %v matches no workload", name, svc.Spec.Selector))
		}
	}
	return errs
}

// podRules checks selector/labels, probes, resources and named ports.
func podRules(where string, selector map[string]string, t corev1.PodTemplateSpec) []error {
	var errs []error
	if !subset(selector, t.Labels) {
		errs = append(errs, fmt.Errorf("%s: selector %v does not match template labels %v", where, selector, t.Labels))
	}
	for _, c := range t.Spec.Containers {
		cw := where + " container " + c.Name
		if c.ReadinessProbe == nil || c.LivenessProbe == nil {
			errs = append(errs, fmt.Errorf("%s: readiness and liveness probes are required", cw))
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
			errs = append(errs, fmt.Errorf("%s: cpu and memory requests are required", cw))
		}
		ports := map[int32]bool{}
		names := map[string]bool{}
		for _, p := range c.Ports {
			ports[p.ContainerPort], names[p.Name] = true, true
		}
		for _, p := range []*corev1.Probe{c.StartupProbe, c.ReadinessProbe, c.LivenessProbe} {
			if p == nil {
				continue
			}
			switch {
			case p.GRPC != nil && !ports[p.GRPC.Port]:
				errs = append(errs, fmt.Errorf("%s: gRPC probe port %d is not a container port", cw, p.GRPC.Port))
			case p.HTTPGet != nil && p.HTTPGet.Port.StrVal != "" && !names[p.HTTPGet.Port.StrVal]:
				errs = append(errs, fmt.Errorf("%s: HTTP probe port %q is not a named container port", cw, p.HTTPGet.Port.StrVal))
			}
		}
	}
	return errs
}

func (o objects) hasPDB(where string, labels map[string]string) []error {
	for _, p := range o.pdbs {
		if p.Spec.Selector != nil && subset(p.Spec.Selector.MatchLabels, labels) {
			return nil
		}
	}
	return []error{fmt.Errorf("%s: no PodDisruptionBudget selects its pods", where)}
}

func (o objects) selectsPods(sel map[string]string) bool {
	for _, s := range o.statefulSets {
		if subset(sel, s.Spec.Template.Labels) {
			return true
		}
	}
	for _, d := range o.deployments {
		if subset(sel, d.Spec.Template.Labels) {
			return true
		}
	}
	return false
}

// subset reports whether every pair of sel is in labels (and sel is not empty).
func subset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}
