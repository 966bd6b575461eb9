"""The log's Ed25519 signing key: created on first use with mode 0600, its public half exported as PEM."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from massalia.ledger.storage import LedgerCorruptError, LedgerError, sync_directory


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    """The canonical PEM (unencrypted PKCS#8) of a private key.

    Examples
    --------
    >>> private_key_pem(Ed25519PrivateKey.generate()).startswith(b"-----BEGIN PRIVATE KEY-----")
    True
    """
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_key_pem(key: Ed25519PublicKey) -> bytes:
    """The canonical PEM (SubjectPublicKeyInfo) of a public key, the form given to third parties.

    Examples
    --------
    >>> public_key_pem(Ed25519PrivateKey.generate().public_key()).startswith(b"-----BEGIN PUBLIC KEY-----")
    True
    """
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    sync_directory(path.parent)


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """Load the signing key from ``path``, refusing a file others can read or that was altered.

    Raises
    ------
    LedgerError
        If the file is readable by group or others.
    LedgerCorruptError
        If the file is not the canonical PEM of an Ed25519 key.

    Examples
    --------
    >>> load_signing_key(Path("ledger/signing-key.pem"))  # doctest: +SKIP
    """
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise LedgerError(f"{path} is accessible to group or others (mode {oct(mode & 0o777)}); chmod 600 it")
    data = path.read_bytes()
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise LedgerCorruptError(f"not a readable PEM private key ({exc})", path.name) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise LedgerCorruptError("the signing key is not an Ed25519 key", path.name)
    if private_key_pem(key) != data:
        raise LedgerCorruptError("the key file differs from the canonical PEM of its key", path.name)
    return key


def signing_key_for(
    directory: Path, supplied: Ed25519PrivateKey | None, private_name: str, public_name: str
) -> Ed25519PrivateKey:
    """The key a writer signs with: ``supplied``, else the one in ``directory``, else a new one.

    The public key file binds the directory to one key: a supplied or stored key that does not match
    it is refused. A new key is written with mode 0600 and its public half beside it.

    Examples
    --------
    >>> signing_key_for(Path("ledger"), None, "signing-key.pem", "public-key.pem")  # doctest: +SKIP
    """
    private_path, public_path = directory / private_name, directory / public_name
    if supplied is not None:
        key = supplied
    elif private_path.exists():
        key = load_signing_key(private_path)
    elif public_path.exists():
        raise LedgerError(f"the ledger {directory} has a public key but no signing key; supply the key")
    else:
        key = Ed25519PrivateKey.generate()
        _write_new(private_path, private_key_pem(key), 0o600)
    expected = public_key_pem(key.public_key())
    if public_path.exists():
        if public_path.read_bytes() != expected:
            raise LedgerCorruptError("the public key file does not match the signing key (or was altered)", public_name)
    else:
        _write_new(public_path, expected, 0o644)
    return key


def load_public_key_file(path: Path) -> Ed25519PublicKey:
    """Load the log's public key from its PEM file, refusing a non-canonical (altered) file.

    Examples
    --------
    >>> load_public_key_file(Path("ledger/public-key.pem"))  # doctest: +SKIP
    """
    data = path.read_bytes()
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise LedgerCorruptError(f"not a readable PEM public key ({exc})", path.name) from exc
    if not isinstance(key, Ed25519PublicKey) or public_key_pem(key) != data:
        raise LedgerCorruptError("not the canonical PEM of an Ed25519 public key", path.name)
    return key
