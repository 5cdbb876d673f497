"""Hypothesis over structure-aware mutations of the shipped catalogue and stack files (and a
seed catalogue of query SLIs and alert templates): every mutant is accepted or refused with
lines that name the file, and an accepted catalogue's rule files pass promtool; never another
exception, never slower than 5 s. The long run (100,000+ seeded cases, in subprocesses so that
a signal would be counted) is ``bench/fuzz_inputs.py``."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tools import fuzz_inputs as fuzz


@settings(max_examples=150, deadline=5000, suppress_health_check=[HealthCheck.too_slow])
@given(rng=st.randoms(use_true_random=False),
       which=st.sampled_from(["catalogue", "query catalogue", *fuzz.STACKS]))
def test_every_mutant_is_accepted_or_refused_with_lines_naming_the_file(
    rng, which, tmp_path_factory
):
    workdir = tmp_path_factory.mktemp("fuzz")
    if which in ("catalogue", "query catalogue"):
        seed = fuzz.CATALOGUE if which == "catalogue" else fuzz.QUERY_CATALOGUE
        outcome = fuzz.check_catalogue(fuzz.mutant(rng, seed), workdir)
    else:
        outcome = fuzz.check_stack(fuzz.mutant(rng, which), workdir)
    assert outcome.seconds < 5


def test_the_mutations_reach_both_verdicts():
    """The fuzzer is no use if every mutant is refused (or accepted) for the same reason."""
    workdir = fuzz.fresh_workdir()
    outcomes = [fuzz.run_case(seed, workdir) for seed in range(120)]
    refused = [o for o in outcomes if not o.accepted]
    assert 5 < len(refused) < len(outcomes), [o.lines for o in refused][:5]
    reasons = {line.split(": ", 2)[1].split(" ")[0] for o in refused for line in o.lines[:1]}
    assert len(reasons) > 5, reasons


def test_a_mutant_is_a_different_file():
    rng = random.Random(7)
    original = fuzz.CATALOGUE.read_bytes()
    assert sum(fuzz.mutant(rng, fuzz.CATALOGUE) != original for _ in range(20)) >= 18
