"""Promotion and rollback rules, on an in-memory registry client (unit)."""

import os
import signal
from types import SimpleNamespace

import pytest

from gatekeeper import interrupts, lifecycle
from gatekeeper.config import GateConfig


def cfg(registry_url=""):
    return GateConfig(model_name="m", registry_url=registry_url, actor="tester")


def versions():
    return {
        "1": {"gate.verdict": "passed", "git_sha": "sha1", "load.verdict": "passed"},
        "2": {"gate.verdict": "passed", "git_sha": "sha2", "load.verdict": "passed"},
        "3": {"gate.verdict": "failed", "git_sha": "sha2"},
    }


def test_promote_refuses_a_failed_gate_and_moves_nothing(fake_client):
    client = fake_client(versions(), {"candidate": "3", "staging": "1"})
    with pytest.raises(lifecycle.Refused, match="version 3 has not passed the gate"):
        lifecycle.promote(client, cfg(), "staging")
    assert client.aliases == {"candidate": "3", "staging": "1"}


def test_promote_records_history(fake_client):
    client = fake_client(versions(), {"candidate": "2", "staging": "1"})
    assert lifecycle.promote(client, cfg(), "staging") == ("2", "1")
    tags = client.versions["2"]
    assert tags["promoted.staging.previous"] == "1"
    assert tags["promoted.staging.by"] == "tester"
    assert tags["promoted.staging.from"] == "@candidate"


def test_promote_without_source_alias_is_a_usage_error(fake_client):
    client = fake_client(versions(), {})
    with pytest.raises(lifecycle.UsageError, match="no @staging"):
        lifecycle.promote(client, cfg(), "production")


def test_rollback_walks_back_one_promotion(fake_client):
    client = fake_client(versions(), {"staging": "2", "production": "1"})
    lifecycle.promote(client, cfg(), "production")
    assert client.aliases["production"] == "2"
    assert lifecycle.rollback(client, cfg()) == ("1", "2")
    assert client.aliases["production"] == "1"
    with pytest.raises(lifecycle.Refused, match="no earlier production version"):
        lifecycle.rollback(client, cfg())


def test_other_registry_errors_are_not_taken_for_a_missing_alias(fake_client):
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    class Broken(fake_client):
        def get_model_version_by_alias(self, name, alias):
            raise MlflowException("bad alias name", error_code=INVALID_PARAMETER_VALUE)

    with pytest.raises(MlflowException):
        lifecycle.alias_version(Broken(versions(), {}), "m", "production")
    assert lifecycle.alias_version(fake_client(versions(), {}), "m", "production") is None


def test_image_follows_the_model(fake_client, fake_registry):
    url, manifests = fake_registry
    client = fake_client(versions(), {"candidate": "2"})
    lifecycle.promote(client, cfg(url), "staging")
    assert manifests["staging"] == manifests["sha2"]


def test_failed_alias_move_puts_the_image_tag_back(fake_client, fake_registry):
    url, manifests = fake_registry
    client = fake_client(versions(), {"candidate": "2", "staging": "1"})
    manifests["staging"] = manifests["sha1"]
    client.fail_alias = True
    with pytest.raises(Exception, match="registry down"):
        lifecycle.promote(client, cfg(url), "staging")
    assert manifests["staging"] == manifests["sha1"]
    assert client.aliases["staging"] == "1"


def test_missing_image_stops_promotion_before_the_alias(fake_client, fake_registry):
    url, _ = fake_registry
    v = versions()
    v["2"]["git_sha"] = "not-pushed"
    client = fake_client(v, {"candidate": "2", "staging": "1"})
    with pytest.raises(Exception, match="not in the registry"):
        lifecycle.promote(client, cfg(url), "staging")
    assert client.aliases["staging"] == "1"


class Fault(Exception):
    """The injected failure of one registry or MLflow call."""


class FaultyWorld:
    """An in-memory model registry and image registry whose Nth call fails.

    Every call either side makes counts as one step; `fail_at` picks the step that raises,
    so a test can walk a promotion through every point where the network can let it down.
    """

    def __init__(self, fail_at: int | None = None):
        self.fail_at = fail_at
        self.steps: list[str] = []
        self.tags = {
            "1": {"gate.verdict": "passed", "git_sha": "sha1"},
            "2": {"gate.verdict": "passed", "git_sha": "sha2", "promoted.production.previous": "1"},
            "3": {"gate.verdict": "passed", "git_sha": "sha3", "load.verdict": "passed"},
        }
        self.aliases = {"candidate": "3", "staging": "3", "production": "2"}
        self.images = {
            "sha1": "img1",
            "sha2": "img2",
            "sha3": "img3",
            "staging": "img3",
            "production": "img2",
        }

    def step(self, name: str) -> None:
        self.steps.append(name)
        if len(self.steps) == self.fail_at:
            raise Fault(f"step {self.fail_at} ({name}) failed")

    # MlflowClient
    def get_model_version_by_alias(self, name, alias):
        self.step(f"get alias {alias}")
        return self.get_model_version(name, self.aliases[alias], count=False)

    def get_model_version(self, name, version, count=True):
        if count:
            self.step(f"get version {version}")
        return SimpleNamespace(version=version, tags=dict(self.tags[version]))

    def set_registered_model_alias(self, name, alias, version):
        self.step(f"set alias {alias}")
        self.aliases[alias] = version

    def set_model_version_tag(self, name, version, key, value):
        self.step(f"tag {version} {key}")
        self.tags[version][key] = value

    # gatekeeper.images.Registry
    def get(self, tag):
        self.step(f"image get {tag}")
        return self.images.get(tag)

    def put(self, tag, manifest):
        self.step(f"image put {tag}")
        self.images[tag] = manifest

    def retag(self, source, target):
        manifest = self.get(source)
        previous = self.get(target)
        self.put(target, manifest)
        return previous

    def state(self, alias):
        version = self.aliases[alias]
        return version, self.images[alias], self.images[self.tags[version]["git_sha"]]


def _count_steps(monkeypatch, operation) -> int:
    world = FaultyWorld()
    monkeypatch.setattr(lifecycle, "_image_registry", lambda c: world)
    operation(world)
    return len(world.steps)


OPERATIONS = {
    "promote to production": (
        "production",
        lambda w: lifecycle.promote(w, cfg("http://registry"), "production"),
    ),
    "rollback": ("production", lambda w: lifecycle.rollback(w, cfg("http://registry"))),
}


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_a_failure_at_any_step_leaves_image_and_alias_together(monkeypatch, name):
    alias, operation = OPERATIONS[name]
    total = _count_steps(monkeypatch, operation)
    assert total >= 6
    outcomes = set()
    for fail_at in range(1, total + 1):
        world = FaultyWorld(fail_at)
        monkeypatch.setattr(lifecycle, "_image_registry", lambda c, w=world: w)
        before = world.state(alias)
        try:
            operation(world)
            outcome = "done"
        except Fault:
            outcome = "nothing moved"
        version, image, image_of_version = world.state(alias)
        # Never apart: the alias and the serving image tag name the same version.
        assert image == image_of_version, f"{name}, failing {world.steps[-1]}: split"
        if outcome == "nothing moved":
            assert world.state(alias) == before, f"{name}, failing {world.steps[-1]}"
        else:
            assert version != before[0]
        outcomes.add(outcome)
    assert outcomes == {"done", "nothing moved"}


def test_a_rolled_back_version_is_revoked_and_cannot_come_back(fake_client):
    client = fake_client(versions(), {"staging": "2", "production": "1"})
    lifecycle.promote(client, cfg(), "production")
    assert lifecycle.rollback(client, cfg()) == ("1", "2")
    assert client.versions["2"]["gate.verdict"] == "revoked"
    assert client.aliases["staging"] == "1"  # staging left it, for what production runs
    with pytest.raises(lifecycle.Refused, match="version 2 was rolled back out of production"):
        lifecycle.promote(client, cfg(), "staging", "2")
    client.aliases["staging"] = "2"  # even put back on staging by hand
    with pytest.raises(lifecycle.Refused, match="rolled back out of production"):
        lifecycle.promote(client, cfg(), "production")
    assert client.aliases["production"] == "1"


def test_staging_is_left_alone_when_it_moved_on(fake_client):
    client = fake_client(versions(), {"staging": "2", "production": "1"})
    lifecycle.promote(client, cfg(), "production")
    client.versions["4"] = {"gate.verdict": "passed", "git_sha": "sha4"}
    client.aliases["staging"] = "4"
    lifecycle.rollback(client, cfg())
    assert client.aliases == {"staging": "4", "production": "1"}


def test_production_takes_only_the_staging_version(fake_client):
    client = fake_client(versions(), {"candidate": "2", "staging": "1", "production": "1"})
    with pytest.raises(lifecycle.Refused, match="version 2 is not @staging"):
        lifecycle.promote(client, cfg(), "production", "2")
    assert client.aliases["production"] == "1"
    assert lifecycle.promote(client, cfg(), "production", "1") == ("1", "1")


def test_ctrl_c_between_the_image_retag_and_the_alias_puts_the_tag_back(fake_client, fake_registry):
    url, manifests = fake_registry
    client = fake_client(versions(), {"candidate": "2", "staging": "1"})
    manifests["staging"] = manifests["sha1"]

    def interrupted(name, alias, version):
        raise KeyboardInterrupt

    client.set_registered_model_alias = interrupted
    with pytest.raises(KeyboardInterrupt):
        lifecycle.promote(client, cfg(url), "staging")
    assert manifests["staging"] == manifests["sha1"]
    assert client.aliases["staging"] == "1"


def test_a_revoked_version_is_not_judged_again(fake_client):
    v = versions()
    v["2"]["gate.verdict"] = "revoked"
    client = fake_client(v, {"candidate": "2"})
    with pytest.raises(lifecycle.Refused, match="not judged again"):
        lifecycle.gate(client, cfg(), None)
    assert client.versions["2"]["gate.verdict"] == "revoked"


def test_a_rollback_that_cannot_move_revokes_nothing(fake_client, fake_registry):
    url, manifests = fake_registry
    v = versions()
    v["1"]["git_sha"] = "not-pushed"
    v["2"]["promoted.production.previous"] = "1"
    client = fake_client(v, {"staging": "2", "production": "2"})
    manifests["production"] = manifests["sha2"]
    with pytest.raises(lifecycle.UsageError, match="no serving image"):
        lifecycle.rollback(client, cfg(url))
    assert client.versions["2"]["gate.verdict"] == "passed"
    assert client.aliases == {"staging": "2", "production": "2"}


def test_an_alias_write_applied_before_ctrl_c_keeps_its_image_tag(fake_client, fake_registry):
    """MLflow moved the alias, the reply was lost to Ctrl-C: the tag must stay with it."""
    url, manifests = fake_registry
    client = fake_client(versions(), {"candidate": "2", "staging": "1"})
    manifests["staging"] = manifests["sha1"]
    real = client.set_registered_model_alias

    def applied_then_interrupted(name, alias, version):
        real(name, alias, version)
        raise KeyboardInterrupt

    client.set_registered_model_alias = applied_then_interrupted
    with pytest.raises(KeyboardInterrupt):
        lifecycle.promote(client, cfg(url), "staging")
    assert client.aliases["staging"] == "2"
    assert manifests["staging"] == manifests["sha2"]


@pytest.mark.parametrize("load_verdict", [None, "failed"])
def test_production_wants_a_passed_latency_gate(fake_client, load_verdict):
    vs = versions()
    del vs["2"]["load.verdict"]
    if load_verdict:
        vs["2"]["load.verdict"] = load_verdict
    client = fake_client(vs, {"staging": "2", "production": "1"})
    with pytest.raises(lifecycle.Refused, match=r"has not passed the latency gate.*make load"):
        lifecycle.promote(client, cfg(), "production")
    assert client.aliases == {"staging": "2", "production": "1"}
    assert "promoted.production.previous" not in client.versions["2"]
    # Staging never needs it: it is where the latency gate is run.
    client.aliases["candidate"] = "2"
    lifecycle.promote(client, cfg(), "staging", "2")


def test_the_explicit_override_is_recorded_on_the_version(fake_client):
    vs = versions()
    del vs["2"]["load.verdict"]
    client = fake_client(vs, {"staging": "2", "production": "1"})
    assert lifecycle.promote(client, cfg(), "production", skip_load_gate="by tester") == ("2", "1")
    assert client.versions["2"]["promoted.production.load_gate"] == "skipped: by tester"
    client2 = fake_client(versions(), {"staging": "2", "production": "1"})
    lifecycle.promote(client2, cfg(), "production")
    assert client2.versions["2"]["promoted.production.load_gate"] == "passed"


def test_record_load_writes_the_figures_and_the_verdict_last(fake_client):
    written = []

    class Recording(fake_client):
        def set_model_version_tag(self, name, version, key, value):
            written.append(key)
            super().set_model_version_tag(name, version, key, value)

    vs = versions()
    vs["2"]["gate.model_sha256"] = "abc"
    client = Recording(vs, {"staging": "2"})
    lifecycle.record_load(client, cfg(), "2", True, 12.34, 40.0, "staging", "abc")
    tags = client.versions["2"]
    assert tags["load.verdict"] == "passed" and tags["load.p95_ms"] == "12.3"
    assert tags["load.p99_ms"] == "40.0" and tags["load.alias"] == "staging"
    assert written[-1] == "load.verdict"
    # Figures measured on other files than the gated ones do not count as a pass.
    lifecycle.record_load(client, cfg(), "2", True, 1.0, 2.0, "staging", "other")
    assert client.versions["2"]["load.verdict"] == "failed"


def test_a_check_applies_every_rule_and_writes_nothing(fake_client):
    client = fake_client(versions(), {"staging": "2", "production": "1"})
    before = {v: dict(t) for v, t in client.versions.items()}
    assert lifecycle.promote(client, cfg(), "production", check_only=True) == ("2", "1")
    assert client.aliases == {"staging": "2", "production": "1"} and client.versions == before
    client.versions["2"]["load.verdict"] = "failed"
    with pytest.raises(lifecycle.Refused, match="latency gate"):
        lifecycle.promote(client, cfg(), "production", check_only=True)
    client.versions["2"]["load.verdict"] = "passed"
    lifecycle.promote(client, cfg(), "production")
    before = {v: dict(t) for v, t in client.versions.items()}
    assert lifecycle.rollback(client, cfg(), check_only=True) == ("1", "2")
    assert client.aliases["production"] == "2" and client.versions == before


def approving_cfg():
    return GateConfig(model_name="m", actor="ci", require_approval=True)


def test_production_refuses_an_unapproved_version_when_approval_is_required(fake_client):
    client = fake_client(versions(), {"staging": "2", "production": "1"})
    with pytest.raises(lifecycle.Refused, match="make approve VERSION=2 BY=<name>"):
        lifecycle.promote(client, approving_cfg(), "production")
    assert client.aliases == {"staging": "2", "production": "1"}
    assert "promoted.production.previous" not in client.versions["2"]
    # Without the setting, production takes it as before.
    assert lifecycle.promote(client, cfg(), "production") == ("2", "1")


def test_an_approved_version_is_promoted_and_the_approver_recorded(fake_client):
    client = fake_client(versions(), {"staging": "2", "production": "1"})
    assert lifecycle.approve(client, approving_cfg(), "staging", "ada") == ("2", None)
    assert lifecycle.promote(client, approving_cfg(), "production") == ("2", "1")
    tags = client.versions["2"]
    assert tags["approval.by"] == "ada" and tags["approval.at"]
    assert tags["promoted.production.approved_by"] == "ada"
    assert tags["promoted.production.by"] == "ci"


def test_only_a_version_that_passed_the_gate_can_be_approved(fake_client):
    vs = versions()
    vs["4"] = {"gate.verdict": lifecycle.REVOKED}
    vs["5"] = {}
    client = fake_client(vs, {})
    for version, verdict in (("3", "failed"), ("4", "revoked"), ("5", "never gated")):
        with pytest.raises(lifecycle.Refused, match=f"gate.verdict={verdict}"):
            lifecycle.approve(client, cfg(), version, "ada")
        assert "approval.by" not in client.versions[version]


def test_an_approval_needs_a_name_and_a_second_one_reports_the_first(fake_client):
    client = fake_client(versions(), {})
    with pytest.raises(lifecycle.UsageError, match="needs a name"):
        lifecycle.approve(client, cfg(), "2", "  ")
    with pytest.raises(lifecycle.UsageError, match="no @staging to approve"):
        lifecycle.approve(client, cfg(), "staging", "ada")
    lifecycle.approve(client, cfg(), "2", "ada")
    assert lifecycle.approve(client, cfg(), "2", "grace") == ("2", "ada")
    assert client.versions["2"]["approval.by"] == "grace"


def test_require_approval_reads_one_or_zero():
    from gatekeeper.config import ConfigError

    assert GateConfig.from_env({"PROMOTE_REQUIRE_APPROVAL": "1"}).require_approval
    assert not GateConfig.from_env({}).require_approval
    with pytest.raises(ConfigError, match="PROMOTE_REQUIRE_APPROVAL must be 1 or 0"):
        GateConfig.from_env({"PROMOTE_REQUIRE_APPROVAL": "maybe"})


STOPS = [signal.SIGTERM, signal.SIGHUP]


@pytest.fixture
def recorded_stop_signals():
    """SIGTERM and SIGHUP only recorded while a test runs, so that code which installs no
    handler of its own fails the test's assertions instead of ending pytest. Returns the
    recording handler and what it saw."""
    seen: list[int] = []

    def record(signum, frame):
        seen.append(signum)

    before = {s: signal.signal(s, record) for s in STOPS}
    yield record, seen
    for s, handler in before.items():
        signal.signal(s, handler)


class SignalledWorld(FaultyWorld):
    """A FaultyWorld that sends this very process a real signal (os.kill on itself) at one
    call, before or after the call takes effect."""

    def __init__(self, signum: int, at: str, after: bool, fail_at: int | None = None):
        super().__init__(fail_at)
        self.signum, self.at, self.after = signum, at, after
        self.sent = 0

    def _signal(self, name: str, after: bool) -> None:
        if name == self.at and after == self.after and not self.sent:
            self.sent += 1
            os.kill(os.getpid(), self.signum)

    def put(self, tag, manifest):
        self._signal(f"image put {tag}", after=False)
        super().put(tag, manifest)
        self._signal(f"image put {tag}", after=True)

    def set_registered_model_alias(self, name, alias, version):
        self._signal(f"set alias {alias}", after=False)
        super().set_registered_model_alias(name, alias, version)


@pytest.mark.parametrize("signum", STOPS, ids=lambda s: signal.Signals(s).name)
@pytest.mark.parametrize(
    ("at", "after"),
    [("image put production", True), ("set alias production", False)],
    ids=["after-the-image-retag", "before-the-alias-move"],
)
@pytest.mark.parametrize("name", list(OPERATIONS))
def test_a_stop_signal_between_the_image_retag_and_the_alias_puts_the_tag_back(
    monkeypatch, recorded_stop_signals, signum, at, after, name
):
    record, seen = recorded_stop_signals
    alias, operation = OPERATIONS[name]
    world = SignalledWorld(signum, at, after)
    monkeypatch.setattr(lifecycle, "_image_registry", lambda c: world)
    before = world.state(alias)
    with pytest.raises(interrupts.Stopped) as stopped:
        operation(world)
    assert world.sent == 1
    assert world.state(alias) == before  # the alias did not move and the tag is back
    assert stopped.value.signum == signum and stopped.value.exit_code == 128 + signum
    assert seen == []  # taken by the move's own handler, then the one before put back
    assert signal.getsignal(signum) is record


def test_a_stop_signal_during_the_undo_waits_for_it_and_still_stops(
    monkeypatch, recorded_stop_signals
):
    """The alias write fails; SIGTERM arrives as the tag is being put back: the tag still
    goes back, and the signal still ends the command (rollback's `except Exception` for
    a failed staging move must not carry on past it)."""
    world = SignalledWorld(signal.SIGTERM, "image put staging", after=False)
    world.aliases["staging"] = "2"  # rollback moves staging with production
    world.images["staging"] = "img2"
    monkeypatch.setattr(lifecycle, "_image_registry", lambda c: world)
    real_set_alias = world.set_registered_model_alias

    def staging_refused(name, alias, version):
        if alias == "staging":
            raise Fault("registry down")
        real_set_alias(name, alias, version)

    world.set_registered_model_alias = staging_refused
    world.at = "never"  # production moves undisturbed
    real_put = world.put

    def put(tag, manifest):
        if tag == "staging" and manifest == "img2":  # the undo
            world.at = "image put staging"
        real_put(tag, manifest)

    world.put = put
    with pytest.raises(interrupts.Stopped, match="SIGTERM") as stopped:
        lifecycle.rollback(world, cfg("http://registry"))
    assert world.sent == 1
    assert world.state("staging") == ("2", "img2", "img2")  # the undo was not cut short
    assert world.state("production") == ("1", "img1", "img1")
    assert isinstance(stopped.value.__cause__, Fault)  # the signal came during the undo


@pytest.mark.parametrize("signum", STOPS, ids=lambda s: signal.Signals(s).name)
@pytest.mark.parametrize(
    "argv", [["promote", "--to", "production"], ["rollback"]], ids=["promote", "rollback"]
)
def test_a_stop_signal_ends_the_command_with_128_plus_its_number(
    monkeypatch, capsys, recorded_stop_signals, signum, argv
):
    import mlflow

    from gatekeeper.__main__ import main

    world = SignalledWorld(signum, "image put production", after=True)
    monkeypatch.setattr(mlflow, "set_tracking_uri", lambda uri: None)
    monkeypatch.setattr(mlflow, "MlflowClient", lambda: world)
    monkeypatch.setattr(lifecycle, "_image_registry", lambda c: world)
    before = world.state("production")
    assert main(argv) == 128 + signum
    assert world.sent == 1 and world.state("production") == before
    name = signal.Signals(signum).name
    assert f"gatekeeper: stopped by {name}" in capsys.readouterr().err


def test_an_ignored_stop_signal_stays_ignored():
    """Under nohup SIGHUP is ignored: a move must not start taking it."""
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with interrupts.StopSignals():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGHUP)
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)
