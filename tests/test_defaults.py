"""One source for each default: the components, compose/compose.yaml and .env.example agree.

A knob has a default in the component's code, one in compose/compose.yaml
(`${VAR:-default}`) and a value in .env.example (`VAR=value`, which `make up` copies to
.env). Users run the last two; unit tests and direct runs (`python -m trainer`) get the
first. When they differ, the lab behaves differently depending on how it was started.

Which variable sets which field is taken from the code, not from a table here: each
config's `from_env` is called with an environment that records what it reads, and a
documented value is compared with the code default by parsing it the way the config does
(so "0.80" equals 0.8). Other reads come from the sources: `os.environ.get("X", "d")`
in Python, `${X:-d}` in shell scripts, `key = value` in locust.conf (Locust's LOCUST_KEY).
A new knob is therefore checked without editing this file; only a variable that is in one
of compose/compose.yaml and .env.example but not the other must be listed, with a reason.

Unit tier: reads files and calls `from_env`; no network, no Docker.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import subprocess
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from gatekeeper.config import DriftConfig, GateConfig
from loadgate.thresholds import LoadThresholds
from serving.config import ServingConfig
from trainer.config import TrainConfig
from trainer.traffic import TrafficConfig

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "compose" / "compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"

# The config classes, by component folder (a build context in compose/compose.yaml).
# test_every_config_class_is_checked fails when a component grows one that is not here.
CONFIGS: dict[str, tuple[type, ...]] = {
    "training": (TrainConfig, TrafficConfig),
    "gatekeeper": (GateConfig, DriftConfig),
    "serving": (ServingConfig,),
    "loadtests": (LoadThresholds,),
    "services/mlflow": (),
}

# Services that run an upstream image: their environment is that image's contract.
# serving-production is the production proxy (nginx) in front of serving-blue/-green.
UPSTREAM_SERVICES = {
    "postgres",
    "minio",
    "seaweedfs",
    "registry",
    "serving-production",
    "serving-hold",
}

# Read by the libraries the components run on (MLflow, boto3, Locust), not by our code.
LIBRARY_PREFIXES = ("MLFLOW_", "AWS_", "LOCUST_")

# Variables that are in only one of compose/compose.yaml and .env.example, and why. Every
# other variable is in both, and its default is compared.
ONE_SIDED = {
    # In .env.example only: read by the lab's tooling (make, labctl), not by Compose.
    "LAB_MODE": "chooses docker or local mode",
    "S3_BACKEND": "names the Compose profile to start (minio or seaweedfs)",
    "LAB_BUILD_CACHE": "CI replica: how images are built",
    "LAB_MIRROR": "classroom: labctl pulls the Docker Hub images through it (sets *_IMAGE)",
    "LAB_REMOTE_IMAGES": "CI replica: where the build job pushes the images",
    "STATE_FILE": "CI replica: where state-save writes",
    # In compose/compose.yaml only: set by the tooling or the login, not by the user.
    "GIT_SHA": "the commit the images are built from; make sets it",
    "LAB_REGISTRY": "the local registry's address; make derives it from REGISTRY_PORT",
    "LAB_ADMIN_BIND": "where MLflow, the registry and S3 listen; make derives it (LAB_AUTH)",
    "LOAD_TARGET": "the server make load aims at (LOAD_ALIAS)",
    "TRAFFIC_URL": "the server make traffic aims at (ALIAS)",
    "TRAFFIC_SHIFT": "make traffic's SHIFT",
    "GITHUB_ACTOR": "set by GitHub Actions; the gatekeeper records it as the actor",
    "USER": "the login name; the gatekeeper records it as the actor",
    **{
        f"PRODUCTION_{colour}_{what}": "the production colours' version and image tag; make "
        "keeps them in .lab/production.json"
        for colour in ("BLUE", "GREEN")
        for what in ("VERSION", "TAG")
    },
}

# A compose default that differs from the code default on purpose, with the reason.
DIFFERENT_ON_PURPOSE = {
    ("training", "TRAFFIC_URL"): (
        "in Compose the traffic job reaches production by its service name; outside, the "
        "production server's default port on this host"
    ),
    ("training", "GIT_SHA"): (
        "in Compose the job runs in an image tagged GIT_SHA (`dev` unless make says), and the "
        "model must name that image for promotion; outside an image the code's `unknown` "
        "makes the gatekeeper refuse to promote a model no image was built for"
    ),
}

SUBSTITUTION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?([-?])([^}]*))?\}")


def same(a: object, b: object) -> bool:
    """Equal as numbers where both are numbers ("0.80" and 0.8), else as text."""
    try:
        return float(a) == float(b)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(a) == str(b)


# ------------------------------------------------------------------ compose/compose.yaml


@cache
def compose_text() -> str:
    # Comment lines may quote ${VAR:-...} as an example; only the YAML counts.
    lines = COMPOSE_FILE.read_text(encoding="utf-8").splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("#"))


@cache
def compose() -> dict:
    return yaml.safe_load(compose_text())


def compose_defaults() -> dict[str, set[str]]:
    """Every `${VAR:-default}` in the file: VAR -> the defaults it is given."""
    out: dict[str, set[str]] = {}
    for var, op, default in SUBSTITUTION.findall(compose_text()):
        if op == "-":
            out.setdefault(var, set()).add(default)
    return out


def compose_variables() -> set[str]:
    return {var for var, _, _ in SUBSTITUTION.findall(compose_text())}


def services() -> dict[str, dict]:
    return compose()["services"]


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def repository(image: str) -> str:
    """`mlops-lab/serving` from `${LAB_REGISTRY:-...}/mlops-lab/serving:${GIT_SHA:-dev}`."""
    m = re.search(r"([\w.-]+/[\w.-]+):[^/]*$", image)
    return m.group(1) if m else image


def component_of() -> dict[str, str]:
    """Service -> the folder its image is built from (services of the lab's own images)."""
    built = {
        repository(s["image"]): s["build"]["context"].removeprefix("./")
        for s in services().values()
        if "build" in s
    }
    return {
        name: built[repository(s.get("image", ""))]
        for name, s in services().items()
        if repository(s.get("image", "")) in built
    }


def knobs(service: dict) -> Iterator[tuple[str, str, str]]:
    """(KEY, VAR, default) for each `KEY: ${VAR:-default}` of a service's environment."""
    for key, raw in environment(service).items():
        m = SUBSTITUTION.fullmatch(raw)
        if m and m.group(2) == "-":
            yield key, m.group(1), m.group(3)


# ------------------------------------------------------------------ .env.example


def env_example() -> tuple[dict[str, str], set[str]]:
    """(VAR=value lines, names only mentioned in comments such as `# VAR=`)."""
    values, mentioned = {}, set()
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if m := re.match(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line):
            value = re.sub(r"\s+#.*$", "", m.group(2)).strip()
            values[m.group(1)] = value.strip("'\"")
        elif m := re.match(r"#\s*([A-Z][A-Z0-9_]*)=", line):
            mentioned.add(m.group(1))
    return values, mentioned


# ------------------------------------------------------------------ what the code reads


class RecordingEnv(Mapping):
    """An environment that remembers every name looked up in it."""

    def __init__(self, data: Mapping[str, str]):
        self.data = dict(data)
        self.seen: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.seen.add(key)
        return self.data[key]

    def __iter__(self):
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


@cache
def config_reads(cls: type) -> frozenset[str]:
    env = RecordingEnv({})
    cls.from_env(env)
    return frozenset(env.seen)


def flat(config: object) -> dict[str, object]:
    """A config's fields, nested dataclasses as dotted names (thresholds.min_accuracy)."""

    def walk(d: dict, prefix: str) -> Iterator[tuple[str, object]]:
        for k, v in d.items():
            if isinstance(v, dict):
                yield from walk(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}", v

    return dict(walk(dataclasses.asdict(config), ""))


def config_drift(cls: type, name: str, value: str) -> list[str]:
    """How `name=value` changes what `cls.from_env` gives compared with an empty environment."""
    base = flat(cls.from_env({}))
    try:
        got = flat(cls.from_env({name: value}))
    except ValueError as exc:
        return [f"{cls.__name__} rejects {name}={value!r}: {exc}"]
    return [
        f"{cls.__name__}.{field}: code default {base[field]!r}, {name}={value!r} gives "
        f"{got[field]!r}"
        for field in base
        if base[field] != got[field]
    ]


COMPUTED = object()  # a default the source computes: nothing to compare it with


def sources(component: str, suffix: str) -> list[Path]:
    """A component's own files, without its tests and without build or install leftovers."""
    skip = {"tests", "__pycache__", "build", "dist"}

    def wanted(p: Path) -> bool:
        parts = p.relative_to(ROOT).parts
        return not skip & set(parts) and not any(
            part.startswith(".") or part.endswith(".egg-info") for part in parts
        )

    return sorted(p for p in (ROOT / component).rglob(f"*{suffix}") if wanted(p))


def python_reads(path: Path) -> dict[str, object]:
    """os.environ.get / os.getenv / os.environ.setdefault / os.environ[...] in one file."""

    def is_environ(node: ast.AST) -> bool:
        return (
            isinstance(node, ast.Attribute)
            and node.attr == "environ"
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        )

    out: dict[str, object] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Subscript) and is_environ(node.value):
            if isinstance(node.slice, ast.Constant):
                out[node.slice.value] = None  # required: no default
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            f = node.func
            env_call = (is_environ(f.value) and f.attr in ("get", "setdefault")) or (
                f.attr == "getenv" and isinstance(f.value, ast.Name) and f.value.id == "os"
            )
            if not env_call or not node.args or not isinstance(node.args[0], ast.Constant):
                continue
            if len(node.args) < 2:
                out[node.args[0].value] = None
            elif isinstance(node.args[1], ast.Constant):
                out[node.args[0].value] = node.args[1].value
            else:
                out[node.args[0].value] = COMPUTED
    return out


def shell_reads(path: Path) -> dict[str, object]:
    """${X:-d}, ${X:?msg}, ${X} and $X in a shell script."""
    text = path.read_text(encoding="utf-8")
    out: dict[str, object] = {name: None for name in re.findall(r"\$([A-Z_][A-Z0-9_]*)", text)}
    for var, op, default in SUBSTITUTION.findall(text):
        out[var] = default if op == "-" else out.get(var)
    return out


def locust_conf_reads(path: Path) -> dict[str, object]:
    """locust.conf's `key = value`, as the LOCUST_KEY variable that overrides it."""
    out: dict[str, object] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if m := re.match(r"([a-z][a-z0-9-]*)\s*=\s*(.*?)\s*$", line):
            out["LOCUST_" + m.group(1).upper().replace("-", "_")] = m.group(2)
    return out


@cache
def source_defaults(component: str) -> dict[str, list[tuple[str, object]]]:
    """NAME -> [(file, default)] for every environment read outside the config classes."""
    out: dict[str, list[tuple[str, object]]] = {}
    readers = [(p, python_reads) for p in sources(component, ".py")]
    readers += [(p, shell_reads) for p in sources(component, ".sh")]
    readers += [(p, locust_conf_reads) for p in sources(component, "locust.conf")]
    for path, read in readers:
        for name, default in read(path).items():
            out.setdefault(name, []).append((str(path.relative_to(ROOT)), default))
    return out


def reads(component: str) -> set[str]:
    names = set(source_defaults(component))
    for cls in CONFIGS[component]:
        names |= config_reads(cls)
    return names


def code_drift(component: str, name: str, value: str) -> list[str]:
    """Every code default of `name` in a component that `value` does not equal."""
    out = [
        d
        for cls in CONFIGS[component]
        if name in config_reads(cls)
        for d in config_drift(cls, name, value)
    ]
    for where, default in source_defaults(component).get(name, []):
        if default is COMPUTED:
            out.append(f"{where}: {name} has a computed default, documented {value!r}")
        elif default is not None and not same(default, value):
            out.append(f"{where}: {name} defaults to {default!r}, documented {value!r}")
    return out


# ------------------------------------------------------------------ the tests


def test_every_service_is_a_lab_component_or_an_upstream_image():
    lab = component_of()
    assert set(services()) == set(lab) | UPSTREAM_SERVICES
    assert not set(lab) & UPSTREAM_SERVICES
    assert set(lab.values()) == set(CONFIGS), "a component folder without an entry in CONFIGS"


def test_every_config_class_is_checked():
    """A class with a from_env in a component's sources must be in CONFIGS."""
    for component, classes in CONFIGS.items():
        found = set()
        for path in sources(component, ".py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ClassDef) and any(
                    isinstance(f, ast.FunctionDef) and f.name == "from_env" for f in node.body
                ):
                    found.add(node.name)
        assert found == {cls.__name__ for cls in classes}, component


def test_config_classes_read_the_environment():
    # Guards the recording itself: a config read through something else would look empty.
    for component, classes in CONFIGS.items():
        for cls in classes:
            assert config_reads(cls), f"{component}: {cls.__name__} read nothing"


def test_compose_passes_components_only_variables_they_read():
    unread = [
        f"{service}: {key} (no code in {component}/ reads it)"
        for service, component in component_of().items()
        for key in environment(services()[service])
        if key not in reads(component) and not key.startswith(LIBRARY_PREFIXES)
    ]
    assert not unread, "\n".join(unread)


def test_compose_defaults_equal_the_code_defaults():
    drift, on_purpose = [], set()
    for service, component in sorted(component_of().items()):
        for key, _var, default in knobs(services()[service]):
            found = code_drift(component, key, default)
            if (component, key) in DIFFERENT_ON_PURPOSE:
                on_purpose.add((component, key))
                assert found, f"{component} {key}: now equal, drop it from DIFFERENT_ON_PURPOSE"
                continue
            drift += [f"{service}: {line}" for line in found]
    assert not drift, "\n".join(drift)
    assert on_purpose == set(DIFFERENT_ON_PURPOSE), "an entry for a knob compose no longer sets"


def test_env_example_values_equal_the_code_defaults():
    # Local mode hands .env to the processes directly, without Compose in between.
    values, _ = env_example()
    drift = [
        line
        for name, value in sorted(values.items())
        if value
        for component in CONFIGS
        for line in code_drift(component, name, value)
    ]
    assert not drift, "\n".join(drift)


def test_env_example_values_equal_the_compose_defaults():
    values, _ = env_example()
    drift = [
        f"{name}: .env.example {values[name]!r}, compose/compose.yaml {default!r}"
        for name, defaults in sorted(compose_defaults().items())
        if name in values
        for default in sorted(defaults)
        if not same(values[name], default)
    ]
    assert not drift, "\n".join(drift)


def test_each_compose_variable_has_one_default():
    several = {name: d for name, d in compose_defaults().items() if len(d) > 1}
    assert several == {}


def test_every_variable_is_in_both_files_or_listed_with_a_reason():
    values, mentioned = env_example()
    documented = set(values) | mentioned
    in_compose = compose_variables()
    one_sided = (in_compose - documented) | (documented - in_compose)
    unlisted = sorted(one_sided - set(ONE_SIDED))
    assert not unlisted, f"document in .env.example, or list in ONE_SIDED: {unlisted}"
    stale = sorted(set(ONE_SIDED) - one_sided)
    assert not stale, f"in both files now (or in neither): drop from ONE_SIDED: {stale}"


def test_the_code_reaches_mlflow_and_the_registry_on_the_documented_ports():
    values, _ = env_example()
    for classes in CONFIGS.values():
        for cls in classes:
            uri = flat(cls.from_env({})).get("tracking_uri")
            if uri is not None:
                assert urlsplit(uri).port == int(values["MLFLOW_PORT"]), cls.__name__
    [registry] = compose_defaults()["LAB_REGISTRY"]
    assert urlsplit(f"//{registry}").port == int(values["REGISTRY_PORT"])


# ------------------------------------------------------------------ pinned images

PINNED = re.compile(r"\$\{(\w+_IMAGE):-([^}@\s]+)@(sha256:[0-9a-f]{64})\}")


def repo_files() -> list[Path]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: no list of the project's files")
    return [ROOT / p for p in listed.decode().split("\0") if p and (ROOT / p).is_file()]


def test_pinned_images_are_named_only_in_compose():
    pinned = PINNED.findall(compose_text())
    assert {var for var, _, _ in pinned} >= {"PYTHON_IMAGE", "POSTGRES_IMAGE"}
    patterns = []
    for _var, ref, digest in pinned:
        repo = ref.rsplit(":", 1)[0]
        # Any tag of the same repository pinned by any digest: a copy, current or stale.
        patterns.append(rf"(?<![\w.-]){re.escape(repo)}:[\w.-]+@sha256:[0-9a-f]{{64}}")
        patterns.append(re.escape(digest.removeprefix("sha256:")))
    copies = re.compile("|".join(patterns))
    found = []
    for path in repo_files():
        if path == COMPOSE_FILE:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        found += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in copies.finditer(text)]
    assert not found, "\n".join(found)


def test_the_lab_dockerfiles_take_their_base_image_from_compose():
    built = [s for s in services().values() if "build" in s]
    assert built
    for s in built:
        assert "PYTHON_IMAGE" in s["build"]["args"], s["build"]["context"]
        dockerfile = (ROOT / s["build"]["context"] / "Dockerfile").read_text(encoding="utf-8")
        # Declared without a default: a default here would be a second copy to keep in step.
        assert re.search(r"^ARG PYTHON_IMAGE\s*$", dockerfile, re.M), s["build"]["context"]
        bases = re.findall(r"^FROM (\S+)", dockerfile, re.M)
        assert bases and set(bases) == {"${PYTHON_IMAGE}"}, s["build"]["context"]
