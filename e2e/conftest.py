import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM (a CI timeout, a kill) unwinds like Ctrl-C, so fixtures stop what they started."""
    raise KeyboardInterrupt(f"signal {signum}")


signal.signal(signal.SIGTERM, _terminate)


@pytest.fixture(scope="session", autouse=True)
def traefik_built_beside(request: pytest.FixtureRequest,
                         tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """When the session will run a router data-plane scenario, Traefik's build starts at its
    beginning, in the background at nice 19 (e2e/traefik.py ``prebuild``), instead of when that
    scenario starts: on a cold machine it then overlaps the canary scenarios' waiting. Stopped
    with its process group if it is still running when the session ends."""
    from e2e.traefik import DATA_PLANE_TESTS, prebuild

    if not any(item.path.name in DATA_PLANE_TESTS for item in request.session.items):
        yield
        return
    build = prebuild(tmp_path_factory.mktemp("traefik-build") / "build.log")
    yield
    if build.poll() is None:
        os.killpg(build.pid, signal.SIGTERM)
        build.wait()
