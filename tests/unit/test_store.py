"""The model store: same behaviour for a local directory and s3:// (moto)."""

from __future__ import annotations

import json

import pytest
from moto import mock_aws

from mesp.errors import ModelStoreError
from mesp.store import LocalStore, S3Store, open_store, version_key
from support.stores import build_store, corrupt


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        yield LocalStore(tmp_path / "store")
        return
    with mock_aws():
        import boto3

        boto3.client("s3").create_bucket(Bucket="mesp-models")
        yield S3Store("mesp-models", "team/models")


def test_primitives_roundtrip(store):
    assert store.list() == [] and not store.exists("a/b.bin")
    store.put_bytes("a/b.bin", b"\x00\x01")
    store.put_bytes("a/c.json", b"{}")
    store.put_bytes("z", b"z")
    assert store.exists("a/b.bin") and store.get_bytes("a/b.bin") == b"\x00\x01"
    assert store.list() == ["a/b.bin", "a/c.json", "z"]
    assert store.list("a/") == ["a/b.bin", "a/c.json"]
    store.put_bytes("a/b.bin", b"new")  # overwrite
    assert store.get_bytes("a/b.bin") == b"new"
    store.delete("a/b.bin")
    store.delete("a/b.bin")  # idempotent
    assert not store.exists("a/b.bin")
    with pytest.raises(ModelStoreError, match="a/b.bin does not exist"):
        store.get_bytes("a/b.bin")


def test_latest_manifest_and_verified_reads(store):
    with pytest.raises(ModelStoreError, match="LATEST is missing"):
        store.latest_version()
    built = build_store(store, version="2026-11-22T00.00.00Z")
    assert store.latest_version() == "2026-11-22T00.00.00Z"
    assert store.list_versions() == ["2026-11-22T00.00.00Z"]
    manifest = store.read_manifest(store.latest_version())
    assert manifest == built.manifest
    data = store.read_verified(manifest.version, "dense.onnx", manifest.dense.sha256)
    assert data == store.get_bytes(version_key(manifest.version, "dense.onnx"))
    corrupt(store, manifest.version, "dense.onnx")
    with pytest.raises(ModelStoreError, match="dense.onnx fails verification: sha256"):
        store.read_verified(manifest.version, "dense.onnx", manifest.dense.sha256)


@pytest.mark.parametrize("latest, match", [
    (b"not json", "not valid JSON"),
    (b'{"v": 1}', "must be"),
    (b'{"version": "../../etc"}', "invalid model version"),
])
def test_bad_latest_pointer(store, latest, match):
    store.put_bytes("LATEST", latest)
    with pytest.raises(ModelStoreError, match=match):
        store.latest_version()


def test_bad_manifest_names_the_field(store):
    built = build_store(store, version="v1")
    doc = json.loads(built.manifest.model_dump_json())
    doc["context"] = -3
    store.put_bytes("versions/v1/manifest.json", json.dumps(doc).encode())
    with pytest.raises(ModelStoreError, match="not a valid manifest: context"):
        store.read_manifest("v1")
    doc["context"], doc["version"] = 48, "v2"
    store.put_bytes("versions/v1/manifest.json", json.dumps(doc).encode())
    with pytest.raises(ModelStoreError, match="says version 'v2'"):
        store.read_manifest("v1")


@pytest.mark.parametrize("key", ["", "/etc/passwd", "../x", "a/../../x", "a//b", "a\\b"])
def test_keys_cannot_escape_the_root(tmp_path, key):
    with pytest.raises(ModelStoreError, match="invalid store key"):
        LocalStore(tmp_path).get_bytes(key)


def test_local_writes_leave_no_temp_files(tmp_path):
    store = LocalStore(tmp_path)
    store.put_bytes("versions/v1/x.bin", b"1" * 10_000)
    assert sorted(p.name for p in (tmp_path / "versions" / "v1").iterdir()) == ["x.bin"]


def test_open_store_dispatch(tmp_path):
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    assert isinstance(open_store(f"file://{tmp_path}"), LocalStore)
    s3 = open_store("s3://bucket/some/prefix/")
    assert isinstance(s3, S3Store) and s3.bucket == "bucket" and s3.prefix == "some/prefix/"
    assert open_store("s3://bucket").prefix == ""
    with pytest.raises(ModelStoreError, match="unsupported model store"):
        open_store("gs://bucket/x")
    with pytest.raises(ModelStoreError, match="needs a bucket"):
        open_store("s3:///x")


def test_s3_client_is_lazy_and_errors_are_one_line():
    store = S3Store("missing-bucket", "p")
    assert store._client is None  # nothing created at construction: moto started later still intercepts
    with mock_aws():
        with pytest.raises(ModelStoreError, match="bucket 'missing-bucket' does not exist"):
            store.get_bytes("LATEST")


def test_s3_access_denied_is_a_store_error():
    from botocore.stub import Stubber
    import boto3

    client = boto3.client("s3")
    store = S3Store("b", "p", client=client)
    with Stubber(client) as stub:
        stub.add_client_error("get_object", service_error_code="AccessDenied", http_status_code=403)
        with pytest.raises(ModelStoreError, match="cannot read s3://b/p/LATEST: AccessDenied"):
            store.get_bytes("LATEST")
