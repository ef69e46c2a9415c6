"""Publish trained jobs as one immutable model version, and manage versions (list, promote, gc).

Inputs are the model folders of the jobs (:mod:`mesp.jobs`), given as local folders, local
``model.tar.gz`` files, or ``s3://.../model.tar.gz`` (SageMaker's output). A publish:

1. assembles every file of the version in memory and the manifest that lists their sha256;
2. names the version ``<UTC yyyymmddThhmmssZ>-<content digest>``, where the digest covers the
   manifest without its name and date, i.e. every file's sha256 plus all metadata. If a version with
   that digest is already in the store (and verifies), it is reused: publishing the same inputs twice
   gives the same version, whatever the clock says;
3. writes the files, then ``manifest.json`` (a version without a manifest does not exist for readers),
   reads everything back and checks the hashes, and writes ``LATEST`` last.

A crash anywhere before step 3's last write leaves ``LATEST`` where it was. ``LATEST`` is a single
object written atomically (rename locally, one PUT on S3).

Light on purpose (stdlib + numpy + pydantic): the Lambda retrain function publishes with it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mesp.errors import ModelStoreError
from mesp.manifest import IDLE_CLUSTER_ID, ClusterInfo, ExpertInfo, Manifest, RouterInfo
from mesp.store import LATEST_KEY, MANIFEST_FILE, ModelStore, open_store, sha256_hex, version_key

CLUSTER_META = "cluster.json"
EXPERT_META = "expert.json"
EXPERT_MODEL = "model.onnx"
ROUTER_FILE = "router.npz"
DIGEST_CHARS = 12
_VERSION_RE = re.compile(r"^\d{8}T\d{6}Z-([0-9a-f]{%d})$" % DIGEST_CHARS)


# ------------------------------------------------------------------------------------------- job outputs


def fetch_output(source: str | os.PathLike[str], workdir: str | os.PathLike[str]) -> Path:
    """A job's model folder on local disk: a folder as is, a ``.tar.gz`` (local or s3://) unpacked."""
    text = os.fspath(source)
    if text.startswith("s3://"):
        bucket, _, key = text[5:].partition("/")
        target = Path(workdir) / hashlib.sha256(text.encode()).hexdigest()[:16]
        if not (target / ".complete").exists():
            import boto3
            from botocore.exceptions import BotoCoreError, ClientError

            try:
                body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
            except (ClientError, BotoCoreError) as err:
                code = getattr(err, "response", {}).get("Error", {}).get("Code", type(err).__name__)
                raise ModelStoreError(f"cannot read job output {text}: {code}") from None
            _extract(io.BytesIO(body), target, text)
        return target
    path = Path(text)
    if path.is_dir():
        return path
    if path.is_file() and text.endswith((".tar.gz", ".tgz")):
        target = Path(workdir) / hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
        if not (target / ".complete").exists():
            with open(path, "rb") as fh:
                _extract(fh, target, text)
        return target
    raise ModelStoreError(f"job output {text} is neither a folder nor a model.tar.gz")


def _extract(fileobj: Any, target: Path, name: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(fileobj=fileobj, mode="r:gz") as tar:
            tar.extractall(target, filter="data")  # "data" refuses absolute paths, links out, devices
    except (tarfile.TarError, OSError, EOFError) as err:
        raise ModelStoreError(f"job output {name} is not a readable model.tar.gz: {err}") from None
    (target / ".complete").write_text("")


def _read_json(folder: Path, name: str) -> dict:
    path = folder / name
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelStoreError(f"{path} is missing: is {folder} the output of the right job?") from None
    except json.JSONDecodeError as err:
        raise ModelStoreError(f"{path} is not valid JSON: {err.msg}") from None


@dataclass
class Draft:
    """A version before it has a name: its files (key inside the version -> bytes) and manifest fields."""

    files: dict[str, bytes]
    fields: dict[str, Any]

    def digest(self) -> str:
        # Through the model, so defaults (schema_version ...) count exactly as in a stored manifest.
        return content_digest(Manifest(version="draft", created="", **self.fields).model_dump(mode="json"))


def content_digest(fields: Mapping[str, Any]) -> str:
    """sha256 of a manifest without its name and date (it lists every file's sha256)."""
    body = {k: v for k, v in fields.items() if k not in {"version", "created"}}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _expert_info(folder: Path, meta: dict, file_key: str, files: dict[str, bytes],
                 dense: ExpertInfo | None = None) -> ExpertInfo:
    family = meta["family"]
    if family == "defer:dense":  # the search found too few windows: the dense model answers this cluster
        if dense is None:
            raise ModelStoreError(f"{folder}: the dense model cannot defer to itself")
        return dense.model_copy(update={"params": {**dense.params, "deferred": True}})
    if family.startswith("rule:"):
        return ExpertInfo(family=family, params=meta.get("params", {}), val_metrics=meta.get("val_metrics", {}))
    data = (folder / meta.get("file", EXPERT_MODEL)).read_bytes()
    digest = sha256_hex(data)
    if meta.get("sha256") and meta["sha256"] != digest:
        raise ModelStoreError(f"{folder}: {meta.get('file', EXPERT_MODEL)} does not match the sha256 in "
                              f"{EXPERT_META}; the job output is corrupted")
    files[file_key] = data
    return ExpertInfo(family=family, params=meta.get("params", {}), file=file_key, sha256=digest,
                      val_metrics=meta.get("val_metrics", {}))


def _check_same(what: str, name: str, values: Mapping[str, Any]) -> Any:
    distinct = {json.dumps(v, sort_keys=True) for v in values.values()}
    if len(distinct) > 1:
        detail = ", ".join(f"{src}: {v}" for src, v in values.items())
        raise ModelStoreError(f"the {what} disagree on {name} ({detail}); they must come from one training run")
    return next(iter(values.values()))


def draft_from_jobs(cluster_dir: Path, expert_dirs: Sequence[Path], dense_dir: Path,
                    extra_training: Mapping[str, Any] | None = None) -> Draft:
    """Assemble a version from one cluster job, its expert jobs and the dense job (local folders)."""
    cluster = _read_json(cluster_dir, CLUSTER_META)
    files: dict[str, bytes] = {ROUTER_FILE: (cluster_dir / ROUTER_FILE).read_bytes()}
    metas = {str(d): _read_json(d, EXPERT_META) for d in expert_dirs}
    dense_meta = _read_json(dense_dir, EXPERT_META)
    if dense_meta.get("cluster") != "dense":
        raise ModelStoreError(f"{dense_dir} holds the expert of cluster {dense_meta.get('cluster')}, not dense")
    every = {**metas, str(dense_dir): dense_meta}
    run = cluster.get("run_id")
    for src, meta in every.items():
        if meta.get("cluster_run_id") != run:
            raise ModelStoreError(f"{src} was trained on cluster run {meta.get('cluster_run_id')!r}, "
                                  f"not {run!r} ({cluster_dir})")
    quantiles = _check_same("expert jobs", "quantiles", {s: m["quantiles"] for s, m in every.items()})
    by_id = {}
    for src, meta in metas.items():
        cid = int(meta["cluster"])
        if cid in by_id:
            raise ModelStoreError(f"two expert outputs for cluster {cid} ({by_id[cid][0]} and {src})")
        by_id[cid] = (src, meta)

    dense = _expert_info(dense_dir, dense_meta, "dense.onnx", files)
    clusters = []
    for info in cluster["clusters"]:
        cid = int(info["id"])
        if cid == IDLE_CLUSTER_ID:
            expert = ExpertInfo(family=info.get("expert", "rule:idle"), params=cluster.get("idle_rule", {}))
        elif cid in by_id:
            src, meta = by_id[cid]
            expert = _expert_info(Path(src), meta, f"experts/{cid}.onnx", files, dense)
        else:
            raise ModelStoreError(f"no expert output for cluster {cid} (got {sorted(by_id)})")
        clusters.append(ClusterInfo(id=cid, label=info["label"], size=int(info["size"]), expert=expert))
    unknown = set(by_id) - {int(c["id"]) for c in cluster["clusters"]}
    if unknown:
        raise ModelStoreError(f"expert outputs for clusters {sorted(unknown)} that the cluster job does not know")

    training = dict(cluster.get("training", {}))
    training["experts"] = {str(m["cluster"]): m.get("training", {}) for m in every.values()}
    training.update(extra_training or {})
    fields = dict(
        step_seconds=int(cluster["step_seconds"]), context=int(cluster["context"]), horizon=int(cluster["horizon"]),
        quantiles=quantiles, scaling=dense_meta.get("scaling", "unknown"),
        router=RouterInfo(file=ROUTER_FILE, sha256=sha256_hex(files[ROUTER_FILE]),
                          novelty_threshold=float(cluster["novelty_threshold"]),
                          idle_rule=cluster.get("idle_rule", {})).model_dump(),
        clusters=[c.model_dump() for c in clusters], dense=dense.model_dump(),
        fallback=cluster.get("fallback", "rule:seasonal_naive"), training=training,
    )
    for src, meta in every.items():
        if (meta["context"], meta["horizon"]) != (fields["context"], fields["horizon"]):
            raise ModelStoreError(f"{src}: context/horizon {meta['context']}/{meta['horizon']} != the cluster "
                                  f"job's {fields['context']}/{fields['horizon']}")
    return Draft(files, fields)


def draft_add_cluster(store: ModelStore | str, base_version: str, cluster_dir: Path, expert_dirs: Sequence[Path],
                      extra_training: Mapping[str, Any] | None = None) -> Draft:
    """A version = ``base_version`` plus new clusters; every old file is copied byte for byte (same sha256).

    ``cluster_dir`` holds the combined ``router.npz`` (old centroids first, in order, then the new ones) and a
    ``cluster.json`` listing only the new clusters; ``expert_dirs`` their expert jobs' outputs.
    """
    store = open_store(store)
    base = verify_version(store, base_version)
    cluster = _read_json(cluster_dir, CLUSTER_META)
    for name in ("step_seconds", "context", "horizon"):
        if int(cluster[name]) != getattr(base, name):
            raise ModelStoreError(f"{cluster_dir}: {name}={cluster[name]} but {base_version} has {getattr(base, name)}")
    files = {f: store.read_verified(base_version, f, sha) for f, sha in base.files().items() if f != base.router.file}
    files[ROUTER_FILE] = (cluster_dir / ROUTER_FILE).read_bytes()
    import numpy as np

    with np.load(cluster_dir / ROUTER_FILE, allow_pickle=False) as npz:
        k_total = int(npz["centroids"].shape[0])
    old_ids = sorted(c.id for c in base.clusters if c.id >= 0)
    new_ids = [int(c["id"]) for c in cluster["clusters"]]
    if old_ids != list(range(len(old_ids))) or sorted(new_ids) != list(range(len(old_ids), k_total)):
        raise ModelStoreError(f"new cluster ids {new_ids} must continue {base_version}'s 0..{len(old_ids) - 1} "
                              f"up to the router's {k_total} centroids")
    metas = {int(_read_json(d, EXPERT_META)["cluster"]): (d, _read_json(d, EXPERT_META)) for d in expert_dirs}
    added = []
    for info in cluster["clusters"]:
        cid = int(info["id"])
        if cid not in metas:
            raise ModelStoreError(f"no expert output for new cluster {cid}")
        folder, meta = metas[cid]
        if meta.get("cluster_run_id") != cluster.get("run_id"):
            raise ModelStoreError(f"{folder} was trained on cluster run {meta.get('cluster_run_id')!r}, "
                                  f"not {cluster.get('run_id')!r}")
        if meta["quantiles"] != base.quantiles:
            raise ModelStoreError(f"{folder}: quantiles {meta['quantiles']} != {base_version}'s {base.quantiles}")
        expert = _expert_info(folder, meta, f"experts/{cid}.onnx", files, base.dense)
        added.append(ClusterInfo(id=cid, label=info["label"], size=int(info["size"]), expert=expert))
    fields = base.model_dump(mode="json", exclude={"version", "created", "schema_version"})
    fields["router"] = {**fields["router"], "file": ROUTER_FILE, "sha256": sha256_hex(files[ROUTER_FILE]),
                        "novelty_threshold": float(cluster["novelty_threshold"])}
    fields["clusters"] += [c.model_dump(mode="json") for c in added]
    fields["training"] = {**fields["training"], "base_version": base_version,
                          "added": {**cluster.get("training", {}), **(extra_training or {}),
                                    "experts": {str(cid): metas[cid][1].get("training", {}) for cid in metas}}}
    if base.router.file != ROUTER_FILE:
        files.pop(base.router.file, None)
    return Draft(files, fields)


def draft_from_sources(cluster: str, experts: Sequence[str], dense: str, workdir: str | os.PathLike[str],
                       extra_training: Mapping[str, Any] | None = None) -> Draft:
    """:func:`draft_from_jobs` for folders, ``model.tar.gz`` files or ``s3://`` URIs."""
    return draft_from_jobs(fetch_output(cluster, workdir), [fetch_output(e, workdir) for e in experts],
                           fetch_output(dense, workdir), extra_training)


# ------------------------------------------------------------------------------------------------ publish


@dataclass(frozen=True)
class Published:
    version: str
    reused: bool  # an identical version already existed; nothing was uploaded
    previous: str | None  # what LATEST named before


def _now() -> datetime:
    return datetime.now(UTC)


def find_identical(store: ModelStore, digest: str) -> str | None:
    """A verified version in the store whose content digest is ``digest``."""
    for version in reversed(store.list_versions()):
        match = _VERSION_RE.match(version)
        if match and match.group(1) == digest[:DIGEST_CHARS]:
            manifest = store.read_manifest(version)
            if content_digest(manifest.model_dump(mode="json")) == digest:
                verify_version(store, version, manifest)
                return version
    return None


def verify_version(store: ModelStore, version: str, manifest: Manifest | None = None) -> Manifest:
    """Read the manifest and every file it lists, checking sha256; ModelStoreError on any mismatch."""
    manifest = manifest or store.read_manifest(version)
    for file, sha in manifest.files().items():
        store.read_verified(version, file, sha)
    return manifest


def _current(store: ModelStore) -> str | None:
    return store.latest_version() if store.exists(LATEST_KEY) else None


def flip_latest(store: ModelStore, version: str) -> None:
    """The one write that makes a version live."""
    store.put_json(LATEST_KEY, {"version": version})


def publish(store: ModelStore | str, draft: Draft, *, make_latest: bool = True) -> Published:
    """Write ``draft`` as a new immutable version (or reuse an identical one) and flip LATEST to it."""
    store = open_store(store)
    previous = _current(store)
    digest = draft.digest()
    version = find_identical(store, digest)
    reused = version is not None
    if version is None:
        version = f"{_now():%Y%m%dT%H%M%SZ}-{digest[:DIGEST_CHARS]}"
        manifest = Manifest(version=version, created=_now().isoformat(timespec="seconds"), **draft.fields)
        listed = manifest.files()
        missing = set(listed) - set(draft.files)
        if missing or set(draft.files) - set(listed):
            raise ModelStoreError(f"draft files {sorted(draft.files)} do not match the manifest's {sorted(listed)}")
        for key, data in sorted(draft.files.items()):
            store.put_bytes(version_key(version, key), data)
        # The manifest goes after the files: a version is visible to readers only once it is complete.
        store.put_bytes(version_key(version, MANIFEST_FILE), (manifest.model_dump_json(indent=2) + "\n").encode())
        verify_version(store, version)
    if make_latest and previous != version:
        flip_latest(store, version)
    return Published(version=version, reused=reused, previous=previous)


# ------------------------------------------------------------------------------------------ version admin


@dataclass(frozen=True)
class VersionRow:
    version: str
    created: str
    clusters: int
    dense_family: str
    latest: bool
    valid: bool
    note: str = ""


def list_versions(store: ModelStore | str) -> list[VersionRow]:
    """Every version with a manifest, oldest first; unreadable ones are listed as invalid, not hidden."""
    store = open_store(store)
    latest = _current(store)
    rows = []
    for version in store.list_versions():
        try:
            m = store.read_manifest(version)
            rows.append(VersionRow(version, m.created, len(m.clusters), m.dense.family, version == latest, True))
        except ModelStoreError as err:
            rows.append(VersionRow(version, "?", 0, "?", version == latest, False, str(err)))
    return rows


def promote(store: ModelStore | str, version: str) -> Published:
    """Point LATEST at an existing version (rollback or roll forward), after verifying all its files."""
    store = open_store(store)
    if version not in store.list_versions():
        known = ", ".join(store.list_versions()[-5:]) or "none"
        raise ModelStoreError(f"version {version!r} is not in {store.uri} (latest known: {known})")
    verify_version(store, version)
    previous = _current(store)
    if previous != version:
        flip_latest(store, version)
    return Published(version=version, reused=True, previous=previous)


def gc(store: ModelStore | str, keep: int) -> list[str]:
    """Delete all but the ``keep`` newest versions; LATEST's target is always kept. Returns what went.

    Folders without a manifest (a publish that crashed) are removed too when they are older than LATEST's
    version; newer ones might be a publish in progress and are left alone.
    """
    if keep < 1:
        raise ModelStoreError(f"--keep must be at least 1 (got {keep})")
    store = open_store(store)
    latest = _current(store)
    versions = store.list_versions()
    doomed = [v for v in versions[: max(len(versions) - keep, 0)] if v != latest]
    keys = store.list("versions/")
    folders = sorted({k.split("/")[1] for k in keys if k.count("/") >= 2})
    orphans = [f for f in folders if f not in versions and latest is not None and f < latest]
    removed = []
    for version in doomed + orphans:
        prefix = f"versions/{version}/"
        mine = [k for k in keys if k.startswith(prefix)]
        # The manifest goes first, so an interrupted gc leaves an orphan folder, never a half version.
        mine.sort(key=lambda k: k != prefix + MANIFEST_FILE)
        for key in mine:
            store.delete(key)
        removed.append(version)
    return removed


def write_tarball(folder: Path, target: Path) -> Path:
    """Pack a job's model folder the way SageMaker does (contents at the archive root)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False, suffix=".tmp") as tmp:
        with tarfile.open(fileobj=tmp, mode="w:gz") as tar:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    tar.add(path, arcname=path.relative_to(folder).as_posix())
    os.replace(tmp.name, target)
    return target
