"""An S3-compatible server (moto in server mode) on 127.0.0.1 for the batch tests, and helpers.

``S3Server`` starts moto's threaded server on a free loopback port and stops it; ``uri(bucket, prefix)``
is the pyarrow URI of a folder on it (``endpoint_override`` + ``scheme=http``). Credentials are dummy
values set in the environment by the fixture, as a real deployment would set ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

DUMMY_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
             "AWS_EC2_METADATA_DISABLED": "true"}


class S3Server:
    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.port = 0

    def __enter__(self) -> S3Server:
        self._server.start()
        self.port = int(self._server.get_host_and_port()[1])
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def uri(self, bucket: str, prefix: str = "") -> str:
        path = f"{bucket}/{prefix}".rstrip("/")
        return f"s3://{path}?endpoint_override={self.endpoint}&scheme=http&region=us-east-1"

    def fs(self) -> Any:
        import pyarrow.fs as pafs

        return pafs.S3FileSystem(
            endpoint_override=self.endpoint,
            scheme="http",
            region="us-east-1",
            access_key=DUMMY_ENV["AWS_ACCESS_KEY_ID"],
            secret_key=DUMMY_ENV["AWS_SECRET_ACCESS_KEY"],
            allow_bucket_creation=True,
        )

    def make_bucket(self, name: str) -> None:
        self.fs().create_dir(name)

    def upload_tree(self, local: Path, bucket: str, prefix: str) -> list[str]:
        fs = self.fs()
        rels = []
        for p in sorted(local.rglob("*")):
            if p.is_file():
                rel = p.relative_to(local).as_posix()
                with fs.open_output_stream(f"{bucket}/{prefix}/{rel}") as fh:
                    fh.write(p.read_bytes())
                rels.append(rel)
        return rels

    def read(self, bucket: str, key: str) -> bytes:
        with self.fs().open_input_stream(f"{bucket}/{key}") as fh:
            return bytes(fh.read())

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        import pyarrow.fs as pafs

        base = f"{bucket}/{prefix}".rstrip("/")
        infos = self.fs().get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
        return sorted(i.path[len(base) + 1:] for i in infos if i.type == pafs.FileType.File)


def dummy_credentials(monkeypatch: Any) -> None:
    for k, v in DUMMY_ENV.items():
        monkeypatch.setenv(k, v)
    os.environ.pop("AWS_PROFILE", None)
