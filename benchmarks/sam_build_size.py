"""Run a real `sam build` and report the unzipped size of each function and layer (Lambda limit: 250 MB).

Needs the SAM CLI in .venv-sam (`make sam-venv`), python3.12 on PATH (pyenv's is found automatically) and
PyPI access for the runtime layer. Writes benchmarks/results/sam_build.json and .md.

    .venv/bin/python benchmarks/sam_build_size.py [--build-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_MB, LIMIT_MB = 180, 250


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def python312_dir() -> str | None:
    # pyenv's shim answers `which` even when 3.12 is not selected, and then fails; use the real binary first.
    for candidate in sorted(Path.home().glob(".pyenv/versions/3.12*/bin/python3.12")):
        return str(candidate.parent)
    found = shutil.which("python3.12")
    return str(Path(found).parent) if found else None


SMOKE = r"""
import json, os, sys
os.environ.update(POWERTOOLS_SERVICE_NAME="smoke", POWERTOOLS_METRICS_NAMESPACE="Smoke", POWERTOOLS_TRACE_DISABLED="1")
import app
class Ctx:
    function_name = "smoke"; memory_limit_in_mb = 2048; aws_request_id = "r"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:smoke"
event = json.load(open(sys.argv[1]))
r = app.lambda_handler(event, Ctx())
assert r["statusCode"] == 200, r
heavy = sorted({"torch", "pandas", "scipy", "tslearn", "optuna", "sagemaker"} & set(sys.modules))
assert not heavy, heavy
print("SMOKE " + json.loads(r["body"])["model_version"])
"""


def smoke_test(build: Path, py312: str) -> str:
    """Run the built ForecastFunction with python3.12 and only the built layers, on a tiny test store."""
    store = Path(tempfile.mkdtemp(prefix="mesp-smoke-store-"))
    subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, 'tests'); from support.stores import "
                    f"build_store; build_store({str(store)!r})"], cwd=ROOT, check=True)
    layers = [build / "RuntimeLayer" / "python", build / "CoreLayer" / "python"]
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": os.pathsep.join(map(str, layers)), "PYTHONNOUSERSITE": "1",
           "MESP_MODEL_URI": str(store), "AWS_DEFAULT_REGION": "us-east-1", "HOME": os.environ.get("HOME", "/")}
    out = subprocess.run([f"{py312}/python3.12", "-I", "-c", f"import sys; sys.path[:0] = {[str(p) for p in layers] + [str(build / 'ForecastFunction')]!r}\n" + SMOKE,
                          str(ROOT / "events" / "forecast_batch.json")], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        return "FAILED: " + (out.stderr.strip().splitlines() or ["?"])[-1][:300]
    return "ok (" + out.stdout.strip().splitlines()[-1] + ")"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build-dir", default=None)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    sam = ROOT / ".venv-sam" / "bin" / "sam"
    if not sam.exists():
        print("sam_build_size: .venv-sam/bin/sam is missing; run `make sam-venv`", file=sys.stderr)
        return 2
    py312 = python312_dir()
    if py312 is None:
        print("sam_build_size: python3.12 not found (sam build needs it for the python3.12 runtime)", file=sys.stderr)
        return 2
    build = Path(args.build_dir or tempfile.mkdtemp(prefix="mesp-sam-build-"))
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "PATH": f"{py312}:{os.environ['PATH']}"}
    t0 = time.perf_counter()
    out = subprocess.run([str(sam), "build", "--build-dir", str(build), "--template-file", str(ROOT / "template.yaml")],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        print(out.stdout[-3000:] + out.stderr[-3000:], file=sys.stderr)
        return 1
    smoke = smoke_test(build, py312)
    sizes = {p.name: round(tree_bytes(p) / 1e6, 2) for p in sorted(build.iterdir()) if p.is_dir()}
    layers = sizes.get("RuntimeLayer", 0) + sizes.get("CoreLayer", 0)
    per_function = {name: round(mb + layers, 2) for name, mb in sizes.items() if name.endswith("Function")}
    result = {"smoke_test": smoke, "build_seconds": round(seconds, 1), "artifacts_mb": sizes, "function_plus_layers_mb": per_function,
              "largest_mb": max(per_function.values()), "target_mb": TARGET_MB, "limit_mb": LIMIT_MB}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "sam_build.json").write_text(json.dumps(result, indent=2) + "\n")
    md = ["# `sam build`: unzipped sizes (MB)", "", "| artifact | MB |", "|---|---|"]
    md += [f"| {k} | {v} |" for k, v in sizes.items()]
    md += ["", "| function + both layers | MB | target | limit |", "|---|---|---|---|"]
    md += [f"| {k} | {v} | {TARGET_MB} | {LIMIT_MB} |" for k, v in per_function.items()]
    md += ["", f"Smoke test (python3.12, only the built layers on sys.path, as on Lambda): {smoke}.",
           "", f"Build took {seconds:.0f} s (pip cache warm or cold changes this a lot).", ""]
    (Path(args.out) / "sam_build.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0 if result["largest_mb"] <= LIMIT_MB else 1


if __name__ == "__main__":
    raise SystemExit(main())
