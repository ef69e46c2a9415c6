"""SageMaker entry point of the cluster job (``python cluster.py [--sm-root DIR] train``); see mesp.jobs.cluster."""

from mesp.jobs.cluster import main

if __name__ == "__main__":
    raise SystemExit(main())
