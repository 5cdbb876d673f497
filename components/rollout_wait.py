"""Waiting for a Rollout to finish during `pulumi up`.

pulumi-kubernetes' ``pulumi.com/waitFor`` cannot do this for Argo Rollouts: it only skips stale
status when ``status.observedGeneration`` is an integer, and Argo writes it as a string, so the
previous release's ``Healthy`` satisfies the wait before the controller has even seen the change.
This watcher compares the generations itself, returns once the new generation is Healthy and fails
as soon as the rollout aborts, with the controller's message.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pulumi

POLL_SECONDS = 2.0


class RolloutFailed(pulumi.RunError):
    pass


def state(body: dict[str, Any], generation: int) -> tuple[str, str]:
    """("healthy" | "aborted" | "waiting", what was seen) for the Rollout ``body``."""
    status = body.get("status") or {}
    seen = (f"phase {status.get('phase')!r}, step {status.get('currentStepIndex')}, "
            f"message {status.get('message', '')!r}")
    observed = str(status.get("observedGeneration", ""))
    # the controller may bump the generation itself (e.g. pausing), so later ones count too
    if not observed.isdigit() or int(observed) < generation:
        return "waiting", f"controller has not observed generation {generation} yet ({seen})"
    if status.get("abort") or status.get("phase") == "Degraded":
        return "aborted", seen
    if status.get("phase") == "Healthy":
        return "healthy", seen
    return "waiting", seen


def api_client(kubeconfig: str | None, context: str | None = None) -> Any:
    """A client for the cluster the stack's Kubernetes provider uses, not the machine's default.

    ``kubeconfig`` is the provider's ``kubeconfig`` (file contents or a path) when the stack sets
    one; ``context`` its ``kubernetes:context``. With neither, the default kubeconfig, as the
    provider itself falls back to.
    """
    import yaml
    from kubernetes import client, config

    if kubeconfig and "\n" not in kubeconfig and not kubeconfig.lstrip().startswith("{"):
        loaded = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context
        )
    elif kubeconfig:
        loaded = config.new_client_from_config_dict(  # type: ignore[no-untyped-call]
            yaml.safe_load(kubeconfig), context=context
        )
    else:
        loaded = config.new_client_from_config(context=context)  # type: ignore[no-untyped-call]
    return client.CustomObjectsApi(loaded)


async def wait_healthy(
    namespace: str,
    name: str,
    generation: int,
    timeout_seconds: int,
    kubeconfig: str | None = None,
    context: str | None = None,
) -> str:
    """Healthy, or RolloutFailed. Polls without blocking the event loop, so every service's
    wait runs at once."""
    api = api_client(kubeconfig, context)
    deadline = time.monotonic() + timeout_seconds
    seen = "nothing yet"
    while time.monotonic() < deadline:
        body: dict[str, Any] = await asyncio.to_thread(
            api.get_namespaced_custom_object, "argoproj.io", "v1alpha1", namespace, "rollouts", name
        )
        verdict, seen = state(body, generation)
        if verdict == "healthy":
            return "Healthy"
        if verdict == "aborted":
            raise RolloutFailed(f"Rollout {namespace}/{name} was aborted: {seen}")
        await asyncio.sleep(POLL_SECONDS)
    raise RolloutFailed(
        f"Rollout {namespace}/{name} not Healthy after {timeout_seconds}s; last saw {seen}")
