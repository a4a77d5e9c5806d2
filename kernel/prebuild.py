"""Builds latentgan and Burn into the kernel's shared build directory, through the real kernel.

    .venv/bin/python kernel/prebuild.py [--kernel latentgan-wgpu]    (kernel/install.sh runs it)

A notebook's first cell, `:dep latentgan = { path = ".." }`, makes evcxr compile latentgan and
every dependency (145 crates, ~6.6 min on 2 cores, cold). Run here once, with a progress line,
it leaves EVCXR_TMPDIR warm, so that the first notebook's `:dep` cell only checks the build.
It runs the cells every notebook starts with (`:dep`, `use latentgan::prelude::*;`, a library
call) on a fresh kernel in notebooks/, so it also proves that the kernel works: it exits non-zero
with the cell's error when one fails.
"""
import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from session import ROOT, Kernel  # noqa: E402


class Progress:
    """Counts cargo's `Compiling <crate>` lines on the kernel's stderr; shows one live line."""

    def __init__(self):
        self.compiled, self.current, self.start = 0, "", time.monotonic()
        self.interactive = sys.stdout.isatty()
        self.last_shown = 0.0

    def read(self, stream):
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").strip()
            if line.startswith("Compiling "):
                self.compiled += 1
                self.current = line.split()[1]

    def show(self, final=False):
        elapsed = time.monotonic() - self.start
        # A terminal gets a line rewritten in place; a log (CI) a line every 30 s.
        if not (final or self.interactive or elapsed - self.last_shown >= 30):
            return
        self.last_shown = elapsed
        text = (f"  kernel build: {self.compiled} crates compiled, {int(elapsed) // 60}:{int(elapsed) % 60:02d}"
                + (f" (now {self.current})" if self.current and not final else ""))
        end = "\n" if final or not self.interactive else ""
        print(("\r" if self.interactive else "") + text.ljust(79), end=end, flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel", default="latentgan",
                        help="kernel spec: latentgan (CPU), latentgan-wgpu or latentgan-cuda")
    name = parser.parse_args().kernel
    backend = name.removeprefix("latentgan").removeprefix("-") or "flex"
    progress = Progress()
    print(f"building latentgan and Burn into the {name} kernel's build directory "
          "(flex: 145 crates, ~7 min cold on 2 cores; a GPU backend builds its stack too and "
          "starts the build as the kernel starts; warm: ~25 s)", flush=True)
    # A GPU kernel's init.evcxr names latentgan with the feature: its cold build runs at start.
    start = time.monotonic()
    ticker = threading.Event()

    def tick():
        while not ticker.wait(1):
            progress.show()

    threading.Thread(target=tick, daemon=True).start()
    kernel = Kernel(name, stderr=progress.read, ready_timeout=7200)
    ticker.set()
    try:
        timings = [f"kernel start {time.monotonic() - start:.1f} s"]
        for code in [':dep latentgan = { path = ".." }', "use latentgan::prelude::*;",
                     'println!("latentgan on {}", backend_name());']:
            cell = kernel.run(code, on_wait=progress.show)
            timings.append(f"`{cell.first_line}` {cell.seconds:.1f} s")
        progress.show(final=True)
        if f"latentgan on {backend} " not in cell.text:
            sys.exit(f"the {name} kernel runs on the wrong backend: {cell.text.strip()!r}")
        print("kernel ready: " + "; ".join(timings), flush=True)
    finally:
        kernel.shutdown()


if __name__ == "__main__":
    main()
