"""Wait (at most 30 s) until `URL/health` answers 200; exit 1 at once if process PID exits first.

    python scripts/wait_healthy.py URL PID

Used by the scripts that start a gateway for a test run (conformance.sh, ts_sdk.sh).
"""

import os
import sys
import time
import urllib.request

url, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(1)
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            if response.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.1)
sys.exit(1)
