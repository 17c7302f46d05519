"""deploy/kubernetes/ checked offline against the Kubernetes OpenAPI schemas that
``kubernetes-validate`` ships (strict: an unknown or misspelt field fails), and for what an
SRE expects of this Deployment: what issue 14 asks, and an agent.yaml the agent accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from fwagent.config import config_from_dict

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
KUBERNETES = "1.30"  # oldest release still commonly run; its schemas are stricter than later


def resources() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    out = []
    for name in kustomization["resources"]:
        out += [doc for doc in yaml.safe_load_all((DEPLOY / name).read_text()) if doc]
    return out


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [r for r in resources() if r["kind"] == kind]


def test_every_file_is_listed_in_the_kustomization() -> None:
    listed = set(yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml"}


@pytest.mark.parametrize(
    "resource", resources(), ids=lambda r: f"{r['kind']}/{r['metadata']['name']}"
)
def test_manifest_is_valid_against_the_kubernetes_schema(resource: dict[str, Any]) -> None:
    kubernetes_validate.validate(resource, KUBERNETES, strict=True)


def test_a_misspelt_field_is_caught() -> None:
    (deployment,) = by_kind("Deployment")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)


def test_deployment_is_hardened_probed_limited_and_wired_to_its_secrets() -> None:
    (deployment,) = by_kind("Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] >= 2
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert {"readinessProbe", "livenessProbe"} <= set(container)
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    env = {e["name"]: e for e in container["env"]}
    secrets = {s["metadata"]["name"]: s for s in by_kind("Secret")}
    for name in ("FWAGENT_FLYWHEEL_API_KEY", "FWAGENT_STATE_URL", "PGPASSWORD"):
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["key"] in secrets[ref["name"]]["stringData"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    claim = volumes["spool"]["persistentVolumeClaim"]["claimName"]
    (pvc,) = by_kind("PersistentVolumeClaim")
    assert pvc["metadata"]["name"] == claim and pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert volumes["tls"]["secret"]["secretName"] in secrets
    assert set(secrets[volumes["tls"]["secret"]["secretName"]]["stringData"]) == {
        "tls.crt", "tls.key", "ca.crt",
    }  # fmt: skip
    (budget,) = by_kind("PodDisruptionBudget")
    assert budget["spec"]["selector"] == spec["selector"]


def test_services_and_configmap_match_the_agent() -> None:
    (config_map,) = by_kind("ConfigMap")
    raw = yaml.safe_load(config_map["data"]["agent.yaml"])
    raw["push"]["tls"].update(cert="", key="", ca="", enabled=False)  # files exist in the pod
    config = config_from_dict(raw)
    assert config.push.enabled and not config.pull.enabled  # in-cluster is PUSH only
    assert config.push.host == "0.0.0.0" and config.metrics.enabled
    tls = yaml.safe_load(config_map["data"]["agent.yaml"])["push"]["tls"]
    assert tls["enabled"] is True and tls["require_client_cert"] is True  # mTLS
    (deployment,) = by_kind("Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"dicom": config.push.port, "metrics": config.metrics.port}
    services = {s["metadata"]["name"]: s for s in by_kind("Service")}
    dicom = services["fwagent-dicom"]["spec"]
    assert dicom["ports"][0]["targetPort"] == "dicom"
    assert dicom["externalTrafficPolicy"] == "Local"  # allowed_hosts sees the scanners' IPs
    assert services["fwagent-metrics"]["spec"]["type"] == "ClusterIP"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    for service in services.values():
        assert service["spec"]["selector"].items() <= labels.items()
