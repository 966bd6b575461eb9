"""Credentials: username and password rules, argon2id password hashes, API token secrets.

Passwords follow NIST SP 800-63B (5.1.1.2): 12 to 1024 characters, any characters, no composition
rules, but never a common or easily guessed one: not in the list of 30,000 most common passwords that
the ``zxcvbn`` package ships (also once trailing digits and symbols are removed: ``password1234``), and
with a ``zxcvbn`` guess estimate of at least 10^8 (score 3: repeats, sequences, keyboard walks, words
with digits, the username and the platform's name all count against it). Nothing is downloaded.

Passwords are hashed with argon2id (``argon2-cffi``'s RFC 9106 low-memory profile); a hash made with
older parameters is replaced at the next successful login. API tokens are ``msl_`` followed by 43
URL-safe characters (256 random bits from :mod:`secrets`); only their SHA-256 is stored, which is
enough for a secret of that entropy (no salt or slow hash needed: it cannot be guessed).
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
import unicodedata

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.profiles import RFC_9106_LOW_MEMORY
from zxcvbn import zxcvbn
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from massalia.governance.model import InvalidRequest

USERNAME_PATTERN = re.compile(r"^[a-z][a-z0-9._-]{1,62}[a-z0-9]$|^[a-z][a-z0-9]$")
RESERVED_USERNAMES = frozenset({"anonymous", "operator", "admin", "root", "system"})
PASSWORD_MIN_LENGTH = 12
PASSWORD_MAX_LENGTH = 1024
PASSWORD_MIN_SCORE = 3  # zxcvbn's "safely unguessable: moderate protection from offline slow-hash attacks"
PASSWORD_ESTIMATED_PREFIX = 128  # zxcvbn's work grows with length; past this a password is long enough
CONTEXT_WORDS = ("massalia", "omop", "oncology")  # words of this platform an attacker tries first
TOKEN_PREFIX = "msl_"  # noqa: S105 (a public marker, not a secret)
TOKEN_PATTERN = re.compile(r"^msl_[A-Za-z0-9_-]{43}$")
TOKEN_SHOWN_PREFIX = 12  # characters of the token kept in clear to recognise it in listings

_hasher = PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the user does not exist, so a wrong username costs as long as a wrong password."""
    return _hasher.hash(secrets.token_urlsafe(16))


def check_username(username: object) -> str:
    """Return ``username`` if it follows the rules, else raise ``InvalidRequest`` saying which.

    Rules: 2 to 64 characters, lowercase ASCII letters, digits, ``.``, ``_``, ``-``; starts with a letter,
    ends with a letter or digit; not a reserved name.

    Examples
    --------
    >>> check_username("dr.martin")
    'dr.martin'
    """
    if not isinstance(username, str):
        raise InvalidRequest("username must be a string")
    if not USERNAME_PATTERN.match(username):
        raise InvalidRequest(
            f"username {username!r} is invalid: 2-64 characters, lowercase letters, digits, '.', '_', '-', "
            "starting with a letter and ending with a letter or digit"
        )
    if username in RESERVED_USERNAMES:
        raise InvalidRequest(f"username {username!r} is reserved")
    return username


@functools.cache
def common_passwords() -> frozenset[str]:
    """The 30,000 most common passwords (lowercase), as shipped by the ``zxcvbn`` package."""
    return frozenset(word.casefold() for word in FREQUENCY_LISTS["passwords"])


def _common(normalized: str) -> bool:
    folded = normalized.casefold()
    stripped = folded.rstrip("0123456789!?.,;:-_#*@$%&+= ")
    return folded in common_passwords() or (len(stripped) >= 4 and stripped in common_passwords())


def check_password(password: object, username: str | None = None) -> str:
    """Return ``password`` if acceptable, else raise ``InvalidRequest`` saying why.

    12 to 1024 characters, not only spaces, not the username, not a common password, and not easily
    guessed (see the module's docstring).

    Examples
    --------
    >>> check_password("correct horse battery staple")
    'correct horse battery staple'
    >>> check_password("password1234")
    Traceback (most recent call last):
    ...
    massalia.governance.model.InvalidRequest: password refused: it is a common password
    """
    if not isinstance(password, str):
        raise InvalidRequest("password must be a string")
    normalized = unicodedata.normalize("NFC", password)
    if len(normalized) < PASSWORD_MIN_LENGTH:
        raise InvalidRequest(f"password too short: at least {PASSWORD_MIN_LENGTH} characters")
    if len(normalized) > PASSWORD_MAX_LENGTH:
        raise InvalidRequest(f"password too long: at most {PASSWORD_MAX_LENGTH} characters")
    if not normalized.strip():
        raise InvalidRequest("password must not be only spaces")
    if username and normalized.casefold() == username.casefold():
        raise InvalidRequest("password must differ from the username")
    if "\x00" in normalized:
        raise InvalidRequest("password must not contain NUL characters")
    if _common(normalized):
        raise InvalidRequest("password refused: it is a common password")
    context = [word for word in (username, *CONTEXT_WORDS) if word]
    estimate = zxcvbn(normalized[:PASSWORD_ESTIMATED_PREFIX], user_inputs=context)
    if estimate["score"] < PASSWORD_MIN_SCORE:
        hint = estimate["feedback"].get("warning") or "add more words or characters"
        raise InvalidRequest(f"password refused: too easy to guess ({hint.rstrip('.')})")
    return normalized


def hash_password(password: str) -> str:
    """An argon2id hash (PHC string) of ``password``."""
    return _hasher.hash(unicodedata.normalize("NFC", password))


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash`` (constant work when there is no hash)."""
    candidate = unicodedata.normalize("NFC", password) if isinstance(password, str) else ""
    try:
        return _hasher.verify(stored_hash or _dummy_hash(), candidate) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """Whether ``stored_hash`` was made with other parameters than the current ones."""
    try:
        return _hasher.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True


def new_token() -> str:
    """A fresh API token: ``msl_`` + 256 random bits, URL-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """The SHA-256 (hex) stored for ``token``."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def looks_like_token(token: object) -> bool:
    """Whether ``token`` has the shape of a Massalia API token (checked before any lookup)."""
    return isinstance(token, str) and bool(TOKEN_PATTERN.match(token))
