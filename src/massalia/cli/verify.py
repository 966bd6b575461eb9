"""``massalia verify FILE``: prove offline that a downloaded file is exactly what was published, and when.

Reads only the files given (no home, no network, no identity): the file, its proof bundle (``GET
/api/v1/opendata/certification/proof/{resource_id}``), optionally the publisher's public key and a checkpoint
the verifier already holds. Each check is a step (hash, leaf, inclusion proof, signed tree head, key,
checkpoint); the first that fails is named and the exit status is 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from massalia.cli.common import console, fail, literal
from massalia.opendata.certify import MAX_PROOF_BYTES, CertificateError, verify_publication

MAX_SMALL_FILE = 1024 * 1024
"""A key or a checkpoint is a few hundred bytes; a larger one is refused unread."""


def _read(path: Path, what: str, limit: int | None = None) -> bytes:
    try:
        if limit is not None and path.stat().st_size > limit:
            fail(f"{path}: a {what} is at most {limit} bytes")
        return path.read_bytes()
    except OSError as error:
        fail(f"cannot read the {what} {path}: {error.strerror or error}")


def verify(
    file: Annotated[Path, typer.Argument(help="The downloaded file.")],
    proof: Annotated[
        Path | None, typer.Option(help="The proof bundle (JSON); default: FILE.proof.json beside the file.")
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="A checkpoint you already hold (text or JSON): the proof's log must be it or extend it."),
    ] = None,
    key: Annotated[
        Path | None, typer.Option(help="The publisher's public key (PEM), obtained independently: pins the key.")
    ] = None,
) -> None:
    """Prove OFFLINE that FILE is exactly what was published, and when (hash, leaf, inclusion, signed head, key)."""
    proof_path = proof or file.with_name(file.name + ".proof.json")
    data = _read(file, "file")
    bundle = _read(proof_path, "proof", MAX_PROOF_BYTES)
    key_pem = _read(key, "key", MAX_SMALL_FILE) if key is not None else None
    held = _read(checkpoint, "checkpoint", MAX_SMALL_FILE) if checkpoint is not None else None
    try:
        result = verify_publication(data, bundle, key_pem=key_pem, checkpoint=held)
    except CertificateError as error:
        fail(f"verification FAILED at {error}")
    console.print(literal(result.summary(file.name)))
