"""Known-vulnerability check of the Go binaries this project builds and runs.

    python3 tools/vulncheck.py [BINARY ...] [--also PATH ...]

Without BINARY it scans every Go binary in ~/.cache/slo-canary-e2e/bin (``make e2e-tools``) and
each ``--also`` path that exists (the Makefile passes actionlint). Everything comes from the Go
module proxy, pinned below, and is cached by version under ~/.cache/slo-canary-tools:

- govulncheck (golang.org/x/vuln) and gendb (golang.org/x/vulndb/cmd/gendb) are built once;
- the Go vulnerability database is generated once per golang.org/x/vulndb version from that
  module's data/osv reports (gendb reads them from a git repository, so they are committed into a
  throw-away one dated at the snapshot's commit time);
- a canary program (tools/vulncheck-canary) that pins golang.org/x/text v0.3.7 and calls
  language.ParseAcceptLanguage must be reported with GO-2022-1059 at symbol level before anything
  else is trusted, so the check cannot pass on a broken scanner or an empty database.

Each binary is scanned with ``govulncheck -mode binary``. A finding is *symbol-level* when a
vulnerable function is in the binary, *package*/*module*-level when only the package or module
is. The check fails (exit 1) on any symbol-level finding that tools/vulncheck-accepted.json does
not accept for that binary, or accepts only until a date that has passed. Exit 2: the check itself
could not run. The raw govulncheck output of each binary is kept in out/vulncheck/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

# ---- pinned versions ---------------------------------------------------------------------------
GOVULNCHECK_MODULE = "golang.org/x/vuln"
GOVULNCHECK_VERSION = "v1.9.0"
VULNDB_MODULE = "golang.org/x/vulndb"
VULNDB_VERSION = "v0.0.0-20261105234957-e22db6528018"  # snapshot of 2026-11-05 23:49:57 UTC

CANARY_ID = "GO-2022-1059"  # golang.org/x/text/language.ParseAcceptLanguage, fixed in v0.3.8

# Binaries that `pulumi up` runs; every other scanned binary is a test-time tool.
RUNTIME_BINARIES = frozenset({"pulumi", "pulumi-resource-kubernetes"})

ROOT = Path(__file__).resolve().parent.parent
CANARY_SRC = ROOT / "tools" / "vulncheck-canary"
DEFAULT_ACCEPTED = ROOT / "tools" / "vulncheck-accepted.json"
DEFAULT_REPORT_DIR = ROOT / "out" / "vulncheck"

GO_ENV = {
    "GOTOOLCHAIN": "local",  # never download another Go toolchain
    "CGO_ENABLED": "0",
    "GOWORK": "off",
    "GOFLAGS": "-mod=mod",
}
HEARTBEAT_SECONDS = 30
LEVELS = ("symbol", "package", "module")


class CheckError(Exception):
    """The check itself could not run (exit 2)."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def go_env() -> dict[str, str]:
    return {**os.environ, **GO_ENV}


def run_logged(what: str, cmd: Sequence[str], logfile: Path, cwd: Path | None = None,
               env: dict[str, str] | None = None) -> None:
    """Run cmd with its output in logfile, printing a line every HEARTBEAT_SECONDS."""
    start = time.monotonic()
    with logfile.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env or go_env(), stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        next_beat = HEARTBEAT_SECONDS
        while proc.poll() is None:
            time.sleep(0.5)
            elapsed = time.monotonic() - start
            if elapsed >= next_beat:
                log(f"  ... {what} ({int(elapsed)}s)")
                next_beat += HEARTBEAT_SECONDS
    if proc.returncode != 0:
        tail = logfile.read_text(errors="replace").splitlines()[-30:]
        raise CheckError(f"{what} failed (exit {proc.returncode}; full log: {logfile}):\n"
                         + "\n".join(tail))


def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def module_dir(module: str, version: str, cwd: Path) -> Path:
    """Download module@version through the module proxy; its directory in GOMODCACHE."""
    proc = subprocess.run(["go", "mod", "download", "-json", f"{module}@{version}"], cwd=cwd,
                          env=go_env(), capture_output=True, text=True, check=False)
    try:
        info = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise CheckError(f"go mod download {module}@{version}: {proc.stderr.strip()}") from None
    if proc.returncode != 0 or info.get("Error"):
        raise CheckError(f"go mod download {module}@{version}: {info.get('Error') or proc.stderr}")
    return Path(str(info["Dir"]))


# ---- building the scanner and the database -----------------------------------------------------
def ensure_go_tool(tools: Path, name: str, package: str, version: str) -> Path:
    """`go install package@version` into tools/<name>-<version>/ unless it is already there."""
    final = tools / f"{name}-{version}"
    binary = final / name
    if (final / ".complete").is_file() and os.access(binary, os.X_OK):
        log(f"{name} {version} cached")
        return binary
    log(f"building {name} {version} ...")
    start = time.monotonic()
    tmp = fresh_dir(tools / f".{name}-{version}.tmp")
    env = {**go_env(), "GOBIN": str(tmp)}
    run_logged(f"building {name} {version}", ["go", "install", f"{package}@{version}"],
               tmp / "build.log", cwd=tmp, env=env)
    if not os.access(tmp / name, os.X_OK):
        raise CheckError(f"{name}: {tmp / name} missing after go install")
    (tmp / ".complete").write_text(dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ\n"))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    log(f"built {name} {version} in {int(time.monotonic() - start)}s")
    return binary


def pseudo_version_time(version: str) -> str:
    """v0.0.0-20261105234957-e22db6528018 -> 2026-11-05T23:49:57Z"""
    stamp = version.split("-")[-2][-14:]
    return dt.datetime.strptime(stamp, "%Y%m%d%H%M%S").strftime("%Y-%m-%dT%H:%M:%SZ")


def ensure_database(tools: Path, gendb: Path) -> Path:
    """The govulncheck database generated by gendb from golang.org/x/vulndb@VULNDB_VERSION."""
    final = tools / f"vulndb-{VULNDB_VERSION}"
    if (final / ".complete").is_file() and (final / "index" / "db.json").is_file():
        log(f"vulnerability database {VULNDB_VERSION} cached")
        return final
    log(f"generating the vulnerability database from {VULNDB_MODULE}@{VULNDB_VERSION} ...")
    start = time.monotonic()
    work = fresh_dir(tools / f".vulndb-{VULNDB_VERSION}.tmp")
    logfile = work / "gendb.log"
    src = module_dir(VULNDB_MODULE, VULNDB_VERSION, work) / "data" / "osv"
    reports = sorted(src.glob("GO-*.json"))
    if not reports:
        raise CheckError(f"no GO-*.json reports in {src}")
    log(f"  {len(reports)} OSV reports in {VULNDB_MODULE}@{VULNDB_VERSION}")
    # gendb reads data/osv from a git repository and dates each entry by its commits: one commit
    # at the snapshot's own time gives every entry that modified time (and the database too).
    repo = work / "repo"
    osv_dir = repo / "data" / "osv"
    osv_dir.mkdir(parents=True)
    for report in reports:  # copyfile: writable copies of the read-only module cache files
        shutil.copyfile(report, osv_dir / report.name)
    when = pseudo_version_time(VULNDB_VERSION)
    git_env = {**os.environ, "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when,
               "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    git = ["git", "-c", "user.name=vulncheck", "-c", "user.email=vulncheck@localhost",
           "-c", "commit.gpgsign=false"]
    run_logged("git init", [*git, "init", "-q", str(repo)], logfile, env=git_env)
    run_logged("git add", [*git, "-C", str(repo), "add", "data/osv"], logfile, env=git_env)
    run_logged("git commit", [*git, "-C", str(repo), "commit", "-q", "-m",
                              f"{VULNDB_MODULE}@{VULNDB_VERSION} data/osv"], logfile, env=git_env)
    db = work / "db"
    run_logged("gendb", [str(gendb), "-repo", str(repo), "-out", str(db)], logfile)
    entries = len(list((db / "ID").glob("GO-*.json")))
    if entries != len(reports):
        raise CheckError(f"gendb wrote {entries} entries for {len(reports)} reports ({logfile})")
    meta = json.loads((db / "index" / "db.json").read_text())
    (db / ".complete").write_text(json.dumps(
        {"module": f"{VULNDB_MODULE}@{VULNDB_VERSION}", "entries": entries,
         "modified": meta.get("modified")}) + "\n")
    shutil.move(str(logfile), db / "gendb.log")
    shutil.rmtree(final, ignore_errors=True)
    db.rename(final)
    shutil.rmtree(work)
    log(f"generated {entries} entries in {int(time.monotonic() - start)}s")
    return final


def ensure_canary(tools: Path) -> Path:
    """Build tools/vulncheck-canary (cached by the hash of its sources and the Go version)."""
    go_version = subprocess.run(["go", "env", "GOVERSION"], env=go_env(), capture_output=True,
                                text=True, check=True).stdout.strip()
    digest = hashlib.sha256(go_version.encode())
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update(name.encode() + b"\0" + (CANARY_SRC / name).read_bytes())
    final = tools / f"vulncheck-canary-{digest.hexdigest()[:12]}"
    binary = final / "canary"
    if (final / ".complete").is_file() and os.access(binary, os.X_OK):
        return binary
    log("building the canary (tools/vulncheck-canary) ...")
    tmp = fresh_dir(tools / ".vulncheck-canary.tmp")
    # Built from a copy, so nothing is written into the work tree.
    shutil.copytree(CANARY_SRC, tmp / "src")
    env = {**go_env(), "GOFLAGS": "-mod=readonly"}
    run_logged("building the canary",
               ["go", "build", "-trimpath", "-o", str(tmp / "canary"), "."],
               tmp / "build.log", cwd=tmp / "src", env=env)
    (tmp / ".complete").write_text(go_version + "\n")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return binary


# ---- scanning ----------------------------------------------------------------------------------
@dataclass
class Finding:
    osv: str
    module: str
    found: str
    fixed: set[str] = field(default_factory=set)
    level: str = "module"
    symbols: set[str] = field(default_factory=set)


@dataclass
class Scan:
    binary: str
    path: Path
    go_version: str
    findings: list[Finding]


def json_stream(text: str) -> Iterator[dict[str, Any]]:
    """The messages of govulncheck -format json: a stream of JSON objects."""
    decoder = json.JSONDecoder()
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return
        obj, i = decoder.raw_decode(text, i)
        if isinstance(obj, dict):
            yield obj


def go_version_of(path: Path) -> str | None:
    """The Go version a binary was built with, or None if it is not a Go binary."""
    # `go version FILE` prints "FILE: go1.x.y" for a Go binary and nothing for other files.
    proc = subprocess.run(["go", "version", str(path)], env=go_env(), capture_output=True,
                          text=True, check=False)
    version = proc.stdout.strip().rsplit(": ", 1)[-1]
    return version if proc.returncode == 0 and version.startswith("go") else None


def fixed_versions(osv: dict[str, Any] | None, module: str) -> set[str]:
    fixed = set()
    for affected in (osv or {}).get("affected") or []:
        if affected.get("package", {}).get("name") == module:
            for r in affected.get("ranges") or []:
                fixed |= {"v" + str(e["fixed"]) for e in r.get("events") or [] if "fixed" in e}
    return fixed


def owning_module(package: str, modules: dict[str, str]) -> str | None:
    owners = [m for m in modules if package == m or package.startswith(m + "/")]
    return max(owners, key=len) if owners else None


def show_version(module: str, version: str) -> str:
    if module == "stdlib" and version.startswith("v"):
        return "go" + version[1:]
    return version or "none"


def scan(govulncheck: Path, db: Path, path: Path, name: str, go_version: str,
         osvs: dict[str, dict[str, Any]], report_dir: Path | None) -> Scan:
    proc = subprocess.run([str(govulncheck), "-db", db.resolve().as_uri(), "-mode", "binary",
                           "-format", "json", str(path)], env=go_env(), capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise CheckError(f"govulncheck on {path} failed (exit {proc.returncode}): "
                         f"{proc.stderr.strip()}")
    if report_dir is not None:
        (report_dir / f"{name}.json").write_text(proc.stdout)
    messages = list(json_stream(proc.stdout))
    if not any("config" in m for m in messages):
        raise CheckError(f"govulncheck on {path}: no JSON output")
    sbom: dict[str, str] = {}
    for msg in messages:
        for m in (msg.get("SBOM") or {}).get("modules") or []:
            sbom[str(m["path"])] = str(m.get("version", ""))
    findings: dict[tuple[str, str], Finding] = {}
    for msg in messages:
        if "osv" in msg:
            osvs[str(msg["osv"]["id"])] = msg["osv"]
        if "finding" not in msg:
            continue
        f = msg["finding"]
        frame = f["trace"][0]
        module, version = str(frame.get("module", "")), str(frame.get("version", ""))
        package = str(frame.get("package", ""))
        # govulncheck v1.9.0 in binary mode sometimes puts a package in an enclosing module
        # (go.opentelemetry.io/otel/sdk/resource in go.opentelemetry.io/otel, with no fixed
        # version), differently from run to run: the package belongs to the longest module path
        # of the binary that contains it.
        owner = owning_module(package, sbom) if package and module != "stdlib" else None
        if owner is not None and owner != module:
            module, version = owner, sbom[owner]
        key = (str(f["osv"]), module)
        found = findings.setdefault(key, Finding(key[0], module, version))
        if f.get("fixed_version") or frame.get("module") == module:
            found.fixed.add(str(f.get("fixed_version") or ""))
        level = "module"
        if frame.get("function"):
            level = "symbol"
        elif package:
            level = "package"
        if LEVELS.index(level) < LEVELS.index(found.level):
            found.level = level
        if level == "symbol":
            receiver = f"{frame['receiver']}." if frame.get("receiver") else ""
            found.symbols.add(f"{package}.{receiver}{frame['function']}")
    for found in findings.values():
        found.fixed.discard("")
        if not found.fixed:  # none reported: the fixed versions the entry gives for the module
            found.fixed = fixed_versions(osvs.get(found.osv), found.module)
    order = sorted(findings.values(), key=lambda x: (LEVELS.index(x.level), x.osv, x.module))
    return Scan(name, path, go_version, order)


# ---- acceptances -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Acceptance:
    ids: frozenset[str]
    modules: frozenset[str]
    binaries: frozenset[str]
    reason: str
    by: str
    date: str
    expires: dt.date


def load_acceptances(path: Path) -> list[Acceptance]:
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckError(f"{path}: {e}") from None
    out = []
    for i, entry in enumerate(data.get("accepted", [])):
        where = f"{path.name}: accepted[{i}]"
        missing = [k for k in ("ids", "modules", "binaries", "reason", "by", "date", "expires")
                   if not entry.get(k)]
        if missing:
            raise CheckError(f"{where}: missing {', '.join(missing)}")
        if str(entry["reason"]).strip().upper().startswith("TODO"):
            raise CheckError(f"{where}: the reason is still TODO")
        try:
            expires = dt.date.fromisoformat(str(entry["expires"]))
            dt.date.fromisoformat(str(entry["date"]))
        except ValueError as e:
            raise CheckError(f"{where}: {e}") from None
        out.append(Acceptance(frozenset(map(str, entry["ids"])),
                              frozenset(map(str, entry["modules"])),
                              frozenset(map(str, entry["binaries"])), str(entry["reason"]),
                              str(entry["by"]), str(entry["date"]), expires))
    return out


def acceptance_for(accepted: list[Acceptance], osv: str, module: str,
                   binary: str) -> Acceptance | None:
    matches = [a for a in accepted if osv in a.ids and module in a.modules and binary in a.binaries]
    return max(matches, key=lambda a: a.expires) if matches else None


def verdict(accepted: list[Acceptance], osv: str, module: str, binary: str,
            today: dt.date) -> tuple[str, str | None]:
    """The gate column for a symbol-level finding, and what to list as failed (None: passes)."""
    a = acceptance_for(accepted, osv, module, binary)
    if a is None:
        return "NOT ACCEPTED", osv
    if a.expires < today:
        return f"acceptance EXPIRED {a.expires}", f"{osv}(expired)"
    return f"accepted until {a.expires}", None


def suggestions(scans: list[Scan], accepted: list[Acceptance],
                today: dt.date) -> list[dict[str, object]]:
    """Entries for the symbol-level findings not accepted, one per module and set of binaries
    (runtime and test-time binaries apart: their reasons differ)."""
    where: dict[tuple[str, str], set[str]] = {}
    for s in scans:
        for f in s.findings:
            a = acceptance_for(accepted, f.osv, f.module, s.binary)
            if f.level == "symbol" and (a is None or a.expires < today):
                where.setdefault((f.osv, f.module), set()).add(s.binary)
    groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for (osv, module), binaries in sorted(where.items()):
        for part in (binaries & RUNTIME_BINARIES, binaries - RUNTIME_BINARIES):
            if part:
                groups.setdefault((module, tuple(sorted(part))), []).append(osv)
    return [{"ids": ids, "modules": [module], "binaries": list(binaries), "reason": "TODO",
             "by": "", "date": today.isoformat(), "expires": ""}
            for (module, binaries), ids in sorted(groups.items())]


# ---- report ------------------------------------------------------------------------------------
def cves(osv: dict[str, Any] | None) -> str:
    aliases = [str(a) for a in (osv or {}).get("aliases") or [] if str(a).startswith("CVE-")]
    return ",".join(aliases) or "-"


def print_table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip(),
              file=out)


def main(argv: list[str] | None = None) -> int:
    home = Path.home() / ".cache"
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("binaries", nargs="*", type=Path,
                   help="binaries to scan (default: every Go binary in E2E_CACHE/bin)")
    p.add_argument("--also", action="append", type=Path, default=[],
                   help="also scan this binary when it exists (repeatable)")
    p.add_argument("--tools-cache", type=Path,
                   default=Path(os.environ.get("SLO_CANARY_TOOLS", home / "slo-canary-tools")))
    p.add_argument("--e2e-cache", type=Path,
                   default=Path(os.environ.get("E2E_TOOLS_CACHE", home / "slo-canary-e2e")))
    p.add_argument("--accepted", type=Path, default=DEFAULT_ACCEPTED)
    p.add_argument("--suggest", action="store_true",
                   help="print acceptance entries (reason TODO) for the findings not accepted")
    p.add_argument("--report-dir", type=Path, default=DEFAULT_REPORT_DIR,
                   help="where the raw govulncheck JSON of each binary is written")
    args = p.parse_args(argv)
    try:
        return run(args)
    except CheckError as e:
        log(f"vulncheck: {e}")
        return 2


def run(args: argparse.Namespace) -> int:
    start = time.monotonic()
    today = dt.date.today()
    accepted = load_acceptances(args.accepted)
    targets = _targets(args)
    govulncheck, db, canary = _prepare_tools(args.tools_cache)

    osvs: dict[str, dict[str, Any]] = {}
    _self_check(govulncheck, db, canary, osvs)
    meta = json.loads((db / ".complete").read_text())
    log(f"self-check passed: the canary is reported with {CANARY_ID} at symbol level")

    report_dir: Path = args.report_dir
    report_dir.mkdir(parents=True, exist_ok=True)
    scans = []
    for path, version in targets:
        log(f"scanning {path.name} ...")
        scans.append(scan(govulncheck, db, path, path.name, version, osvs, report_dir))

    out = sys.stdout
    print(f"govulncheck {GOVULNCHECK_VERSION}, Go vulnerability database {VULNDB_MODULE}@"
          f"{VULNDB_VERSION} ({meta['entries']} entries, modified {meta['modified']})", file=out)
    failures, used = _print_tables(scans, accepted, osvs, today, out)
    _note_stale_acceptances(args.accepted, accepted, scans, used)

    symbol = sum(f.level == "symbol" for s in scans for f in s.findings)
    ids = {f.osv for s in scans for f in s.findings if f.level == "symbol"}
    print(f"\n{len(scans)} binaries: {symbol} symbol-level findings ({len(ids)} distinct OSV IDs), "
          f"{len(failures)} not accepted; raw output in {report_dir} "
          f"({int(time.monotonic() - start)}s)", file=out)
    if args.suggest:
        print(json.dumps({"accepted": suggestions(scans, accepted, today)}, indent=2), file=out)
    if failures:
        _print_failures(failures, args.accepted, out)
        return 1
    print("vulncheck passed", file=out)
    return 0


def _targets(args: argparse.Namespace) -> list[tuple[Path, str]]:
    """The Go binaries to scan, each with its Go version."""
    targets: list[tuple[Path, str]] = []
    explicit = bool(args.binaries)
    candidates: list[Path] = list(args.binaries)
    if not explicit:
        bin_dir = args.e2e_cache / "bin"
        if not bin_dir.is_dir():
            raise CheckError(f"{bin_dir} does not exist: run `make e2e-tools` first")
        candidates = sorted(bin_dir.iterdir())
    candidates += [a for a in args.also if a.exists()]
    for a in args.also:
        if not a.exists():
            log(f"not scanned (absent): {a}")
    names: set[str] = set()
    for path in candidates:
        version = go_version_of(path)
        if version is None:
            if explicit:
                raise CheckError(f"{path} is not a Go binary")
            log(f"not scanned (not a Go binary): {path}")
            continue
        if path.name in names:
            raise CheckError(f"two binaries named {path.name}")
        names.add(path.name)
        targets.append((path, version))
    if not targets:
        raise CheckError("no Go binary to scan")
    return targets


def _prepare_tools(tools: Path) -> tuple[Path, Path, Path]:
    """govulncheck, the database and the canary, built one at a time per cache."""
    tools.mkdir(parents=True, exist_ok=True)
    with (tools / ".vulncheck.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another vulncheck on {tools} ...")
            fcntl.flock(lock, fcntl.LOCK_EX)
        govulncheck = ensure_go_tool(tools, "govulncheck", f"{GOVULNCHECK_MODULE}/cmd/govulncheck",
                                     GOVULNCHECK_VERSION)
        gendb = ensure_go_tool(tools, "gendb", f"{VULNDB_MODULE}/cmd/gendb", VULNDB_VERSION)
        db = ensure_database(tools, gendb)
        canary = ensure_canary(tools)
    return govulncheck, db, canary


def _self_check(govulncheck: Path, db: Path, canary: Path,
                osvs: dict[str, dict[str, Any]]) -> None:
    """Raise CheckError unless the canary is reported with CANARY_ID at symbol level."""
    check = scan(govulncheck, db, canary, "canary", "", osvs, None)
    if not any(f.osv == CANARY_ID and f.level == "symbol" for f in check.findings):
        raise CheckError(
            "the vulnerability database or scanner is not working: the canary "
            f"(tools/vulncheck-canary, {canary}) calls a function of {CANARY_ID} but govulncheck "
            f"reported {sorted({f.osv for f in check.findings}) or 'nothing'}")


def _print_tables(
    scans: list[Scan], accepted: list[Acceptance], osvs: dict[str, dict[str, Any]],
    today: dt.date, out: TextIO,
) -> tuple[list[tuple[str, str]], set[tuple[str, str, str]]]:
    """One table per binary, runtime binaries first; the failures (binary, OSV) and the
    (OSV, module, binary) of every symbol-level finding."""
    failures: list[tuple[str, str]] = []
    used: set[tuple[str, str, str]] = set()
    for group, members in (("runtime (`pulumi up`)", RUNTIME_BINARIES), ("test-time", None)):
        group_scans = [s for s in scans if (s.binary in RUNTIME_BINARIES) == (members is not None)]
        if not group_scans:
            continue
        print(f"\n== {group} binaries", file=out)
        for s in group_scans:
            counts = {lv: sum(f.level == lv for f in s.findings) for lv in LEVELS}
            print(f"\n{s.binary} ({s.go_version}): {counts['symbol']} with vulnerable symbols in "
                  f"the binary, {counts['package'] + counts['module']} in its modules only",
                  file=out)
            rows = [["in binary", "OSV", "CVE", "module", "found", "fixed", "gate"]]
            for f in s.findings:
                gate = ""
                if f.level == "symbol":
                    used.add((f.osv, f.module, s.binary))
                    gate, failed = verdict(accepted, f.osv, f.module, s.binary, today)
                    if failed is not None:
                        failures.append((s.binary, failed))
                fixed = "/".join(sorted(show_version(f.module, v) for v in f.fixed)) or "none"
                rows.append([f.level, f.osv, cves(osvs.get(f.osv)), f.module,
                             show_version(f.module, f.found), fixed, gate])
            if len(rows) > 1:
                print_table(rows, out)
    return failures, used


def _note_stale_acceptances(path: Path, accepted: list[Acceptance], scans: list[Scan],
                            used: set[tuple[str, str, str]]) -> None:
    """Log the acceptances that no longer match anything among the binaries scanned."""
    scanned = {s.binary for s in scans}
    stale = sorted({(i, m, b) for a in accepted for i in a.ids for m in a.modules
                    for b in a.binaries if b in scanned and (i, m, b) not in used})
    for i, m, b in stale:
        log(f"note: {path.name} accepts {i} in {m} for {b}, which is not found there")


def _print_failures(failures: list[tuple[str, str]], path: Path, out: TextIO) -> None:
    """The symbol-level findings not accepted, one line per binary."""
    print(f"\nvulncheck FAILED: symbol-level findings not accepted in {path} "
          "(`--suggest` prints entries to triage):", file=out)
    by_binary: dict[str, list[str]] = {}
    for binary, osv in failures:
        by_binary.setdefault(binary, []).append(osv)
    for binary, osvs_ in by_binary.items():
        print(f"  {binary}: {' '.join(sorted(set(osvs_)))}", file=out)

if __name__ == "__main__":
    sys.exit(main())
