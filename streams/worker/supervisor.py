"""``nextoffer worker`` without ``--no-restart``: a small supervisor that runs the worker as a
child process and starts it again when it exits stuck (the offset guard's EXIT_RESTART)."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

from nextoffer.streams.worker.watchdog import EXIT_RESTART


def supervise(command: list[str], max_restarts: int = 5, within: float = 600.0) -> int:
    """Run the worker as a child; start it again when it exits stuck (EXIT_RESTART), at most
    ``max_restarts`` times in ``within`` seconds. SIGTERM and SIGINT are passed on."""
    restarts: list[float] = []
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        while True:
            child = subprocess.Popen(command)

            def pass_on(signum, _frame, child=child):
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            for signum in previous:
                signal.signal(signum, pass_on)
            code = child.wait()
            if code != EXIT_RESTART:
                return code
            now = time.monotonic()
            restarts = [t for t in restarts if now - t < within] + [now]
            if len(restarts) > max_restarts:
                print(f"error: the worker got stuck {len(restarts)} times in {within:.0f} s; not starting "
                      "it again (see its log)", file=sys.stderr, flush=True)
                return code
            print("the worker exited stuck (code 75); starting it again", file=sys.stderr, flush=True)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
