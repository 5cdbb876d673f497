import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM (a CI timeout, a kill) unwinds like Ctrl-C, so fixtures stop what they started."""
    raise KeyboardInterrupt(f"signal {signum}")


signal.signal(signal.SIGTERM, _terminate)
