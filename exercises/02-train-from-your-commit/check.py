"""Self-check of training from your own commit: the version, the commit and the grid tell
the same story, and (docker mode) the commit's images exist."""

import re

from labctl.book.runner import criterion, skipped

# Some criteria read the image registry: the round trip runs this exercise in docker mode.
READS_IMAGES = True

TRAIN_PY = "training/trainer/train.py"
START_GRID = {0.1, 1.0, 10.0}


def _number(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def criteria(lab):
    a = lab.answers("ex2")
    found: dict = {}

    def new_grid():
        """The newest version trained from a clean commit that changed train.py, whose
        grid runs have logistic regression C values other than the start's."""
        for mv in lab.versions():
            sha = mv["tags"].get("git_sha", "")
            if mv["version"] == "1" or not lab.clean_commit(sha):
                continue
            if not lab.changed_since_start(sha, TRAIN_PY):
                continue
            cs = {
                _number(c["params"].get("C"))
                for c in lab.child_runs(mv["run_id"])
                if c["params"].get("family") == "logreg"
            }
            cs.discard(None)
            if len(cs) >= 3 and cs != START_GRID:
                found.update(version=mv["version"], sha=sha, cs=sorted(cs), mv=mv)
                return {"version": mv["version"], "git_sha": sha, "C": sorted(cs)}
        return False

    yield criterion(
        "a version trained from your commit has a new logistic-regression grid",
        new_grid,
        "change the C values in candidates(), git commit, then make train "
        "(a -dirty sha is refused: commit first)",
    )

    def grid_is_in_the_commit():
        code = lab.show(found["sha"], TRAIN_PY)
        numbers = {float(n) for n in re.findall(r"\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", code)}
        missing = [c for c in found["cs"] if c not in numbers]
        return {"git_sha": found["sha"]} if code and not missing else False

    yield criterion(
        "every C of the recorded grid is in that commit's train.py",
        grid_is_in_the_commit,
        "the grid MLflow recorded must come from the code of the commit the version names",
    )

    if lab.docker:

        def images():
            tags = {repo: lab.digest(repo, found["sha"]) for repo in ("training", "serving")}
            return tags if all(tags.values()) else False

        yield criterion(
            "the registry holds training:<sha> and serving:<sha> of that commit",
            images,
            "make train builds and pushes the commit's images first; make build does it alone",
        )
    else:
        yield skipped("the registry holds the commit's images", "local mode has no registry")

    yield criterion(
        "new_version is that version",
        lambda: str(a["new_version"]) == found["version"],
        "the version number on its page in MLflow (or make status)",
    )

    def same_data():
        first = lab.version("1")["tags"].get("dataset_fingerprint")
        ours = found["mv"]["tags"].get("dataset_fingerprint")
        return bool(first and ours) and a["same_data"] is (first == ours)

    yield criterion(
        "same_data says whether its dataset fingerprint is version 1's",
        same_data,
        "compare the dataset_fingerprint tags of the two versions (true or false)",
    )

    def winner():
        params = lab.run(found["mv"]["run_id"])["params"]
        family, *pairs = str(a["winner"]).split()
        said = dict(p.split("=", 1) for p in pairs)
        best = {k[len("best_") :]: v for k, v in params.items() if k.startswith("best_")}
        best.pop("family", None)
        if family != params.get("best_family") or set(said) != set(best):
            return False
        for key, value in said.items():
            if value != best[key] and _number(value) != _number(best[key]):
                return False
        return {"winner": str(a["winner"])}

    yield criterion(
        "winner names the family and parameters the run picked",
        winner,
        'the run\'s best_family and best_* parameters, e.g. "logreg C=0.5"',
    )
