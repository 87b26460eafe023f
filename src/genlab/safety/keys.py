"""Secret keys genlab keeps outside its database: the watermark key and the audit-chain key.

Each is hex from a setting (``GENLAB_WATERMARK_KEY``, ``GENLAB_AUDIT_KEY``: what several servers
sharing one PostgreSQL set), or else a random key made once in ``GENLAB_HOME/keys/<name>.key``
(mode 0600). Whoever can write the database cannot forge what these keys sign without the key."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from genlab.core import InvalidRequestError


def secret_key(home: Path, name: str, configured: str | None, variable: str) -> bytes:
    if configured:
        try:
            key = bytes.fromhex(configured.strip())
        except ValueError:
            raise InvalidRequestError(f"{variable} must be hex (e.g. 64 hex digits)") from None
        if len(key) < 16:
            raise InvalidRequestError(f"{variable} must hold at least 16 bytes (32 hex digits)")
        return key
    path = home / "keys" / f"{name}.key"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
            f.flush()
            os.fsync(f.fileno())
        try:  # first writer wins; a concurrent second one reads the winner's key
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            tmp.unlink()
    return path.read_bytes()
