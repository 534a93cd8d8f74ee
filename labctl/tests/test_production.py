import pytest

from labctl import pipeline, production
from labctl.docker import DockerBackend
from labctl.errors import CommandFailed
from labctl.runner import Result


def test_the_state_round_trips_and_names_the_idle_colour(tmp_path):
    state = production.Production("blue", {"blue": {"version": "3", "tag": "abc123"}})
    production.save(tmp_path, state)
    loaded = production.load(tmp_path)
    assert loaded == state and loaded.idle == "green"
    assert loaded.env() == {
        "PRODUCTION_BLUE_VERSION": "3",
        "PRODUCTION_BLUE_TAG": "abc123",
        "PRODUCTION_GREEN_VERSION": "",
        "PRODUCTION_GREEN_TAG": "production",
    }


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '{"live": "red"}',
        '{"live": "blue", "colours": {"blue": {"version": "x", "tag": "a"}}}',
        '{"live": "blue", "colours": {"blue": {"version": "3", "tag": "a;rm"}}}',
    ],
)
def test_a_damaged_state_is_not_trusted(tmp_path, text):
    production.state_file(tmp_path).write_text(text)
    state = production.load(tmp_path)
    assert state is None or state.serving() is None


def test_the_upstream_file_names_one_colour(tmp_path):
    generation = production.write_upstream(tmp_path, "green")
    path = tmp_path / "proxy" / "upstream.conf"
    assert "server serving-green:8080" in path.read_text()
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert generation in (tmp_path / "proxy" / "generation.conf").read_text()
    assert production.write_upstream(tmp_path, "green") != generation
    with pytest.raises(ValueError):
        production.upstream_text("red")


class BlueGreen:
    """Records the steps of a production change; `fail` names the gatekeeper verb that fails."""

    mode = "docker"
    blue_green = True

    def __init__(self, settings, fail: str = "", alias_after_move: str = "4"):
        self.s, self.fail, self.steps = settings, fail, []
        self.alias_after_move = alias_after_move

    def gatekeeper(self, *args, capture=False):
        named = [a for a in args if a != "--check"][:2]
        self.steps.append(" ".join(named) + (" --check" if "--check" in args else ""))
        if args[0] == self.fail and "--check" not in args:
            raise CommandFailed(["gatekeeper", *args], 1)
        return Result(0, "version=5 git_sha=abc previous=4\n")

    def prepare_production(self, version, sha):
        self.steps.append(f"prepare {version} {sha}")
        return "http://serving-green:8080"

    def abort_production(self):
        self.steps.append("abort")

    def settle_production(self):
        self.steps.append("settle")

    def production_alias(self):
        return self.alias_after_move

    def switch_production(self):
        self.steps.append("switch")

    def ensure_version_image(self, version):
        pass

    def roll(self, alias):
        self.steps.append(f"roll {alias}")

    def server_url(self, alias):
        return f"http://{alias}"


def test_production_is_checked_on_the_idle_colour_before_the_alias_and_traffic_move(
    settings_for,
):
    b = BlueGreen(settings_for())
    pipeline.promote(b, "production")
    assert b.steps == [
        "settle",
        "promote --to --check",
        "prepare 5 abc",
        "smoke --url",
        "promote --to",
        "switch",
        "smoke --url",
    ]


def test_a_failed_smoke_on_the_idle_colour_leaves_production_as_it_was(settings_for):
    b = BlueGreen(settings_for(), fail="smoke")
    with pytest.raises(CommandFailed):
        pipeline.promote(b, "production")
    assert b.steps == ["settle", "promote --to --check", "prepare 5 abc", "smoke --url", "abort"]


def test_rollback_goes_through_the_idle_colour_too(settings_for):
    b = BlueGreen(settings_for())
    pipeline.rollback(b)
    assert b.steps[:6] == [
        "settle",
        "rollback --check",
        "prepare 5 abc",
        "smoke --url",
        "rollback",
        "switch",
    ]


def test_a_move_that_failed_after_moving_the_alias_is_switched_to(settings_for):
    """The gatekeeper's move exits non-zero (or is interrupted) after MLflow moved the
    alias: production follows the alias instead of staying apart from it."""
    b = BlueGreen(settings_for(), fail="promote", alias_after_move="5")
    with pytest.raises(CommandFailed):
        pipeline.promote(b, "production")
    assert b.steps[-2:] == ["promote --to", "switch"]
    b = BlueGreen(settings_for(), fail="promote", alias_after_move="4")
    with pytest.raises(CommandFailed):
        pipeline.promote(b, "production")
    assert b.steps[-2:] == ["promote --to", "abort"]


def test_production_moves_exactly_the_version_it_checked(settings_for):
    seen = []
    b = BlueGreen(settings_for())
    original = b.gatekeeper

    def gatekeeper(*args, capture=False):
        seen.append(args)
        return original(*args, capture=capture)

    b.gatekeeper = gatekeeper
    pipeline.promote(b, "production")
    move = next(a for a in seen if a[0] == "promote" and "--check" not in a)
    assert move[-2:] == ("--version", "5")


def test_a_chosen_version_is_checked_and_moved_once(settings_for):
    seen = []
    b = BlueGreen(settings_for())
    original = b.gatekeeper

    def gatekeeper(*args, capture=False):
        seen.append(args)
        return original(*args, capture=capture)

    b.gatekeeper = gatekeeper
    pipeline.promote(b, "production", version="5")
    promotes = [a for a in seen if a[0] == "promote"]
    assert [a.count("--version") for a in promotes] == [1, 1]
    assert promotes[0][-3:] == ("--version", "5", "--check")
    assert promotes[1][-2:] == ("--version", "5")


ALIAS_ROWS = [
    {"alias": "candidate", "version": "6", "git_sha": "sha6"},
    {"alias": "staging", "version": "5", "git_sha": "sha5"},
    {"alias": "production", "version": "4", "git_sha": "sha4"},
]
MATCHING = {"staging": "d5", "sha5": "d5", "production": "d4", "sha4": "d4"}


def _start_servers(settings_for, fake, monkeypatch, digests) -> None:
    """`make up` on a lab that has a production model, with a registry of `digests`."""
    b = DockerBackend(settings_for(), fake)
    monkeypatch.setattr(b, "registry_has", lambda repo, tag: True)
    monkeypatch.setattr(b, "registry_digest", lambda repo, tag: digests.get(tag))
    monkeypatch.setattr(b, "_reload_proxy", lambda live, backup=None: None)
    targets = {r["alias"]: (r["version"], r["git_sha"]) for r in ALIAS_ROWS}
    monkeypatch.setattr(b, "_alias_targets", lambda: targets)
    b.start_servers()


@pytest.mark.parametrize(("alias", "sha"), [("staging", "sha5"), ("production", "sha4")])
def test_make_up_warns_when_an_image_tag_is_not_the_image_of_its_alias_commit(
    settings_for, fake, monkeypatch, capsys, alias, sha
):
    _start_servers(settings_for, fake, monkeypatch, {**MATCHING, alias: "d-other"})
    err = capsys.readouterr().err
    expected = f"serving:{alias} (d-other) is not the image of @{alias}'s commit {sha}"
    assert f"{expected} ({MATCHING[sha]})" in err
    other = next(a for a in ("staging", "production") if a != alias)
    assert f"serving:{other} (" not in err


def test_make_up_does_not_warn_when_each_image_tag_is_its_alias_commits_image(
    settings_for, fake, monkeypatch, capsys
):
    _start_servers(settings_for, fake, monkeypatch, MATCHING)
    err = capsys.readouterr().err
    assert "is not the image" not in err
    assert fake.ran("up -d --wait serving-staging") and fake.ran("up -d --wait serving-blue")
