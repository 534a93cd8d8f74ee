from __future__ import annotations

import pytest

from labctl import pipeline
from labctl.docker import DockerBackend
from labctl.errors import CommandFailed, LabError
from labctl.runner import Result


class StepBackend:
    """Records the pipeline's steps; `status` is what `status --version-of` answers."""

    mode = "local"

    def __init__(self, settings, status: Result, fail_on: str = ""):
        self.s = settings
        self.status = status
        self.fail_on = fail_on
        self.steps: list[str] = []

    def _step(self, name: str) -> None:
        self.steps.append(name)
        if name == self.fail_on:
            raise CommandFailed([name], 1)

    def prepare(self):
        self._step("prepare")

    def start_tracking(self):
        self._step("tracking")

    def start_servers(self):
        self._step("servers")

    def gatekeeper(self, *args, capture=False):
        if args[:1] == ("status",):
            self.steps.append("lookup")
            if self.status.returncode:
                raise CommandFailed(["gatekeeper", *args], self.status.returncode)
            return self.status
        self._step(" ".join(args[:3]))
        return Result(0)

    def train(self):
        self._step("train")

    def roll(self, alias):
        self._step(f"roll {alias}")

    def server_url(self, alias):
        return f"http://{alias}"

    def record_mode(self):
        self._step("record")


def test_an_empty_lab_is_bootstrapped_in_order(settings_for):
    b = StepBackend(settings_for(), Result(0, "\n"))
    pipeline.up(b)
    assert b.steps == [
        "prepare",
        "tracking",
        "lookup",
        "train",
        "gate",
        "promote --to staging",
        "roll staging",
        "smoke --url http://staging",
        "promote --to production",
        "roll production",
        "smoke --url http://production",
        "record",
    ]


def test_a_lab_with_production_only_starts_its_servers(settings_for):
    b = StepBackend(settings_for(), Result(0, "3\n"))
    pipeline.up(b)
    assert b.steps == ["prepare", "tracking", "lookup", "servers", "record"]


@pytest.mark.parametrize(
    "status", [Result(2, "", "connection refused"), Result(0, "Traceback (most recent call")]
)
def test_a_failed_production_lookup_never_bootstraps_over_a_lab(settings_for, status):
    b = StepBackend(settings_for(), status)
    with pytest.raises(LabError, match="cannot read @production from MLflow"):
        pipeline.up(b)
    assert "train" not in b.steps and not any(s.startswith("promote") for s in b.steps)


def test_a_failed_gate_stops_the_bootstrap_before_any_promotion(settings_for):
    b = StepBackend(settings_for(), Result(0, ""), fail_on="gate")
    with pytest.raises(CommandFailed) as exc:
        pipeline.up(b)
    assert exc.value.returncode == 1
    assert b.steps[-1] == "gate" and "record" not in b.steps


def test_a_refused_promotion_neither_rolls_nor_smokes(settings_for):
    b = StepBackend(settings_for(), Result(0, ""), fail_on="promote --to production")
    with pytest.raises(CommandFailed):
        pipeline.promote(b, "production")
    assert b.steps == ["promote --to production"]


def test_rollback_rolls_and_smokes_production(settings_for):
    b = StepBackend(settings_for(), Result(0, ""))
    pipeline.rollback(b)
    assert b.steps == ["rollback", "roll production", "smoke --url http://production"]


def test_promote_to_an_unknown_alias_is_a_usage_error(settings_for):
    with pytest.raises(LabError, match="TO must be staging or production"):
        pipeline.promote(StepBackend(settings_for(), Result(0)), "prod")


def test_docker_promotion_moves_rolls_then_smokes_on_the_compose_network(settings_for, fake):
    s = settings_for(S3_BACKEND="seaweedfs")
    pipeline.promote(DockerBackend(s, fake), "staging")
    cmds = [" ".join(c) for c in fake.calls]
    assert "--profile seaweedfs --profile jobs run --rm --no-TTY" in cmds[0]
    assert cmds[0].endswith("gatekeeper promote --to staging")
    assert cmds[1].endswith("pull --quiet serving-staging")
    assert cmds[2].endswith("up -d --wait serving-staging")
    assert cmds[3].endswith("gatekeeper smoke --url http://serving-staging:8080 --alias staging")


def test_a_bad_build_cache_setting_is_refused_before_building(settings_for, fake):
    b = DockerBackend(settings_for(LAB_BUILD_CACHE="s3"), fake)
    with pytest.raises(LabError, match="LAB_BUILD_CACHE must be empty"):
        b.build_images()
    assert not fake.ran("build")


def test_the_actions_cache_needs_the_runtime_token(settings_for, fake):
    b = DockerBackend(settings_for(LAB_BUILD_CACHE="gha"), fake)
    with pytest.raises(LabError, match="ACTIONS_RUNTIME_TOKEN"):
        b.build_images()


def test_a_dirty_tree_never_reuses_images(settings_for, fake):
    s = settings_for(GIT_SHA="abc-dirty")
    assert DockerBackend(s, fake).registry_has_images() is False
