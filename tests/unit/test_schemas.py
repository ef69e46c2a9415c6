"""Request/response models: strict shapes, and model-aware checks that name the field."""

from __future__ import annotations

import math

import pytest
from pydantic import TypeAdapter, ValidationError

from mesp.schemas import (
    MAX_BATCH_ITEMS,
    BatchRequest,
    ForecastBody,
    ForecastRequest,
    RequestError,
    check_against_model,
)

body = TypeAdapter(ForecastBody)


def first_error(payload):
    with pytest.raises(ValidationError) as info:
        body.validate_python(payload)
    err = info.value.errors()[0]
    return [p for p in err["loc"] if p not in ("single", "batch")], err["type"]


def test_single_and_batch_are_told_apart():
    assert isinstance(body.validate_python({"series": [1, 2.5]}), ForecastRequest)
    batch = body.validate_python({"items": [{"id": "a", "series": [0]}], "horizon": 3, "quantiles": [0.9, 0.5]})
    assert isinstance(batch, BatchRequest) and batch.horizon == 3


@pytest.mark.parametrize("payload, loc, kind", [
    ({"series": [1, -1]}, ["series", 1], "greater_than_equal"),
    ({"series": [1, math.nan]}, ["series", 1], "finite_number"),
    ({"series": [math.inf]}, ["series", 0], "finite_number"),
    ({"series": [1e13]}, ["series", 0], "less_than_equal"),
    ({"series": ["3"]}, ["series", 0], "float_type"),        # strings are refused, not coerced
    ({"series": [True]}, ["series", 0], "float_type"),
    ({"series": []}, ["series"], "too_short"),
    ({"series": [1], "horizon": 0}, ["horizon"], "greater_than_equal"),
    ({"series": [1], "horizon": 2.5}, ["horizon"], "int_type"),
    ({"series": [1], "quantiles": [0.5, 1.0]}, ["quantiles", 1], "less_than"),
    ({"series": [1], "quantiles": [0.0]}, ["quantiles", 0], "greater_than"),
    ({"series": [1], "quantiles": [0.5, 0.5]}, ["quantiles"], "value_error"),
    ({"series": [1], "extra": 1}, ["extra"], "extra_forbidden"),
    ({"items": []}, ["items"], "too_short"),
    ({"items": [{"id": "", "series": [1]}]}, ["items", 0, "id"], "string_too_short"),
    ({"items": [{"id": "a", "series": [1], "x": 0}]}, ["items", 0, "x"], "extra_forbidden"),
    ({"items": [{"id": "a", "series": [1]}, {"id": "a", "series": [2]}]}, ["items"], "value_error"),
])
def test_bad_requests_name_the_field(payload, loc, kind):
    assert first_error(payload) == (loc, kind)


def test_batch_size_is_capped():
    items = [{"id": str(i), "series": [0]} for i in range(MAX_BATCH_ITEMS + 1)]
    assert first_error({"items": items}) == (["items"], "too_long")


def test_unicode_ids_are_fine():
    assert body.validate_python({"items": [{"id": "fn-ü-日本", "series": [1]}]}).items[0].id == "fn-ü-日本"


def check(**kw):
    args = dict(horizon=None, quantiles=None, lengths=[48], context=48, model_horizon=60,
                model_quantiles=[0.1, 0.5, 0.9], field_names=["series"])
    args.update(kw)
    return check_against_model(**args)


def test_model_checks_pass_and_fill_defaults():
    assert check() == (60, [0.1, 0.5, 0.9])
    assert check(horizon=12, quantiles=[0.9, 0.5], lengths=[1440]) == (12, [0.5, 0.9])


@pytest.mark.parametrize("kw, field, text", [
    (dict(lengths=[47]), "series", "needs at least 48 values"),
    (dict(lengths=[48, 3], field_names=["items[0].series", "items[1].series"]), "items[1].series", "got 3"),
    (dict(horizon=61), "horizon", "exceeds the model's horizon of 60"),
    (dict(quantiles=[0.5, 0.95]), "quantiles[1]", "not one of the model's quantiles"),
])
def test_model_checks_name_the_field(kw, field, text):
    with pytest.raises(RequestError) as info:
        check(**kw)
    assert info.value.field == field and text in info.value.message and str(info.value).startswith(field)
