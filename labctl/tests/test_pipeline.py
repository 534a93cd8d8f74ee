from __future__ import annotations

import json

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
        self.calls: list[tuple[str, ...]] = []

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

    def production_version(self):
        return pipeline.production_version(self)

    def gatekeeper(self, *args, capture=False):
        if args[:1] == ("status",):
            self.steps.append("lookup")
            if self.status.returncode:
                raise CommandFailed(["gatekeeper", *args], self.status.returncode)
            return self.status
        self.calls.append(args)
        self._step(" ".join(args[:3]))
        return Result(0)

    def train(self, shift=None):
        self._step("train" if shift is None else f"train shift={shift}")

    def ensure_version_image(self, version):
        pass

    def roll(self, alias):
        self._step(f"roll {alias}")

    def load(self, alias):
        self._step(f"load {alias}")
        out = self.s.root / "reports" / "load" / "latency_gate.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text('{"passed": true, "version": "2", "p95_ms": 5, "p99_ms": 9}')

    def server_url(self, alias):
        return f"http://{alias}"

    def traffic(self, alias, shift):
        self._step(f"traffic {alias} {shift}".strip())

    drift_exit = 0
    drift_writes = True  # a real check writes its verdict; one that crashed writes none

    def drift(self):
        self.steps.append("drift")
        report = self.s.root / "reports" / "drift" / "drift.json"
        report.unlink(missing_ok=True)
        if self.drift_exit in (0, 1) and self.drift_writes:
            report.parent.mkdir(parents=True, exist_ok=True)
            verdict = "drift" if self.drift_exit else "no drift"
            report.write_text(json.dumps({"verdict": verdict}))
        if self.drift_exit:
            raise CommandFailed(["drift"], self.drift_exit)

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


def test_rollback_rolls_and_smokes_production_then_staging(settings_for):
    b = StepBackend(settings_for(), Result(0, ""))
    pipeline.rollback(b)
    assert b.steps == [
        "rollback",
        "roll production",
        "smoke --url http://production",
        "roll staging",
        "smoke --url http://staging",
    ]


def test_promote_passes_the_chosen_version_to_the_gatekeeper(settings_for):
    b = StepBackend(settings_for(), Result(0, ""))
    pipeline.promote(b, "staging", version="3")
    assert b.calls[0] == ("promote", "--to", "staging", "--version", "3")
    assert b.steps[1:] == ["roll staging", "smoke --url http://staging"]


@pytest.mark.parametrize("version", ["v3", "3; rm -rf /", "-1"])
def test_a_version_that_is_not_a_number_moves_nothing(settings_for, version):
    b = StepBackend(settings_for(), Result(0, ""))
    with pytest.raises(LabError, match="VERSION must be a model version number"):
        pipeline.promote(b, "staging", version=version)
    assert b.steps == []


def test_the_pipeline_runs_every_stage_in_order(settings_for, capsys):
    b = StepBackend(settings_for(), Result(0, ""))
    pipeline.run_pipeline(b)
    assert b.steps == [
        "train",
        "gate",
        "promote --to staging",
        "roll staging",
        "smoke --url http://staging",
        "load staging",
        "record-load --version 2",
        "promote --to production",
        "roll production",
        "smoke --url http://production",
    ]
    assert "the pipeline passed" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("fail_on", "stage", "code"),
    [
        ("train", "1/5, train (exit 1)", 1),
        ("gate", "2/5, gate (exit 1)", 1),
        ("smoke --url http://staging", "3/5, promote to staging", 1),
        ("load staging", "4/5, load test staging", 1),
        ("promote --to production", "5/5, promote to production", 1),
    ],
)
def test_the_pipeline_stops_at_the_failing_stage_and_names_it(
    settings_for, capsys, fail_on, stage, code
):
    b = StepBackend(settings_for(), Result(0, ""), fail_on=fail_on)
    with pytest.raises(CommandFailed) as exc:
        pipeline.run_pipeline(b)
    assert exc.value.returncode == code
    assert b.steps[-1] == fail_on  # nothing after the stage that stopped the line
    assert f"the line stopped at stage {stage}" in capsys.readouterr().err


def test_promote_to_an_unknown_alias_is_a_usage_error(settings_for):
    with pytest.raises(LabError, match="TO must be staging or production"):
        pipeline.promote(StepBackend(settings_for(), Result(0)), "prod")


def test_docker_promotion_moves_rolls_then_smokes_on_the_compose_network(
    settings_for, fake, monkeypatch
):
    s = settings_for(S3_BACKEND="seaweedfs")
    b = DockerBackend(s, fake)
    monkeypatch.setattr(b, "registry_has", lambda repo, tag: True)  # this tree's images
    _candidate_from(monkeypatch, "abc123")
    pipeline.promote(b, "staging")
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
    assert not fake.ran("build mlflow")


def test_the_actions_cache_needs_the_runtime_token(settings_for, fake):
    b = DockerBackend(settings_for(LAB_BUILD_CACHE="gha"), fake)
    with pytest.raises(LabError, match="ACTIONS_RUNTIME_TOKEN"):
        b.build_images()


@pytest.mark.parametrize(("sha", "reused"), [("abc", True), ("abc-dirty", False), ("dev", False)])
def test_only_a_clean_commits_images_are_reused(settings_for, fake, monkeypatch, sha, reused):
    b = DockerBackend(settings_for(GIT_SHA=sha), fake)
    monkeypatch.setattr(b, "registry_has", lambda repo, tag: True)
    assert b.registry_has_images() is reused


@pytest.mark.parametrize(("in_registry", "built"), [(True, False), (False, True)])
def test_training_builds_this_commits_images_first(
    settings_for, fake, monkeypatch, in_registry, built
):
    b = DockerBackend(settings_for(), fake)
    monkeypatch.setattr(b, "registry_has", lambda repo, tag: in_registry)
    fake.on("docker image inspect", 1)  # nor in the engine
    b.train()
    assert fake.ran("build mlflow serving-image") is built
    assert " ".join(fake.calls[-1]).endswith(f"run --rm --no-TTY --user {b.run_as()} training")


def test_training_runs_as_the_owner_of_its_report_folder(settings_for, fake, monkeypatch):
    # The job writes reports/data through a bind mount: it runs as the user who owns it,
    # as the gatekeeper does for reports/gate.
    b = DockerBackend(settings_for(), fake)
    monkeypatch.setattr(b, "registry_has", lambda repo, tag: True)
    b.train()
    assert (b.s.root / "reports" / "data").is_dir()
    argv = fake.calls[-1]
    assert argv[argv.index("--user") + 1] == b.run_as()


def test_make_up_takes_the_images_the_cheapest_way(settings_for, fake, monkeypatch):
    """Registry (a warm start) > engine (a loaded bundle) > LAB_REMOTE_IMAGES (a CI job
    after the build job) > a build."""
    b = DockerBackend(settings_for(GIT_SHA="abc", LAB_REMOTE_IMAGES="ghcr.io/Me/Lab"), fake)
    monkeypatch.setattr(b, "doctor", lambda: ([], "ok"))
    monkeypatch.setattr(b, "registry_has", lambda repo, tag: True)
    b.prepare()
    assert not fake.ran("build mlflow") and not fake.ran("push")
    monkeypatch.setattr(b, "registry_has", lambda repo, tag: repo != "loadtests")
    b.prepare()  # the engine has them (every command answers 0): pushed, not built
    assert fake.ran("push --quiet mlflow serving-image") and not fake.ran("build mlflow")
    fake.calls.clear()
    fake.on("docker image inspect", 1)
    b.prepare()  # pulled from the remote, lower-cased, and pushed to the local registry
    assert fake.ran("docker pull --quiet ghcr.io/me/lab/serving:abc")
    assert fake.ran(f"docker push --quiet {b.local_ref('serving', 'abc')}")
    assert not fake.ran("build mlflow")
    fake.on("docker pull", 1)
    b.prepare()  # the remote lacks them (a fork's pull request): built
    assert fake.ran("build mlflow serving-image")


def test_a_dirty_tree_always_builds(settings_for, fake, monkeypatch):
    b = DockerBackend(settings_for(GIT_SHA="abc-dirty-123"), fake)
    monkeypatch.setattr(b, "doctor", lambda: ([], "ok"))
    monkeypatch.setattr(b, "registry_has", lambda repo, tag: True)
    b.prepare()
    assert fake.ran("build mlflow serving-image")


def test_restored_aliases_get_their_images_and_tags_back(settings_for, fake, monkeypatch):
    """A state carries no images: after a restore, the image of each alias's commit comes
    from the remote and serving:<alias> is tagged again; without one, make up says why."""
    b = DockerBackend(settings_for(GIT_SHA="new", LAB_REMOTE_IMAGES="ghcr.io/me/lab"), fake)
    present = {("serving", "new")}
    monkeypatch.setattr(b, "registry_has", lambda repo, tag: (repo, tag) in present)
    retagged = []

    def retag(repo, src, dst):
        retagged.append((src, dst))
        present.add((repo, dst))

    monkeypatch.setattr(b, "registry_retag", retag)
    targets = {"production": ("3", "old"), "staging": ("4", "new")}
    b.restore_serving_tags(targets)
    assert fake.ran("docker pull --quiet ghcr.io/me/lab/serving:old")
    assert not fake.ran("ghcr.io/me/lab/serving:new")
    assert retagged == [("new", "staging"), ("old", "production")]
    retagged.clear()
    present.clear()
    present.add(("serving", "new"))
    b.restore_serving_tags({"staging": ("4", "")})  # a version with no commit tag
    assert retagged == [("new", "staging")]  # the staging server still gets an image
    fake.on("docker pull", 1)
    with pytest.raises(LabError, match="version 3 was trained by commit old, and its serving"):
        b.restore_serving_tags(targets)


def test_a_production_switch_needs_the_image_of_its_commit(settings_for, fake, monkeypatch):
    b = DockerBackend(settings_for(GIT_SHA="new"), fake)
    monkeypatch.setattr(b, "registry_has", lambda repo, tag: False)
    with pytest.raises(LabError, match="neither in the local registry nor at LAB_REMOTE_IMAGES"):
        b.prepare_production("3", "old")
    assert not fake.ran("up -d")


def test_images_push_and_remote_tags(settings_for, fake, monkeypatch):
    b = DockerBackend(settings_for(GIT_SHA="abc", LAB_REMOTE_IMAGES="ghcr.io/me/lab"), fake)
    monkeypatch.setattr(b, "registry_has", lambda repo, tag: True)
    b.images_push()
    for repo in ("mlflow", "serving", "training", "gatekeeper", "loadtests"):
        assert fake.ran(f"docker push --quiet ghcr.io/me/lab/{repo}:abc")
    monkeypatch.setattr(
        b, "_alias_targets", lambda: {"production": ("2", "old"), "candidate": ("5", "abc")}
    )
    b.images_tag_remote()
    assert fake.ran(f"docker tag {b.local_ref('serving', 'old')} ghcr.io/me/lab/serving:production")
    assert fake.ran("docker push --quiet ghcr.io/me/lab/serving:old")  # its commit's tag too
    assert not fake.ran("serving:candidate")
    with pytest.raises(LabError, match="only a clean commit's images are pushed"):
        DockerBackend(
            settings_for(GIT_SHA="abc-dirty-1", LAB_REMOTE_IMAGES="x.io/a"), fake
        ).images_push()
    fake.calls.clear()  # nothing set (a fork's pull request): nothing pushed, no error
    DockerBackend(settings_for(GIT_SHA="abc"), fake).images_push()
    assert not fake.ran("docker push")


def test_images_login_passes_the_token_on_stdin(settings_for, fake):
    env = dict(LAB_REMOTE_IMAGES="ghcr.io/me/lab", REMOTE_IMAGES_USER="me")
    with pytest.raises(LabError, match="REMOTE_IMAGES_TOKEN"):
        DockerBackend(settings_for(**env), fake).images_login()
    DockerBackend(settings_for(**env, REMOTE_IMAGES_TOKEN="t0ken"), fake).images_login()
    assert fake.calls[-1] == ["docker", "login", "--username", "me", "--password-stdin", "ghcr.io"]
    DockerBackend(settings_for(), fake).images_login()  # nothing set: nothing to do
    assert fake.calls[-1][1] == "login" and len(fake.calls) == 1


def test_the_project_name_reaches_compose(settings_for, fake):
    b = DockerBackend(settings_for(COMPOSE_PROJECT_NAME="mlops-lab-ci"), fake)
    argv = b.compose("ps")
    assert argv[argv.index("--project-name") + 1] == "mlops-lab-ci"


def test_report_folders_are_handed_over_without_following_links(tmp_path, monkeypatch):
    from labctl import docker

    target = tmp_path / "host-secret"
    target.write_text("not yours")
    reports = tmp_path / "reports"
    (reports / "sub").mkdir(parents=True)
    (reports / "sub" / "r.json").write_text("{}")
    (reports / "link").symlink_to(target)
    owned = []
    monkeypatch.setattr(
        docker.os,
        "chown",
        lambda p, u, g, follow_symlinks=True: owned.append((str(p), follow_symlinks)),
    )
    docker.chown_tree(reports, 10001)
    assert {p for p, _ in owned} == {
        str(reports),
        str(reports / "sub"),
        str(reports / "sub" / "r.json"),
        str(reports / "link"),
    }
    assert all(follow is False for _, follow in owned)


class LoadBackend(StepBackend):
    """A backend whose load test writes `result` (None: nothing) and exits `rc`."""

    def __init__(self, settings, result: dict | None, rc: int = 0):
        super().__init__(settings, Result(0, "3\n"))
        self.result, self.rc, self.recorded = result, rc, []

    def load(self, alias):
        import json

        if self.result is not None:
            path = self.s.root / "reports" / "load" / "latency_gate.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(self.result))
        if self.rc:
            raise CommandFailed(["locust"], self.rc)

    def gatekeeper(self, *args, capture=False):
        self.recorded.append(args)
        return Result(0)


RESULT = {"passed": True, "version": "7", "p95_ms": 12.5, "p99_ms": 30, "model_sha256": "ab"}


def test_load_records_the_verdict_on_the_version_the_server_served(settings_for):
    b = LoadBackend(settings_for(), RESULT)
    pipeline.load(b, "staging")
    (args,) = b.recorded
    flags = dict(zip(args[1::2], args[2::2], strict=False))
    assert args[0] == "record-load"
    assert flags == {
        "--version": "7",
        "--verdict": "passed",
        "--p95-ms": "12.5",
        "--p99-ms": "30.0",
        "--alias": "staging",
        "--sha256": "ab",
    }


def test_a_failed_load_gate_is_recorded_then_reported(settings_for):
    b = LoadBackend(settings_for(), {**RESULT, "passed": False}, rc=1)
    with pytest.raises(CommandFailed):
        pipeline.load(b, "staging")
    assert b.recorded[0][b.recorded[0].index("--verdict") + 1] == "failed"


def test_a_stale_result_is_never_recorded(settings_for):
    settings = settings_for()
    stale = settings.root / "reports" / "load" / "latency_gate.json"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text('{"passed": true, "version": "7"}')
    b = LoadBackend(settings, None, rc=2)  # locust stopped before writing anything
    with pytest.raises(CommandFailed):
        pipeline.load(b, "staging")
    assert b.recorded == []
    with pytest.raises(LabError, match="wrote no result"):
        pipeline.load(LoadBackend(settings, None), "staging")


def test_bootstrap_records_why_production_went_without_a_load_gate(settings_for):
    b = StepBackend(settings_for(), Result(0, "\n"))
    seen = []
    original = b.gatekeeper

    def gatekeeper(*args, capture=False):
        seen.append(args)
        return original(*args, capture=capture)

    b.gatekeeper = gatekeeper
    pipeline.up(b)
    staging = next(a for a in seen if a[:3] == ("promote", "--to", "staging"))
    production = next(a for a in seen if a[:3] == ("promote", "--to", "production"))
    assert "--skip-load-gate" not in staging
    assert production[3:] == ("--skip-load-gate", pipeline.BOOTSTRAP_SKIP)


def test_the_gatekeeper_runs_from_the_images_of_the_code_in_the_tree(
    settings_for, fake, monkeypatch
):
    """An edit the registry has no images for is built before a gatekeeper job runs."""
    b = DockerBackend(settings_for(), fake)
    monkeypatch.setattr(b, "registry_has", lambda repo, tag: False)
    fake.on("docker image inspect", 1)  # nor in the engine
    built = []
    monkeypatch.setattr(b, "start_registry", lambda: None)
    monkeypatch.setattr(b, "build_images", lambda: built.append(b.s.get("GIT_SHA")))
    b.gatekeeper("status")
    assert built == [b.s.get("GIT_SHA")]


SHIFT = "petal length (cm)=+1.5"


def test_retrain_on_drift_without_drift_retrains_nothing(settings_for):
    b = StepBackend(settings_for(), Result(0, "3\n"))
    pipeline.retrain_on_drift(b, SHIFT)
    assert b.steps == ["drift"]


def test_retrain_on_drift_runs_the_whole_line_on_the_shifted_window(settings_for):
    b = StepBackend(settings_for(), Result(0, "3\n"))
    b.drift_exit = 1
    pipeline.retrain_on_drift(b, SHIFT)
    assert b.steps[:3] == ["drift", f"train shift={SHIFT}", "gate"]
    assert b.steps[-3:] == [
        "promote --to production",
        "roll production",
        "smoke --url http://production",
    ]


def test_retrain_on_drift_stops_where_the_line_stops(settings_for):
    b = StepBackend(settings_for(), Result(0, "3\n"), fail_on="gate")
    b.drift_exit = 1
    with pytest.raises(CommandFailed):
        pipeline.retrain_on_drift(b, SHIFT)
    assert b.steps[-1] == "gate" and not any(x.startswith("promote") for x in b.steps)


def test_a_drift_check_that_cannot_tell_retrains_nothing(settings_for):
    b = StepBackend(settings_for(), Result(0, "3\n"))
    b.drift_exit = 2
    with pytest.raises(CommandFailed) as exc:
        pipeline.retrain_on_drift(b, SHIFT)
    assert exc.value.returncode == 2 and b.steps == ["drift"]


def test_a_drift_check_that_crashed_with_exit_1_retrains_nothing(settings_for):
    b = StepBackend(settings_for(), Result(0, "3\n"))
    b.drift_exit, b.drift_writes = 1, False  # a traceback, or `docker compose run` failing
    with pytest.raises(LabError, match="without writing a drift verdict") as exc:
        pipeline.retrain_on_drift(b, SHIFT)
    assert exc.value.code == 2 and b.steps == ["drift"]


def test_traffic_goes_only_to_the_lab_s_servers(settings_for):
    b = StepBackend(settings_for(), Result(0, "3\n"))
    pipeline.traffic(b, "production", SHIFT)
    assert b.steps == [f"traffic production {SHIFT}"]
    with pytest.raises(LabError, match="ALIAS must be staging or production"):
        pipeline.traffic(b, "candidate", "")


def test_retrain_on_drift_to_staging_stops_before_production(settings_for):
    b = StepBackend(settings_for(), Result(0, "3\n"))
    b.drift_exit = 1
    assert pipeline.retrain_on_drift(b, SHIFT, to="staging") is True
    assert b.steps[-2:] == ["load staging", "record-load --version 2"]
    assert not any("production" in step for step in b.steps)
    b = StepBackend(settings_for(), Result(0, "3\n"))
    assert pipeline.retrain_on_drift(b, SHIFT, to="staging") is False


def _mlflow_answers(monkeypatch, answers: dict[str, tuple[int, dict]]):
    """Lab.http answering MLflow's REST paths from `answers` (path prefix -> status, body)."""
    from labctl.book import view

    def http(self, url, **_kwargs):
        for prefix, (status, body) in answers.items():
            if f"/api/2.0/mlflow/{prefix}" in url:
                return view.Http(status, json.dumps(body).encode(), {})
        raise view.Unanswered(f"{url} does not answer")

    monkeypatch.setattr(view.Lab, "http", http)


def test_make_up_reads_the_aliases_and_their_commits_from_mlflow(settings_for, fake, monkeypatch):
    model = {"registered_model": {"aliases": [{"alias": "production", "version": "4"}]}}
    version = {"model_version": {"version": "4", "tags": [{"key": "git_sha", "value": "sha4"}]}}
    _mlflow_answers(
        monkeypatch,
        {"registered-models/get": (200, model), "model-versions/get": (200, version)},
    )
    b = DockerBackend(settings_for(), fake)
    assert b._alias_targets() == {"production": ("4", "sha4")}
    assert b.production_version() == "4"
    assert not fake.calls  # no job container for a read


def test_no_registered_model_yet_means_no_production(settings_for, fake, monkeypatch):
    missing = {"error_code": "RESOURCE_DOES_NOT_EXIST"}
    _mlflow_answers(monkeypatch, {"registered-models/get": (404, missing)})
    assert DockerBackend(settings_for(), fake).production_version() == ""


@pytest.mark.parametrize(
    "answers",
    [
        {},  # nothing answers
        {"registered-models/get": (500, {})},
        # Another server on MLflow's port: a 404 that is not MLflow's "no such model"
        # must not look like an empty lab (make up would bootstrap over it).
        {"registered-models/get": (404, {"detail": "Not Found"})},
    ],
)
def test_an_unreadable_registry_stops_make_up_with_a_reason(
    settings_for, fake, monkeypatch, answers
):
    _mlflow_answers(monkeypatch, answers)
    b = DockerBackend(settings_for(), fake)
    b.tracking_ready = True
    with pytest.raises(LabError, match="cannot read the model's aliases from MLflow"):
        b.production_version()


def test_a_command_on_a_stopped_lab_starts_mlflow_before_reading_it(
    settings_for, fake, monkeypatch
):
    """make promote / make rollback after make down: MLflow is started (as the job
    containers' dependencies did), then read."""
    from labctl.book import view

    calls = []
    model = {"registered_model": {"aliases": []}}

    def http(self, url, **_kwargs):
        calls.append(url)
        if not fake.ran("up -d --wait mlflow"):
            raise view.Unanswered(f"{url} does not answer")
        return view.Http(200, json.dumps(model).encode(), {})

    monkeypatch.setattr(view.Lab, "http", http)
    b = DockerBackend(settings_for(), fake)
    assert b.production_version() == ""
    assert fake.ran("up -d --wait mlflow") and len(calls) == 2


def _candidate_from(monkeypatch, sha: str) -> None:
    """MLflow answering: @candidate is version 5, trained by commit `sha`."""
    model = {"registered_model": {"aliases": [{"alias": "candidate", "version": "5"}]}}
    version = {"model_version": {"version": "5", "tags": [{"key": "git_sha", "value": sha}]}}
    _mlflow_answers(
        monkeypatch,
        {"registered-models/get": (200, model), "model-versions/get": (200, version)},
    )


def test_staging_takes_a_version_of_another_commit_with_that_commits_image(
    settings_for, fake, monkeypatch
):
    """A restored lab holds this commit's images only: before staging moves to a version
    trained by another commit, that commit's serving image is fetched, or the promotion
    is refused naming it, before any alias moves."""
    b = DockerBackend(settings_for(LAB_REMOTE_IMAGES="ghcr.io/me/lab"), fake)
    monkeypatch.setattr(b, "registry_has", lambda repo, tag: tag != "old")
    _candidate_from(monkeypatch, "old")
    pipeline.promote(b, "staging")
    assert fake.ran("docker pull --quiet ghcr.io/me/lab/serving:old")
    fake.calls.clear()
    fake.on("docker pull", 1)
    with pytest.raises(LabError, match="version 5 was trained by commit old"):
        pipeline.promote(b, "staging")
    assert not fake.ran("gatekeeper promote")
