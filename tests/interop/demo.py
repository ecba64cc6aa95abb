"""What the Python interoperability scripts share: a demo server to call, and their case reports."""

import re
import subprocess
import time


def start_server(binary, data_dir):
    """Starts `agreements demo` on a free port in `data_dir`; returns (process, gateway URL)."""
    process = subprocess.Popen(
        [binary, "demo", "--data-dir", data_dir, "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 60
    for line in process.stdout:
        match = re.search(r"serving (http://\S+/gateway\.do)", line)
        if match:
            return process, match.group(1)
        if time.monotonic() > deadline:
            break
    process.kill()
    raise SystemExit("the demo server did not start")


RESULTS = []


def case(name):
    """A test case: runs, prints ok or FAIL with the reason, records the result, goes on."""
    def wrap(fn):
        def run(*args):
            try:
                fn(*args)
                RESULTS.append(True)
                print(f"ok   {name}")
            except Exception as e:  # noqa: BLE001 - report and continue
                RESULTS.append(False)
                print(f"FAIL {name}: {type(e).__name__}: {e}")
        return run
    return wrap
