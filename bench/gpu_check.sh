#!/usr/bin/env bash
# One-shot check of rmclean on a GPU machine, meant to run once on a rented single-GPU box
# with no network. Every step has its own timeout and the whole run a time budget; a step
# that fails or times out is recorded and the next one still runs. Results go to $OUT
# (default ./gpu_out), at most 7 small files:
#
#   gpu_check.log          each step's command, status and the tail of its output
#   env.json               a. nvidia-smi, python/torch/transformers/beam versions, CUDA
#   backends_cuda.json     b. ixc25, vlm-value-head, text-rm from tiny random checkpoints
#                             (tests/tiny_models.py), loaded through models.registry, scored on
#                             CPU fp32 and on CUDA fp32 and bf16 (dtype auto), batch 1 and all;
#                             scores and, for the value-head backends, turn scores (one sample
#                             has three answers)
#   gpu_reward_bench.json  c. python -m bench.gpu_reward_bench: packed vs padded through score()
#                             for vlm-value-head (Qwen2.5-VL-7B shapes) and text-rm (Llama-3.1-8B
#                             shapes), bf16, and torch's varlen kernel against the exact path
#   pipeline_cuda.json     d. rmclean clean on the bundled sample (demo model), devices
#                             [cuda:0] and [cpu]: wall time, counts, score differences
#   gpu_util.json          e. only if bench.gpu_util_bench can use CUDA (it cannot today)
#   summary.json           every step's status and seconds, and the headline numbers
#
#   bash bench/gpu_check.sh          # on the GPU machine
#   bash bench/gpu_check.sh --cpu    # the same steps, tiny and on the CPU (tests this script)
#
# Environment: OUT (results folder), PYTHON (default python3), GPU_CHECK_BUDGET_S (the whole
# run's time budget in seconds, default 420). Apache Beam, decord and webdataset are not on
# the GPU machine: install .whl/ first (see the caller's command line). The generated sample
# dataset comes from .whl/sample-data.tar.gz when present (synth needs PyAV to write it),
# else data/sample, else `rmclean sample`.
set -u

MODE=gpu
for arg in "$@"; do
  case "$arg" in
    --cpu) MODE=cpu ;;
    -h | --help)
      sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "gpu_check.sh: unknown argument $arg (use --cpu or --help)" >&2
      exit 2
      ;;
  esac
done

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO" || exit 1
OUT=${OUT:-./gpu_out}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd) || exit 1
PY=${PYTHON:-python3}
BUDGET=${GPU_CHECK_BUDGET_S:-420}
START=$(date +%s)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
LOG="$OUT/gpu_check.log"
STEPS="$WORK/steps.tsv"
: >"$LOG"
: >"$STEPS"

export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HOME="$WORK/hf"
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
export HF_HUB_DISABLE_PROGRESS_BARS=1 TRANSFORMERS_VERBOSITY=error
if [ "$MODE" = cpu ]; then
  export CUDA_VISIBLE_DEVICES=""
  TARGET=cpu
else
  TARGET=cuda
fi

log() { printf '%s\n' "$*" | tee -a "$LOG"; }
elapsed() { echo $(($(date +%s) - START)); }

record() { # NAME STATUS SECONDS RC NOTE
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" >>"$STEPS"
  log "== $1: $2 (${3}s, rc=$4)${5:+ $5}"
}

# step NAME LIMIT_S CMD...: runs CMD under `timeout`, never longer than the budget left.
step() {
  local name=$1 limit=$2
  shift 2
  local left=$((BUDGET - $(elapsed)))
  if [ "$left" -lt 20 ]; then
    record "$name" no_time 0 - "out of time budget (${BUDGET}s)"
    return 0
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  log ""
  log "== $name (limit ${limit}s, at ${SECONDS}s): $*"
  local t0 t1 rc status
  t0=$(date +%s.%N)
  STEP_LIMIT=$limit timeout -k 10 "$limit" "$@" >"$WORK/$name.out" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  case $rc in
    0) status=ok ;;
    124 | 137) status=timeout ;;
    *) status=failed ;;
  esac
  # Enough of the output to debug from, without letting the log grow large.
  local lines=40
  [ "$status" != ok ] && lines=150
  {
    echo "-- last $lines lines of output:"
    tail -n "$lines" "$WORK/$name.out" | cut -c1-400
  } >>"$LOG"
  record "$name" "$status" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')" "$rc" ""
}

log "gpu_check.sh mode=$MODE repo=$REPO out=$OUT work=$WORK budget=${BUDGET}s"
log "started $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n), $(nproc) cores"

# --- the Python parts, written to the scratch folder --------------------------------------

cat >"$WORK/env_check.py" <<'PYEOF'
"""a. What this machine has: GPU, Python, torch, transformers, Beam and friends."""
import importlib, json, os, platform, shutil, subprocess, sys

out = {"mode": sys.argv[2], "python": sys.version, "executable": sys.executable,
       "platform": platform.platform(), "cpu_count": os.cpu_count(),
       "pythonpath": os.environ.get("PYTHONPATH", "")}


def run(cmd):
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return (done.stdout + done.stderr).strip()
    except Exception as exc:  # noqa: BLE001
        return f"unavailable: {exc!r}"


out["nvidia_smi_L"] = run(["nvidia-smi", "-L"]) if shutil.which("nvidia-smi") else "not found"
if shutil.which("nvidia-smi"):
    out["nvidia_smi_query"] = run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,"
                                   "memory.used,utilization.gpu", "--format=csv,noheader"])
versions = {}
for name in ("torch", "transformers", "apache_beam", "decord", "webdataset", "numpy", "pyarrow",
             "pandas", "PIL", "google.protobuf", "grpc", "tokenizers", "safetensors",
             "huggingface_hub", "fsspec", "yaml", "cloudpickle", "fastavro", "zstandard",
             "cryptography", "dateutil", "flash_attn", "av", "einops", "torchvision"):
    try:
        module = importlib.import_module(name)
        versions[name] = {"version": str(getattr(module, "__version__", "?")),
                          "from": os.path.dirname(getattr(module, "__file__", "") or "")}
    except Exception as exc:  # noqa: BLE001
        versions[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
out["packages"] = versions
import torch

out["torch_cuda_build"] = torch.version.cuda
out["cuda_available"] = torch.cuda.is_available()
out["device_count"] = torch.cuda.device_count()
if torch.cuda.is_available():
    props = torch.cuda.get_device_properties(0)
    out["device"] = {"name": props.name, "capability": f"{props.major}.{props.minor}",
                     "memory_gib": round(props.total_memory / 2**30, 1),
                     "bf16_supported": torch.cuda.is_bf16_supported()}
    x = torch.randn(256, 256, device="cuda", dtype=torch.bfloat16)
    out["cuda_matmul_ok"] = bool(torch.isfinite(x @ x).all().item())
json.dump(out, open(sys.argv[1], "w"), indent=1)
print(json.dumps({k: out[k] for k in ("nvidia_smi_L", "cuda_available", "torch_cuda_build")}))
print({k: v.get("version", v.get("error")) for k, v in versions.items()})
if sys.argv[2] == "gpu" and not out["cuda_available"]:
    sys.exit("torch.cuda.is_available() is False on the GPU run")
PYEOF

cat >"$WORK/backends_check.py" <<'PYEOF'
"""b. The three GPU backends from tiny random checkpoints, CPU fp32 against the target device.

Loads each backend through models.registry (preflight, then loader_for: the pipeline's own
path), scores the same samples one at a time and all in one batch, and records the scores
and their differences. Random tiny weights: this checks devices and dtypes, not quality.
"""
import io, json, math, os, sys, tarfile, time, traceback
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from models.base import Reward, score_of
from models.registry import loader_for, preflight
from tests.tiny_models import (build_tiny_clip, build_tiny_ixc, build_tiny_qwen_vl,
                               build_tiny_text_rm, write_test_font)
from transforms.core.record import MediaRef, Sample

out_path, work, target, sample_root = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]
rng = np.random.default_rng(0)


def encode(pixels, fmt):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def chat(question, answer, *more):
    """A conversation: (question, answer), then any further question and answer pairs."""
    pairs = [question, answer, *more]
    return [{"from": "human" if i % 2 == 0 else "gpt", "value": text}
            for i, text in enumerate(pairs)]


def first_mp4(root):
    """A real mp4 from the sample's LLaVA-Video archive, and frames decoded by decord."""
    for archive in sorted(Path(root).rglob("*.tar.gz")):
        with tarfile.open(archive) as tar:
            for member in tar:
                if member.name.endswith(".mp4"):
                    data = tar.extractfile(member).read()
                    path = work / "video.mp4"
                    path.write_bytes(data)
                    import decord

                    reader = decord.VideoReader(str(path))
                    step = max(1, int(round(reader.get_avg_fps())))
                    frames = reader.get_batch(list(range(0, len(reader), step))[:8]).asnumpy()
                    return data, frames
    raise FileNotFoundError(f"no .mp4 in a .tar.gz under {root}")


def image(h, w, name, fmt="PNG"):
    pixels = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    return MediaRef("image", name, encode(pixels, fmt)), pixels


def media_samples():
    (a, pa), (b, pb), (c, pc), (d, pd) = (image(60, 90, "a.jpg", "JPEG"), image(120, 64, "b.png"),
                                          image(56, 56, "c.png"), image(40, 80, "d.png"))
    samples = [
        Sample("wide", "s", chat("<image>\nwhat is shown", "a red square"), [a], decoded=[pa]),
        Sample("tall", "s", chat("<image>\nis it red", "yes it is red and small"), [b],
               decoded=[pb]),
        Sample("two", "s", chat("<image>\n<image>\ncompare them", "the second is darker"),
               [c, d], decoded=[pc, pd]),
        Sample("text", "s", chat("say hi", "hello there friend")),
        Sample("turns", "s", chat("<image>\nwhat is shown", "a red square", "is it small",
                                  "yes", "what colour is it", "blue"), [a], decoded=[pa]),
    ]
    try:
        data, frames = first_mp4(sample_root)
        samples.insert(2, Sample("video", "s", chat("<video>\ndescribe", "a blue bar moves right"),
                                 [MediaRef("video", "v/a.mp4", data)], decoded=[frames]))
    except Exception as exc:  # noqa: BLE001
        print(f"no video sample: {exc!r}")
    return samples


def text_samples():
    pairs = [("say hi", "hello there friend"), ("what is red", "a colour"),
             ("describe the picture", "a cat sat on the mat and then it left"), ("yes?", "no")]
    samples = [Sample(f"t{i}", "s", chat(q, a)) for i, (q, a) in enumerate(pairs)]
    samples.append(Sample("turns", "s", chat(*[text for pair in pairs for text in pair])))
    return samples


def finite(values):
    return all(isinstance(v, float) and math.isfinite(v) for v in values)


def run_config(name, options, samples):
    """Load once, score one at a time and as one batch; scores, dtype, device, timings."""
    row = {"options": {k: v for k, v in options.items() if k in ("device", "dtype")}}
    try:
        preflight(name, options)
        started = time.perf_counter()
        model = loader_for(name, options)()
        row["load_seconds"] = round(time.perf_counter() - started, 2)
        module = getattr(model, "model", None)
        if isinstance(module, torch.nn.Module):
            params = list(module.parameters())
            row["param_dtypes"] = sorted({str(p.dtype).replace("torch.", "") for p in params})
            row["param_devices"] = sorted({str(p.device) for p in params})
        row["model_device"] = str(getattr(model, "device", "?"))
        started = time.perf_counter()
        single = [model.score([s])[0] for s in samples]
        row["single_seconds"] = round(time.perf_counter() - started, 3)
        started = time.perf_counter()
        batched = model.score(samples)
        row["batched_seconds"] = round(time.perf_counter() - started, 3)
        # A Reward's score and turn scores (value-head backends), else the score alone.
        for kind, results in (("single", single), ("batched", batched)):
            row[kind] = [score_of(r) for r in results]
            row[f"{kind}_turns"] = [
                list(r.turn_scores) if isinstance(r, Reward) else None for r in results]
        row["finite"] = finite(row["single"]) and finite(row["batched"]) and all(
            finite(t) for t in row["single_turns"] + row["batched_turns"] if t is not None)
        row["single_vs_batched_max_abs"] = max(
            abs(x - y) for x, y in zip(row["single"], row["batched"], strict=True))
        row["turns_single_vs_batched_max_abs"] = turn_difference(
            row["single_turns"], row["batched_turns"])
        if torch.cuda.is_available():
            row["cuda_peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        del model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception as exc:  # noqa: BLE001
        row["error"] = f"{type(exc).__name__}: {exc}"[:2000]
        row["traceback"] = traceback.format_exc()[-3000:]
        print(f"{name} {row['options']}: {row['error']}\n{row['traceback']}")
    return row


def turn_difference(a, b):
    """The largest difference between two lists of per-sample turn scores (None: no turn
    scores at all; inf: one side has turn scores the other lacks)."""
    if all(t is None for t in a + b):
        return None
    if [None if t is None else len(t) for t in a] != [None if t is None else len(t) for t in b]:
        return math.inf
    return max((abs(x - y) for s, o in zip(a, b) if s is not None for x, y in zip(s, o)),
               default=0.0)


def compare(reference, other):
    if "single" not in reference or "single" not in other:
        return None
    found = {kind: max(abs(x - y) for x, y in zip(reference[kind], other[kind], strict=True))
             for kind in ("single", "batched")}
    found["batched_turns"] = turn_difference(reference["batched_turns"], other["batched_turns"])
    return found


def builders():
    ckpt = work / "ckpt"

    def ixc():
        font = write_test_font(ckpt / "fonts" / "SimHei.ttf")
        clip = build_tiny_clip(ckpt / "internlm-xcomposer2d5-clip")
        path = build_tiny_ixc(ckpt / "ixc25", clip, font)
        return {"path": str(path), "trust_remote_code": True, "font_path": str(font),
                "clip_path": str(clip)}, media_samples()

    def qwen(model_type):
        def build():
            path = build_tiny_qwen_vl(ckpt / model_type, model_type=model_type)
            return {"path": str(path)}, media_samples()
        return build

    def text():
        return {"path": str(build_tiny_text_rm(ckpt / "text_rm"))}, text_samples()

    return [("ixc25", "ixc25", ixc), ("vlm-value-head:qwen2_vl", "vlm-value-head", qwen("qwen2_vl")),
            ("vlm-value-head:qwen2_5_vl", "vlm-value-head", qwen("qwen2_5_vl")),
            ("text-rm", "text-rm", text)]


# On the GPU: CPU fp32 (reference), CUDA fp32 (same maths, other device: should agree to
# ~1e-3) and CUDA dtype auto (bf16: agrees only roughly). With --cpu: CPU fp32 and CPU bf16.
if target == "cuda":
    configs = [("cpu_fp32", "cpu", "fp32"), ("cuda_fp32", "cuda", "fp32"),
               ("cuda_auto", "cuda", "auto")]
else:
    configs = [("cpu_fp32", "cpu", "fp32"), ("cpu_bf16", "cpu", "bf16")]
torch.manual_seed(0)
result = {"target": target, "configs": [c[0] for c in configs], "backends": {}}
failures = 0
for label, name, build in builders():
    entry = result["backends"].setdefault(label, {"backend": name})
    try:
        started = time.perf_counter()
        base, samples = build()
        entry["build_seconds"] = round(time.perf_counter() - started, 2)
        entry["samples"] = [s.id for s in samples]
    except Exception as exc:  # noqa: BLE001
        entry["error"] = f"build: {type(exc).__name__}: {exc}"[:2000]
        entry["traceback"] = traceback.format_exc()[-3000:]
        print(f"{label}: {entry['error']}\n{entry['traceback']}")
        failures += 1
        continue
    for key, device, dtype in configs:
        entry[key] = run_config(name, {**base, "device": device, "dtype": dtype}, samples)
        failures += "error" in entry[key] or not entry[key].get("finite", False)
    reference = entry[configs[0][0]]
    entry["max_abs_diff_vs_cpu_fp32"] = {key: compare(reference, entry[key])
                                         for key, _, _ in configs[1:]}
    print(label, json.dumps(entry["max_abs_diff_vs_cpu_fp32"]),
          {key: entry[key].get("param_dtypes") for key, _, _ in configs})
result["failures"] = failures
json.dump(result, open(out_path, "w"), indent=1)
sys.exit(1 if failures else 0)
PYEOF

cat >"$WORK/pipeline_check.py" <<'PYEOF'
"""d. rmclean clean on the generated sample with the demo model: target device, then CPU."""
import json, os, subprocess, sys, time
from pathlib import Path

import yaml

out_path, work, target, sample_root, limit = sys.argv[1:6]
work, limit = Path(work), float(limit)
python = os.environ.get("PYTHON", sys.executable)
started_all = time.monotonic()
device = "cuda:0" if target == "cuda" else "cpu"
runs = [("target", device), ("cpu", "cpu")]


def run(label, device, timeout):
    config = yaml.safe_load(open("configs/sample.yaml"))
    config.update(root=sample_root, output=str(work / "out"), devices=[device])
    config_path = work / f"sample_{label}.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    prefix = work / "out" / label
    command = [python, "-m", "pipelines.cli", "clean", "--config", str(config_path),
               "--output", str(prefix), "--no-score-cache"]
    row = {"device": device, "command": " ".join(command), "timeout_s": round(timeout)}
    started = time.monotonic()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        row["rc"], text = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        row["rc"] = "timeout"
        text = (exc.stdout or b"").decode(errors="replace") + (exc.stderr or b"").decode(
            errors="replace")
    row["wall_seconds"] = round(time.monotonic() - started, 2)
    row["output_tail"] = text.strip().splitlines()[-12:]
    row["success_marker"] = (prefix / "_SUCCESS").exists()
    summary_file = prefix / "report" / "summary.json"
    if summary_file.exists():
        summary = json.loads(summary_file.read_text())
        row["counts"] = summary.get("counts")
        for key in ("devices", "runner", "durations", "cost", "errors_by_reason", "model"):
            row[key] = summary.get(key)
    print(label, device, row["rc"], row["wall_seconds"], (row.get("counts") or {}).get("total"))
    if row["rc"] != 0:
        print(text[-6000:])
    return row, prefix


def scores(prefix):
    import pyarrow.parquet as pq

    found = {}
    for part in ("clean", "review"):
        path = prefix / "index" / f"{part}.parquet"
        if path.exists():
            for row in pq.read_table(path, columns=["source", "id", "score"]).to_pylist():
                found[(row["source"], row["id"])] = (part, row["score"])
    return found


result = {"target": target, "sample_root": sample_root}
prefixes = {}
for index, (label, device) in enumerate(runs):
    left = limit - (time.monotonic() - started_all) - 5
    timeout = left * 0.6 if index == 0 else left
    if timeout < 10:
        result[label] = {"device": device, "rc": "skipped: out of time"}
        continue
    result[label], prefixes[label] = run(label, device, timeout)
target_run, cpu_run = result.get("target", {}), result.get("cpu", {})
if target_run.get("counts") and cpu_run.get("counts"):
    result["counts_equal_total"] = target_run["counts"]["total"] == cpu_run["counts"]["total"]
    result["counts_equal_per_source"] = (
        target_run["counts"].get("per_source") == cpu_run["counts"].get("per_source"))
    a, b = scores(prefixes["target"]), scores(prefixes["cpu"])
    shared = sorted(set(a) & set(b))
    diffs = [abs(a[k][1] - b[k][1]) for k in shared
             if a[k][1] is not None and b[k][1] is not None]
    result["scores_compared"] = len(shared)
    result["score_max_abs_diff"] = max(diffs) if diffs else None
    result["score_mean_abs_diff"] = sum(diffs) / len(diffs) if diffs else None
    result["route_changes"] = sum(a[k][0] != b[k][0] for k in shared)
    result["only_in_one_run"] = len(set(a) ^ set(b))
json.dump(result, open(out_path, "w"), indent=1)
ok = all(result.get(label, {}).get("rc") == 0 and result[label].get("success_marker")
         for label, _ in runs)
print(json.dumps({k: result.get(k) for k in ("counts_equal_total", "counts_equal_per_source",
                                             "score_max_abs_diff", "route_changes")}))
sys.exit(0 if ok else 1)
PYEOF

cat >"$WORK/summary.py" <<'PYEOF'
"""The steps' statuses and the headline numbers: summary.json and a few printed lines."""
import json, sys
from pathlib import Path

out, steps_file, mode, total = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
steps = []
for line in steps_file.read_text().splitlines():
    name, status, seconds, rc, note = (line.split("\t") + [""] * 5)[:5]
    steps.append({"step": name, "status": status, "seconds": float(seconds or 0), "rc": rc,
                  "note": note})


def load(name):
    try:
        return json.loads((out / name).read_text())
    except Exception:  # noqa: BLE001
        return {}


env, backends, bench, pipeline = (load(n) for n in (
    "env.json", "backends_cuda.json", "gpu_reward_bench.json", "pipeline_cuda.json"))
headline = {"gpu": env.get("nvidia_smi_L"), "cuda_available": env.get("cuda_available"),
            "torch": (env.get("packages") or {}).get("torch", {}).get("version")}
for label, entry in (backends.get("backends") or {}).items():
    # Per config: max |score - CPU fp32 score| (one at a time, one batch), or its error.
    headline[f"backend {label}"] = entry.get("error") or {
        key: diff or (entry.get(key) or {}).get("error", "?")[:120]
        for key, diff in (entry.get("max_abs_diff_vs_cpu_fp32") or {}).items()}
for label, entry in (bench.get("backends") or {}).items():
    # samples/s padded -> packed, computed / real tokens of each, parity or score difference.
    headline[f"reward bench {label}"] = {
        "samples_per_s": [entry.get(m, {}).get("samples_per_s") for m in ("padded", "packed")],
        "computed_over_real": [entry.get(m, {}).get("computed_over_real")
                               for m in ("padded", "packed")],
        "vision_s": [entry.get(m, {}).get("vision_seconds") for m in ("padded", "packed")],
        "diff": entry.get("packed_vs_padded_max_abs_diff",
                          entry.get("packed_vs_one_at_a_time_max_abs_diff")),
        "peak_gib": entry.get("peak_memory_gib")}
if bench.get("varlen_kernel"):
    headline["varlen kernel vs exact"] = bench["varlen_kernel"]
for label in ("target", "cpu"):
    run = pipeline.get(label) or {}
    if run:
        headline[f"pipeline {label} ({run.get('device')})"] = {
            "rc": run.get("rc"), "wall_s": run.get("wall_seconds"),
            "counts": (run.get("counts") or {}).get("total")}
for key in ("counts_equal_total", "counts_equal_per_source", "score_max_abs_diff",
            "route_changes"):
    if key in pipeline:
        headline[f"pipeline {key}"] = pipeline[key]
summary = {"mode": mode, "total_seconds": int(total), "steps": steps, "headline": headline,
           "all_ok": all(s["status"] in ("ok", "skipped") for s in steps)}
(out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
print(f"== gpu_check summary ({mode}, {total}s)")
for s in steps:
    print(f"  {s['step']:<16} {s['status']:<8} {s['seconds']:>7.1f}s  {s['note']}")
for key, value in headline.items():
    print(f"  {key}: {json.dumps(value, default=str)[:300]}")
PYEOF

# --- the steps --------------------------------------------------------------------------

# The generated sample dataset (data/ is not in the working tree that travels).
SAMPLE=""
prepare_sample() {
  if [ -f "$REPO/.whl/sample-data.tar.gz" ]; then
    mkdir -p "$WORK/sample" && tar -xzf "$REPO/.whl/sample-data.tar.gz" -C "$WORK/sample" &&
      echo "extracted .whl/sample-data.tar.gz" && return 0
  fi
  if [ -f "$REPO/data/sample/labels.jsonl" ]; then
    ln -sfn "$REPO/data/sample" "$WORK/sample" && echo "using data/sample" && return 0
  fi
  "$PY" -m pipelines.cli sample --output "$WORK/sample"
}
export REPO WORK PY OUT TARGET MODE
export -f prepare_sample
step sample_data 60 bash -c prepare_sample
[ -d "$WORK/sample/ALLaVA-4V" ] && SAMPLE="$WORK/sample"

step env 40 "$PY" "$WORK/env_check.py" "$OUT/env.json" "$MODE"

step backends 100 "$PY" "$WORK/backends_check.py" "$OUT/backends_cuda.json" "$WORK" "$TARGET" \
  "${SAMPLE:-$WORK/sample}"

if [ "$MODE" = cpu ]; then
  # The tiny parity and token-efficiency check (what CI runs).
  step reward_bench 200 "$PY" -m bench.gpu_reward_bench --tiny --device cpu \
    --out "$OUT/gpu_reward_bench.json"
else
  # Random bf16 weights: Qwen2.5-VL-7B (~17 GB), 64 images of ~1,000 image tokens, then a
  # Llama-3.1-8B classifier (~16 GB), 64 conversations; each padded, then packed.
  step reward_bench 240 "$PY" -m bench.gpu_reward_bench --samples 64 --device cuda \
    --out "$OUT/gpu_reward_bench.json"
fi

if [ -n "$SAMPLE" ]; then
  # STEP_LIMIT (set by `step`): the pipeline script splits it between its two runs.
  step pipeline 130 bash -c '"$PY" "$WORK/pipeline_check.py" "$OUT/pipeline_cuda.json" \
    "$WORK" "$TARGET" "$0" "$STEP_LIMIT"' "$SAMPLE"
else
  record pipeline skipped 0 - "no sample dataset (see sample_data)"
fi

# e. bench.gpu_util_bench measures the pipeline with a sleeping stand-in model on simulated
# cpu:N devices (and writes its videos with PyAV): it runs only if it ever learns CUDA.
if timeout 30 "$PY" -m bench.gpu_util_bench --help 2>/dev/null | grep -qi cuda; then
  if [ "$MODE" = gpu ] && "$PY" -c "import av" 2>/dev/null; then
    step gpu_util 90 "$PY" -m bench.gpu_util_bench --only one --videos 8 \
      --out "$OUT/gpu_util.json"
  else
    record gpu_util skipped 0 - "needs PyAV and a GPU run"
  fi
else
  record gpu_util skipped 0 - "bench.gpu_util_bench has no CUDA mode (stand-in model, cpu:N devices)"
fi

TOTAL=$(elapsed)
"$PY" "$WORK/summary.py" "$OUT" "$STEPS" "$MODE" "$TOTAL" 2>&1 | tee -a "$LOG" ||
  { log "summary.py failed; steps:"; tee -a "$LOG" <"$STEPS"; }
ls -la "$OUT" | tee -a "$LOG"
# Exit 0 when every step passed or was skipped by design, 1 otherwise (the results are in $OUT either way).
CODE=0
cut -f2 "$STEPS" | grep -qxE 'failed|timeout|no_time' && CODE=1
rm -rf "$WORK"
exit "$CODE"
