"""Self-check of the warm-up: the lab is up and consistent, its secrets are not in git."""

from labctl.book.runner import criterion, skipped

IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


# Some criteria read the image registry: the round trip runs this exercise in docker mode.
READS_IMAGES = True


def criteria(lab):
    aliases = {}

    def three_aliases():
        aliases.update(lab.aliases())
        return (
            {"aliases": aliases}
            if {"candidate", "staging", "production"} <= set(aliases)
            else False
        )

    yield criterion(
        "the registered model has @candidate, @staging and @production",
        three_aliases,
        "make up bootstraps them; make status shows them",
    )
    for alias in ("staging", "production"):
        yield criterion(
            f"the {alias} server serves the version @{alias} names",
            lambda alias=alias: (
                {"served": aliases[alias]}
                if lab.served_settled(alias, aliases.get(alias))["version"] == aliases.get(alias)
                else False
            ),
            f"the server polls the registry: wait a few seconds, then make smoke ALIAS={alias}",
        )

    def predicts():
        r = lab.predict("production", [IRIS_ROW])
        body = r.json()
        ok = r.status == 200 and str(body["model_version"]) == aliases.get("production")
        return {"answer": body} if ok else False

    yield criterion("production answers a prediction from the @production version", predicts)
    if lab.docker:

        def image_matches():
            sha = lab.version(aliases["production"])["tags"]["git_sha"]
            by_tag, by_sha = lab.digest("serving", "production"), lab.digest("serving", sha)
            return {"digest": by_tag, "git_sha": sha} if by_tag and by_tag == by_sha else False

        yield criterion(
            "the registry's serving:production is the image built from production's commit",
            image_matches,
            "make status shows the git sha; the registry answers HEAD with the digest",
        )
    else:
        yield skipped("the registry's serving images", "local mode has no image registry")

    def env_untracked():
        tracked = lab.git("ls-files", "--error-unmatch", ".env").returncode == 0
        secret = lab.s.get("MLFLOW_ADMIN_PASSWORD")
        return (not tracked) and len(secret) >= 16

    yield criterion(
        ".env is not tracked by git and holds the secrets make up generated",
        env_untracked,
        "never commit .env: git rm --cached .env",
    )
    yield criterion(
        "answers.toml has your name",
        lambda: bool(str(lab.answers().get("name", "")).strip()),
        'create answers.toml at the repository root with a line: name = "Ada"',
    )
