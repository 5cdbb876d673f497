"""Upstream schemas for rendered objects, fetched at test time and never committed.

CRDs come from the Go modules that publish them (Argo Rollouts, the Prometheus operator, Traefik,
the Gateway API), via
``go mod download``; core Kubernetes objects are checked with ``kubernetes-validate``. CRD
schemas are made strict (unknown fields rejected) where upstream does not ask to keep unknown
fields: the API server would silently prune a misspelt field, which is the bug we want to catch.
"""

from __future__ import annotations

import copy
import json
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from delivery.routers import GATEWAY_API_CRDS, GATEWAY_API_MODULE, TRAEFIK_CRDS, TRAEFIK_MODULE

MODULES = {  # module -> its CRD files (a glob in the module)
    "github.com/argoproj/argo-rollouts@v1.9.1": "manifests/crds/*.yaml",
    "github.com/prometheus-operator/prometheus-operator@v0.85.0":
        "example/prometheus-operator-crd/*.yaml",
    TRAEFIK_MODULE: TRAEFIK_CRDS,
    GATEWAY_API_MODULE: GATEWAY_API_CRDS,
}
KUBERNETES_VERSION = "1.33"


def _module_dir(module: str) -> Path:
    result = subprocess.run(
        ["go", "mod", "download", "-json", module],
        capture_output=True, text=True, check=False, timeout=600,
    )
    info = json.loads(result.stdout or "{}")
    if result.returncode != 0 or "Dir" not in info:
        raise RuntimeError(f"go mod download {module} failed: {info.get('Error', result.stderr)}")
    return Path(info["Dir"])


class _CrdLoader(yaml.SafeLoader):
    """SafeLoader without YAML 1.1's '=' value tag, which CRD enums such as '=' trip over."""


_CrdLoader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:value"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            pattern = node.get("pattern")
            if isinstance(pattern, str) and pattern.startswith("^(?i)"):
                # Go lets an inline flag follow `^` (PrometheusRule's partial_response_strategy);
                # Python's re wants it first, with the same meaning
                node["pattern"] = "(?i)^" + pattern.removeprefix("^(?i)")
            if (
                "properties" in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
                and "additionalProperties" not in node
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


@cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> strict openAPIV3Schema, for every CRD in the pinned modules."""
    schemas = {}
    for module, pattern in MODULES.items():
        for path in sorted(_module_dir(module).glob(pattern)):
            for doc in yaml.load_all(path.read_text(), Loader=_CrdLoader):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
                for version in doc["spec"]["versions"]:
                    schema = version["schema"]["openAPIV3Schema"]
                    # metadata is validated by the API server itself, not the CRD schema
                    schema.setdefault("properties", {})["metadata"] = {"type": "object"}
                    schemas[(f"{group}/{version['name']}", kind)] = _strict(schema)
    return schemas


def validate(body: dict[str, Any]) -> None:
    """Raise when ``body`` does not fit its upstream schema."""
    key = (body["apiVersion"], body["kind"])
    schemas = crd_schemas()
    if key in schemas:
        # upstream patterns use Go regex syntax, so the schema itself is not meta-validated
        jsonschema.validators.validator_for(schemas[key])(schemas[key]).validate(body)
    else:
        kubernetes_validate.validate(body, KUBERNETES_VERSION, strict=True)
