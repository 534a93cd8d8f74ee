"""Self-check of the tour: every answer agrees with two independent sources."""

import json

from labctl.book.runner import criterion, skipped

# Some criteria read the image registry: the round trip runs this exercise in docker mode.
READS_IMAGES = True


def criteria(lab):
    a = lab.answers("ex1")
    facts: dict = {}

    def version():
        facts["version"] = lab.aliases()["production"]
        served = lab.served("production")["version"]
        answered = str(a.get("production_version", ""))
        return {"version": answered} if answered == facts["version"] == served else False

    yield criterion(
        "production_version is the version @production names and the server serves",
        version,
        "Models → lab-classifier: the version with the production alias",
    )

    def run_id():
        mv = lab.version(facts["version"])
        facts["mv"] = mv
        served = lab.served("production")["run_id"]
        return a.get("production_run_id") == mv["run_id"] == served

    yield criterion(
        "production_run_id is the run that made that version",
        run_id,
        "the version's page names its source run",
    )

    def accuracy():
        tag = float(facts["mv"]["tags"]["gate.measured.accuracy"])
        run = facts["mv"]["run_id"]
        report = json.loads(lab.artifact(run, "gate/gate_report.json"))
        measured = report["measured"]["accuracy"]
        answered = float(a.get("production_accuracy", -1))
        return abs(answered - round(tag, 3)) < 5e-4 and abs(tag - measured) < 1e-6

    yield criterion(
        "production_accuracy is the gate's own measurement (3 decimals)",
        accuracy,
        "the version's tag gate.measured.accuracy, also in gate/gate_report.json of the run",
    )

    def grid():
        run = lab.run(facts["mv"]["run_id"])
        children = lab.child_runs(facts["mv"]["run_id"])
        ok = (
            a.get("best_family") == run["params"]["best_family"]
            and int(a.get("n_child_runs", -1)) == len(children)
            and len(children) > 0
        )
        return (
            {"best_family": run["params"]["best_family"], "children": len(children)}
            if ok
            else False
        )

    yield criterion(
        "best_family and n_child_runs describe that run's grid",
        grid,
        "the run's parameters (best_family) and the runs nested under it",
    )
    if not lab.docker:
        reason = "local mode has no image registry"
        yield skipped("production_image_sha names production's image", reason)
        yield skipped("larger_image names the larger image", reason)
        return

    def image():
        sha = str(a.get("production_image_sha", ""))
        production = lab.digest("serving", "production")
        return (
            {"digest": production}
            if production
            and sha == facts["mv"]["tags"]["git_sha"]
            and production == lab.digest("serving", sha)
            else False
        )

    yield criterion(
        "production_image_sha names production's image (same digest as serving:production)",
        image,
        "HEAD the manifests of serving:production and serving:<sha> and compare the digests",
    )

    def larger():
        sha = facts["mv"]["tags"]["git_sha"]
        sizes = {repo: lab.image_size(repo, sha) for repo in ("serving", "training")}
        if None in sizes.values():
            return False
        return a.get("larger_image") == max(sizes, key=sizes.get)

    yield criterion(
        "larger_image names the larger of the serving and training images",
        larger,
        "docker image ls 127.0.0.1:5100/mlops-lab/*",
    )
