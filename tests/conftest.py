import pytest

from tests.sshd import start_sshd


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moto_endpoint():
    """moto's server on 127.0.0.1 for the session, with test credentials in the environment."""
    import os

    from tests.moto_server import moto_server, set_credentials
    saved = dict(os.environ)
    set_credentials()
    with moto_server() as url:
        yield url
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def aws(moto_endpoint):
    """A fresh moto (every resource forgotten) and a client maker for it."""
    import boto3

    from tests.moto_server import reset
    reset(moto_endpoint)
    return lambda service, region="eu-west-1": boto3.client(service, endpoint_url=moto_endpoint,
                                                            region_name=region)


@pytest.fixture(scope="session")
def redis_broker():
    """A real redis-server on 127.0.0.1 for the session (tests.redis_server)."""
    from tests.redis_server import redis_server
    with redis_server() as server:
        yield server


@pytest.fixture
def redis_url(redis_broker):
    """The session's redis-server, emptied: its URL."""
    redis_broker.flush()
    return redis_broker.url
