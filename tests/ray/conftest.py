"""One small local Ray cluster (2 CPUs, loopback, no dashboard) for the whole test session, and
gateways (embedded servers with ``executor="ray"``) on it. Skipped where Ray is not installed
(``pip install -e '.[ray]'``)."""

from __future__ import annotations

import pytest

ray = pytest.importorskip("ray")

from backend.jobs.registry import debug_kinds  # noqa: E402
from backend.server.embedded import EmbeddedServer  # noqa: E402


@pytest.fixture(scope="session")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, address="local",
             _node_ip_address="127.0.0.1", log_to_driver=False, configure_logging=False,
             namespace="anim4d-tests")
    yield ray
    ray.shutdown()


@pytest.fixture
def ray_server(ray_cluster, tmp_path):
    """``ray_server(**config)``: a gateway on the session's cluster offering the debug kinds."""
    servers = []

    def make(**config) -> EmbeddedServer:
        config = {"cancel_grace_s": 1.0, "heartbeat_s": 0.3, "workers": 4, **config}
        srv = EmbeddedServer(tmp_path / f"data{len(servers)}", kinds=debug_kinds(),
                             executor="ray", **config)
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.stop()
