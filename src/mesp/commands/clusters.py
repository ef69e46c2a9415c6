"""``mesp clusters STORE``: the pattern catalogue of a published model (labels, sizes, experts, PNG)."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("clusters", help="show a model's cluster catalogue and plot its centroids",
                              description=__doc__.splitlines()[0])
    p.add_argument("store", metavar="STORE", help="a model store folder or s3://bucket/prefix")
    p.add_argument("--version", help="model version (default: LATEST)")
    p.add_argument("--png", metavar="FILE", help="where to write the plot (default: clusters_<version>.png)")
    p.add_argument("--data", nargs="+", metavar="PATH",
                   help="traces whose last context windows add member bands and current sizes to the plot")
    p.add_argument("--format", dest="fmt", default="auto", help="trace format of --data (default: auto)")
    p.set_defaults(run=run)


def _windows(dataset, context: int):
    """Every non-overlapping ``context``-step window of every series, aligned to the series' end."""
    import numpy as np

    rows = []
    for s in dataset.series:
        v = np.asarray(s.values, dtype=np.float32)
        for end in range(v.size, context - 1, -context):
            rows.append(v[end - context:end])
    return np.stack(rows) if rows else np.zeros((0, context), dtype=np.float32)


def run(args: argparse.Namespace) -> int:
    import io

    import numpy as np

    from mesp.errors import MespError, ModelStoreError
    from mesp.manifest import IDLE_CLUSTER_ID
    from mesp.router import Router
    from mesp.store import open_store

    store = open_store(args.store)
    version = args.version or store.latest_version()
    manifest = store.read_manifest(version)
    raw = store.read_verified(version, manifest.router.file, manifest.router.sha256)
    try:
        router = Router.from_npz(io.BytesIO(raw), manifest.router.novelty_threshold,  # type: ignore[arg-type]
                                 manifest.router.idle_rule)
    except ValueError as err:
        raise ModelStoreError(f"{manifest.router.file} of version {version}: {err}") from None
    k = router.n_clusters
    by_id = {c.id: c for c in manifest.clusters}

    X = labels = None
    live: dict[int, int] = {}
    if args.data:
        from mesp.data import load

        X = _windows(load(args.data, args.fmt), manifest.context)
        if X.shape[0] == 0:
            raise MespError(f"no series in --data is at least context={manifest.context} steps long")
        labels = router.route(X)[0]
        live = {int(c): int(n) for c, n in zip(*np.unique(labels, return_counts=True))}

    print(f"model {version}: {k} shape clusters + idle group, context {manifest.context} steps "
          f"of {manifest.step_seconds}s, novelty SBD > {manifest.router.novelty_threshold:.3f}")
    header = f"{'id':>4}  {'size':>9}  " + (f"{'data':>9}  " if args.data else "") + f"{'expert':<22}  label"
    print(header)
    for cid in [*range(k), IDLE_CLUSTER_ID]:
        info = by_id.get(cid)
        label = info.label if info else "(not in manifest)"
        size = f"{info.size:,}" if info else "-"
        family = info.expert.family if info else "-"
        extra = f"{live.get(cid, 0):>9,}  " if args.data else ""
        print(f"{cid:>4}  {size:>9}  {extra}{family:<22}  {label}")

    from mesp.clustering.catalogue import plot_catalogue

    titles = [by_id[j].label if j in by_id else f"cluster {j}" for j in range(k)]
    n_idle = live.get(IDLE_CLUSTER_ID) if args.data else (by_id[IDLE_CLUSTER_ID].size
                                                          if IDLE_CLUSTER_ID in by_id else None)
    out = plot_catalogue(router.centroids, X, labels, args.png or f"clusters_{version}.png", titles=titles,
                         step_seconds=manifest.step_seconds, n_idle=n_idle)
    print(f"plot: {out}")
    return 0
