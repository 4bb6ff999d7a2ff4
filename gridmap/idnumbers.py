"""Chinese identity numbers (身份证号) and dates as offices write them in rosters.

A 身份证号 is checked (GB 11643 check digit, plausible birth date) and refused when Excel has
turned it into a float; it is stored only as a keyed hash with a masked form, or AES-GCM
encrypted for authorised roles. :mod:`gridmap.rosters` re-exports everything here.

Examples
--------
>>> id_check_digit("11010519491231002")
'X'
>>> protect_id_number("11010519491231002X", b"k" * 32)[1]
'110105********002X'
>>> parse_date("2023年1月5日"), parse_date(44931)
(datetime.date(2023, 1, 5), datetime.date(2023, 1, 5))
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import os
import re
import unicodedata
from typing import Any

from gridmap.errors import InvalidInput, ServiceUnavailable

__all__ = [
    "check_id_number",
    "decrypt_id_number",
    "encrypt_id_number",
    "id_check_digit",
    "mask_id_number",
    "parse_date",
    "protect_id_number",
]

_WEIGHTS = [pow(2, 17 - i, 11) for i in range(17)]
_EXCEL_EPOCH = dt.date(1899, 12, 30)
_TEXT_MSG = (
    "身份证号 looks like a number ({}): Excel keeps only 15 digits and loses the last ones; "
    "format the 身份证号 column as text (文本) and enter the numbers again"
)


def _norm(v: Any) -> Any:
    """Half-width, stripped text (full-width digits and brackets are common); None when empty."""
    if isinstance(v, str):
        v = unicodedata.normalize("NFKC", v).strip().lstrip("'")
        return v or None
    return v


def id_check_digit(first17: str) -> str:
    """GB 11643-1999 check character (ISO 7064 MOD 11-2; 10 is written 'X')."""
    r = (12 - sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True)) % 11) % 11
    return "X" if r == 10 else str(r)


def check_id_number(value: Any, *, today: dt.date | None = None, allow_000: bool = False) -> str:
    """The normalised 18-character 身份证号, or :class:`InvalidInput` saying what is wrong.

    Numbers (from Excel cells or CSV text such as ``4.20502199001011e+17``) are refused: a float
    holds 15-16 significant digits, so the number is already corrupted. So is text ending in
    ``000`` (what a float prints as 18 digits; 1 in 11 of those passes the check digit by
    chance, while a real number ends so about once in 11,000): ``allow_000`` accepts it after a
    person has checked the card.
    """
    if isinstance(value, bool | int | float):
        raise InvalidInput(_TEXT_MSG.format("numeric cell"), code="id-number-numeric")
    s = str(_norm(value) or "").replace(" ", "").upper()
    if re.fullmatch(r"\d+(\.\d*)?E\+?\d+|\d+\.0*", s):
        raise InvalidInput(_TEXT_MSG.format(s[:8] + "…"), code="id-number-numeric")
    if re.fullmatch(r"\d{15}", s):
        raise InvalidInput(
            "身份证号 has 15 digits (first-generation card); ask for the 18-digit one"
        )
    if not re.fullmatch(r"\d{17}[\dX]", s):
        raise InvalidInput(f"身份证号 must be 17 digits and a digit or X (got {len(s)} characters)")
    if s.endswith("000") and not allow_000:
        raise InvalidInput(_TEXT_MSG.format("ends in 000"), code="id-number-numeric")
    if s[17] != id_check_digit(s[:17]):
        raise InvalidInput(f"身份证号 {mask_id_number(s)}: check digit is wrong")
    try:
        born = dt.date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    except ValueError:
        raise InvalidInput(f"身份证号 {mask_id_number(s)}: birth date is not a date") from None
    if not dt.date(1900, 1, 1) <= born <= (today or dt.date.today()):
        raise InvalidInput(f"身份证号 {mask_id_number(s)}: implausible birth date {born}")
    return s


def mask_id_number(id_number: str) -> str:
    """Show region and last four only, as printed on government lists."""
    return id_number[:6] + "*" * (len(id_number) - 10) + id_number[-4:]


def protect_id_number(id_number: str, key: bytes) -> tuple[str, str]:
    """(HMAC-SHA256 hex, masked form): the hash finds duplicates without storing the number."""
    if len(key) < 16:
        raise InvalidInput("the identity-number key must have at least 16 bytes")
    s = check_id_number(id_number)
    return hmac.new(key, s.encode(), hashlib.sha256).hexdigest(), mask_id_number(s)


def _aesgcm(key: bytes) -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:  # pragma: no cover - depends on the environment
        raise ServiceUnavailable(
            "encrypting identity numbers needs the 'cryptography' package",
            code="crypto-unavailable",
        ) from None
    if len(key) not in (16, 24, 32):
        raise InvalidInput("AES-GCM keys have 16, 24 or 32 bytes")
    return AESGCM(key)


_AAD = b"gridmap/id_number/v1"


def encrypt_id_number(id_number: str, key: bytes) -> str:
    """AES-GCM token ``v1.<base64url(nonce|ciphertext)>``, for authorised roles to read back."""
    nonce = os.urandom(12)
    blob = nonce + _aesgcm(key).encrypt(nonce, check_id_number(id_number).encode(), _AAD)
    return "v1." + base64.urlsafe_b64encode(blob).decode()


def decrypt_id_number(token: str, key: bytes) -> str:
    """Inverse of :func:`encrypt_id_number`; a wrong key or altered token raises InvalidInput."""
    aes = _aesgcm(key)
    try:
        blob = base64.urlsafe_b64decode(token.removeprefix("v1.").encode())
        return str(aes.decrypt(blob[:12], blob[12:], _AAD).decode())
    except Exception as exc:  # binascii.Error, cryptography's InvalidTag
        raise InvalidInput("identity-number token cannot be decrypted") from exc


def parse_date(value: Any) -> dt.date | None:
    """ISO date from 2023-01-05, 2023/1/5, 2023.1.5, 2023年1月5日, 20230105 or an Excel serial."""
    v = _norm(value)
    if v is None:
        return None
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    s = str(int(v)) if isinstance(v, int | float) and float(v).is_integer() else str(v)
    m = re.fullmatch(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?(?:[ T][\d:.]*)?", s)
    m = m or re.fullmatch(r"(\d{4})(\d{2})(\d{2})", s)
    try:
        if m:
            return dt.date(int(m[1]), int(m[2]), int(m[3]))
        if re.fullmatch(r"\d{5}", s):  # Excel serial day (1900 system): 1927-05-18 onwards
            return _EXCEL_EPOCH + dt.timedelta(days=int(s))
    except ValueError:
        pass
    raise InvalidInput(f"{s!r} is not a date (use 2023-01-05, 2023/1/5 or 2023年1月5日)")
