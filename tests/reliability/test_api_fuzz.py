"""Bad input, API: property-based fuzzing of POST /forecast (and its neighbours) through the real handler.

Hypothesis drives :func:`mesp.api.lambda_handler` with HTTP API v2 events, at least :data:`MIN_REQUESTS`
generated requests per run (counted, and asserted), in four families:

* **valid** requests (single and batch, optional horizon/quantiles drawn from the model's): always 200, and
  the answer is consistent (lengths, quantile keys, ids echoed, finite non-negative values);
* **arbitrary** JSON shaped like the request schema with every field drawn from good *and* bad values
  (NaN/inf/negative/huge/bool/string counts, wrong lengths, strange horizons and quantiles, unknown keys,
  duplicate or unicode ids, non-object bodies);
* **mutated** bodies (a valid body with bytes cut, inserted or replaced);
* **raw** events (any method, path, content type, text or base64 bytes).

For all of them: never a 5xx; every 4xx has ``message == "<field>: <why>"`` and that field either is one
of ``body``/``content-type``/``path`` or resolves to a place in the request (a missing required key
resolves to its parent). The hand-written cases at the bottom pin the issue's list one by one.
"""

from __future__ import annotations

import base64
import json
import math
import re

import numpy as np
import pydantic_core
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import api, invoke
from mesp.runtime import Predictor
from mesp.schemas import MAX_BATCH_ITEMS, MAX_BODY_BYTES, BatchResponse, ForecastResponse, quantile_key
from support.events import http_event
from support.stores import CONTEXT, HORIZON, QUANTILES, build_store

MIN_REQUESTS = 2000
BUDGET = {"valid": 450, "arbitrary": 950, "mutated": 300, "raw": 300}  # sums to MIN_REQUESTS
FUZZ = settings(deadline=None, database=None, print_blob=True,
                suppress_health_check=list(HealthCheck))
TOP_FIELDS = {"series", "items", "horizon", "quantiles"}
NON_PATH_FIELDS = {"body", "content-type", "path"}

sent: dict[str, int] = {}


@pytest.fixture(scope="module", autouse=True)
def model(tmp_path_factory):
    built = build_store(str(tmp_path_factory.mktemp("fuzz") / "store"))
    api.set_predictor(Predictor(built.store, ttl_seconds=3600, threads=1))
    level = api.logger.log_level
    api.logger.setLevel("WARNING")  # thousands of INFO lines would only cost time; problems still show
    yield built
    api.logger.setLevel(level)
    api.set_predictor(None)
    api.metrics.clear_metrics()


# ------------------------------------------------------------------------------------------------ oracle
def resolves(node, rest: str) -> bool:
    """Does the error field ``rest`` (``items[2].series[5]``) point into ``node``?

    Keys are matched verbatim (an unknown key ``"a.b"`` is reported as ``a.b``); the last step may be a
    required key that is missing, which is what pydantic reports for it.
    """
    if rest == "":
        return True
    if isinstance(node, list):
        m = re.match(r"\[(\d+)\]", rest)
        if not m or int(m.group(1)) >= len(node):
            return False
        tail = rest[m.end():]
        return resolves(node[int(m.group(1))], tail[1:] if tail.startswith(".") else tail)
    if isinstance(node, dict):
        for key in node:
            if rest == key or rest.startswith((key + ".", key + "[")):
                tail = rest[len(key):]
                if resolves(node[key], tail[1:] if tail.startswith(".") else tail):
                    return True
        return rest in TOP_FIELDS | {"id"} and rest not in node
    return False


def parse(text: str | None):
    try:
        return pydantic_core.from_json(text or "", allow_inf_nan=True)
    except ValueError:
        return None


def check(event: dict, family: str) -> tuple[int, dict]:
    """Send one event and assert the universal properties; returns (status, body)."""
    sent[family] = sent.get(family, 0) + 1
    status, body, raw = invoke(event)
    assert status < 500, (status, body, (event.get("body") or "")[:300])
    assert raw["headers"]["Content-Type"] == "application/json"
    if status >= 400:
        errors = body["errors"]
        assert errors and all(e["field"] and e["message"] for e in errors), body
        field = errors[0]["field"]
        assert body["message"] == f"{field}: {errors[0]['message']}", body
        assert "Traceback" not in raw["body"] and "File \"" not in raw["body"]
        if field not in NON_PATH_FIELDS:
            text = event.get("body")
            if event.get("isBase64Encoded"):
                text = base64.b64decode(text).decode()
            assert resolves(parse(text), field), (field, (text or "")[:300])
    return status, body


def check_answer(request: dict, body: dict) -> None:
    """A 200 answer fits its request: lengths, quantile keys, ids, finite non-negative numbers."""
    horizon = request.get("horizon") or HORIZON
    keys = {quantile_key(min(QUANTILES, key=lambda m: abs(m - q))) for q in request.get("quantiles") or QUANTILES}
    if "items" in request:
        BatchResponse.model_validate(body)
        assert [i["id"] for i in body["items"]] == [i["id"] for i in request["items"]]
        answers = body["items"]
        assert body["count"] == len(request["items"])
    else:
        ForecastResponse.model_validate(body)
        answers = [body]
    for a in answers:
        assert len(a["forecast"]) == horizon and set(a["quantiles"]) == keys
        values = [v for q in a["quantiles"].values() for v in q] + a["forecast"]
        assert all(math.isfinite(v) and v >= 0 for v in values)
        assert a["model_version"] == "v1" and a["degraded"] is False


# ----------------------------------------------------------------------------------------- strategies
def make_series(n: int, kind: str, seed: int) -> list[float]:
    """Realistic counts fast (drawing 50-400 floats one by one would dominate the run time)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    shapes = {"zeros": np.zeros(n), "constant": np.full(n, float(rng.integers(0, 1000))),
              "poisson": rng.poisson(rng.uniform(0.1, 500), n).astype(float),
              "diurnal": np.round(100 + 90 * np.sin(2 * np.pi * t / CONTEXT)),
              "spiky": (rng.random(n) < 0.05) * rng.integers(1, 10**6, n).astype(float),
              "fractional": rng.uniform(0, 10, n), "huge": rng.uniform(0, 1e12, n)}
    return shapes[kind].tolist()


SERIES_KINDS = ["zeros", "constant", "poisson", "diurnal", "spiky", "fractional", "huge"]
good_count = st.one_of(st.integers(0, 5000).map(float), st.floats(0, 1e6, allow_nan=False),
                       st.sampled_from([0.0, 1.0, 1e12]))
bad_count = st.one_of(st.just(math.nan), st.just(math.inf), st.just(-math.inf), st.floats(-1e9, -1e-9),
                      st.floats(1.0000001e12, 1e300), st.integers(-(10**30), -1), st.just(10**400),
                      st.booleans(), st.text(max_size=4), st.none(), st.lists(st.integers(), max_size=2))
any_count = st.one_of(good_count, good_count, good_count, bad_count)


def series_of(count, min_size=CONTEXT, max_size=CONTEXT + 40):
    return st.lists(count, min_size=min_size, max_size=max_size)


good_series = st.builds(make_series, st.integers(CONTEXT, CONTEXT + 60), st.sampled_from(SERIES_KINDS),
                        st.integers(0, 2**16))


def inject(series: list, where: int, value) -> list:
    series = list(series)
    series[where % len(series)] = value
    return series


bad_series = st.builds(inject, good_series, st.integers(0, 10**4), bad_count)
good_quantiles = st.lists(st.sampled_from(QUANTILES), min_size=1, max_size=3, unique=True)
# what a client computing 1 - 0.9 or 0.3 * 3 sends: the model's level within float noise
near_quantiles = st.builds(lambda qs, eps: [q + e for q, e in zip(qs, eps)], good_quantiles,
                           st.lists(st.sampled_from([0.0, 0.0, 1e-12, -1e-12, 3e-10, -2e-17]), min_size=3, max_size=3))
good_id = st.text(min_size=1, max_size=40).filter(lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s))


@st.composite
def valid_requests(draw):
    req: dict = {}
    if draw(st.booleans()):
        ids = draw(st.lists(good_id, min_size=1, max_size=5, unique=True))
        req["items"] = [{"id": i, "series": draw(good_series)} for i in ids]
    else:
        req["series"] = draw(good_series)
    if draw(st.booleans()):
        req["horizon"] = draw(st.integers(1, HORIZON))
    if draw(st.booleans()):
        req["quantiles"] = draw(st.one_of(good_quantiles, near_quantiles))
    return req


odd_series = st.one_of(good_series, bad_series, bad_series, series_of(any_count, 0, 12), st.just([]),
                       series_of(good_count, 1, CONTEXT - 1),
                       st.text(max_size=5), st.integers(), st.none(), st.dictionaries(st.text(max_size=3), good_count,
                                                                                         max_size=2))
odd_horizon = st.one_of(st.integers(-3, HORIZON + 3), st.integers(-(10**20), 10**20), st.just(10**400),
                        st.floats(allow_nan=True), st.text(max_size=3), st.booleans(), st.none())
odd_quantile = st.one_of(st.sampled_from(QUANTILES), st.floats(allow_nan=True, allow_infinity=True),
                         st.sampled_from([0.0, 1.0, -0.1, 1.5, 0.25, 0.5 + 1e-12, 0.1 + 1e-10]), st.text(max_size=3))
odd_quantiles = st.one_of(good_quantiles, st.lists(odd_quantile, max_size=21), st.just([]), st.floats(), st.none())
odd_id = st.one_of(good_id, st.text(max_size=3), st.text(min_size=120, max_size=140), st.integers(), st.none())
odd_key = st.text(min_size=1, max_size=8).filter(lambda k: k not in TOP_FIELDS | {"id"})


@st.composite
def arbitrary_requests(draw):
    kind = draw(st.sampled_from(["single", "batch", "both", "neither", "not-object"]))
    if kind == "not-object":
        return draw(st.one_of(st.lists(good_count, max_size=3), st.text(max_size=10), st.integers(), st.none(),
                              st.booleans(), st.floats(allow_nan=True)))
    req: dict = {}
    if kind in ("single", "both"):
        req["series"] = draw(odd_series)
    if kind in ("batch", "both"):
        n = draw(st.integers(0, 5))
        items = []
        for _ in range(n):
            item = {}
            if draw(st.integers(0, 9)):
                item["id"] = draw(odd_id)
            if draw(st.integers(0, 9)):
                item["series"] = draw(odd_series)
            if not draw(st.integers(0, 6)):
                item[draw(odd_key)] = 1
            items.append(item)
        if items and draw(st.integers(0, 5)) == 0:
            items.append(dict(items[0]))  # a repeated id
        req["items"] = items if draw(st.integers(0, 9)) else draw(st.one_of(st.text(max_size=3), st.integers()))
    if draw(st.booleans()):
        req["horizon"] = draw(odd_horizon)
    if draw(st.booleans()):
        req["quantiles"] = draw(odd_quantiles)
    if not draw(st.integers(0, 5)):
        req[draw(odd_key)] = draw(st.one_of(st.integers(), st.text(max_size=3)))
    return req


def post(body_text: str | None, **kw) -> dict:
    return http_event("POST", "/forecast", raw_body=body_text, **kw)


# ---------------------------------------------------------------------------------------- fuzz runs
@settings(FUZZ, max_examples=BUDGET["valid"])
@given(req=valid_requests())
def fuzz_valid(req):
    status, body = check(post(json.dumps(req)), "valid")
    assert status == 200, body
    check_answer(req, body)


@settings(FUZZ, max_examples=BUDGET["arbitrary"])
@given(req=arbitrary_requests())
def fuzz_arbitrary(req):
    status, body = check(post(json.dumps(req, allow_nan=True)), "arbitrary")
    if status == 200:
        check_answer(req, body)


@settings(FUZZ, max_examples=BUDGET["mutated"])
@given(req=valid_requests(), data=st.data())
def fuzz_mutated(req, data):
    text = json.dumps(req)
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(text)))
        j = data.draw(st.integers(i, min(len(text), i + 8)))
        text = text[:i] + data.draw(st.text(max_size=4)) + text[j:]
    status, body = check(post(text), "mutated")
    if status == 200:
        check_answer(parse(text), body)


@settings(FUZZ, max_examples=BUDGET["raw"])
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
       path=st.one_of(st.sampled_from(["/forecast", "/model", "/health", "/", "/forecast/", "/FORECAST"]),
                      st.text(max_size=12).map(lambda s: "/" + s)),
       content_type=st.one_of(st.sampled_from(["application/json", "application/json; charset=utf-8",
                                               "text/plain", "multipart/form-data; boundary=x",
                                               "application/x-www-form-urlencoded", ""]), st.text(max_size=20)),
       body=st.one_of(st.none(), st.text(max_size=60), st.binary(max_size=60)))
def fuzz_raw(method, path, content_type, body):
    if isinstance(body, bytes):
        event = http_event(method, path, raw_body=base64.b64encode(body).decode(),
                           headers={"content-type": content_type})
        event["isBase64Encoded"] = True
    else:
        event = http_event(method, path, raw_body=body, headers={"content-type": content_type})
    status, _ = check(event, "raw")
    if method == "GET" and path in ("/model", "/health"):
        assert status == 200


@pytest.mark.parametrize("family, run", [("valid", fuzz_valid), ("arbitrary", fuzz_arbitrary),
                                         ("mutated", fuzz_mutated), ("raw", fuzz_raw)])
def test_fuzz(family, run):
    sent.pop(family, None)
    run()
    # Hypothesis may stop early only when it has exhausted a strategy; these spaces are far larger.
    assert sent.get(family, 0) >= BUDGET[family], f"only {sent.get(family, 0)} {family} requests were sent"


def test_budget_is_at_least_2000_requests():
    assert sum(BUDGET.values()) >= MIN_REQUESTS


def test_fuzz_covers_every_request_field_of_the_openapi_document():
    """When the API gains a request field, this suite must learn to fuzz it."""
    doc = json.loads((api_root() / "docs" / "openapi.json").read_text())
    schemas = doc["components"]["schemas"]
    assert set(schemas["ForecastRequest"]["properties"]) == {"series", "horizon", "quantiles"}
    assert set(schemas["BatchRequest"]["properties"]) == {"items", "horizon", "quantiles"}
    assert set(schemas["BatchItem"]["properties"]) == {"id", "series"}


def api_root():
    from harness import ROOT

    return ROOT


# ------------------------------------------------------------------------------------------ hand cases
S = [float(i % 7) for i in range(CONTEXT)]


def with_(i: int, value) -> list:
    s = list(S)
    s[i] = value
    return s


HAND = [
    ("nan", json.dumps({"series": with_(3, math.nan)}), 422, "series[3]"),
    ("inf", json.dumps({"series": with_(5, math.inf)}), 422, "series[5]"),
    ("-inf", json.dumps({"series": with_(0, -math.inf)}), 422, "series[0]"),
    ("negative", json.dumps({"series": with_(47, -1.0)}), 422, "series[47]"),
    ("huge float", json.dumps({"series": with_(2, 1e13)}), 422, "series[2]"),
    ("huge 400-digit int", json.dumps({"series": with_(1, 10**400)}), 422, "series[1]"),
    ("count as string", json.dumps({"series": with_(4, "12")}), 422, "series[4]"),
    ("count as bool", json.dumps({"series": with_(4, True)}), 422, "series[4]"),
    ("zero length", json.dumps({"series": []}), 422, "series"),
    ("too short", json.dumps({"series": S[:10]}), 422, "series"),
    ("too long", json.dumps({"series": [1.0] * 100_001}), 422, "series"),
    ("batch item too short", json.dumps({"items": [{"id": "a", "series": S}, {"id": "b", "series": S[:3]}]}),
     422, "items[1].series"),
    ("not JSON", '{"series": [1, 2,', 422, "body"),
    ("JSON array", "[1, 2, 3]", 422, "body"),
    ("empty body", "", 422, "body"),
    ("lone surrogate id", '{"items": [{"id": "\\ud800", "series": %s}]}' % json.dumps(S), 422, "body"),
    ("unknown top-level field", json.dumps({"series": S, "horizn": 2}), 422, "horizn"),
    ("unknown item field", json.dumps({"items": [{"id": "a", "series": S, "weight": 1}]}), 422, "items[0].weight"),
    ("empty id", json.dumps({"items": [{"id": "", "series": S}]}), 422, "items[0].id"),
    ("repeated ids", json.dumps({"items": [{"id": "a", "series": S}, {"id": "a", "series": S}]}), 422, "items"),
    ("horizon above the model's", json.dumps({"series": S, "horizon": HORIZON + 1}), 422, "horizon"),
    ("horizon zero", json.dumps({"series": S, "horizon": 0}), 422, "horizon"),
    ("horizon as float", json.dumps({"series": S, "horizon": 2.0}), 422, "horizon"),
    ("quantile 0", json.dumps({"series": S, "quantiles": [0.5, 0.0]}), 422, "quantiles[1]"),
    ("quantile 1", json.dumps({"series": S, "quantiles": [1.0]}), 422, "quantiles[0]"),
    ("quantile negative", json.dumps({"series": S, "quantiles": [-0.5]}), 422, "quantiles[0]"),
    ("quantile above 1", json.dumps({"series": S, "quantiles": [0.9, 1.5]}), 422, "quantiles[1]"),
    ("quantile NaN", json.dumps({"series": S, "quantiles": [math.nan]}), 422, "quantiles[0]"),
    ("quantile not the model's", json.dumps({"series": S, "quantiles": [0.25]}), 422, "quantiles[0]"),
    ("quantiles repeating after rounding", json.dumps({"series": S, "quantiles": [0.5, 0.5 + 1e-12]}),
     422, "quantiles[1]"),
]


@pytest.mark.parametrize("name, text, status, field", HAND, ids=[h[0] for h in HAND])
def test_hand_cases(name, text, status, field):
    got, body = check(post(text), "hand")
    assert (got, body["errors"][0]["field"]) == (status, field), body


def test_quantile_within_rounding_of_the_models_is_served_under_the_models_key():
    status, body = check(post(json.dumps({"series": S, "quantiles": [0.9 + 1e-12, 0.1 + 1e-10]})), "hand")
    assert status == 200 and set(body["quantiles"]) == {"0.1", "0.9"}


def test_wrong_content_type_is_415():
    for ct in ("text/plain", "application/xml", "multipart/form-data; boundary=x"):
        status, body = check(post(json.dumps({"series": S}), headers={"content-type": ct}), "hand")
        assert status == 415 and body["errors"][0]["field"] == "content-type"


def test_six_megabyte_bodies_are_413_counted_in_bytes():
    ascii_big = '{"series": [' + "1," * (MAX_BODY_BYTES // 2) + "1]}"
    assert check(post(ascii_big), "hand")[0] == 413
    # 2.2 M two-byte characters: under the limit in characters, over it in bytes (what Lambda counts)
    utf8_big = '{"items": [{"id": "' + "é" * (MAX_BODY_BYTES // 2 + 100_000) + '", "series": []}]}'
    assert len(utf8_big) < MAX_BODY_BYTES < len(utf8_big.encode())
    status, body = check(post(utf8_big), "hand")
    assert status == 413 and body["errors"][0]["field"] == "body"


def test_base64_bodies_are_decoded_or_refused_cleanly():
    good = http_event("POST", "/forecast", raw_body=base64.b64encode(json.dumps({"series": S}).encode()).decode())
    good["isBase64Encoded"] = True
    assert check(good, "hand")[0] == 200
    for raw in (base64.b64encode(b"\xff\xfe\x00 not utf-8").decode(), "%%% not base64 %%%"):
        event = http_event("POST", "/forecast", raw_body=raw)
        event["isBase64Encoded"] = True
        status, body = check(event, "hand")
        assert status == 422 and body["errors"][0]["field"] == "body"


def test_batch_of_10k_items_is_refused_and_1k_is_served():
    items = [{"id": f"fn-{i}", "series": S} for i in range(10_000)]
    status, body = check(post(json.dumps({"items": items})), "hand")
    assert status == 422 and body["errors"][0]["field"] == "items" and str(MAX_BATCH_ITEMS) in body["message"]
    status, body = check(post(json.dumps({"items": items[:MAX_BATCH_ITEMS]})), "hand")
    assert status == 200 and body["count"] == MAX_BATCH_ITEMS


def test_unicode_ids_are_echoed_exactly():
    ids = ["функция-🚀", "関数/α", "نام\u200f", "e\u0301", "\u200b", "𝔣𝔫", "a" * 128]
    req = {"items": [{"id": i, "series": S} for i in ids]}
    status, body = check(post(json.dumps(req, ensure_ascii=False)), "hand")
    assert status == 200 and [i["id"] for i in body["items"]] == ids
