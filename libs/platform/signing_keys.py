"""Where the HS256 signing key of the local token issuer comes from; no key is ever in the source.

In order: MGRID_AUTH_SECRET (the key itself), MGRID_AUTH_SECRET_FILE (a file holding it), then the
local stack's key file `<stack dir>/auth/signing.key`, which `ensure_local_key()` creates once per
installation with a random value (the stack, `mgrid token`, the demo and the test fixtures call it).
A service that finds none of them refuses to start (see `libs.platform.auth.require_verifier`).
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path

from libs.platform.settings import PlatformSettings

SECRET_ENV = "MGRID_AUTH_SECRET"
SECRET_FILE_ENV = "MGRID_AUTH_SECRET_FILE"
# HS256 with a key shorter than the hash is weak (RFC 7518 3.2): refuse such keys outright.
MIN_SECRET_BYTES = 32


class SigningKeyError(RuntimeError):
    """No usable signing key is configured, or the configured one is unusable."""


def local_key_file() -> Path:
    return _stack_dir(os.environ.get("MGRID_STACK_DIR")) / "auth" / "signing.key"


@lru_cache(maxsize=8)
def _stack_dir(_env_value: str | None) -> Path:
    # Keyed on the variable: building settings costs milliseconds, and this runs on every request.
    return PlatformSettings().stack_dir.resolve()


@lru_cache(maxsize=8)
def _read_key(path: Path, _mtime_ns: int) -> str:
    return path.read_text().strip()


def _key_from(path: Path) -> str:
    """The file's key; re-read only when the file changed (rotation), not on every request."""
    return _read_key(path, path.stat().st_mtime_ns)


def configured_secret() -> str | None:
    """The HS256 key from the environment or the local stack's key file; None when there is none."""
    value = os.environ.get(SECRET_ENV)
    source = SECRET_ENV
    if not value:
        path_text = os.environ.get(SECRET_FILE_ENV)
        if path_text:
            path = Path(path_text)
            if not path.is_file():
                raise SigningKeyError(f"{SECRET_FILE_ENV}={path_text} is not a readable file")
            value, source = _key_from(path), str(path)
        else:
            path = local_key_file()
            if not path.is_file():
                return None
            value, source = _key_from(path), str(path)
    if len(value.encode()) < MIN_SECRET_BYTES:
        raise SigningKeyError(f"the signing key from {source} is shorter than {MIN_SECRET_BYTES} bytes")
    return value


def ensure_local_key() -> Path:
    """Create the local stack's random signing key if it is missing (0600, created atomically); its path."""
    path = local_key_file()
    if path.is_file():
        return path
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Written to a private temp file, then linked into place: a reader never sees a half-written key,
    # and of two processes racing, the first link wins and both use that key.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(48) + "\n")
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path
