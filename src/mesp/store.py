"""The model store: one interface over a local directory and ``s3://bucket/prefix``.

Keys are ``/``-separated paths relative to the store root (``LATEST``, ``versions/<v>/manifest.json``,
...; see :mod:`mesp.manifest` for the layout). Both backends offer the same five primitives
(:meth:`~ModelStore.get_bytes`, :meth:`~ModelStore.put_bytes`, :meth:`~ModelStore.exists`,
:meth:`~ModelStore.list`, :meth:`~ModelStore.delete`) and the serving reads built on them
(:meth:`~ModelStore.latest_version`, :meth:`~ModelStore.read_manifest`, :meth:`~ModelStore.read_verified`).

Every failure surfaces as :class:`~mesp.errors.ModelStoreError` with a one-line message naming the
store and key, so callers (the Lambda runtime, the CLI) have a single thing to catch.

This module is on the serving path: it imports boto3 only when an S3 store is first used, and the
S3 client is created lazily on first use, so a ``moto`` mock started after import still intercepts it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mesp.errors import ModelStoreError

if TYPE_CHECKING:
    from mesp.manifest import Manifest

LATEST_KEY = "LATEST"
VERSIONS_PREFIX = "versions/"
MANIFEST_FILE = "manifest.json"

# Versions become key segments (and local directory names), so keep them to a conservative alphabet.
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}$")


class StoreUnavailable(ModelStoreError):
    """The store could not be read right now (throttled, timed out, denied, I/O error); the object itself may
    be fine, so a reader should try again later rather than treat it as damaged or missing."""


def check_version(version: str) -> str:
    """Return ``version`` if it is a safe version name, else raise ModelStoreError."""
    if not isinstance(version, str) or not _VERSION_RE.match(version) or ".." in version:
        raise ModelStoreError(f"invalid model version {version!r}: use letters, digits and . _ : + -")
    return version


def check_key(key: str) -> str:
    """Reject keys that could escape the store root (absolute paths, ``..``, empty segments)."""
    parts = key.split("/") if isinstance(key, str) else [""]
    if not key or key.startswith("/") or "\\" in key or any(p in {"", ".", ".."} for p in parts):
        raise ModelStoreError(f"invalid store key {key!r}")
    return key


def version_key(version: str, file: str = "") -> str:
    """``versions/<version>/<file>`` (or the version folder itself with a trailing slash)."""
    base = f"{VERSIONS_PREFIX}{check_version(version)}/"
    return base + check_key(file) if file else base


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ModelStore(ABC):
    """Abstract store; create one with :func:`open_store`."""

    uri: str

    # -- primitives ---------------------------------------------------------------------------------
    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """The object's bytes; ModelStoreError if it is missing or unreadable."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Write an object so readers never see a partial one."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """All keys under ``prefix`` (a plain string prefix), sorted."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object; missing objects are not an error."""

    # -- conveniences built on the primitives ---------------------------------------------------------
    def get_json(self, key: str) -> Any:
        raw = self.get_bytes(key)
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ModelStoreError(f"{self._where(key)} is not valid JSON: {err}") from None

    def put_json(self, key: str, obj: Any) -> None:
        self.put_bytes(key, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())

    def latest_version(self) -> str:
        """The version named by ``LATEST``; ModelStoreError if there is none or it is malformed."""
        if not self.exists(LATEST_KEY):
            raise ModelStoreError(f"no published model in {self.uri} ({LATEST_KEY} is missing)")
        doc = self.get_json(LATEST_KEY)
        if not isinstance(doc, dict) or not isinstance(doc.get("version"), str):
            raise ModelStoreError(f"{self._where(LATEST_KEY)} must be {{\"version\": \"<v>\"}}")
        return check_version(doc["version"])

    def list_versions(self) -> list[str]:
        """Every version that has a manifest, sorted by name (publishers use sortable names)."""
        suffix = "/" + MANIFEST_FILE
        found = []
        for key in self.list(VERSIONS_PREFIX):
            rest = key[len(VERSIONS_PREFIX):]
            if rest.endswith(suffix) and rest.count("/") == 1:
                found.append(rest[: -len(suffix)])
        return sorted(found)

    def read_manifest(self, version: str) -> Manifest:
        """Parse and validate ``versions/<version>/manifest.json``."""
        from pydantic import ValidationError

        from mesp.manifest import Manifest

        key = version_key(version, MANIFEST_FILE)
        raw = self.get_bytes(key)
        try:
            manifest = Manifest.model_validate_json(raw)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(root)"
            raise ModelStoreError(f"{self._where(key)} is not a valid manifest: {where}: {first['msg']}") from None
        if manifest.version != version:
            raise ModelStoreError(f"{self._where(key)} says version {manifest.version!r}, expected {version!r}")
        return manifest

    def read_verified(self, version: str, file: str, sha256: str) -> bytes:
        """The bytes of ``versions/<version>/<file>``, only if their sha256 matches."""
        key = version_key(version, file)
        data = self.get_bytes(key)
        actual = sha256_hex(data)
        if actual != sha256.lower():
            raise ModelStoreError(
                f"{self._where(key)} fails verification: sha256 {actual[:12]}… != manifest {sha256[:12]}…")
        return data

    def _where(self, key: str) -> str:
        return f"{self.uri.rstrip('/')}/{key}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"


class LocalStore(ModelStore):
    """A directory on disk. Writes go to a temporary file that is then renamed over the target."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).expanduser()
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ModelStoreError(f"{self._where(key)} does not exist") from None
        except OSError as err:
            raise StoreUnavailable(f"cannot read {self._where(key)}: {err.strerror or err}") from None

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as err:
            raise ModelStoreError(f"cannot write {self._where(key)}: {err.strerror or err}") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        if not self.root.is_dir():
            return []
        keys = []
        for path in self.root.rglob("*"):
            if path.is_file() and not path.name.endswith(".tmp"):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as err:
            raise ModelStoreError(f"cannot delete {self._where(key)}: {err.strerror or err}") from None


class S3Store(ModelStore):
    """``s3://bucket/prefix`` through boto3. The client is built on first use (moto-friendly)."""

    def __init__(self, bucket: str, prefix: str = "", client: Any = None):
        if not bucket:
            raise ModelStoreError("an s3:// model store needs a bucket name")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.uri = f"s3://{bucket}/{self.prefix}"
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            # Bounded retries and timeouts: a Lambda must fail over to its fallback well within 30 s.
            config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=3, read_timeout=10)
            self._client = boto3.client("s3", config=config)
        return self._client

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _fail(self, action: str, key: str, err: Exception) -> ModelStoreError:
        # botocore's ReadTimeoutError carries `response = None` (inherited from requests): not a dict
        response = getattr(err, "response", None)
        code = response.get("Error", {}).get("Code", "") if isinstance(response, dict) else ""
        if code in {"NoSuchKey", "404", "NotFound"}:
            return ModelStoreError(f"{self._where(key)} does not exist")
        if code == "NoSuchBucket":
            return ModelStoreError(f"bucket {self.bucket!r} does not exist ({self.uri})")
        detail = code or type(err).__name__
        return StoreUnavailable(f"cannot {action} {self._where(key)}: {detail}")

    def get_bytes(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except (ClientError, BotoCoreError) as err:
            raise self._fail("read", key, err) from None

    def put_bytes(self, key: str, data: bytes) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:  # a single PUT is atomic in S3: readers see the old object or the new one, never a part
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except (ClientError, BotoCoreError) as err:
            raise self._fail("write", key, err) from None

    def exists(self, key: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise self._fail("check", key, err) from None
        except BotoCoreError as err:
            raise self._fail("check", key, err) from None

    def list(self, prefix: str = "") -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        keys = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix)
            for page in pages:
                keys.extend(obj["Key"][len(self.prefix):] for obj in page.get("Contents", []))
        except (ClientError, BotoCoreError) as err:
            raise self._fail("list", prefix or "(root)", err) from None
        return sorted(keys)

    def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (ClientError, BotoCoreError) as err:
            raise self._fail("delete", key, err) from None


def open_store(uri: str | os.PathLike[str] | ModelStore) -> ModelStore:
    """A store for a local path (or ``file://`` URL) or ``s3://bucket/prefix``."""
    if isinstance(uri, ModelStore):
        return uri
    text = os.fspath(uri)
    if not text:
        raise ModelStoreError("empty model store location")
    if text.startswith("s3://"):
        bucket, _, prefix = text[len("s3://"):].partition("/")
        return S3Store(bucket, prefix)
    if "://" in text and not text.startswith("file://"):
        raise ModelStoreError(f"unsupported model store {text!r}: use a directory or s3://bucket/prefix")
    return LocalStore(text[len("file://"):] if text.startswith("file://") else text)
