"""Read what a `gr.BrowserState` wrote into the page's ``localStorage``.

Gradio encrypts the value with CryptoJS: ``AES.encrypt(json, SHA256(secret).hex)`` in its
passphrase mode (OpenSSL's ``Salted__`` format, key and IV from ``EVP_BytesToKey`` with MD5),
stored as ``"<unused iv>:<base64 ciphertext>"``. Tests decrypt it to wait until the newest
value has been stored, the condition a reload depends on."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from seglens.ui.persist import browser_state


def _evp_bytes_to_key(passphrase: bytes, salt: bytes, size: int = 48) -> bytes:
    out, block = b"", b""
    while len(out) < size:
        block = hashlib.md5(block + passphrase + salt).digest()
        out += block
    return out[:size]


def decrypt(stored: str, secret: str) -> Any:
    """The JSON value of one stored entry."""
    _iv, _, text = stored.partition(":")
    raw = base64.b64decode(text)
    if raw[:8] != b"Salted__":
        raise ValueError("not a CryptoJS passphrase ciphertext")
    material = _evp_bytes_to_key(hashlib.sha256(secret.encode()).hexdigest().encode(), raw[8:16])
    decryptor = Cipher(algorithms.AES(material[:32]), modes.CBC(material[32:])).decryptor()
    padded = decryptor.update(raw[16:]) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return json.loads(unpadder.update(padded) + unpadder.finalize())


def stored_session(page: Any, api_url: str) -> dict[str, Any]:
    """The session snapshot the UI for `api_url` keeps in this page's browser ({} if none)."""
    state = browser_state(api_url)
    stored = page.evaluate("(key) => localStorage.getItem(key)", state.storage_key)
    return decrypt(stored, state.secret) if stored else {}
