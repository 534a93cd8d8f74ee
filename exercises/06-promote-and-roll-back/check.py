"""Self-check of promotion and rollback: a version went through staging, the latency gate
and production, was rolled back and revoked, and production is back where it was."""

from labctl.book.runner import criterion, skipped

# Some criteria read the image registry.
READS_IMAGES = True
# serving:production == serving:<sha> is read as exercise 12 reads serving:staging, whose
# docker round trip takes it (and the e2e suite rolls back in docker mode): this one's
# round trip runs in local mode.
DOCKER_ROUND_TRIP = False


def criteria(lab):
    facts: dict = {}

    def rolled_back():
        for mv in lab.versions():
            t = mv["tags"]
            if (
                t.get("gate.verdict") == "revoked"
                and t.get("promoted.production.load_gate") == "passed"
                and t.get("load.verdict") == "passed"
                and t.get("load.alias") == "staging"
                and t.get("rolled_back.at", "") > t.get("promoted.production.at", "~")
            ):
                facts.update(version=mv["version"], previous=t["promoted.production.previous"])
                return {"version": mv["version"], "rolled_back_at": t["rolled_back.at"]}
        return False

    yield criterion(
        "a version passed the latency gate on staging, went to production and was rolled back",
        rolled_back,
        "make load before make promote TO=production, then make rollback",
    )

    def back():
        aliases = lab.aliases()
        production = aliases["production"]
        ok = (
            production == facts["previous"]
            and lab.served_settled("production", production)["version"] == production
            and facts["version"] not in (aliases.get("staging"), production)
        )
        return {"production": production} if ok else False

    yield criterion(
        "production serves the version it had before, and staging left the revoked one",
        back,
        "make rollback points @production at promoted.production.previous",
    )
    if not lab.docker:
        yield skipped("serving:production is the image of production's commit", "local mode")
        return

    def image():
        sha = lab.version(lab.aliases()["production"])["tags"]["git_sha"]
        tagged = lab.digest("serving", "production")
        return {"digest": tagged} if tagged and tagged == lab.digest("serving", sha) else False

    yield criterion(
        "serving:production is the image of production's commit",
        image,
        "rollback retags the image with the alias",
    )
