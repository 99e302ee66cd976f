"""Ed25519 keys: generation, signing under a domain prefix, verification, key files.

A key file is an unencrypted PKCS#8 PEM written with mode 0600 and never
overwritten. Secret material is never printed, logged or put in a repr.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError as _NaclBadSignature

from chain.errors import KeyFileError

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64


def domain(type_name: str) -> bytes:
    """The domain-separation prefix every signature over a `type_name` payload carries."""
    return f"ratchet/v1/{type_name}\x00".encode()


class SigningKey:
    """An Ed25519 private key. `public` is the 32 raw bytes others verify with."""

    __slots__ = ("_key", "public")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public: bytes = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """Deterministic key from 32 bytes: for test vectors and benchmarks only."""
        if len(seed) != 32:
            raise ValueError("an Ed25519 seed is 32 bytes")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    def sign(self, type_name: str, payload: bytes) -> bytes:
        return self._key.sign(domain(type_name) + payload)

    def __repr__(self) -> str:
        return f"SigningKey(public={self.public.hex()[:16]}…)"

    def save(self, path: Path) -> None:
        """Write the key with mode 0600; refuse to replace an existing file."""
        pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError as e:
            raise KeyFileError(f"{path} already exists; refusing to overwrite a key") from e
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        try:
            pem = path.read_bytes()
        except FileNotFoundError as e:
            raise KeyFileError(f"no key file at {path} (create one with `ratchet keys new`)") from e
        except OSError as e:
            raise KeyFileError(f"cannot read key file {path}: {e.strerror}") from e
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as e:
            raise KeyFileError(f"{path} is not an unencrypted PEM private key") from e
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFileError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
        return cls(key)


def verify(public: bytes, signature: bytes, type_name: str, payload: bytes) -> bool:
    """True when `signature` is `public`'s signature over `payload` in domain `type_name`.

    Verification is libsodium's (PyNaCl), on every node: signature validity is
    consensus-critical, so all nodes must use one implementation with one set of
    edge-case rules (libsodium rejects non-canonical S and small-order keys), and
    it is about twice as fast as OpenSSL's Ed25519 here. It releases the GIL, so
    bulk checks parallelise over threads. Signing stays with `cryptography`
    (Ed25519 signatures are deterministic; both libraries produce the same bytes).
    """
    if len(public) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    try:
        crypto_sign_open(signature + domain(type_name) + payload, public)
    except (_NaclBadSignature, ValueError, TypeError):
        return False
    return True


def verify_batch(claims: list[tuple[bytes, bytes, str, bytes]]) -> list[int]:
    """Indexes of the (public, signature, domain type, payload) claims that do not verify.

    A plain function of picklable data, so bulk validation can run it in worker processes.
    """
    return [i for i, (pub, sig, type_name, payload) in enumerate(claims) if not verify(pub, sig, type_name, payload)]
