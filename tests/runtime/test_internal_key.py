"""The internal key: made per deploy, read from the file the environment names, checked in constant time."""

from __future__ import annotations

import json
import stat

import pytest

from runtime import internal_key


def test_no_file_configured_means_no_check():
    assert internal_key.load_key({}) is None
    assert internal_key.carries_key("{}", None) and internal_key.bls_parameters(None) == {}


def test_a_written_key_is_private_and_read_back(tmp_path):
    path = internal_key.write_key(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = internal_key.load_key({internal_key.ENV_FILE: str(path)})
    assert key and len(key) >= 32
    assert internal_key.write_key(tmp_path).read_text().strip() != key  # a new one each deploy


def test_a_configured_file_that_is_missing_or_empty_fails_loudly(tmp_path):
    with pytest.raises(FileNotFoundError):
        internal_key.load_key({internal_key.ENV_FILE: str(tmp_path / "nope")})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValueError):
        internal_key.load_key({internal_key.ENV_FILE: str(tmp_path / "empty")})


@pytest.mark.parametrize("parameters, allowed", [
    (json.dumps(internal_key.bls_parameters("k3y")), True),
    (json.dumps({internal_key.PARAMETER: "wrong"}), False),
    (json.dumps({internal_key.PARAMETER: 7}), False),
    ("{}", False),
    ("", False),
    ("not json", False),
    ("[1]", False),
])
def test_only_the_key_lets_a_request_in(parameters, allowed):
    assert internal_key.carries_key(parameters, "k3y") is allowed
