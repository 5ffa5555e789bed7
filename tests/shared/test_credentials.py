"""Hashing and verifying basic-auth passwords."""

from __future__ import annotations

import time

from shared.credentials import hash_password, is_password_hash, verify_password


def test_a_password_verifies_against_its_hash() -> None:
    assert verify_password("s3cret", hash_password("s3cret"))


def test_a_wrong_password_does_not_verify() -> None:
    assert not verify_password("S3cret", hash_password("s3cret"))


def test_hashing_twice_gives_different_salts() -> None:
    assert hash_password("pw") != hash_password("pw")


def test_the_hash_does_not_contain_the_password() -> None:
    assert "hunter2" not in hash_password("hunter2")


def test_a_hash_names_its_scheme_and_iterations() -> None:
    scheme, iterations, _salt, _digest = hash_password("pw").split("$")
    assert scheme == "pbkdf2-sha256"
    assert int(iterations) > 0


def test_is_password_hash_recognises_a_hash() -> None:
    assert is_password_hash(hash_password("pw"))


def test_is_password_hash_refuses_clear_text_and_garbage() -> None:
    for value in [
        "pw",
        "",
        "pbkdf2-sha256$x$y$z",
        "pbkdf2-sha256$10$!!$!!",
        "md5$1$a$b",
    ]:
        assert not is_password_hash(value)


def test_a_malformed_stored_value_never_verifies() -> None:
    assert not verify_password("pw", "pbkdf2-sha256$1000$c2FsdA$c2hvcnQ")


def test_unicode_passwords_round_trip() -> None:
    assert verify_password("pässwörd✓", hash_password("pässwörd✓"))


def test_one_verification_costs_a_few_milliseconds_at_most() -> None:
    stored = hash_password("pw")
    started = time.perf_counter()
    for _ in range(10):
        verify_password("pw", stored)
    per_call_ms = (time.perf_counter() - started) * 100
    # Generous ceiling: the target is 2-5 ms on a current machine.
    assert per_call_ms < 50
