"""The acceptance gate of tools/vulncheck.py (the scan itself runs in `make vulncheck`)."""

import datetime as dt
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("vulncheck", ROOT / "tools" / "vulncheck.py")
assert _spec is not None and _spec.loader is not None
vulncheck = importlib.util.module_from_spec(_spec)
sys.modules["vulncheck"] = vulncheck
_spec.loader.exec_module(vulncheck)

TODAY = dt.date(2026, 11, 27)
ENTRY = {
    "ids": ["GO-2026-0001"], "modules": ["golang.org/x/net"], "binaries": ["kwok"],
    "reason": "test-time tool on a loopback cluster", "by": "platform", "date": "2026-11-27",
    "expires": "2026-12-31",
}


def write(tmp_path: Path, *entries: dict[str, object]) -> Path:
    path = tmp_path / "accepted.json"
    path.write_text(json.dumps({"accepted": list(entries)}))
    return path


def test_a_finding_passes_only_while_its_acceptance_matches_and_lasts(tmp_path):
    accepted = vulncheck.load_acceptances(write(tmp_path, ENTRY))
    assert vulncheck.verdict(accepted, "GO-2026-0001", "golang.org/x/net", "kwok", TODAY) == (
        "accepted until 2026-12-31", None)
    later = dt.date(2027, 1, 1)
    assert vulncheck.verdict(accepted, "GO-2026-0001", "golang.org/x/net", "kwok", later) == (
        "acceptance EXPIRED 2026-12-31", "GO-2026-0001(expired)")
    for osv, module, binary in [("GO-2026-0002", "golang.org/x/net", "kwok"),
                                ("GO-2026-0001", "golang.org/x/crypto", "kwok"),
                                ("GO-2026-0001", "golang.org/x/net", "pulumi")]:
        assert vulncheck.verdict(accepted, osv, module, binary, TODAY) == ("NOT ACCEPTED", osv)


def test_the_latest_expiry_of_overlapping_acceptances_counts(tmp_path):
    accepted = vulncheck.load_acceptances(
        write(tmp_path, {**ENTRY, "expires": "2026-11-01"}, {**ENTRY, "expires": "2027-02-28"}))
    assert vulncheck.verdict(accepted, "GO-2026-0001", "golang.org/x/net", "kwok", TODAY)[1] is None


@pytest.mark.parametrize(
    ("change", "message"),
    [({"reason": "TODO: triage"}, "the reason is still TODO"),
     ({"by": ""}, "missing by"),
     ({"expires": "soon"}, "accepted[0]: Invalid isoformat string")],
)
def test_an_incomplete_acceptance_stops_the_check(tmp_path, change, message):
    with pytest.raises(vulncheck.CheckError, match=re.escape(message)):
        vulncheck.load_acceptances(write(tmp_path, {**ENTRY, **change}))


def test_the_committed_acceptances_load_and_all_have_reasons():
    accepted = vulncheck.load_acceptances(ROOT / "tools" / "vulncheck-accepted.json")
    assert accepted
    assert all(len(a.reason) > 40 for a in accepted)
