"""Password hashes: the production profile by default, and a login moves an account's hash
to the cost the server runs at now (the tests run at a cheap one, tests.factories)."""

from __future__ import annotations

from argon2 import extract_parameters
from sqlalchemy import select

from app.models import User
from app.services import passwords
from app.settings import Settings
from tests.factories import TEST_PASSWORD_COST
from tests.helpers import PASSWORD, new_email


def test_the_default_cost_is_rfc_9106s_low_memory_profile():
    hashed = passwords.for_settings(Settings.from_env({})).hash(PASSWORD)
    parameters = extract_parameters(hashed)
    assert (parameters.memory_cost, parameters.time_cost, parameters.parallelism) == (65536, 3, 4)
    assert hashed.startswith("$argon2id$")


def test_a_hash_checks_only_its_own_password_and_no_hash_matches_nothing():
    hashes = passwords.at_cost(256, 1)
    hashed = hashes.hash(PASSWORD)
    assert hashes.matches(hashed, PASSWORD)
    assert not hashes.matches(hashed, PASSWORD + "!")
    assert not hashes.matches(None, PASSWORD)  # no account: the dummy hash was checked
    assert not hashes.matches("not a hash", PASSWORD)


def test_a_login_rehashes_a_password_made_at_another_cost(local_client, session):
    email = new_email()
    made_at_production_cost = passwords.at_cost(65536, 3).hash(PASSWORD)
    session.add(User(email=email, password_hash=made_at_production_cost))
    session.commit()
    response = local_client.post("/api/v1/users/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    session.expire_all()
    now = session.scalar(select(User.password_hash).where(User.email == email))
    parameters = extract_parameters(now)
    assert (parameters.memory_cost, parameters.time_cost) == tuple(TEST_PASSWORD_COST.values())
    again = local_client.post("/api/v1/users/login", json={"email": email, "password": PASSWORD})
    assert again.status_code == 200, again.text
