"""Content hashes: the identity of every stored result (mapper runs, QAT runs, search runs)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def content_hash(*parts: Any) -> str:
    """SHA-256 over JSON-serialized parts: the key of every stored result."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True, default=str).encode())
        digest.update(b"\0")
    return digest.hexdigest()
