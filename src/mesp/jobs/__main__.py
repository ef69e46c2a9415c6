"""Entry point of the training image: ``python -m mesp.jobs [--sm-root DIR] train``.

SageMaker starts a bring-your-own container as ``<image> train``; the ``job`` hyperparameter
(``cluster`` or ``expert``, set by :mod:`mesp.jobs.launch`) picks the job.
"""

from __future__ import annotations

import json
import sys

from mesp.jobs.contract import JobError, JobPaths, resolve_root, run_job


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    root = resolve_root(argv[argv.index("--sm-root") + 1] if "--sm-root" in argv[:-1] else None)
    hps_file = JobPaths(root).hyperparameters
    try:
        job = json.loads(hps_file.read_text()).get("job", "") if hps_file.exists() else ""
    except (OSError, ValueError):
        job = ""
    if job == "cluster":
        from mesp.jobs.cluster import run
    elif job == "expert":
        from mesp.jobs.expert import run
    else:
        def run(paths: JobPaths) -> None:
            raise JobError(f"hyperparameter job={job!r}: expected 'cluster' or 'expert' (in {hps_file})")
    return run_job(job or "unknown", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
