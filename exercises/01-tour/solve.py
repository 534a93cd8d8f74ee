"""The tour's solution: the answers, read from the lab the way the README describes."""

from labctl.book import answers


def solve(lab):
    version = lab.aliases()["production"]
    mv = lab.version(version)
    run = lab.run(mv["run_id"])
    values = {
        "production_version": version,
        "production_run_id": mv["run_id"],
        "production_accuracy": round(float(mv["tags"]["gate.measured.accuracy"]), 3),
        "best_family": run["params"]["best_family"],
        "n_child_runs": len(lab.child_runs(mv["run_id"])),
    }
    if lab.docker:
        sha = mv["tags"]["git_sha"]
        values["production_image_sha"] = sha
        sizes = {repo: lab.image_size(repo, sha) or 0 for repo in ("serving", "training")}
        values["larger_image"] = max(sizes, key=sizes.get)
    answers.update(lab.root, "ex1", values)
    for key, value in values.items():
        print(f"  {key} = {value!r}")
