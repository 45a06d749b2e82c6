"""Ray's token as bigEVY keeps it: its own file, the operator's choice first, nothing in ~/.ray.

Joining a real Ray with the right and the wrong token is in tests/integration/test_cli.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bigevy.ops import ray_auth
from tests.support.cluster import free_port


@pytest.fixture
def new_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home with no ~/.ray and no token named in the environment; returns the data dir."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ray_auth.OPERATOR_TOKEN_VARS:
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "data"


def test_the_first_start_makes_a_private_token_and_later_ones_keep_it(new_user: Path) -> None:
    token = ray_auth.own_token(new_user)
    path = ray_auth.token_file(new_user)
    assert token.env == {"RAY_AUTH_TOKEN_PATH": str(path)}
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(bytes.fromhex(token.value)) == 32  # 256 random bits, as Ray's generator makes
    assert ray_auth.own_token(new_user) == token
    assert not (new_user.parent / "home" / ".ray").exists()


def test_an_emptied_token_file_gets_a_new_token(new_user: Path) -> None:
    path = ray_auth.token_file(new_user)
    path.parent.mkdir(parents=True)
    path.write_text("\n")  # Ray aborts on an empty RAY_AUTH_TOKEN_PATH
    assert len(ray_auth.own_token(new_user).value) == 64
    assert path.stat().st_mode & 0o777 == 0o600


def test_the_operators_token_comes_first_and_alone(
    new_user: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    theirs = tmp_path / "their-token"
    theirs.write_text("abc123\n")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(theirs))
    assert [t.value for t in ray_auth.candidates(new_user)] == ["abc123"]
    assert ray_auth.own_token(new_user).env == {"RAY_AUTH_TOKEN_PATH": str(theirs)}
    monkeypatch.setenv("RAY_AUTH_TOKEN", "xyz")  # Ray's order: the variable, then the file
    assert [(t.value, t.env) for t in ray_auth.candidates(new_user)] == [("xyz", {})]
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    theirs.unlink()
    with pytest.raises(ray_auth.TokenRefused, match="holds no token"):
        ray_auth.candidates(new_user)


def test_rays_default_file_is_tried_after_bigevys_own(new_user: Path) -> None:
    default = new_user.parent / "home" / ".ray" / "auth_token"
    default.parent.mkdir(parents=True)
    default.write_text("from-ray-start")
    tried = ray_auth.candidates(new_user)
    assert [t.source for t in tried] == [str(ray_auth.token_file(new_user)), str(default)]


def test_a_ray_that_is_not_there_is_left_for_ray_init_to_report(new_user: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    assert ray_auth.accepts(address, "any", timeout=2) is None
    assert ray_auth.token_for(address, new_user) == ray_auth.own_token(new_user)
    assert ray_auth.accepts("ray://head:10001", "any") is None
