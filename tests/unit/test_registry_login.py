"""TokenLogin: Docker's auth_config with an access token, renewed before it expires."""

from __future__ import annotations

from burla.backends.docker.registry_login import TOKEN_USER, TokenLogin


def test_a_token_is_kept_until_a_minute_before_it_expires() -> None:
    now = [1000.0]
    fetched: list[float] = []

    def fetch() -> tuple[str, float]:
        fetched.append(now[0])
        return f"token-{len(fetched)}", 3600.0

    login = TokenLogin(fetch, clock=lambda: now[0])
    assert login() == {"username": TOKEN_USER, "password": "token-1"}
    now[0] += 3539.0
    assert login()["password"] == "token-1"
    now[0] += 1.0  # 60 s before the first token expires
    assert login()["password"] == "token-2"
    assert fetched == [1000.0, 4540.0]


def test_a_token_that_lives_under_a_minute_is_asked_for_at_each_call() -> None:
    tokens = iter(["a", "b", "c"])
    login = TokenLogin(lambda: (next(tokens), 30.0), clock=lambda: 0.0)
    assert [login()["password"] for _ in range(3)] == ["a", "b", "c"]
