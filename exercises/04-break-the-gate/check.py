"""Self-check of breaking the gate: three failed versions, each for its own reason, and
nothing that serves moved."""

import json

from labctl.book.runner import criterion


def criteria(lab):
    versions = []

    def failed_for(reason, test):
        def find():
            if not versions:
                versions.extend(lab.versions())
            for mv in versions:
                tags = mv["tags"]
                if tags.get("gate.verdict") != "failed":
                    continue
                failed = set(tags.get("gate.failed_checks", "").split(","))
                params = lab.run(mv["run_id"])["params"]
                if test(failed, params, tags):
                    promoted = [k for k in tags if k.startswith("promoted.")]
                    if promoted:
                        continue  # a failed version that moved is no evidence
                    return {"version": mv["version"], "failed_checks": sorted(failed)}
            return False

        return find

    yield criterion(
        "a version trained with LABEL_NOISE >= 0.4 failed the gate on accuracy",
        failed_for(
            "noise",
            lambda failed, params, tags: (
                float(params.get("label_noise", 0)) >= 0.4 and "accuracy" in failed
            ),
        ),
        "make train LABEL_NOISE=0.4 && make gate",
    )
    yield criterion(
        "a version trained on another dataset failed schema_compatible",
        failed_for(
            "schema",
            lambda failed, params, tags: (
                params.get("dataset") not in (None, "iris") and "schema_compatible" in failed
            ),
        ),
        "make train TRAIN_DATASET=wine && make gate",
    )
    yield criterion(
        "a clean version failed only on p99_latency_ms, under GATE_MAX_P99_LATENCY_MS < 0.01",
        failed_for(
            "threshold",
            lambda failed, params, tags: (
                float(params.get("label_noise", 0)) == 0
                and params.get("dataset") == "iris"
                and failed == {"p99_latency_ms"}
                and json.loads(tags.get("gate.thresholds", "{}")).get("max_p99_latency_ms", 1)
                < 0.01
            ),
        ),
        "make train && make gate GATE_MAX_P99_LATENCY_MS=0.001",
    )

    def nothing_moved():
        aliases = lab.aliases()
        out = {}
        for alias in ("staging", "production"):
            version = aliases[alias]
            if lab.version(version)["tags"].get("gate.verdict") != "passed":
                return False
            if lab.served_settled(alias, version)["version"] != version:
                return False
            out[alias] = version
        return out

    yield criterion(
        "staging and production still serve versions that passed the gate",
        nothing_moved,
        "a failed gate moves nothing: if an alias moved, a passed version was promoted",
    )
