"""compose.yaml wires the same stack as `emoomni up`: one container per service on a JetStream NATS bus."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

from emoomni.core.registry import service_names

COMPOSE = Path(__file__).resolve().parent.parent / "compose.yaml"


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_every_service_runs_in_its_own_container_on_the_nats_bus():
    services = _compose()["services"]
    for name in service_names():
        svc = services[name]
        assert svc["command"] == ["serve", name]
        env = svc["environment"]
        assert env["NATS_URL"] == "nats://nats:4222"
        # Bound on all interfaces, or nothing outside the container can reach the port.
        assert env[f"EMOOMNI_{name.upper()}_ADDR"].startswith("0.0.0.0:")
        port = env[f"EMOOMNI_{name.upper()}_ADDR"].rsplit(":", 1)[1]
        assert svc["healthcheck"]["test"][-1] == port, f"{name} health-checks another port"
        assert svc["depends_on"]["nats"]["condition"] == "service_started"
        # Only the gateway is reachable from the host; stages must stay free to scale.
        assert ("ports" in svc) == (name == "gateway")
    # Published on the host's loopback only: the services run without TLS inside the private network.
    assert services["gateway"]["ports"] == ["127.0.0.1:50051:50051"]
    assert all(services[name]["environment"]["EMOOMNI_ALLOW_INSECURE_LISTEN"] for name in service_names())


def test_nats_runs_with_jetstream():
    nats = _compose()["services"]["nats"]
    assert nats["image"].startswith("nats:")
    assert "-js" in nats["command"] or "--jetstream" in nats["command"]
    store = nats["command"][nats["command"].index("-sd") + 1]
    assert any(v.endswith(f":{store}") and v.split(":")[0] in _compose()["volumes"] for v in nats["volumes"]), \
        "JetStream's files (the work queue) live on a named volume"


def test_matches_the_compose_specification():
    # check-jsonschema vendors the official compose-spec schema; without it the structural tests above stand.
    if importlib.util.find_spec("check_jsonschema") is None:
        return
    import jsonschema
    from check_jsonschema.builtin_schemas import get_builtin_schema

    jsonschema.validate(_compose(), get_builtin_schema("vendor.compose-spec"))


def test_the_edge_is_closed():
    """Issue 25, finding 6: every published port is on the host's loopback, Triton cannot load models on request,
    and the bus needs credentials that every service is given."""
    compose = _compose()
    for name, svc in compose["services"].items():
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)
    triton = " ".join(compose["services"]["triton"]["command"])
    assert "--model-control-mode=none" in triton and "--load-model" not in triton
    nats = compose["services"]["nats"]["command"]
    assert "--user" in nats and "--pass" in nats and ":?" in nats[nats.index("--pass") + 1]
    for name in service_names():
        env = compose["services"][name]["environment"]
        assert env["EMOOMNI_NATS_PASSWORD"] == nats[nats.index("--pass") + 1], name
