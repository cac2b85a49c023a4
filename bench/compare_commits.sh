#!/usr/bin/env bash
# Wall time of the same protocol run for two commits, each in its own venv and with an empty cache,
# one after the other on this machine, and their ratio.
#   bench/compare_commits.sh OLD NEW [run_recbole_unlearn.py arguments]
# Default arguments: --model=LLMRec --dataset=ml-100k --config_files=bench/cpu_window.yaml
# (pass --model=LLMRec --dataset=ml-100k for the README's main command).
set -euo pipefail
old=$1 new=$2
shift 2
args=("$@")
[ ${#args[@]} -eq 0 ] && args=(--model=LLMRec --dataset=ml-100k --config_files=bench/cpu_window.yaml)
repo=$(git rev-parse --show-toplevel)
work=$(mktemp -d)
declare -A seconds
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
for commit in "$old" "$new"; do
  tree="$work/$commit"
  git -C "$repo" worktree add --quiet --detach "$tree" "$commit"
  python3 -m venv "$tree/.venv"
  "$tree/.venv/bin/pip" install --quiet torch==2.13.0
  "$tree/.venv/bin/pip" install --quiet -e "$tree"
  start=$(date +%s.%N)
  (cd "$tree" && .venv/bin/python run_recbole_unlearn.py "${args[@]}" > "$work/$commit.log" 2>&1)
  seconds[$commit]=$(echo "$(date +%s.%N) - $start" | bc)
  echo "$commit: ${seconds[$commit]} s (log: $work/$commit.log)"
done
echo "ratio new/old: $(echo "scale=3; ${seconds[$new]} / ${seconds[$old]}" | bc)"
for commit in "$old" "$new"; do git -C "$repo" worktree remove --force "$work/$commit"; done
