"""docker-compose.yml, its Dockerfile and the configs it mounts hang together.

No Docker engine runs in the test environment, so the compose file is read as YAML and
cross-checked: images, published ports, bind mounts, and the worker's config, loaded the way
the worker loads it, must point at services that exist.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from drifthouse.config import load_config

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
WORKER_CONFIG = ROOT / "deploy" / "docker" / "drifthouse.yaml"
ENV_EXAMPLE = ROOT / "deploy" / "docker" / ".env.example"
DATASOURCE = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "clickhouse.yaml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def _env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def _env_files(service: dict[str, Any]) -> list[str]:
    files = service.get("env_file", [])
    files = [files] if isinstance(files, str) else files
    return [f if isinstance(f, str) else f["path"] for f in files]


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return command.split() if isinstance(command, str) else list(command)


def test_expected_services(services: dict[str, dict[str, Any]]) -> None:
    assert {"kafka", "clickhouse", "grafana", "worker", "producer"} <= set(services)


def test_every_service_has_an_image_or_a_build(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert "image" in service or "build" in service, name


def test_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    assert re.fullmatch(r"apache/kafka:4\.0\.\d+", services["kafka"]["image"])
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")
    for name, service in services.items():
        image = service.get("image", "")
        assert not image.endswith(":latest"), name
        assert ":" in image or "build" in service, name


def test_dockerfile_builds_the_cli(services: dict[str, dict[str, Any]]) -> None:
    dockerfile = ROOT / "Dockerfile"
    text = dockerfile.read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert 'ENTRYPOINT ["drifthouse"]' in text
    for name in ("worker", "producer"):
        build = services[name]["build"]
        context = build if isinstance(build, str) else build.get("context", ".")
        assert (ROOT / context / "Dockerfile").is_file(), name
    # Everything the Dockerfile copies must be in the build context (not in .dockerignore).
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for copy in re.findall(r"^COPY\s+(.+?)\s+\S+$", text, re.M):
        for source in copy.split():
            assert (ROOT / source).exists(), source
            assert source not in ignored, source


def test_worker_and_producer_commands(services: dict[str, dict[str, Any]]) -> None:
    worker = _command(services["worker"])
    assert worker[:3] == ["run", "-c", "/etc/drifthouse/drifthouse.yaml"]
    producer = _command(services["producer"])
    assert producer[0] == "produce"
    assert producer[producer.index("--rate") + 1] == "200"
    assert producer[producer.index("--scenario") + 1] == "demo"
    for name in ("worker", "producer"):
        mounts = [v for v in services[name]["volumes"] if isinstance(v, str)]
        assert "./deploy/docker/drifthouse.yaml:/etc/drifthouse/drifthouse.yaml:ro" in mounts, name


def test_worker_config_points_at_compose_services(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    example = _env_example()
    for key, value in example.items():
        monkeypatch.setenv(key, value)
    config = load_config(WORKER_CONFIG)

    for address in config.kafka.bootstrap.split(","):
        host = address.rpartition(":")[0]
        assert host in services, f"kafka bootstrap {address} is not a compose service"
        advertised = services[host]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
        assert f"//{address}" in advertised, advertised

    dsn = config.store_dsn()
    parts = urlsplit(dsn)
    assert parts.scheme == "http"
    assert parts.hostname in services, f"store DSN host {parts.hostname} is not a compose service"
    assert parts.port == 8123
    assert parts.path == "/drifthouse"
    assert parts.username == example["CLICKHOUSE_USER"]
    assert parts.password == example["CLICKHOUSE_PASSWORD"]

    # The env file the worker reads must define every variable its config uses.
    used = set(re.findall(r"\$\{([A-Z0-9_]+)\}", _uncommented(WORKER_CONFIG)))
    assert used <= set(example), used - set(example)
    assert "deploy/docker/.env" in _env_files(services["worker"])


def test_worker_config_passes_drifthouse_check(monkeypatch: pytest.MonkeyPatch) -> None:
    from drifthouse.cli import main

    for key, value in _env_example().items():
        monkeypatch.setenv(key, value)
    assert main(["check", "-c", str(WORKER_CONFIG)]) == 0


def _uncommented(path: Path) -> str:
    return "\n".join(
        line.split("#", 1)[0] for line in path.read_text(encoding="utf-8").splitlines()
    )


def test_clickhouse_credentials_come_from_the_env_file(services: dict[str, dict[str, Any]]) -> None:
    example = _env_example()
    assert example["CLICKHOUSE_USER"] not in ("", "default")
    assert example["CLICKHOUSE_PASSWORD"] not in ("", "default", "password", "clickhouse")
    for name in ("clickhouse", "grafana", "worker"):
        assert "deploy/docker/.env" in _env_files(services[name]), name
    for service in services.values():
        environment = service.get("environment", {})
        assert "CLICKHOUSE_PASSWORD" not in environment, "the password belongs in the env file"


def _published(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host_ip, host_port) of every published port."""
    out = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            out.append((port.get("host_ip", ""), str(port.get("published", ""))))
            continue
        parts = str(port).split(":")
        if len(parts) == 3:
            out.append((parts[0], parts[1]))
        else:
            out.append(("", parts[0] if len(parts) == 2 else ""))
    return out


def test_published_ports_are_local_and_unique(services: dict[str, dict[str, Any]]) -> None:
    seen: dict[str, str] = {}
    for name, service in services.items():
        for host_ip, host_port in _published(service):
            assert host_ip == "127.0.0.1", (
                f"{name} publishes {host_port} on {host_ip or 'all interfaces'}"
            )
            assert host_port, f"{name} publishes a port without a host port"
            assert host_port not in seen, f"{name} and {seen.get(host_port)} share {host_port}"
            seen[host_port] = name
    assert {"8123", "3000"} <= set(seen)


def test_bind_mounts_exist(services: dict[str, dict[str, Any]], compose: dict[str, Any]) -> None:
    named = set(compose.get("volumes") or {})
    for name, service in services.items():
        for volume in service.get("volumes", []):
            if isinstance(volume, dict):
                kind, source = volume.get("type"), volume.get("source", "")
                if kind != "bind":
                    assert source in named, f"{name}: volume {source} is not declared"
                    continue
            else:
                source = volume.split(":", 1)[0]
                if not source.startswith((".", "/")):
                    assert source in named, f"{name}: volume {source} is not declared"
                    continue
            assert (ROOT / source).exists(), (
                f"{name} mounts {source}, which is not in the repository"
            )


def test_env_example_is_not_the_real_env_file() -> None:
    # deploy/docker/.env holds the real secrets; only the example is committed.
    assert ENV_EXAMPLE.is_file()
    for name in ("CLICKHOUSE_USER", "CLICKHOUSE_PASSWORD", "GF_SECURITY_ADMIN_PASSWORD"):
        assert name in _env_example()


def test_grafana_datasource_uses_default_database(services: dict[str, dict[str, Any]]) -> None:
    config = yaml.safe_load(DATASOURCE.read_text(encoding="utf-8"))
    (source,) = config["datasources"]
    assert source["type"] == "grafana-clickhouse-datasource"
    assert source["jsonData"]["defaultDatabase"] == "drifthouse"
    assert "database" not in source
    assert "database" not in source["jsonData"]
    assert source["jsonData"]["host"] in services
    assert source["jsonData"]["port"] == 8123
    assert source["jsonData"]["protocol"] == "http"
    assert source["secureJsonData"]["password"] == "${GRAFANA_CLICKHOUSE_PASSWORD}"
    assert (
        "grafana-clickhouse-datasource" in services["grafana"]["environment"]["GF_INSTALL_PLUGINS"]
    )


# ---- Grafana reads through a read-only ClickHouse user -----------------------------------------

CLICKHOUSE_USERS = ROOT / "deploy" / "clickhouse" / "users.d" / "grafana.xml"
CLICKHOUSE_CONFIG = ROOT / "deploy" / "clickhouse" / "config.d" / "constraints.xml"


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> repository path of every bind mount of a service."""
    out = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str) and volume.startswith("./"):
            source, target = volume.split(":")[:2]
            out[target] = source
    return out


def test_grafana_reads_with_a_read_only_clickhouse_user(
    services: dict[str, dict[str, Any]],
) -> None:
    import xml.etree.ElementTree as ET

    example = _env_example()
    source = yaml.safe_load(DATASOURCE.read_text(encoding="utf-8"))["datasources"][0]
    user_name = source["jsonData"]["username"]
    assert user_name != example["CLICKHOUSE_USER"], "Grafana must not use the worker's account"
    password = re.fullmatch(r"\$\{([A-Z0-9_]+)\}", source["secureJsonData"]["password"])
    assert password is not None
    assert password[1] in example
    assert example[password[1]] not in ("", example["CLICKHOUSE_PASSWORD"])

    # the server gets the user, its profile and the constraint switch from the repository
    mounts = _mounts(services["clickhouse"])
    users_in = [
        t for t, s in mounts.items() if Path(s) == Path("./deploy/clickhouse/users.d/grafana.xml")
    ]
    assert [Path(t).parent for t in users_in] == [Path("/etc/clickhouse-server/users.d")]
    config_in = [
        t
        for t, s in mounts.items()
        if Path(s) == Path("./deploy/clickhouse/config.d/constraints.xml")
    ]
    assert [Path(t).parent for t in config_in] == [Path("/etc/clickhouse-server/config.d")]

    root = ET.parse(CLICKHOUSE_USERS).getroot()
    assert root.tag == "clickhouse"
    user = root.find(f"users/{user_name}")
    assert user is not None, f"no user {user_name} in {CLICKHOUSE_USERS.name}"
    secret = user.find("password")
    assert secret is not None
    assert secret.get("from_env") == password[1]  # the same variable Grafana's side reads
    assert not (secret.text or "").strip()
    grants = [q.text.strip() for q in user.findall("grants/query") if q.text]
    assert grants == [f"GRANT SELECT ON {example['CLICKHOUSE_DB']}.*"]
    profile = root.find(f"profiles/{user.findtext('profile')}")
    assert profile is not None
    assert profile.findtext("readonly") == "1"  # reads only, and no settings changed...
    constraints = profile.find("constraints")
    assert constraints is not None
    changeable = [c.tag for c in constraints if c.find("changeable_in_readonly") is not None]
    assert changeable == ["max_execution_time"]  # ...but the timeout the plugin sets on each query
    assert constraints.find("max_execution_time/max") is not None
    config = ET.parse(CLICKHOUSE_CONFIG).getroot()
    assert config.findtext("settings_constraints_replace_previous") == "true"
