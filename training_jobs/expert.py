"""SageMaker entry point of an expert job (``python expert.py [--sm-root DIR] train``); see mesp.jobs.expert."""

from mesp.jobs.expert import main

if __name__ == "__main__":
    raise SystemExit(main())
