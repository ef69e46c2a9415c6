"""The SageMaker container contract: paths, typed hyperparameters, metric lines, failure file."""

from __future__ import annotations

import json
import re
import tarfile

import pytest

from mesp.errors import DataError
from mesp.jobs import __main__ as dispatcher
from mesp.jobs.contract import (CLUSTER_METRICS, JobError, JobPaths, Param, format_metric, metric_definitions,
                                parse_hyperparameters, read_hyperparameters, resolve_root, run_job, to_strings,
                                unpack_channel, write_hyperparameters)

SPEC = {"clusters": Param("int|auto", "auto"), "seed": Param(int, 0), "budget": Param(float, 1.0),
        "dense": Param(bool, False), "context": Param(str, "1d")}


def test_root_precedence():
    assert resolve_root(None, {}).as_posix() == "/opt/ml"
    assert resolve_root(None, {"SM_ROOT": "/tmp/x"}).as_posix() == "/tmp/x"
    assert resolve_root("/tmp/y", {"SM_ROOT": "/tmp/x"}).as_posix() == "/tmp/y"
    p = JobPaths(resolve_root("/r", {}))
    assert (p.channel("data").as_posix(), p.hyperparameters.as_posix(), p.model.as_posix(),
            p.failure.as_posix()) == ("/r/input/data/data", "/r/input/config/hyperparameters.json", "/r/model",
                                      "/r/output/failure")


def test_hyperparameters_are_strings_parsed_with_types(tmp_path):
    paths = JobPaths(tmp_path)
    write_hyperparameters(paths, {"clusters": 4, "seed": 7, "budget": 0.5, "dense": True, "context": "12h"})
    raw = json.loads(paths.hyperparameters.read_text())
    assert raw == {"clusters": "4", "seed": "7", "budget": "0.5", "dense": "true", "context": "12h"}
    assert read_hyperparameters(paths, SPEC) == {"clusters": 4, "seed": 7, "budget": 0.5, "dense": True,
                                                 "context": "12h"}
    assert parse_hyperparameters({}, SPEC)["clusters"] == "auto"  # defaults when absent
    assert parse_hyperparameters({"clusters": "AUTO"}, SPEC)["clusters"] == "auto"
    assert to_strings({"a": None, "b": False}) == {"b": "false"}


@pytest.mark.parametrize("raw, match", [
    ({"clusters": "0"}, "clusters='0' is not a valid int|auto"),
    ({"seed": "1.5"}, "seed='1.5' is not a valid int"),
    ({"budget": "nan"}, "budget='nan' is not a valid float"),
    ({"dense": "maybe"}, "dense='maybe' is not a valid bool"),
    ({"clustres": "3"}, "unknown hyperparameter"),
])
def test_bad_hyperparameters(raw, match):
    with pytest.raises(JobError, match=re.escape(match)):
        parse_hyperparameters(raw, SPEC)


def test_metric_lines_and_definitions():
    line = format_metric({"job": "cluster"}, n_clusters=4, inertia=0.25)
    assert line == "metric job=cluster n_clusters=4 inertia=0.25"
    defs = {d["Name"]: d["Regex"] for d in metric_definitions(CLUSTER_METRICS)}
    assert float(re.search(defs["inertia"], line).group(1)) == 0.25
    assert float(re.search(defs["n_clusters"], line).group(1)) == 4
    assert re.search(defs["inertia"], format_metric(None, inertia=1.5e-07)).group(1) == "1.5e-07"
    assert re.search(defs["silhouette"], line) is None


def test_failure_goes_to_the_failure_file(tmp_path, capsys):
    def body(paths):
        raise DataError("traces.csv:3: negative count -1")

    assert run_job("cluster", body, ["--sm-root", str(tmp_path)]) == 1
    assert (tmp_path / "output" / "failure").read_text() == "traces.csv:3: negative count -1"
    assert "traces.csv:3" in capsys.readouterr().err

    def crash(paths):
        raise ZeroDivisionError("boom")

    assert run_job("cluster", crash, ["--sm-root", str(tmp_path)]) == 1
    assert (tmp_path / "output" / "failure").read_text() == "ZeroDivisionError: boom"

    def ok(paths):
        (paths.model / "x").write_text("1")

    assert run_job("cluster", ok, ["--sm-root", str(tmp_path), "train"]) == 0
    assert not (tmp_path / "output" / "failure").exists() and (tmp_path / "model" / "x").exists()
    assert run_job("cluster", ok, ["--sm-root", str(tmp_path), "serve"]) == 1


def test_missing_channel_and_dispatch(tmp_path):
    paths = JobPaths(tmp_path)
    with pytest.raises(JobError, match="input channel 'data' is missing"):
        paths.require_channel("data")
    write_hyperparameters(paths, {"job": "nonsense"})
    assert dispatcher.main(["--sm-root", str(tmp_path), "train"]) == 1
    assert "expected 'cluster' or 'expert'" in paths.failure.read_text()
    write_hyperparameters(paths, {"job": "cluster"})
    assert dispatcher.main(["--sm-root", str(tmp_path), "train"]) == 1
    assert "input channel 'data' is missing" in paths.failure.read_text()


def test_channel_with_a_model_tarball_is_unpacked(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "cluster.json").write_text("{}")
    channel = tmp_path / "input" / "data" / "cluster"
    channel.mkdir(parents=True)
    with tarfile.open(channel / "model.tar.gz", "w:gz") as tar:
        tar.add(src / "cluster.json", arcname="cluster.json")
    folder = unpack_channel(channel)
    assert (folder / "cluster.json").read_text() == "{}"
    assert unpack_channel(channel) == folder  # once
    assert unpack_channel(src) == src  # a plain folder stays as is
