"""Drives the real "latentgan" evcxr kernel from Python: one cell at a time, timed.

Used by kernel/prebuild.py (install.sh's warm-up) and kernel/timings.py (issue 19's table).
A cell's result is its wall time as the client sees it (execute request to idle), its text
outputs, and its errors; a cell that errs, or panics (evcxr reports a panic as a success),
raises `CellError` naming the cell.
"""
import queue
import subprocess
import threading
import time
from pathlib import Path

import jupyter_client

ROOT = Path(__file__).resolve().parents[1]


class CellError(RuntimeError):
    pass


class Cell:
    def __init__(self, code, seconds, text, mimes):
        self.code, self.seconds, self.text, self.mimes = code, seconds, text, mimes

    @property
    def first_line(self):
        return self.code.strip().splitlines()[0]


class Kernel:
    """A fresh kernel started in `cwd` (notebooks/ by default, where the notebooks run).

    The kernel's stderr is where evcxr's cargo prints its `Compiling ..` lines.
    """

    def __init__(self, name="latentgan", cwd=ROOT / "notebooks", stderr=None, ready_timeout=300):
        """`stderr`, if given, is called in a thread with the kernel's stderr pipe (cargo's
        output) before the kernel is ready: a GPU kernel's init.evcxr builds at start."""
        self.manager = jupyter_client.KernelManager(kernel_name=name)
        extra = {"stderr": subprocess.PIPE} if stderr else {}
        self.manager.start_kernel(cwd=str(cwd), **extra)
        if stderr:
            pipe = self.manager.provisioner.process.stderr
            threading.Thread(target=stderr, args=(pipe,), daemon=True).start()
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=ready_timeout)

    def run(self, code, timeout=5400, on_wait=None):
        """Runs `code`; `on_wait()` is called about once a second while the cell runs."""
        start = time.monotonic()
        msg_id = self.client.execute(code)
        text, errors, mimes = [], [], set()
        while True:
            try:
                msg = self.client.get_iopub_msg(timeout=1)
            except queue.Empty:  # nothing in the last second
                if on_wait:
                    on_wait()
                if not self.manager.is_alive():
                    raise CellError(f"the kernel died while running `{code.splitlines()[0]}`")
                if time.monotonic() - start > timeout:
                    raise CellError(f"cell `{code.splitlines()[0]}` ran past {timeout} s")
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                text.append(content["text"])
                if content["name"] == "stderr" and "panicked at" in content["text"]:
                    errors.append(content["text"])
            elif kind == "error":
                errors.append(f"{content['ename']}: {content['evalue']}\n" + "\n".join(content["traceback"]))
            elif kind in ("execute_result", "display_data"):
                mimes.update(content["data"].keys())
                text.append(str(content["data"].get("text/plain", "")))
            elif kind == "status" and content["execution_state"] == "idle":
                break
        cell = Cell(code, time.monotonic() - start, "".join(text), mimes)
        if errors:
            raise CellError(f"cell `{cell.first_line}` failed:\n" + "\n".join(errors))
        return cell

    def shutdown(self):
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()
