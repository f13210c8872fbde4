"""The Kubernetes manifests (deploy/k8s) render, validate, and agree with the server they deploy."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from deploy import manifests
from deploy.manifests import KUSTOMIZATIONS, load_crds, problems, render, strict
from repo_paths import SOURCE_REPOSITORY


@pytest.fixture(scope="module")
def crds() -> dict:
    return load_crds()


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {name: render(name) for name in KUSTOMIZATIONS}


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def serving_pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = next(d for d in by_kind(objects, "Deployment") if d["metadata"]["name"] == "ltr-triton")
    return deployment["spec"]["template"]["spec"]


def triton_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return next(c for c in serving_pod(objects)["containers"] if c["name"] == "tritonserver")


def door_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return next(c for c in serving_pod(objects)["containers"] if c["name"] == "door")


def flag(args: list[str], name: str) -> str:
    return next(a for a in args if a.startswith(f"--{name}=")).split("=", 1)[1]


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_kustomization_renders_and_validates(kustomization, rendered, crds):
    objects = rendered[kustomization]
    assert objects
    assert problems(objects, crds) == []


def test_the_custom_resources_are_checked_against_their_crds(rendered, crds):
    kinds = {(obj["apiVersion"], obj["kind"]) for objects in rendered.values() for obj in objects}
    assert {("monitoring.coreos.com/v1", "ServiceMonitor"), ("inference.networking.k8s.io/v1", "InferencePool"),
            ("gateway.networking.k8s.io/v1", "HTTPRoute")} <= kinds & set(crds)


def test_a_typo_in_a_built_in_kind_fails(rendered, crds):
    service = dict(by_kind(rendered["overlays/cpu"], "Service")[0])
    service["spec"] = {**service["spec"], "selectr": {"app": "x"}}
    assert any("selectr" in line for line in problems([service], crds))


def test_a_typo_in_a_custom_resource_fails(rendered, crds):
    monitor = by_kind(rendered["overlays/gpu"], "ServiceMonitor")[0]
    bad = {**monitor, "spec": {**monitor["spec"], "endpoints": [{"port": "metrics", "intervall": "10s"}]}}
    assert any("intervall" in line for line in problems([bad], crds))
    pool = by_kind(rendered["overlays/gpu-inference-pool"], "InferencePool")[0]
    no_port = {**pool, "spec": {**pool["spec"], "targetPorts": [{"number": 70000}]}}
    assert problems([no_port], crds) != []


def test_a_kind_without_a_schema_is_reported(crds):
    obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert "no schema" in problems([obj], crds)[0]


def test_strict_closes_declared_objects_but_keeps_open_ones_open():
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "object", "properties": {"b": {"type": "string"}}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {}},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    closed = strict(schema)
    assert closed["additionalProperties"] is False
    assert closed["properties"]["a"]["additionalProperties"] is False
    assert "additionalProperties" not in closed["properties"]["free"]
    assert closed["properties"]["labels"]["additionalProperties"] == {"type": "string"}
    assert "additionalProperties" not in schema  # the input is left as it was


def test_images_are_pinned_by_tag(rendered):
    for objects in rendered.values():
        for deployment in by_kind(objects, "Deployment"):
            for container in deployment["spec"]["template"]["spec"]["containers"]:
                name, _, tag = container["image"].rpartition(":")
                assert name and tag and tag != "latest" and "/" not in tag, container["image"]


def test_gpu_pods_ask_for_a_gpu_and_cpu_pods_do_not(rendered):
    gpu = triton_container(rendered["overlays/gpu"])["resources"]
    assert gpu["limits"]["nvidia.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in str(triton_container(rendered["overlays/cpu"]).get("resources"))


def test_probes_use_tritons_health_endpoints_and_the_stop_fits_the_grace_period(rendered):
    for name in ("overlays/gpu", "overlays/cpu"):
        container, door = triton_container(rendered[name]), door_container(rendered[name])
        # readiness through the door (the pod serves when Triton is ready behind it); Triton's own
        # liveness from inside its container, on its loopback port
        assert door["startupProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
        assert door["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
        triton_http = flag(container["args"], "http-port")
        assert f"127.0.0.1:{triton_http}/v2/health/ready" in container["startupProbe"]["exec"]["command"][-1]
        assert f"127.0.0.1:{triton_http}/v2/health/live" in container["livenessProbe"]["exec"]["command"][-1]
        for probed in (container, door):
            startup = probed["startupProbe"]
            assert startup["periodSeconds"] * startup["failureThreshold"] >= 600  # engine loads take minutes
        exit_timeout = int(flag(container["args"], "exit-timeout-secs"))
        pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
        assert serving_pod(rendered[name])["terminationGracePeriodSeconds"] > pre_stop + exit_timeout
        # the door outlives Triton's drain, so that the drained answers reach their clients
        assert float(flag(door["args"], "grace-s")) >= exit_timeout
        assert int(door["lifecycle"]["preStop"]["exec"]["command"][-1]) == pre_stop


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS[:3])
def test_only_the_door_is_reachable(rendered, kustomization):
    """Triton binds the pod's loopback and declares no port; the door listens on the pod's ports and
    forwards to Triton's; the Service and the NetworkPolicy carry the door's ports only."""
    objects = rendered[kustomization]
    triton, door = triton_container(objects), door_container(objects)
    for api in ("http", "grpc", "metrics"):
        assert flag(triton["args"], f"{api}-address") == "127.0.0.1"
        assert flag(door["args"], f"triton-{api}") == f"127.0.0.1:{flag(triton['args'], f'{api}-port')}"
    assert "ports" not in triton
    assert flag(door["args"], "host") == "0.0.0.0"
    door_ports = {p["name"]: p["containerPort"] for p in door["ports"]}
    assert door_ports == {"http": int(flag(door["args"], "http-port")), "grpc": int(flag(door["args"], "grpc-port"))}

    service = next(s for s in by_kind(objects, "Service") if s["metadata"]["name"] == "ltr-triton")
    assert {p["targetPort"] for p in service["spec"]["ports"]} == set(door_ports)
    policy, = by_kind(objects, "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"] == service["spec"]["selector"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    allowed = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert allowed == set(door_ports.values())
    monitor, = by_kind(objects, "ServiceMonitor")
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["http"]  # /metrics through the door


def test_each_pod_makes_its_own_internal_key_for_tritonserver(rendered):
    pod = serving_pod(rendered["overlays/cpu"])
    key_file = next(e["value"] for e in triton_container(rendered["overlays/cpu"])["env"]
                    if e["name"] == "LTR_INTERNAL_KEY_FILE")
    writer, = pod["initContainers"]
    assert key_file in writer["command"][-1]
    volume = next(v for v in pod["volumes"] if v["name"] == "internal-key")
    assert volume["emptyDir"]["medium"] == "Memory"


def epp_config_map_of(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return next(c for c in by_kind(objects, "ConfigMap") if c["metadata"]["name"].startswith("ltr-epp-config"))


def scheduler_gauge_names() -> set[str]:
    """The gauges the scheduler model publishes (runtime.scheduler_metrics, the one place they are named)."""
    from runtime.scheduler_metrics import FAMILIES

    return {name for name, (kind, _) in FAMILIES.items() if kind == "gauge"}


def test_autoscaling_and_routing_read_the_gauge_the_scheduler_publishes(rendered):
    gauges = scheduler_gauge_names()
    assert "ltr_scheduler_waiting_requests" in gauges
    hpa = by_kind(rendered["overlays/gpu"], "HorizontalPodAutoscaler")[0]
    hpa_metrics = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"]]
    hpa_metric = hpa_metrics[0]
    assert hpa_metrics == ["ltr_scheduler_waiting_requests", "ltr_scheduler_inflight_requests",
                           "ltr_scheduler_predicted_backlog_tokens"]
    assert set(hpa_metrics) <= gauges

    adapter = yaml.safe_load(by_kind(rendered["prometheus-adapter"], "ConfigMap")[0]["data"]["config.yaml"])
    for metric in hpa_metrics:  # every metric the HPA reads is served by an adapter rule
        rule = next(r for r in adapter["rules"] if r["name"]["as"] == metric)
        assert rule["seriesQuery"].startswith(metric + "{")

    epp_config_map = epp_config_map_of(rendered["overlays/gpu-inference-pool"])
    epp_config = yaml.safe_load(next(iter(epp_config_map["data"].values())))
    plugins = {p["name"]: p for p in epp_config["plugins"]}
    engine = plugins["ltr-scheduler-metrics"]["parameters"]["engineConfigs"][0]
    assert engine["queuedRequestsSpec"] == "ltr_scheduler_predicted_backlog_tokens" in hpa_metrics
    assert engine["runningRequestsSpec"] in gauges


def test_the_endpoint_picker_config_is_consistent(rendered):
    objects = rendered["overlays/gpu-inference-pool"]
    config_map = epp_config_map_of(objects)
    (file_name, text), = config_map["data"].items()
    config = yaml.safe_load(text)
    assert config["kind"] == "EndpointPickerConfig" and "dataLayer" in config["featureGates"]
    names = {p.get("name", p["type"]) for p in config["plugins"]}
    refs = [p["pluginRef"] for profile in config["schedulingProfiles"] for p in profile["plugins"]]
    refs += [s["pluginRef"] for s in config["data"]["sources"]]
    refs += [e["pluginRef"] for s in config["data"]["sources"] for e in s["extractors"]]
    assert set(refs) <= names
    engine_params = next(p for p in config["plugins"] if p["type"] == "model-server-protocol-metrics")["parameters"]
    assert engine_params["defaultEngine"] in {e["name"] for e in engine_params["engineConfigs"]}

    epp = next(d for d in by_kind(objects, "Deployment") if d["metadata"]["name"] == "ltr-epp")
    pod = epp["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert f"--config-file=/config/{file_name}" in args
    assert pod["volumes"][0]["configMap"]["name"] == config_map["metadata"]["name"]  # the hashed name
    metrics_port = next(p["containerPort"] for p in door_container(objects)["ports"] if p["name"] == "http")
    assert f"--model-server-metrics-port={metrics_port}" in args  # the door forwards GET /metrics
    # v1.4.0 refuses the old per-metric flags; the metric names must come from the config file
    assert not any(a.startswith("--total-queued-requests-metric") for a in args)

    pool = by_kind(objects, "InferencePool")[0]
    assert pool["spec"]["endpointPickerRef"]["name"] == epp["metadata"]["name"]
    http_port = next(p["containerPort"] for p in door_container(objects)["ports"] if p["name"] == "http")
    assert pool["spec"]["targetPorts"] == [{"number": http_port}]



def test_the_base_ships_the_dashboard_and_the_rules_it_generates(rendered):
    """The provisioned dashboard ConfigMap and the PrometheusRule hold exactly what deploy.dashboard
    and deploy.prometheus_rules generate (hand edits of the JSON are caught here)."""
    import json

    from deploy.dashboard import dashboard_json
    from deploy.prometheus_rules import rule_groups

    for name in ("overlays/gpu", "overlays/cpu"):
        dashboards = [c for c in by_kind(rendered[name], "ConfigMap") if c["metadata"]["name"] == "ltr-serving-dashboard"]
        assert dashboards and dashboards[0]["metadata"]["labels"]["grafana_dashboard"] == "1"
        (text,) = dashboards[0]["data"].values()
        assert json.loads(text) == json.loads(dashboard_json())
        (rule,) = by_kind(rendered[name], "PrometheusRule")
        assert rule["spec"]["groups"] == rule_groups()


def test_help_says_what_it_checks(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        manifests.main(["--help"])
    assert exit_.value.code == 0
    assert "overlays/gpu" in capsys.readouterr().out
