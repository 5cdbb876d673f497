"""The stacks and catalogue the benchmark judges, loaded once per process."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from delivery import judge
from delivery.stack import StackConfig, load_stack_file
from slo.loader import load_catalogue
from slo.model import ResolvedSlo, resolve_all
from slo.rules import by_service

ROOT = Path(__file__).resolve().parent.parent.parent


@cache
def stack_slos(stack_name: str) -> tuple[StackConfig, dict[str, list[ResolvedSlo]]]:
    stack = load_stack_file(ROOT / f"Pulumi.{stack_name}.yaml")
    slos = by_service(resolve_all(load_catalogue(ROOT / stack.catalogue)))
    return stack, slos


@cache
def stack_gates(stack_name: str, service: str) -> tuple[judge.Gate, ...]:
    """The service's gates on the stack, each SLO at its own hypotheses (``judge.stack_gates``)."""
    stack, slos = stack_slos(stack_name)
    return tuple(judge.stack_gates(slos[service], stack, service))
