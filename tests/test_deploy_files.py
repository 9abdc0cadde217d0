"""The production deployment files in deploy/ agree with the code and with the formats
they are written in. Docker and Kubernetes cannot run where these tests run, so this is
what is checked instead (deploy/README.md, "What was checked"):

- every YAML and JSON file parses; the compose file validates against the Compose
  Specification's JSON schema (as check-jsonschema ships it) and every Kubernetes
  manifest against the Kubernetes 1.33 schemas in strict mode (kubernetes-validate);
  each validator is shown to refuse a broken copy, so a pass means something;
- every `APEX_` variable the files set is a setting some settings class of core or of
  an installed plugin declares, and no secret setting is given a value in them;
- every image is pinned by an exact tag (never `latest`), the Apex image's tag is the
  version of apex-platform, and the Dockerfile's base is pinned and its last user is
  not root; the image installs every distribution of the repository;
- every command the files run parses as an `apex-platform` command, every task queue
  has workers, every probe or healthcheck path and every scraped path is a GET route of
  the API, on the port the API is told to listen on;
- Kubernetes pods run as non-root with a read-only root filesystem, without privilege
  escalation or capabilities, with requests and limits; workers get a grace period
  longer than their drain;
- every file the compose file mounts exists (the alert rules and dashboards included).
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import pkgutil
import re
import shlex
import subprocess
import tomllib
from collections.abc import Iterator
from importlib.metadata import entry_points
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import typer.core
import typer.main
import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

import apex_platform
from apex_platform.cli import app as cli_app
from apex_platform.temporal.worker import ALL_QUEUES, parse_queues

ROOT = Path(__file__).parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE_DIR = DEPLOY / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
K8S = DEPLOY / "kubernetes" / "base"
DOCKERFILE = DEPLOY / "Dockerfile"
KUBERNETES_VERSION = "1.33.0"
APEX_UID = 10001

APEX_NAME = re.compile(r"\bAPEX_[A-Z0-9_]*[A-Z0-9](?:_\*)?")
SECRET_WORDS = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|_AUTH$|DSN", re.IGNORECASE)
PLACEHOLDER = "CHANGE_ME"


# ── reading the files ────────────────────────────────────────────────────────────────


def deploy_files(*suffixes: str) -> list[Path]:
    """Files of deploy/ this part of the repository owns (compose, kubernetes), by suffix."""
    found = [p for d in (COMPOSE_DIR, DEPLOY / "kubernetes") for p in d.rglob("*") if p.suffix in suffixes]
    return sorted(p for p in found if "secrets" not in p.relative_to(DEPLOY).parts)


def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def services() -> dict[str, dict[str, Any]]:
    found = compose()["services"]
    assert isinstance(found, dict)
    return found


def apex_services() -> dict[str, dict[str, Any]]:
    """The compose services that run the Apex image."""
    image = compose()["x-apex"]["image"]
    return {name: svc for name, svc in services().items() if svc.get("image") == image}


def env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a dotenv file (comments and blank lines skipped)."""
    pairs: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: {line!r} is not KEY=VALUE"
        pairs[key.strip()] = value.strip()
    return pairs


def manifests() -> list[tuple[Path, dict[str, Any]]]:
    """Every Kubernetes object of the base (not the Kustomization itself)."""
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc and doc.get("kind") != "Kustomization":
                found.append((path, doc))
    return found


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in manifests() if doc["kind"] == kind]


def containers() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(pod spec, container) of every Deployment."""
    for deployment in of_kind("Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        for container in pod["containers"]:
            yield pod, container


def configmap() -> dict[str, str]:
    (found,) = [doc for doc in of_kind("ConfigMap") if doc["metadata"]["name"] == "apex-config"]
    data = found["data"]
    assert all(isinstance(v, str) for v in data.values()), "ConfigMap values must be strings (quote numbers)"
    return dict(data)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def distributions() -> dict[str, str]:
    """Every distribution of the repository: project name -> version."""
    names = {}
    for pyproject in [ROOT / "core" / "pyproject.toml", *ROOT.glob("plugins/*/pyproject.toml")]:
        project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
        names[project["name"]] = project["version"]
    for pyproject in ROOT.glob("connectors-*/pyproject.toml"):
        project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
        names[project["name"]] = project["version"]
    return names


# ── the settings the code declares ───────────────────────────────────────────────────


def _subclasses(cls: type) -> Iterator[type]:
    sub: type
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _import_settings_modules() -> list[str]:
    """Import core's modules and every installed plugin with its settings module, so that
    every settings class is defined; the import problems, for the failure message."""
    problems = []
    for info in pkgutil.walk_packages(apex_platform.__path__, "apex_platform."):
        if ".testing" in info.name:
            continue
        try:
            importlib.import_module(info.name)
        except Exception as exc:
            problems.append(f"{info.name}: {type(exc).__name__}: {exc}")
    for ep in entry_points(group="apex.plugins"):
        top = ep.value.split(":")[0].split(".")[0]
        for name in (ep.value.split(":")[0], f"{top}.settings"):
            try:
                importlib.import_module(name)
            except ModuleNotFoundError as exc:
                if exc.name != name:
                    problems.append(f"{name}: {exc}")
            except Exception as exc:
                problems.append(f"{name}: {type(exc).__name__}: {exc}")
    return problems


def _env_names(cls: type[BaseSettings]) -> dict[str, bool]:
    """The environment variables of a settings class -> whether it holds a secret."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    names = {}
    for field_name, field in cls.model_fields.items():
        alias = field.validation_alias or field.alias
        if isinstance(alias, str):
            keys = [alias]
        elif isinstance(alias, AliasChoices):
            keys = [c for c in alias.choices if isinstance(c, str)]
        else:
            keys = [prefix + field_name]
        secret = "SecretStr" in repr(field.annotation)
        for key in keys:
            names[key.upper()] = secret
    return names


@pytest.fixture(scope="module")
def settings() -> tuple[dict[str, bool], list[str]]:
    """Every APEX_ variable a settings class declares -> whether it holds a secret."""
    problems = _import_settings_modules()
    names: dict[str, bool] = {}
    for cls in _subclasses(BaseSettings):
        if cls.__module__.startswith("apex_"):
            names.update(_env_names(cls))
    # sanity: the collection reaches core, a sink and a connector
    assert {"APEX_TEMPORAL_ADDRESS", "APEX_POSTGRES_DSN", "APEX_FRONTAPP_SIGNING_SECRET"} <= set(names)
    return names, problems


def apex_variables_set() -> dict[str, set[str]]:
    """Every APEX_ variable the deployment files give a value -> where."""
    where: dict[str, set[str]] = {}

    def add(name: str, place: str) -> None:
        where.setdefault(name, set()).add(place)

    for path in (COMPOSE_DIR / "apex.env", COMPOSE_DIR / "apex.secrets.env.example"):
        for key in env_file(path):
            add(key, path.name)
    for name, svc in services().items():
        env = svc.get("environment") or {}
        keys = env if isinstance(env, dict) else [e.partition("=")[0] for e in env]
        for key in keys:
            if key.startswith("APEX_"):
                add(key, f"compose service {name}")
    for key in configmap():
        add(key, "ConfigMap apex-config")
    for _, container in containers():
        for item in container.get("env", []):
            add(item["name"], f"container {container['name']}")
    for word, rest in dockerfile_instructions():
        if word == "ENV":
            for key in re.findall(r"(APEX_[A-Z0-9_]+)=", rest):
                add(key, "Dockerfile")
    return where


# ── files parse and validate ─────────────────────────────────────────────────────────


def test_every_yaml_and_json_file_parses() -> None:
    yamls = deploy_files(".yaml", ".yml")
    assert COMPOSE_FILE in yamls
    assert len(yamls) >= 10
    for path in yamls:
        docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        assert docs, f"{path}: no YAML document"
        assert all(d is not None for d in docs), f"{path}: an empty YAML document"
    for path in deploy_files(".json"):
        json.loads(path.read_text(encoding="utf-8"))


def test_shell_scripts_parse() -> None:
    scripts = sorted(COMPOSE_DIR.rglob("*.sh"))
    assert len(scripts) >= 3
    for script in scripts:
        out = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True, check=False)
        assert out.returncode == 0, f"{script}: {out.stderr}"
        assert os.access(script, os.X_OK), f"{script} is not executable"


def compose_validator() -> jsonschema.protocols.Validator:
    schema = json.loads((files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def test_compose_file_validates_against_the_compose_specification() -> None:
    validator = compose_validator()
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose())]
    assert errors == []
    # the schema is strict enough to catch a misspelled key or a wrong type
    broken = copy.deepcopy(compose())
    broken["services"]["api"]["healthchek"] = broken["services"]["api"].pop("healthcheck")
    assert list(validator.iter_errors(broken))
    broken = copy.deepcopy(compose())
    broken["services"]["api"]["ports"] = {"8080": 8080}  # a mapping where a list belongs
    assert list(validator.iter_errors(broken))


def test_kubernetes_manifests_validate_against_the_kubernetes_schemas() -> None:
    found = manifests()
    assert {"Deployment", "Service", "PodDisruptionBudget", "ConfigMap", "HorizontalPodAutoscaler"} <= {
        doc["kind"] for _, doc in found
    }
    for path, doc in found:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path.name}: {doc['kind']} {doc['metadata']['name']}: {exc.message} at {list(exc.path)}")
    # strict mode refuses an unknown field and a wrong type
    deployment = copy.deepcopy(of_kind("Deployment")[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    deployment = copy.deepcopy(of_kind("Deployment")[0])
    deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "soon"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest_and_only_existing_ones() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    # only what these checks understand: anything else (patches, generators, components)
    # changes the objects, and would need a real `kustomize build` to be checked
    assert set(kustomization) <= {"apiVersion", "kind", "labels", "resources", "images"}
    assert kustomization["labels"][0]["includeSelectors"] is False, "selectors are the manifests' own"
    listed = set(kustomization["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present
    names = [(doc["kind"], doc["metadata"]["name"]) for _, doc in manifests()]
    assert len(names) == len(set(names)), "two objects of one kind share a name"


# ── settings ─────────────────────────────────────────────────────────────────────────


def test_every_apex_variable_the_files_set_is_a_setting(settings: tuple[dict[str, bool], list[str]]) -> None:
    known, problems = settings
    used = apex_variables_set()
    assert len(used) >= 20
    unknown = {name: sorted(where) for name, where in used.items() if name not in known}
    assert unknown == {}, f"no settings class declares these (import problems: {problems})"


def test_apex_variables_named_in_the_docs_of_the_files_are_settings(
    settings: tuple[dict[str, bool], list[str]],
) -> None:
    """Names in comments and in the README too: a renamed setting leaves no stale advice."""
    known, _ = settings
    texts = [*deploy_files(".yaml", ".yml", ".env", ".example", ".sh", ".md"), DOCKERFILE, DEPLOY / "README.md"]
    # the compose file's own interpolation variables (${APEX_IMAGE:-...}) are not settings
    interpolated = set(re.findall(r"\$\{(\w+)", COMPOSE_FILE.read_text(encoding="utf-8")))
    stale: dict[str, list[str]] = {}
    for path in texts:
        for name in set(APEX_NAME.findall(path.read_text(encoding="utf-8"))):
            if name.endswith("_*"):  # a family of settings: APEX_TEMPORAL_TLS_*
                if not any(k.startswith(name[:-1]) for k in known):
                    stale.setdefault(name, []).append(path.relative_to(ROOT).as_posix())
            elif name not in known and name not in interpolated:
                stale.setdefault(name, []).append(path.relative_to(ROOT).as_posix())
    assert stale == {}


def test_no_secret_is_given_a_value_in_the_files(settings: tuple[dict[str, bool], list[str]]) -> None:
    known, _ = settings
    secret_settings = {name for name, secret in known.items() if secret}
    assert "APEX_POSTGRES_DSN" in secret_settings
    assert "APEX_ADMIN_TOKEN" in secret_settings
    # plain settings files and manifests hold no secret setting, except an address without
    # credentials in a setting typed secret because it may hold some (APEX_GRAPH_URI)
    for place, values in [
        ("apex.env", env_file(COMPOSE_DIR / "apex.env")),
        ("ConfigMap apex-config", configmap()),
        *[(f"compose service {n}", dict(s.get("environment") or {})) for n, s in services().items()],
    ]:
        for key in set(values) & secret_settings:
            value = str(values[key])
            assert re.fullmatch(r"[a-z0-9+]+://[^@/\s]+(/\S*)?", value), f"{place} sets the secret {key}"
    # the example of the secrets file holds placeholders only
    for key, value in env_file(COMPOSE_DIR / "apex.secrets.env.example").items():
        assert key in secret_settings, f"{key} is not a secret: it belongs in apex.env"
        assert PLACEHOLDER in value, f"apex.secrets.env.example: {key} holds a value, not {PLACEHOLDER}"
    # the other images' secrets come from files (*_FILE, or a script reading /run/secrets)
    for name, svc in services().items():
        for key, value in (svc.get("environment") or {}).items():
            if SECRET_WORDS.search(key):
                assert key.endswith("_FILE"), f"compose service {name}: {key} must be read from a file"
                assert str(value).startswith("/run/secrets/"), f"{name}: {key}={value}"
    # no credentials written into any URL of the files, except the placeholders
    for path in [*deploy_files(".yaml", ".yml", ".env", ".example", ".sh"), DOCKERFILE]:
        for match in re.finditer(r"://[^/\s:@\"']+:([^@\s\"']+)@", path.read_text(encoding="utf-8")):
            assert PLACEHOLDER in match.group(1) or "$" in match.group(1), f"{path}: credentials in a URL"
    # and the real files are never committed
    ignored = (COMPOSE_DIR / ".gitignore").read_text(encoding="utf-8").split()
    assert "/apex.secrets.env" in ignored
    assert "/secrets/*" in ignored


def test_secret_files_are_mounted_where_the_variables_point() -> None:
    declared = compose()["secrets"]
    for name, svc in services().items():
        mounted = {s if isinstance(s, str) else s.get("target", s["source"]) for s in svc.get("secrets", [])}
        sources = {s if isinstance(s, str) else s["source"] for s in svc.get("secrets", [])}
        assert sources <= set(declared), f"{name} uses undeclared secrets {sources - set(declared)}"
        text = json.dumps(svc)
        for secret in re.findall(r"/run/secrets/([a-z0-9_]+)", text):
            assert secret in mounted, f"compose service {name} reads /run/secrets/{secret} without mounting it"
    apex_env = env_file(COMPOSE_DIR / "apex.env")
    target = apex_env["APEX_PAYLOAD_KEYS_FILE"].removeprefix("/run/secrets/")
    for name, svc in apex_services().items():
        assert target in {s if isinstance(s, str) else s.get("target", s["source"]) for s in svc["secrets"]}, name
    for entry in declared.values():
        assert entry["file"].startswith("./secrets/")


# ── images ───────────────────────────────────────────────────────────────────────────

PINNED = re.compile(r"^(?P<repo>[a-z0-9][a-z0-9._/-]*):(?P<tag>[A-Za-z0-9._-]+)(@sha256:[0-9a-f]{64})?$")


def assert_pinned(image: str, where: str) -> str:
    match = PINNED.match(image)
    assert match, f"{where}: image {image!r} has no exact tag"
    tag = match.group("tag")
    assert tag != "latest", f"{where}: image {image!r} is not pinned to a version"
    assert re.search(r"\d", tag), f"{where}: image {image!r} is not pinned to a version"
    assert not re.fullmatch(r"v?\d+(\.\d+)?", tag), f"{where}: {image!r} names a moving major/minor tag"
    return tag


def test_every_image_is_pinned_and_the_apex_image_is_this_version() -> None:
    version = apex_platform.__version__
    assert distributions()["apex-platform"] == version
    for name, svc in services().items():
        image = svc.get("image")
        assert image, f"compose service {name} has no image"
        image = re.sub(r"^\$\{APEX_IMAGE:-(.+)\}$", r"\1", image)
        tag = assert_pinned(image, f"compose service {name}")
        if name in apex_services():
            assert tag == version, f"{name} runs apex:{tag}, the repository is {version}"
    # Kubernetes: the placeholder `apex` gets its tag from the kustomization's images
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    tags = {entry["name"]: entry["newTag"] for entry in kustomization["images"]}
    assert tags == {"apex": version}
    for _, container in containers():
        image = container["image"]
        if image != "apex":
            assert_pinned(image, f"container {container['name']}")
    # the moving-tag check itself
    for bad in ("redis", "redis:latest", "redis:7", "postgres:16.4-latest:x"):
        with pytest.raises(AssertionError):
            assert_pinned(bad, "example")


def test_dockerfile_base_is_pinned_and_it_does_not_run_as_root() -> None:
    instructions = dockerfile_instructions()
    args = dict(rest.split("=", 1) for word, rest in instructions if word == "ARG" and "=" in rest)
    froms = [rest for word, rest in instructions if word == "FROM"]
    assert len(froms) >= 2, "a multi-stage build"
    for spec in froms:
        image = spec.split()[0]
        image = re.sub(r"^\$\{(\w+)\}$", lambda m: args[m.group(1)], image)
        assert_pinned(image, "Dockerfile FROM")
    users = [rest for word, rest in instructions if word == "USER"]
    assert users, "the image sets a user"
    last = users[-1].split(":")[0]
    assert last not in {"root", "0"}
    assert last == str(APEX_UID)
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    assert any(word == "USER" for word, _ in instructions[last_from:]), "the runtime stage sets its user"
    # what runs is what was built: the runtime stage installs from the wheels only
    runtime_runs = " ".join(rest for word, rest in instructions[last_from:] if word == "RUN")
    assert "--no-index" in runtime_runs


def test_the_image_installs_every_distribution_of_the_repository() -> None:
    runtime_start = max(i for i, (word, _) in enumerate(dockerfile_instructions()) if word == "FROM")
    runs = " ".join(rest for word, rest in dockerfile_instructions()[runtime_start:] if word == "RUN")
    installed = {re.sub(r"\[.*\]$", "", word) for word in shlex.split(runs) if word.startswith("apex-")}
    assert installed == set(distributions())
    assert "apex-sink-graph[neo4j]" in runs, "Neo4j needs the graph sink's neo4j extra"


# ── commands, queues, routes and ports ───────────────────────────────────────────────


def parse_command(args: list[str]) -> tuple[str, dict[str, Any]]:
    """Parse `apex-platform ARGS` with the real CLI (nothing runs): its command and params."""
    group = typer.main.get_command(cli_app)
    assert isinstance(group, typer.core.TyperGroup)
    ctx = group.context_class(group, info_name="apex-platform")
    name, *rest = args
    command = group.get_command(ctx, name)
    assert command is not None, f"apex-platform has no command {name!r}"
    sub = command.make_context(name, list(rest), parent=ctx)
    return name, dict(sub.params)


def commands() -> list[tuple[str, list[str]]]:
    found = [(f"compose service {n}", list(s["command"])) for n, s in apex_services().items()]
    found += [(f"container {c['name']}", list(c["args"])) for _, c in containers()]
    cmd = [rest for word, rest in dockerfile_instructions() if word == "CMD"][-1]
    found.append(("Dockerfile CMD", json.loads(cmd)))
    return found


def test_every_command_is_an_apex_platform_command_and_every_queue_has_workers() -> None:
    queues: dict[str, set[str]] = {"compose": set(), "kubernetes": set()}
    for where, args in commands():
        name, params = parse_command(args)
        if name == "worker":
            for queue in parse_queues(params["queues"]):
                queues["kubernetes" if where.startswith("container") else "compose"].add(queue.lower())
        if name == "ingest":
            assert params["source"] == "edi"
            assert params["watch"] is not None
    assert queues == {"compose": set(ALL_QUEUES), "kubernetes": set(ALL_QUEUES)}
    with pytest.raises(Exception, match=r"queues|No such option"):
        parse_command(["worker", "--queue", "p0"])


@pytest.fixture(scope="module")
def get_routes(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The GET routes of the real API (built, never started)."""
    from apex_platform.api import create_app
    from apex_platform.runtime import Runtime
    from apex_platform.settings import CoreSettings

    home = tmp_path_factory.mktemp("apex-home")
    runtime = Runtime.build([], use_entry_points=False, core=CoreSettings(home=home))
    app = create_app(runtime, open_sinks=False)
    return {route.path for route in app.routes if "GET" in getattr(route, "methods", ())}


def test_probes_healthchecks_and_scrapes_ask_routes_of_the_api_on_its_port(get_routes: set[str]) -> None:
    assert {"/healthz", "/readyz", "/metrics"} <= get_routes
    port = int(env_file(COMPOSE_DIR / "apex.env")["APEX_API_PORT"])
    assert int(configmap()["APEX_API_PORT"]) == port
    # compose: the API's healthcheck, its command and its published port
    api = services()["api"]
    url = re.search(r"http://127\.0\.0\.1:(\d+)(/[\w/-]*)", " ".join(api["healthcheck"]["test"]))
    assert url
    assert int(url.group(1)) == port
    assert url.group(2) in get_routes
    assert parse_command(api["command"])[1]["port"] == port
    assert all(str(p).endswith(f":{port}") for p in api["ports"])
    # Prometheus scrapes the API's metrics route on that port
    prometheus = yaml.safe_load((COMPOSE_DIR / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "apex-api"]
    assert job["metrics_path"] in get_routes
    assert job["dns_sd_configs"][0]["port"] == port
    assert job["dns_sd_configs"][0]["names"] == ["api"]
    # Prometheus scrapes each worker's and each process's SDK metrics on their ports
    metrics = {
        k: int(v) for k, v in configmap().items() if k in {"APEX_METRICS_WORKER_PORT", "APEX_METRICS_TEMPORAL_PORT"}
    }
    assert metrics == {k: int(env_file(COMPOSE_DIR / "apex.env")[k]) for k in metrics}
    assert len(metrics) == 2
    assert configmap()["APEX_METRICS_HOST"] == env_file(COMPOSE_DIR / "apex.env")["APEX_METRICS_HOST"] == "0.0.0.0"
    jobs = {j["job_name"]: j["dns_sd_configs"][0] for j in prometheus["scrape_configs"] if "dns_sd_configs" in j}
    assert jobs["apex-worker"]["port"] == metrics["APEX_METRICS_WORKER_PORT"]
    assert set(jobs["apex-worker"]["names"]) == {n for n, s in apex_services().items() if s["command"][0] == "worker"}
    assert jobs["apex-temporal-sdk"]["port"] == metrics["APEX_METRICS_TEMPORAL_PORT"]
    assert set(jobs["apex-temporal-sdk"]["names"]) == set(apex_services())
    for name, svc in apex_services().items():
        if svc["command"][0] == "worker":
            test = " ".join(svc["healthcheck"]["test"])
            assert f"127.0.0.1:{metrics['APEX_METRICS_WORKER_PORT']}/metrics" in test, name
    # Kubernetes: every HTTP probe asks a GET route of the API on its port, or a worker's
    # metrics on the worker port; scrape annotations name the same
    probed = 0
    for deployment in of_kind("Deployment"):
        template = deployment["spec"]["template"]
        for container in template["spec"]["containers"]:
            ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            command = parse_command(container["args"])
            expected = (
                (port, get_routes) if command[0] == "api" else (metrics["APEX_METRICS_WORKER_PORT"], {"/metrics"})
            )
            for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
                probe = container.get(kind)
                if probe is None:
                    continue
                probed += 1
                assert probe["httpGet"]["path"] in expected[1], f"{container['name']} {kind}"
                target = probe["httpGet"]["port"]
                assert ports.get(target, target) == expected[0], f"{container['name']} {kind}"
            if command[0] == "api":
                assert command[1]["port"] == port
            annotations = template["metadata"].get("annotations")
            if annotations:
                assert annotations["prometheus.io/path"] in expected[1]
                assert int(annotations["prometheus.io/port"]) == expected[0]
                assert expected[0] in ports.values()
            if "sdk-metrics" in ports:
                assert ports["sdk-metrics"] == metrics["APEX_METRICS_TEMPORAL_PORT"]
    assert probed == 3 + 3
    for service in of_kind("Service"):
        for entry in service["spec"]["ports"]:
            assert entry["targetPort"] in {"http", port}


# ── how the pods and containers run ──────────────────────────────────────────────────


def test_kubernetes_pods_run_unprivileged_with_resources() -> None:
    count = 0
    for pod, container in containers():
        count += 1
        where = container["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["runAsUser"] == APEX_UID, where
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
        assert pod["automountServiceAccountToken"] is False, where
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True, where
        assert sc["allowPrivilegeEscalation"] is False, where
        assert sc["capabilities"]["drop"] == ["ALL"], where
        for key in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][key]), f"{where}: {key}"
        # a read-only root: APEX_HOME and /tmp are volumes
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert {configmap()["APEX_HOME"], "/tmp"} <= mounts, where
        refs = [e.get("configMapRef", e.get("secretRef", {})).get("name") for e in container["envFrom"]]
        assert refs == ["apex-config", "apex-secrets"], where
    assert count == 5


def test_disruption_budgets_and_autoscalers_match_the_deployments() -> None:
    deployments = {d["metadata"]["name"]: d for d in of_kind("Deployment")}
    budgets = {b["metadata"]["name"]: b for b in of_kind("PodDisruptionBudget")}
    for name, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
        if deployment["spec"].get("replicas") == 1:
            continue  # a single watcher: no budget to keep
        assert name in budgets, f"{name} has no PodDisruptionBudget"
        assert budgets[name]["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    for hpa in of_kind("HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]["name"]
        assert target in deployments
        assert "replicas" not in deployments[target]["spec"], f"{target}: replicas belong to its autoscaler"
    for service in of_kind("Service"):
        selector = service["spec"]["selector"]
        assert any(
            selector.items() <= d["spec"]["template"]["metadata"]["labels"].items() for d in deployments.values()
        )


def test_workers_are_given_longer_than_their_drain_to_stop() -> None:
    drain = float(configmap()["APEX_TEMPORAL_GRACEFUL_SHUTDOWN_SECONDS"])
    assert float(env_file(COMPOSE_DIR / "apex.env")["APEX_TEMPORAL_GRACEFUL_SHUTDOWN_SECONDS"]) == drain
    # the worker gives in-flight work 10 s past the graceful shutdown before it exits 75
    needed = drain + 10
    for deployment in of_kind("Deployment"):
        if "worker" in deployment["metadata"]["name"]:
            assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > needed
    for name, svc in apex_services().items():
        grace = svc["stop_grace_period"]
        assert grace.endswith("s"), name
        assert float(grace[:-1]) > needed, name


def test_compose_services_restart_have_limits_and_wait_for_what_they_need() -> None:
    svcs = services()
    for name, svc in svcs.items():
        assert svc.get("restart"), f"{name} has no restart policy"
        one_shot = str(svc["restart"]).startswith("on-failure")
        if not one_shot:
            assert svc["deploy"]["resources"]["limits"]["memory"], name
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in svcs, f"{name} depends on a missing service {dep}"
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in svcs[dep], f"{name} waits for {dep} to be healthy: it has no healthcheck"
            if cond["condition"] == "service_completed_successfully":
                assert str(svcs[dep]["restart"]).startswith("on-failure"), f"{dep} never completes"
    for name, svc in apex_services().items():
        assert svc["user"] == f"{APEX_UID}:{APEX_UID}", name
        assert svc["read_only"] is True, name
        assert svc["cap_drop"] == ["ALL"], name
        assert "/tmp" in svc["tmpfs"], name


def test_every_file_the_compose_file_mounts_exists() -> None:
    """Bind mounts, env files and secret examples; the alert rules and the dashboards of
    deploy/prometheus and deploy/grafana included."""
    mounted = []
    for svc in services().values():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            if source.startswith("."):
                mounted.append(source)
        for entry in svc.get("env_file", []):
            mounted.append(entry if isinstance(entry, str) else entry["path"])
    sources = {m for m in mounted}
    assert "../prometheus/alerts.yml" in sources
    assert "../grafana/dashboards" in sources
    made_by_the_operator = {"./apex.secrets.env", "./edi-inbox"}
    for source in sorted(sources - made_by_the_operator):
        assert (COMPOSE_DIR / source).exists(), f"compose.yaml mounts {source}, which does not exist"
    assert (COMPOSE_DIR / "apex.secrets.env.example").is_file()
    # Prometheus loads the mounted rules: the rule path it reads is where they are mounted
    prometheus = yaml.safe_load((COMPOSE_DIR / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    (rules_mount,) = [v for v in services()["prometheus"]["volumes"] if v.startswith("../prometheus/alerts.yml:")]
    target = rules_mount.split(":")[1]
    assert any(Path(target).match(pattern) for pattern in prometheus["rule_files"])
    # Grafana's dashboard provider reads the folder the dashboards are mounted at
    provider = yaml.safe_load(
        (COMPOSE_DIR / "grafana" / "provisioning" / "dashboards" / "apex.yml").read_text(encoding="utf-8")
    )
    (grafana_mount,) = [v for v in services()["grafana"]["volumes"] if v.startswith("../grafana/dashboards:")]
    assert provider["providers"][0]["options"]["path"] == grafana_mount.split(":")[1]
    # ... the same path as the dashboard's own provisioning file, and a Prometheus data
    # source for the dashboard's data source variable
    own = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "apex.yaml").read_text(encoding="utf-8"))
    assert own["providers"][0]["options"]["path"] == provider["providers"][0]["options"]["path"]
    sources = yaml.safe_load(
        (COMPOSE_DIR / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text(encoding="utf-8")
    )
    (prometheus_source,) = sources["datasources"]
    assert prometheus_source["type"] == "prometheus"
    assert prometheus_source["url"] == "http://prometheus:9090"
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "apex.json").read_text(encoding="utf-8"))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"


def test_make_secrets_writes_secrets_that_agree_and_that_apex_accepts(tmp_path: Path) -> None:
    """make-secrets.sh, run in a copy of deploy/compose: every server's secret file and
    Apex's DSN/URL settings carry the same values, Apex's own validators accept them, and
    a second run keeps what exists."""
    from pydantic import SecretStr

    from apex_platform.settings import MIN_SECRET_CHARS, AdminSettings, PushSettings
    from apex_platform.temporal.encryption import parse_keys

    work = tmp_path / "compose"
    work.mkdir()
    for name in ("make-secrets.sh", "apex.secrets.env.example"):
        (work / name).write_bytes((COMPOSE_DIR / name).read_bytes())
    out = subprocess.run(["sh", str(work / "make-secrets.sh")], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    secrets = {p.name: p.read_text(encoding="utf-8").strip() for p in (work / "secrets").iterdir()}
    assert set(secrets) == {entry["file"].removeprefix("./secrets/") for entry in compose()["secrets"].values()}
    env = env_file(work / "apex.secrets.env")
    assert PLACEHOLDER not in json.dumps(env)
    assert env["APEX_POSTGRES_DSN"] == f"postgresql://apex:{secrets['postgres_password']}@postgres:5432/apex"
    assert env["APEX_REDIS_URL"] == f"redis://:{secrets['redis_password']}@redis:6379/0"
    assert secrets["neo4j_auth"] == f"neo4j/{env['APEX_GRAPH_PASSWORD']}"
    assert env["APEX_QDRANT_API_KEY"] == secrets["qdrant_api_key"]
    assert len(parse_keys(secrets["apex_payload_keys"])) == 1
    assert AdminSettings(token=SecretStr(env["APEX_ADMIN_TOKEN"])).digests()
    assert PushSettings(api_keys=SecretStr(env["APEX_API_KEYS"])).digests()
    assert all(len(v) >= MIN_SECRET_CHARS for k, v in secrets.items() if k != "apex_payload_keys")
    assert (work / "secrets" / "apex_payload_keys").stat().st_mode & 0o077 == 0
    assert (work / "apex.secrets.env").stat().st_mode & 0o077 == 0
    if os.geteuid() == 0:
        assert (work / "secrets" / "apex_payload_keys").stat().st_uid == APEX_UID
    # a second run keeps every file as it is
    again = subprocess.run(["sh", str(work / "make-secrets.sh")], capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
    assert {p.name: p.read_text(encoding="utf-8").strip() for p in (work / "secrets").iterdir()} == secrets
    assert env_file(work / "apex.secrets.env") == env
