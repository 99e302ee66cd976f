"""The real-text source: a pinned English text (checked by SHA-256), or a local file the user names.

Files live in the data directory ($RATCHET_DATA, else ~/.cache/ratchet/data)
under their SHA-256, so a verifier finds an arena's text by the digest the
arena names, and a corrupt or substituted file is refused before training.
Byte level: the last config.val_bytes bytes are the validation split; the
`splice_bytes` before them (setting, default 65536) are the splice pool the
lookahead probes draw replacement futures from (model/sources/futures.py),
neither served for training nor scored; the rest is served for training.
There is no floor (nobody knows the true entropy of English).
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from model.errors import ConfigError, DataCorruptError, DataError, DataUnavailableError
from model.harness.config import HarnessConfig

# Tiny Shakespeare (char-rnn); digest and size as listed in the Hugging Face datasets checksums.
PINNED_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
PINNED_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
PINNED_BYTES = 1_115_394
DOWNLOAD_TIMEOUT_S = 30.0
MIN_TRAIN_BYTES = 4096
SPLICE_BYTES = 65536
SPLICE_RANGE = (4096, 1 << 24)


def data_dir() -> Path:
    env = os.environ.get("RATCHET_DATA")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "ratchet" / "data"


def data_path_for(sha_hex: str) -> Path:
    return data_dir() / f"text-{sha_hex}.txt"


def instructions(sha_hex: str) -> str:
    path = data_path_for(sha_hex)
    if sha_hex == PINNED_SHA256:
        return (f"download {PINNED_URL} to {path} (e.g. `curl -L -o {path} {PINNED_URL}`), "
                "or create the arena from a local file with `ratchet arena init text --text FILE`")
    return (f"this arena was created from a local file; copy that file (SHA-256 {sha_hex}) to {path} "
            "or set RATCHET_DATA to a directory that holds it")


def _store(data: bytes, sha_hex: str) -> Path:
    path = data_path_for(sha_hex)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def install_text(text_path: Path | None) -> tuple[bytes, dict[str, str]]:
    """Put the arena's text into the data directory; returns its SHA-256 and extra settings.

    With `text_path`, that file; else the pinned text, downloaded when absent
    (DataUnavailableError with instructions when offline).
    """
    if text_path is not None:
        data = Path(text_path).read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        _store(data, sha)
        return bytes.fromhex(sha), {"data_file": Path(text_path).name[:200]}
    path = data_path_for(PINNED_SHA256)
    if path.exists():
        _verify(path, PINNED_SHA256)
        return bytes.fromhex(PINNED_SHA256), {}
    try:
        with urllib.request.urlopen(PINNED_URL, timeout=DOWNLOAD_TIMEOUT_S) as r:  # noqa: S310 - pinned https URL
            data = r.read(PINNED_BYTES + 1)
    except (urllib.error.URLError, OSError) as e:
        raise DataUnavailableError("tinyshakespeare", str(path),
                                   f"download failed ({e}); " + instructions(PINNED_SHA256)) from e
    found = hashlib.sha256(data).hexdigest()
    if found != PINNED_SHA256:
        raise DataCorruptError("tinyshakespeare", PINNED_URL, PINNED_SHA256, found)
    _store(data, found)
    return bytes.fromhex(found), {}


def _verify(path: Path, sha_hex: str) -> bytes:
    data = path.read_bytes()
    found = hashlib.sha256(data).hexdigest()
    if found != sha_hex:
        raise DataCorruptError(path.name, str(path), sha_hex, found)
    return data


def splice_bytes(config: HarnessConfig) -> int:
    """The size of the splice pool (setting `splice_bytes`); ConfigError when out of range."""
    raw = config.setting("splice_bytes", str(SPLICE_BYTES))
    try:
        n = int(raw)
    except ValueError as e:
        raise ConfigError("splice_bytes", raw, "not an integer") from e
    lo, hi = SPLICE_RANGE
    if not lo <= n <= hi:
        raise ConfigError("splice_bytes", raw, f"must be in [{lo}, {hi}]")
    return n


def load_split(config: HarnessConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, splice pool, val) bytes of the arena's text, after checking its digest."""
    path = Path(config.data_path)
    if not path.exists():
        raise DataUnavailableError("text", str(path), instructions(config.data_sha256))
    data = _verify(path, config.data_sha256)
    n, pool = config.val_bytes, splice_bytes(config)
    if len(data) < n + pool + MIN_TRAIN_BYTES:
        raise DataError(f"{path} has {len(data)} bytes; the arena needs {n} for validation, "
                        f"{pool} for the splice pool (splice_bytes) and {MIN_TRAIN_BYTES} at least for training")
    arr = np.frombuffer(data, dtype=np.uint8)
    return arr[:-(n + pool)], arr[-(n + pool):-n], arr[-n:]
