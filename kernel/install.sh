#!/usr/bin/env bash
# Installs what the notebooks need, idempotently:
#   1. evcxr_jupyter (the Rust Jupyter kernel), pinned, built from its crate with
#      kernel/evcxr-*.patch applied (evcxr-dylib.patch: its dylib mode on current toolchains,
#      which the GPU kernels use; evcxr-display.patch: a final `..?` shows its image in a cell's
#      first use of `?`) and installed with `cargo install --locked`, unless that build is
#      already on PATH (~15 CPU-minutes the first time; a changed patch rebuilds it);
#   2. a Python venv (.venv) with the Jupyter client tools from kernel/requirements.txt
#      (and JupyterLab with --lab);
#   3. our kernel spec "latentgan" ("Rust (latentgan)"), registered for this user, with
#      EVCXR_TMPDIR shared by all notebooks (Burn compiles once: 6.6 min on 2 cores, measured
#      2026-12-04), EVCXR_CONFIG_DIR=kernel/config (init.evcxr sets opt-level 3) and cargo's
#      dev profile without debug assertions, overflow checks or incremental builds
#      (kernel.json's env: evcxr always builds `dev`, with all three on);
#   4. a .cargo/config.toml beside EVCXR_TMPDIR (in its parent folder, where cargo looks; evcxr
#      rewrites the one inside it) that patches burn-flex with patches/burn-flex, as
#      Cargo.toml's [patch] does for cargo builds: evcxr writes its own root manifest, so a
#      dependency's [patch] never reaches it (evcxr issue #370);
#   5. the kernel's first build, now, with a progress line (kernel/prebuild.py runs the cells
#      every notebook starts with on the real kernel): the first notebook's `:dep` cell then
#      meets a warm build directory. LATENTGAN_SKIP_PREBUILD=1 leaves it to that first cell.
# The build directory is per user; the kernel spec and the patch point at this checkout, so
# running install.sh from another checkout moves the kernel there (and rebuilds latentgan).
#
# --backend wgpu (or cuda) installs a second kernel, "Rust (latentgan, wgpu)" (`latentgan-wgpu`),
# beside the CPU one, with its own build directory (EVCXR_TMPDIR ends in build-wgpu) and its own
# config directory, whose init.evcxr adds a one-line crate that depends on latentgan with the
# feature on. Cargo unifies features, so the notebooks' unchanged `:dep latentgan = { path = ".." }`
# builds latentgan on that backend: the same notebook runs on either kernel, picked by name. Its
# evcxr.toml turns evcxr's static linking off: each cell then links the dependencies' shared
# libraries instead of its own copy of them, so a GPU tensor made in one cell works in the next
# (with a copy per cell, CubeCL's device state is not found: BENCHMARKS.md).
# wgpu needs a Vulkan driver (without a GPU: bash scripts/install-lavapipe.sh); cuda the CUDA
# toolkit. The first build compiles the GPU stack too (measured in BENCHMARKS.md).
# Usage: bash kernel/install.sh [--lab] [--backend flex|wgpu|cuda]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
EVCXR_VERSION=0.22.0
VENV="${LATENTGAN_VENV:-$ROOT/.venv}"
LAB=0
BACKEND=flex
usage() { echo "usage: bash kernel/install.sh [--lab] [--backend flex|wgpu|cuda]" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --lab) LAB=1 ;;
    --backend) [ $# -ge 2 ] || usage; BACKEND="$2"; shift ;;
    --backend=*) BACKEND="${1#--backend=}" ;;
    *) usage ;;
  esac
  shift
done
EVCXR_TMPDIR="${LATENTGAN_EVCXR_TMPDIR:-${XDG_CACHE_HOME:-$HOME/.cache}/latentgan/kernel/build}"
case "$BACKEND" in
  flex) NAME=latentgan; DISPLAY_NAME="Rust (latentgan)" ;;
  wgpu | cuda) NAME="latentgan-$BACKEND"; DISPLAY_NAME="Rust (latentgan, $BACKEND)"
    EVCXR_TMPDIR="$EVCXR_TMPDIR-$BACKEND" ;;
  *) usage ;;
esac
if [ "$BACKEND" = wgpu ] && ! compgen -G "/usr/share/vulkan/icd.d/*.json" >/dev/null \
  && ! compgen -G "/etc/vulkan/icd.d/*.json" >/dev/null; then
  echo "warning: no Vulkan driver found; the wgpu kernel will find no device (without a GPU:" \
       "bash scripts/install-lavapipe.sh)" >&2
fi

export PATH="$HOME/.cargo/bin:$PATH"
# evcxr_jupyter has no --version flag; cargo's install list records what it installed, and from
# where: our patched build is installed from EVCXR_SRC, named after the patches' contents.
PATCHES=("$ROOT"/kernel/evcxr-*.patch)
PATCHES_ID="$(cat "${PATCHES[@]}" | sha256sum | cut -c1-12)"
EVCXR_SRC="${XDG_CACHE_HOME:-$HOME/.cache}/latentgan/evcxr-$EVCXR_VERSION-$PATCHES_ID"
if command -v evcxr_jupyter >/dev/null \
  && cargo install --list | grep -qF "evcxr_jupyter v$EVCXR_VERSION ($EVCXR_SRC/evcxr_jupyter):"; then
  echo "evcxr_jupyter $EVCXR_VERSION (patched) already installed"
else
  echo "installing evcxr_jupyter $EVCXR_VERSION with ${PATCHES[*]#"$ROOT/"} (~15 CPU-minutes)"
  rm -rf "$EVCXR_SRC"
  mkdir -p "$EVCXR_SRC/fetch/src"
  # A throwaway package makes cargo fetch and unpack the two crates' sources.
  printf '[package]\nname = "fetch-evcxr"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\nevcxr_jupyter = "=%s"\n' \
    "$EVCXR_VERSION" > "$EVCXR_SRC/fetch/Cargo.toml"
  touch "$EVCXR_SRC/fetch/src/lib.rs"
  cargo metadata --manifest-path "$EVCXR_SRC/fetch/Cargo.toml" --format-version 1 \
    | python3 -c 'import json, os, sys
for p in json.load(sys.stdin)["packages"]:
    if p["name"] in ("evcxr", "evcxr_jupyter") and p["version"] == sys.argv[1]:
        print(p["name"], os.path.dirname(p["manifest_path"]))' "$EVCXR_VERSION" \
    | while read -r name dir; do cp -r "$dir" "$EVCXR_SRC/$name"; done
  for p in "${PATCHES[@]}"; do patch -d "$EVCXR_SRC/evcxr" -p1 < "$p"; done
  printf '\n[patch.crates-io]\nevcxr = { path = "../evcxr" }\n\n[workspace]\n' \
    >> "$EVCXR_SRC/evcxr_jupyter/Cargo.toml"
  cargo install --locked --path "$EVCXR_SRC/evcxr_jupyter"
fi
EVCXR_BIN="$(command -v evcxr_jupyter)"

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$ROOT/kernel/requirements.txt"
if [ "$LAB" = 1 ]; then
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check jupyterlab==4.3.5
fi

mkdir -p "$EVCXR_TMPDIR" "$(dirname "$EVCXR_TMPDIR")/.cargo"
cat > "$(dirname "$EVCXR_TMPDIR")/.cargo/config.toml" <<EOF
# Written by latentgan's kernel/install.sh: the kernel's builds (in $EVCXR_TMPDIR) use the
# patched burn-flex, as latentgan's own Cargo.toml [patch] does for cargo builds.
[patch.crates-io]
burn-flex = { path = "$ROOT/patches/burn-flex" }
EOF
# evcxr links cells against the toolchain's libstd-*.so through a relative rpath computed from
# target/.../deps/, but loads them from target/.../debug/: with EVCXR_TMPDIR and ~/.rustup under
# the same home the path is one level off and every cell fails with "dlopen failed". Pointing
# the loader at the toolchain's library folder makes it independent of where the two live.
RUST_STD_LIB="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/lib"

CONFIG_DIR="$ROOT/kernel/config"
if [ "$BACKEND" != flex ]; then
  # The GPU kernel's config: the CPU kernel's init.evcxr plus a `:dep` on a crate whose only
  # content is latentgan with the backend's feature (written here: it names this checkout).
  KERNEL_HOME="$(dirname "$EVCXR_TMPDIR")"
  CONFIG_DIR="$KERNEL_HOME/config-$BACKEND"
  SHIM="$KERNEL_HOME/backend-$BACKEND"
  mkdir -p "$CONFIG_DIR" "$SHIM/src"
  cat > "$SHIM/Cargo.toml" <<EOF
# Written by latentgan's kernel/install.sh --backend $BACKEND: turns latentgan's $BACKEND feature
# on in the "$DISPLAY_NAME" kernel (cargo unifies it with the notebook's own :dep).
[package]
name = "latentgan-kernel-$BACKEND"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
latentgan = { path = "$ROOT", features = ["$BACKEND"] }
EOF
  echo "//! Empty: this crate only turns latentgan's $BACKEND feature on." > "$SHIM/src/lib.rs"
  {
    cat "$ROOT/kernel/config/init.evcxr"
    echo "// Added by kernel/install.sh --backend $BACKEND: latentgan on $BACKEND."
    echo ":dep latentgan-kernel-$BACKEND = { path = \"$SHIM\" }"
  } > "$CONFIG_DIR/init.evcxr"
  # Read by evcxr at start, before its first build (`:allow_static_linking 0` in init.evcxr
  # would come after it, and a change of linking makes evcxr clean the build directory).
  cat > "$CONFIG_DIR/evcxr.toml" <<EOF
# Written by latentgan's kernel/install.sh --backend $BACKEND: dependencies linked once, as shared
# libraries (a GPU value made in one cell is used by the next), and opt-level 3 as init.evcxr's.
[evcxr]
allow_static_linking = false
opt_level = "3"
EOF
fi

# A build directory built with the other linking (a GPU kernel from before it linked shared
# libraries) fails at kernel start ("crate `foldhash` required to be available in rlib format"):
# the linking a build directory was made with is stamped in it, and a change starts it afresh.
LINKING=static
[ "$BACKEND" != flex ] && LINKING=dylib
STAMP="$EVCXR_TMPDIR/.latentgan-linking"
if [ "$(cat "$STAMP" 2>/dev/null || echo static)" != "$LINKING" ]; then
  echo "the kernel's build directory was built with other linking: starting it afresh"
  rm -rf "$EVCXR_TMPDIR/target"
fi
echo "$LINKING" > "$STAMP"

SPEC="$(mktemp -d)/$NAME"
mkdir -p "$SPEC"
sed -e "s|@EVCXR_JUPYTER@|$EVCXR_BIN|" \
    -e "s|@DISPLAY_NAME@|$DISPLAY_NAME|" \
    -e "s|@EVCXR_TMPDIR@|$EVCXR_TMPDIR|" \
    -e "s|@EVCXR_CONFIG_DIR@|$CONFIG_DIR|" \
    -e "s|@RUST_STD_LIB@|$RUST_STD_LIB|" \
    "$ROOT/kernel/latentgan/kernel.json" > "$SPEC/kernel.json"
"$VENV/bin/jupyter-kernelspec" install --user --replace --name "$NAME" "$SPEC" >/dev/null
rm -rf "$(dirname "$SPEC")"
echo "kernel '$NAME' ($DISPLAY_NAME) registered; EVCXR_TMPDIR=$EVCXR_TMPDIR"
if [ "${LATENTGAN_SKIP_PREBUILD:-0}" != 1 ]; then
  "$VENV/bin/python" "$ROOT/kernel/prebuild.py" --kernel "$NAME"
fi
echo "open the notebooks: $VENV/bin/jupyter lab notebooks/   (after: bash kernel/install.sh --lab)"
