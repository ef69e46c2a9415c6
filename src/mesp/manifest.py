"""The model-store manifest: the contract between training (writer) and serving (reader).

Layout of a store (DESIGN.md §4)::

    <store>/LATEST                       {"version": "<v>"}, written last
    <store>/versions/<v>/manifest.json   this model, serialised
    <store>/versions/<v>/router.npz      centroids (k, context) float32, no pickles
    <store>/versions/<v>/experts/<id>.onnx
    <store>/versions/<v>/dense.onnx

Every ONNX model (experts and dense) has one contract, so serving treats them alike:

* input ``context``: float32 ``(batch, context)`` raw counts (any scaling happens inside the graph);
* output ``quantiles``: float32 ``(batch, len(manifest.quantiles), horizon)`` non-negative counts,
  in the order of ``manifest.quantiles``. The point forecast is the 0.5 quantile, which is always present.

Rule-based experts (the idle/sparse group, fallbacks) have ``family`` starting with ``rule:`` and no file;
they are implemented in numpy in :mod:`mesp.rules`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = 1
IDLE_CLUSTER_ID = -1
ONNX_INPUT = "context"
ONNX_OUTPUT = "quantiles"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExpertInfo(_Strict):
    family: str = Field(description="model family, e.g. nbeats, patchtst, lstm, dlinear, rule:idle")
    params: dict = Field(default_factory=dict, description="hyperparameters chosen by the search")
    file: str | None = Field(default=None, description="path inside the version folder; None for rule experts")
    sha256: str | None = None
    val_metrics: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _file_and_hash_together(self) -> "ExpertInfo":
        if (self.file is None) != (self.sha256 is None):
            raise ValueError("file and sha256 go together")
        if self.file is None and not self.family.startswith("rule:"):
            raise ValueError(f"expert family {self.family!r} needs a file")
        return self


class ClusterInfo(_Strict):
    id: int = Field(description=f"0..K-1 for K-Shape clusters, {IDLE_CLUSTER_ID} for the idle/sparse group")
    label: str
    size: int = Field(ge=0, description="training patterns in the cluster")
    expert: ExpertInfo


class RouterInfo(_Strict):
    file: str
    sha256: str
    metric: str = "sbd"
    novelty_threshold: float = Field(gt=0, le=2, description="SBD above which a pattern is novel")
    idle_rule: dict = Field(default_factory=dict, description="parameters of mesp.sbd.is_idle")


class Manifest(_Strict):
    schema_version: int = SCHEMA_VERSION
    version: str
    created: str
    step_seconds: int = Field(gt=0)
    context: int = Field(gt=0, description="input length in steps")
    horizon: int = Field(gt=0, description="output length in steps")
    quantiles: list[float]
    scaling: str = Field(description="how the graphs scale their input, for humans (e.g. log1p-mean)")
    router: RouterInfo
    clusters: list[ClusterInfo]
    dense: ExpertInfo
    fallback: str = Field(default="rule:seasonal_naive", description="rule used when no model can answer")
    training: dict = Field(default_factory=dict, description="data summary, budget, timings, code version")

    @model_validator(mode="after")
    def _check(self) -> "Manifest":
        if 0.5 not in self.quantiles or sorted(self.quantiles) != self.quantiles:
            raise ValueError("quantiles must be sorted and include 0.5")
        if not all(0 < q < 1 for q in self.quantiles):
            raise ValueError("quantiles must lie in (0, 1)")
        ids = [c.id for c in self.clusters]
        if len(set(ids)) != len(ids):
            raise ValueError("cluster ids must be unique")
        return self

    def files(self) -> dict[str, str]:
        """Every file of the version with its sha256 (what serving verifies)."""
        out = {self.router.file: self.router.sha256}
        for expert in [c.expert for c in self.clusters] + [self.dense]:
            if expert.file:
                out[expert.file] = expert.sha256  # type: ignore[assignment]
        return out
