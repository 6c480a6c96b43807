"""AWS Signature Version 4 request signing, with the standard library only, sans-IO.

The canonical request, string to sign and signing key of AWS's "Create a signed AWS API
request" (IAM user guide), checked against AWS's published SigV4 test suite. The path is
encoded once more as given, as every service but S3 expects: a path that already
carries ``%3A`` (Bedrock model ids such as ``...-v1:0``) is signed as ``%253A``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
_TERMINATOR = "aws4_request"


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


def signed_headers(method: str, url: str, headers: Iterable[tuple[str, str]], body: bytes,
                   credentials: AwsCredentials, region: str, service: str,
                   when: datetime) -> list[tuple[str, str]]:
    """The headers that sign this request: ``x-amz-date``, ``x-amz-security-token``
    (with a session token) and ``authorization``. Every header in ``headers`` and the
    host are signed, so the request must go out with exactly these."""
    stamp = when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    added = [("x-amz-date", stamp)]
    if credentials.session_token:
        added.append(("x-amz-security-token", credentials.session_token))
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]  # what the client sends as Host
    names, canonical = canonical_headers([("host", host), *headers, *added])
    request = "\n".join((method.upper(), canonical_uri(parts.path),
                         canonical_query(parts.query), canonical, names,
                         hashlib.sha256(body).hexdigest()))
    scope = f"{stamp[:8]}/{region}/{service}/{_TERMINATOR}"
    to_sign = "\n".join((ALGORITHM, stamp, scope,
                         hashlib.sha256(request.encode()).hexdigest()))
    key = signing_key(credentials.secret_access_key, stamp[:8], region, service)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    authorization = f"{ALGORITHM} Credential={credentials.access_key_id}/{scope}, " \
        f"SignedHeaders={names}, Signature={signature}"
    return [*added, ("authorization", authorization)]


def canonical_uri(path: str) -> str:
    return quote(path or "/", safe="/~")


def canonical_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                    for k, v in sorted(pairs))


def canonical_headers(headers: Iterable[tuple[str, str]]) -> tuple[str, str]:
    """(signed header names, canonical header lines): names lower-cased and sorted,
    values trimmed with inner runs of spaces made one, repeated names joined by ","."""
    values: dict[str, list[str]] = {}
    for name, value in headers:
        values.setdefault(name.lower(), []).append(" ".join(value.split()))
    names = sorted(values)
    lines = "".join(f"{name}:{','.join(values[name])}\n" for name in names)
    return ";".join(names), lines


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, _TERMINATOR):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key
