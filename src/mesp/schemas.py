"""The HTTP API's request and response models (DESIGN.md §5); the OpenAPI document is generated from them.

Validation happens in two steps, and both answer 4xx with a message that names the field:

1. **Shape** (these pydantic models, checked by Powertools before the route runs): unknown fields are
   rejected; counts must be finite numbers in ``[0, MAX_COUNT]`` (strings and booleans are refused, not
   coerced); ``horizon`` is a positive integer; ``quantiles`` lie strictly inside (0, 1) without repeats; a
   batch holds at most :data:`MAX_BATCH_ITEMS` items with unique ids.
2. **Fit to the loaded model** (:func:`check_against_model`, needs the manifest): a series must hold *at
   least* ``manifest.context`` values and only the **last** ``context`` values are used, so a caller can
   send a longer history as is; ``horizon`` may not exceed the model's; requested quantiles must be among
   the model's.

A request is either single ``{"series": [...], "horizon"?, "quantiles"?}`` or a batch
``{"items": [{"id", "series"}, ...], "horizon"?, "quantiles"?}`` (horizon and quantiles apply to every item).
The response's ``forecast`` is the 0.5 quantile; ``quantiles`` holds every requested quantile (default: all
of the model's), keyed by its decimal text (``"0.9"``).
"""

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, StringConstraints, Tag, field_validator

from mesp.errors import MespError

MAX_COUNT = 1e12            # far above any real per-step count; keeps float32 far from overflow
MAX_SERIES_LENGTH = 100_000
MAX_BATCH_ITEMS = 1_000
MAX_HORIZON = 10_000
MAX_QUANTILES = 19
MAX_BODY_BYTES = 6 * 1024 * 1024  # Lambda's synchronous payload limit

Count = Annotated[float, Field(ge=0, le=MAX_COUNT, allow_inf_nan=False, strict=True)]
Series = Annotated[list[Count], Field(min_length=1, max_length=MAX_SERIES_LENGTH,
                                      description="per-step invocation counts, oldest first")]
Horizon = Annotated[int, Field(ge=1, le=MAX_HORIZON, strict=True,
                               description="steps to forecast; at most the model's horizon")]
Quantile = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False, strict=True)]
Quantiles = Annotated[list[Quantile], Field(min_length=1, max_length=MAX_QUANTILES,
                                            description="levels to return; each among the model's")]
ItemId = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class RequestError(MespError):
    """A request that is well-formed but does not fit the model; ``field`` is its JSON path."""

    def __init__(self, field: str, message: str, status: int = 422):
        super().__init__(f"{field}: {message}")
        self.field, self.message, self.status = field, message, status


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def __repr_args__(self):
        # Requests can hold a million numbers: repr (which Powertools formats into a debug line on every call)
        # shows sizes, never the payload, so it is cheap and keeps counts out of logs.
        for name, value in super().__repr_args__():
            yield name, (f"<{len(value)} items>" if isinstance(value, list) else value)


def _unique_quantiles(value: list[float] | None) -> list[float] | None:
    if value is not None and len(set(value)) != len(value):
        raise ValueError("quantiles must not repeat")
    return value


class ForecastRequest(_In):
    """One series."""

    series: Series
    horizon: Horizon | None = None
    quantiles: Quantiles | None = None

    _q = field_validator("quantiles")(_unique_quantiles)


class BatchItem(_In):
    id: ItemId = Field(description="caller's id, echoed in the answer")
    series: Series


class BatchRequest(_In):
    """Many series in one call: routed together, one model call per expert."""

    items: Annotated[list[BatchItem], Field(min_length=1, max_length=MAX_BATCH_ITEMS)]
    horizon: Horizon | None = None
    quantiles: Quantiles | None = None

    _q = field_validator("quantiles")(_unique_quantiles)

    @field_validator("items")
    @classmethod
    def _unique_ids(cls, items: list[BatchItem]) -> list[BatchItem]:
        seen: set[str] = set()
        for i, item in enumerate(items):
            if item.id in seen:
                raise ValueError(f"items[{i}].id {item.id!r} repeats an earlier id")
            seen.add(item.id)
        return items


def _request_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "batch" if "items" in value else "single"
    return "batch" if hasattr(value, "items") and not isinstance(value, ForecastRequest) else "single"


ForecastBody = Annotated[
    Union[Annotated[ForecastRequest, Tag("single")], Annotated[BatchRequest, Tag("batch")]],
    Discriminator(_request_kind),
]


# ---------------------------------------------------------------------------------------------- responses
class ClusterOut(BaseModel):
    id: int = Field(description="K-Shape cluster, or -1 for the idle/sparse group")
    label: str
    distance: float | None = Field(description="SBD to the nearest centroid (null for idle inputs)")


class ExpertOut(BaseModel):
    family: str = Field(description="the model that answered, e.g. nbeats, dense-patchtst, rule:seasonal_naive")


class ForecastResponse(BaseModel):
    forecast: list[float] = Field(description="point forecast (the 0.5 quantile), one value per step")
    quantiles: dict[str, list[float]]
    cluster: ClusterOut
    expert: ExpertOut
    model_version: str
    novel: bool = Field(description="farther than the novelty threshold from every centroid: the dense model answered")
    degraded: bool = Field(description="a fallback answered because the preferred model was unavailable")


class BatchItemResponse(ForecastResponse):
    id: str


class BatchResponse(BaseModel):
    items: list[BatchItemResponse]
    model_version: str
    count: int
    novel: int = Field(description="items answered as novel")
    degraded: int = Field(description="items answered by a fallback")


class ClusterSummary(BaseModel):
    id: int
    label: str
    size: int
    family: str
    available: bool = Field(description="false when its expert failed verification and the dense model stands in")


class ModelSummary(BaseModel):
    version: str
    created: str
    step_seconds: int
    context: int
    horizon: int
    quantiles: list[float]
    novelty_threshold: float | None
    clusters: list[ClusterSummary]
    dense: str
    fallback: str
    degraded: bool
    problems: list[str] = Field(description="what failed verification in this version, if anything")


class HealthResponse(BaseModel):
    status: Literal["ok", "degraded", "unavailable"]
    model_version: str | None
    detail: str | None = None


class ErrorDetail(BaseModel):
    field: str
    message: str


class ErrorResponse(BaseModel):
    message: str = Field(description="the first problem, naming the field")
    errors: list[ErrorDetail]


# ------------------------------------------------------------------------------------- model-aware checks
def quantile_key(q: float) -> str:
    return repr(float(q))


def check_against_model(horizon: int | None, quantiles: list[float] | None, lengths: list[int], *,
                        context: int, model_horizon: int, model_quantiles: list[float],
                        field_names: list[str]) -> tuple[int, list[float]]:
    """Check a request against the loaded model; returns (horizon, quantiles) to use.

    ``lengths`` are the series lengths and ``field_names`` their JSON paths (``series`` or
    ``items[3].series``). Raises :class:`RequestError` naming the first offending field.
    """
    for n, name in zip(lengths, field_names):
        if n < context:
            raise RequestError(name, f"needs at least {context} values (the model's context), got {n}")
    if horizon is not None and horizon > model_horizon:
        raise RequestError("horizon", f"{horizon} exceeds the model's horizon of {model_horizon} steps")
    if quantiles is None:
        return (horizon or model_horizon), list(model_quantiles)
    # A requested level matches the model's within 1e-9; the model's own value is used from here on, so
    # 0.1000000001 is served as "0.1" (and two requests that match the same level are a repeat).
    known = {round(q, 9): q for q in model_quantiles}
    chosen: dict[float, int] = {}
    for i, q in enumerate(quantiles):
        level = known.get(round(q, 9))
        if level is None:
            raise RequestError(f"quantiles[{i}]", f"{q} is not one of the model's quantiles {model_quantiles}")
        if level in chosen:
            raise RequestError(f"quantiles[{i}]", f"{q} repeats quantiles[{chosen[level]}] (the model's {level})")
        chosen[level] = i
    return (horizon or model_horizon), sorted(chosen)
