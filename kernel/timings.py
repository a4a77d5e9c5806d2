"""The notebook kernel against the release CLI, side by side in one run (issue 19's table).

    bash kernel/install.sh && .venv/bin/python kernel/timings.py [--reps 2] [--steps 100]

1. Cell times in a fresh kernel, as every notebook starts: `:dep latentgan`, `use
   latentgan::prelude::*;`, the first cell that calls the library, display cells (a `println!`,
   an evaluated value, an inline grid). With a prebuilt EVCXR_TMPDIR (install.sh) the `:dep` cell
   is the warm one a notebook meets.
2. Throughput of the same jobs in that kernel and in the release CLI (`cargo build --release`),
   alternating kernel and CLI `--reps` times, medians reported, the ratio kernel/CLI:
   - stage 1 (32², width 16, batch 16, `--steps` steps): training seconds from each run's
     history.jsonl (the same clock in both);
   - the code GAN on those codes (widths 64/32, batch 16): the same;
   - FID between two folders of 50 faces (Inception features + statistics): wall time of
     `fid_from_dirs` in the kernel, of `latentgan fid A B` for the CLI (process start included).
Figures go to stdout as a markdown table.
"""
import argparse
import json
import re
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402
from session import ROOT, Kernel  # noqa: E402

FACES = ROOT / "datasets" / "lfw-faces"


def history_seconds(run_dir):
    lines = (Path(run_dir) / "history.jsonl").read_text().strip().splitlines()
    return json.loads(lines[-1])["seconds"]


def cli_binary():
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "latentgan"], cwd=ROOT, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return str(target / "release" / "latentgan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--steps", type=int, default=100, help="stage-1 steps (code GAN: half as many)")
    args = parser.parse_args()
    cli = cli_binary()
    work = Path(tempfile.mkdtemp(prefix="latentgan-timings-"))
    fid_a, fid_b = work / "fid-a", work / "fid-b"
    for folder, names in [(fid_a, range(0, 50)), (fid_b, range(50, 100))]:
        folder.mkdir()
        for i in names:
            shutil.copy(FACES / f"{i:03}.png", folder / f"{i:03}.png")

    rows = []
    # The build directory the installed kernel spec uses (kernel/install.sh wrote it there).
    build_dir = Path(KernelSpecManager().get_kernel_spec("latentgan").env["EVCXR_TMPDIR"])
    warm = (build_dir / "target").exists()
    with Kernel() as k:
        def cell(label, code):
            c = k.run(code)
            rows.append((label, f"{c.seconds:.1f} s", f"`{c.first_line}`"))
            print(f"{c.seconds:7.1f} s  {label}", flush=True)
            return c

        cell(f":dep ({'warm' if warm else 'cold'} build directory)", ':dep latentgan = { path = ".." }')
        cell("use", "use latentgan::prelude::*;")
        cell("first library call", 'let faces = load_images("../datasets/lfw-faces", 32)?;')
        cell("display: println!", 'println!("{} faces", faces.len());')
        cell("display: a value", "faces.len()")
        cell("display: a grid", "show_grid(&faces.images(16), GridOptions::default())?")
        cell("display: println! again", 'println!("{}", faces.resolution());')

        steps, gan_steps = args.steps, max(args.steps // 2, 2)
        s1_cfg = (f"Stage1Config::new().with_model(AutoEncoderConfig::new().with_width(16))"
                  f".with_steps({steps}).with_log_every({steps})")
        gan_cfg = (f"Stage2Config::new().with_model(GanArch::new().with_max_width(64).with_min_width(32))"
                   f".with_batch_size(16).with_steps({gan_steps}).with_log_every({gan_steps})")
        times = {"stage 1": ([], []), "code GAN": ([], []), "FID (100 faces)": ([], [])}
        for rep in range(args.reps):
            k_s1, k_gan = work / f"k-s1-{rep}", work / f"k-gan-{rep}"
            k.run(f'let ae = train_stage1(&faces, {s1_cfg}.with_run_dir(Some("{k_s1}".into())))?;')
            times["stage 1"][0].append(history_seconds(k_s1))
            k.run("let codes = ae.encode_dataset(&faces)?;")
            k.run(f'let gan = train_stage2(&codes, &ae, {gan_cfg}.with_run_dir(Some("{k_gan}".into())))?;')
            times["code GAN"][0].append(history_seconds(k_gan))
            c = k.run(f'{{ let t = std::time::Instant::now(); let f = fid_from_dirs("{fid_a}", "{fid_b}")?; '
                      f'println!("FID {{f:.6}} in {{:.3}} s", t.elapsed().as_secs_f64()); }}')
            fid_kernel, seconds = re.search(r"FID ([0-9.]+) in ([0-9.]+) s", c.text).groups()
            times["FID (100 faces)"][0].append(float(seconds))

            c_s1, c_gan = work / f"c-s1-{rep}", work / f"c-gan-{rep}"
            run = lambda *a: subprocess.run([cli, *map(str, a)], check=True, capture_output=True, text=True)
            run("stage1", "--data", FACES, "--resolution", 32, "--steps", steps, "--width", 16, "--out", c_s1)
            times["stage 1"][1].append(history_seconds(c_s1))
            run("stage2", "--stage1", c_s1, "--steps", gan_steps, "--max-width", 64, "--min-width", 32,
                "--batch-size", 16, "--out", c_gan)
            times["code GAN"][1].append(history_seconds(c_gan))
            t = time.monotonic()
            out = run("fid", fid_a, fid_b, "--json").stdout
            times["FID (100 faces)"][1].append(time.monotonic() - t)
            print(f"rep {rep}: " + ", ".join(f"{n} {v[0][-1]:.2f}/{v[1][-1]:.2f} s" for n, v in times.items())
                  + f"; FID kernel {fid_kernel}, CLI {json.loads(out)['fid']:.6f}", flush=True)

    print("\n| cell | seconds | code |\n|---|---|---|")
    for label, secs, code in rows:
        print(f"| {label} | {secs} | {code} |")
    print(f"\n| job | kernel (median of {args.reps}) | release CLI | kernel / CLI speed |\n|---|---|---|---|")
    for name, (kern, cli_t) in times.items():
        a, b = statistics.median(kern), statistics.median(cli_t)
        print(f"| {name} | {a:.2f} s | {b:.2f} s | {b / a:.2f} |")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
