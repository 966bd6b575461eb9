"""Per-project secrets, encrypted at rest under a master key kept in a 0600 file of ``MASSALIA_HOME``.

The choice: each project's 32-byte secret (from :mod:`secrets`) is stored in the metadata database
encrypted with AES-256-GCM, the project id as associated data (a ciphertext moved to another project
does not decrypt). The master key is 32 random bytes in ``MASSALIA_HOME/keys/master.key``, created
with mode 0600 in a 0700 folder. A copy of the metadata database alone (a backup, a PostgreSQL dump)
therefore reveals no project secret; the key file must be backed up apart from it. Losing the key
file loses the pseudonym mapping of every project (by design, nobody can then re-identify).
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12


class KeyFileError(RuntimeError):
    """The master key file is unreadable, of the wrong size, or readable by others."""


def load_or_create_master_key(path: Path) -> bytes:
    """Read the master key at ``path``, creating it (0600, folder 0700) the first time.

    Raises
    ------
    KeyFileError
        If the file exists with a size other than 32 bytes or is readable by group or others.
    """
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = secrets.token_bytes(KEY_BYTES)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first: read theirs below
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(key)
                handle.flush()
                os.fsync(handle.fileno())
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"{path} is accessible by group or others (mode {oct(mode & 0o777)}); chmod 600 it")
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"{path} holds {len(key)} bytes, a master key is {KEY_BYTES}")
    return key


def seal(master_key: bytes, project_id: int, secret: bytes) -> tuple[bytes, bytes]:
    """Encrypt ``secret`` for ``project_id``; return ``(nonce, ciphertext)``."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce, AESGCM(master_key).encrypt(nonce, secret, f"massalia-project:{project_id}".encode())


def unseal(master_key: bytes, project_id: int, nonce: bytes, ciphertext: bytes) -> bytes:
    """Decrypt a project secret sealed by :func:`seal` (``KeyFileError`` if the key or project does not match)."""
    try:
        return AESGCM(master_key).decrypt(nonce, ciphertext, f"massalia-project:{project_id}".encode())
    except InvalidTag:
        raise KeyFileError(
            f"the secret of project {project_id} does not decrypt: wrong master key file or tampered row"
        ) from None


def new_project_secret() -> bytes:
    """A fresh 32-byte project secret."""
    return secrets.token_bytes(KEY_BYTES)
