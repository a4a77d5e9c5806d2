#!/usr/bin/env bash
# patches/burn-flex.diff: everything latentgan changed in burn-flex 0.21.0, as one unified diff
# from the crate published on crates.io to the vendored copy in patches/burn-flex (which
# Cargo.toml uses through [patch.crates-io]; patches/burn-flex/PATCH.md lists the changes).
#
#   bash scripts/burn-flex-patch.sh          (re)writes patches/burn-flex.diff from the tree
#   bash scripts/burn-flex-patch.sh --check  fails (exit 1) if patches/burn-flex.diff is not what
#                                            the first form would write, or if applying it to the
#                                            published crate does not give patches/burn-flex exactly
#
# The published crate is the .crate file in cargo's cache ($CARGO_HOME/registry/cache), checked
# against crates.io's SHA-256 below and unpacked into a temporary folder. If it is not there, a
# throwaway project under ${TMPDIR:-/tmp} runs `cargo fetch` for it (needs crates.io: the crate
# and, since cargo fetch downloads a whole dependency graph, its ~80 dependencies for this host,
# about 50 MB; nothing is built).
#
# What is vendored: every file of the published package, byte for byte, except the two that
# `cargo package` generates and cargo ignores in a path dependency: `.cargo_vcs_info.json` (the
# upstream commit, recorded below) and `Cargo.lock` (the package's own lock file; latentgan's
# Cargo.lock is the one used). `Cargo.toml` is the normalised manifest cargo builds from;
# `Cargo.toml.orig` is upstream's manifest as written, kept for reference (cargo ignores it):
# a change to the dependencies would have to be made in both. `.cargo-ok` is not in the package
# (cargo writes it when it unpacks one). Nothing else is excluded: a file added under
# patches/burn-flex (PATCH.md included) is a new file in the diff, one removed a deletion.
#
# The diff is reproducible: paths sorted bytewise (LC_ALL=C), labels a/<path> and b/<path>
# (/dev/null for a created or deleted file) instead of file names and timestamps. It applies
# with `git apply` or `patch -p1` inside an unpacked burn-flex-0.21.0.
set -euo pipefail
export LC_ALL=C

crate=burn-flex
version=0.21.0
# crates.io's checksum of burn-flex-0.21.0.crate (the "cksum" of its index entry).
sha256=0098bf6555c151517b4c98ca0e8ed1ab6a976e40f5f4e967c117b00eee21e192
# The upstream commit it was packaged from (its .cargo_vcs_info.json), tracel-ai/burn, crates/burn-flex.
upstream_commit=546cacb55fe00168854d19bdf0a5d79bd8060e03
not_vendored=(.cargo_vcs_info.json Cargo.lock)

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tree_rel=patches/burn-flex
diff_rel=patches/burn-flex.diff
tree=$root/$tree_rel
committed=$root/$diff_rel

usage() { sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() { echo "burn-flex-patch: $*" >&2; exit 2; }

mode=write
case "${1:-}" in
  "" | --write) ;;
  --check) mode=check ;;
  -h | --help) usage; exit 0 ;;
  *) usage >&2; exit 2 ;;
esac
[ $# -le 1 ] || { usage >&2; exit 2; }
[ -d "$tree/src" ] || die "$tree_rel/src not found"

work=$(mktemp -d "${TMPDIR:-/tmp}/burn-flex-patch.XXXXXX")
trap 'rm -rf "$work"' EXIT
# git apply run under $work must not take a repository around it for its own.
export GIT_CEILING_DIRECTORIES=$work

sha256_of() {
  if command -v sha256sum >/dev/null; then sha256sum "$1" | cut -d' ' -f1
  else shasum -a 256 "$1" | cut -d' ' -f1; fi
}

cargo_home=${CARGO_HOME:-$HOME/.cargo}
find_crate() {
  local f
  for f in "$cargo_home"/registry/cache/*/"$crate-$version.crate"; do
    if [ -f "$f" ] && [ "$(sha256_of "$f")" = "$sha256" ]; then echo "$f"; return 0; fi
  done
  return 1
}

fetch_crate() {
  command -v cargo >/dev/null || die "cargo not found (needed to fetch $crate $version)"
  local p=$work/fetch host target=()
  # Only this host's dependencies (about 80 crates, not 290): the graph is fetched, not built.
  host=$(rustc -vV 2>/dev/null | sed -n 's/^host: //p') || true
  [ -z "$host" ] || target=(--target "$host")
  mkdir -p "$p/src"
  printf '[package]\nname = "fetch-burn-flex"\nversion = "0.0.0"\nedition = "2021"\npublish = false\n\n[dependencies]\n%s = { version = "=%s", default-features = false }\n' \
    "$crate" "$version" >"$p/Cargo.toml"
  : >"$p/src/lib.rs"
  echo "burn-flex-patch: fetching $crate $version from crates.io (cargo fetch in $p)" >&2
  (cd "$p" && cargo fetch --quiet ${target[@]+"${target[@]}"}) || die "cargo fetch failed"
}

# Unpacks the published crate into $1, less the files that are not vendored.
unpack() {
  local dest=$1 x=$work/unpack.$RANDOM
  mkdir -p "$x"
  tar -xzf "$crate_file" -C "$x"
  [ -d "$x/$crate-$version" ] || die "$crate_file has no $crate-$version/ folder"
  grep -q "^version = \"$version\"$" "$x/$crate-$version/Cargo.toml" || die "$crate_file: not version $version"
  grep -q "\"sha1\": \"$upstream_commit\"" "$x/$crate-$version/.cargo_vcs_info.json" ||
    die "$crate_file: not packaged from upstream commit $upstream_commit"
  for f in "${not_vendored[@]}"; do rm -f "$x/$crate-$version/$f"; done
  mv "$x/$crate-$version" "$dest"
  rmdir "$x"
}

# The file paths under $1, relative to it, one per line; only regular files and folders allowed.
files_under() {
  local odd
  odd=$(cd "$1" && find . ! -type f ! -type d | head -n 5)
  [ -z "$odd" ] || die "$1 holds something other than files and folders: $odd"
  (cd "$1" && find . -type f | sed 's|^\./||')
}

# Writes to stdout the unified diff from folder $1 (published) to folder $2 (vendored).
make_diff() {
  local a=$1 b=$2 p old new la lb rc out
  { files_under "$a"; files_under "$b"; } | sort -u | while IFS= read -r p; do
    old=$a/$p new=$b/$p la=a/$p lb=b/$p
    if [ -f "$old" ] && [ -f "$new" ] && cmp -s "$old" "$new"; then continue; fi
    [ -f "$old" ] || { old=/dev/null la=/dev/null; }
    [ -f "$new" ] || { new=/dev/null lb=/dev/null; }
    rc=0
    out=$(diff -u --label "$la" --label "$lb" "$old" "$new") || rc=$?
    [ "$rc" = 1 ] && [ "${out:0:4}" = "--- " ] || die "diff of $p failed or is not a text diff: ${out:0:200}"
    printf 'diff -ruN a/%s b/%s\n%s\n' "$p" "$p" "$out"
  done
}

# "N files changed, +A -D lines" for the diff file $1.
stats() {
  (cd "$work" && git apply --numstat "$1") |
    awk -F'\t' '{ f++; a += $1; d += $2 } END { printf "%d files changed, +%d -%d lines\n", f, a, d }'
}

crate_file=$(find_crate) || { fetch_crate; crate_file=$(find_crate) || die "$crate-$version.crate with SHA-256 $sha256 is not in $cargo_home/registry/cache after cargo fetch"; }
unpack "$work/published"
make_diff "$work/published" "$tree" >"$work/new.diff"

if [ "$mode" = write ]; then
  if [ -f "$committed" ] && cmp -s "$work/new.diff" "$committed"; then
    echo "$diff_rel unchanged ($(stats "$work/new.diff"))"
  else
    cp "$work/new.diff" "$committed"
    echo "wrote $diff_rel ($(stats "$work/new.diff"))"
  fi
  exit 0
fi

# --check
if ! [ -f "$committed" ] || ! cmp -s "$work/new.diff" "$committed"; then
  {
    echo "burn-flex-patch: $diff_rel is out of date: it is not the diff from $crate $version to $tree_rel."
    if [ -f "$committed" ]; then
      echo "How the diff would change (first 40 lines):"
      diff -u --label "$diff_rel (committed)" --label "$diff_rel (from the tree)" "$committed" "$work/new.diff" | head -n 40 || true
    fi
    echo "Run \`bash scripts/burn-flex-patch.sh\` (without --check) and commit $diff_rel with the change to $tree_rel."
  } >&2
  exit 1
fi
# Applied to a fresh copy of the published crate, the diff gives the tree: with git apply, and
# with patch -p1 where it is installed.
command -v git >/dev/null || die "git not found (the check applies $diff_rel with git apply)"
tools=("git apply --whitespace=nowarn")
command -v patch >/dev/null && tools+=("patch -p1 --batch --silent")
for tool in "${tools[@]}"; do
  rm -rf "$work/applied"
  unpack "$work/applied"
  (cd "$work/applied" && $tool <"$committed") || {
    echo "burn-flex-patch: $diff_rel does not apply to $crate $version with $tool" >&2; exit 1; }
  if ! diff -r "$work/applied" "$tree" >"$work/leftover" 2>&1; then
    {
      echo "burn-flex-patch: $crate $version + $diff_rel ($tool) is not $tree_rel:"
      head -n 40 "$work/leftover"
    } >&2
    exit 1
  fi
done
echo "OK: $diff_rel is up to date and turns $crate $version into $tree_rel ($(stats "$committed"))"
