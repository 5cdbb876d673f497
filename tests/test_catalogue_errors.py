"""Every broken catalogue fails with exactly the lines it announces, before anything is written."""

import subprocess
import sys
from pathlib import Path

import pytest

from slo.loader import load_catalogue
from slo.problems import ConfigError

ROOT = Path(__file__).resolve().parent.parent
BROKEN = sorted((ROOT / "tests" / "catalogues" / "broken").glob("*.yaml"))


def expected_lines(path: Path) -> list[str]:
    rel = path.relative_to(ROOT)
    return [
        f"{rel}: {line.removeprefix('# expect: ')}"
        for line in path.read_bytes().decode("utf-8", "replace").splitlines()
        if line.startswith("# expect: ")
    ]


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.stem)
def test_broken_catalogue_is_refused_with_one_line_per_problem(path, tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "slo", "rules", str(path.relative_to(ROOT)), "-o", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == expected_lines(path)
    assert "Traceback" not in result.stderr
    assert not out.exists(), "nothing may be written for a broken catalogue"


def test_every_broken_catalogue_announces_its_expectation():
    assert BROKEN and all(expected_lines(p) for p in BROKEN)


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_catalogue(tmp_path / "nope.yaml")
    assert err.value.lines == [
        f"{tmp_path / 'nope.yaml'}: cannot read the file (No such file or directory)"
    ]


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("services:\n  - name: [unclosed\n")
    with pytest.raises(ConfigError) as err:
        load_catalogue(path)
    assert len(err.value.lines) == 1
    assert err.value.lines[0].startswith(f"{path}: line ")


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        # libyaml's loader used to die with SIGSEGV on this, with no message at all
        ("deep.yaml", b"services: " + b"[" * 60_000, "line 1: nested more than 64 levels deep"),
        (
            "laughs.yaml",
            b'a: &a ["x","x","x","x","x","x","x","x","x","x"]\n'
            + b"".join(
                f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n".encode()
                for i in range(8)
            ),
            "more than 1,000,000 values once aliases are expanded",
        ),
        ("big.yaml", b"# " + b"x" * (9 * 2**20), "larger than 8 MiB"),
        ("nul.yaml", b"services:\n  - name: a\x00b\n", "line 2: a NUL character"),
    ],
)
def test_hostile_files_get_one_line_and_no_signal(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "slo", "rules", str(path), "-o", str(out)],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=60,
    )
    assert result.returncode == 1, (result.returncode, result.stderr[-500:])
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{path}: ") and expected in lines[0], lines
    assert not out.exists()


@pytest.mark.parametrize("text, problem", [
    ("{{ $labels.service }} burns", None),
    ("{{ $value | humanizePercentage }}", None),
    ("{{- /* a comment */ -}}", None),
    ('{{ "}}" }}', None),
    ('{{ printf "%.2f $x" $value }}', None),
    ("x }} y", None),  # plain text to Go
    ("{{ if gt $value 0.5 }}high{{ else }}low{{ end }}", None),
    ("{{ range $i, $v := $labels }}{{ $i }}={{ $v }}{{ end }}", None),
    ('{{ with query "up" }}{{ . | first | value }}{{ end }}', None),
    ("{{ $labels.service burns", "'{{' at character 0 is never closed with '}}'"),
    ("{{ }}", "'{{}}' at character 0 is an empty action"),
    ("{{ $labels[0] }}", "'[' at character 10 cannot stand in a template action"),
    ("{{ $value | humanise }}", "'humanise' at character 12 is not a function Prometheus's "
     "templates define"),
    ("{{ $y }}", "'$y' at character 0 is not a variable Prometheus defines"),
    ('{{ "abc }}', "the string at character 10 in an action is never closed"),
    ("{{ if true }}x", "'{{ if }}' at character 0 is never ended with '{{ end }}'"),
    ("{{ end }}", "'{{ end }}' at character 0 is outside an if, range or with"),
    ("{{ $value) | humanize }}", "')' in the action at character 0 closes no '('"),
    ("{{ (printf \"%d\" 1 }}", "'(' in the action at character 0 is never closed with ')'"),
    ("{{ (len $labels) }}", None),
])
def test_alert_templates_are_checked_as_go_parses_them(text, problem):
    from slo.spec import _template_problem

    assert _template_problem(text) == problem


def test_a_selector_holding_braces_stays_plain_text_in_the_alert_templates():
    """A label value with ``{{`` in the service selector is quoted into the absent alert's
    description; it must not open a template action there."""
    from slo.annotations import literal
    from slo.spec import _template_problem

    quoted = literal('http_requests_total{job="api{{ .Broken"}')
    assert _template_problem(f"No series match {quoted} for 10m") is None
    assert _template_problem('No series match http_requests_total{job="api{{ .Broken"}') \
        is not None


def test_a_duration_with_surrounding_space_is_refused():
    from slo import durations

    for text in ("\n15m", "15m ", " 1h"):
        with pytest.raises(ValueError):
            durations.parse(text)
    assert durations.parse("15m") == 900
