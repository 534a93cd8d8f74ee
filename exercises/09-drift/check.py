"""Self-check of drift-triggered retraining: a drift check that found drift on production,
a production version trained on the shifted window after it, and a check on that version
that found none."""

from labctl.book.runner import criterion


def _ms(iso: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def criteria(lab):
    facts: dict = {}

    def drift_found():
        checks = lab.drift_checks()
        facts["checks"] = checks
        for c in checks:
            if c.get("verdict") != "drift":
                continue
            at = lab.version(c["version"])["tags"].get("promoted.production.at")
            if at and _ms(at) <= c["start"]:
                facts["r1"] = c
                return {"version": c["version"], "drifted": c.get("drifted_features")}
        return False

    yield criterion(
        "a drift check found drift on the version production served",
        drift_found,
        'make traffic SHIFT="petal length (cm)=+1.5" TRAFFIC_ROWS=1000, then make drift',
    )

    def retrained():
        for mv in reversed(lab.versions()):  # oldest first: the first retrain after R1
            t = mv["tags"]
            at = t.get("promoted.production.at")
            if (
                t.get("train_shift")
                and t.get("gate.verdict") in ("passed", "revoked")
                and at
                and _ms(at) > facts["r1"]["start"]
            ):
                facts.setdefault("w", []).append(mv["version"])
        if not facts.get("w"):
            return False
        return {"versions": facts["w"]}

    yield criterion(
        "a version trained on the shifted window went to production after that check",
        retrained,
        "make retrain-on-drift SHIFT=... retrains only on drift, with TRAIN_SHIFT",
    )

    def alarm_gone():
        for c in facts["checks"]:
            if c.get("verdict") != "no drift" or c.get("version") not in facts["w"]:
                continue
            at = lab.version(c["version"])["tags"]["promoted.production.at"]
            if c["start"] > _ms(at):
                facts["r2"] = c
                return {"version": c["version"]}
        return False

    yield criterion(
        "a later check on that version found no drift in the same shifted traffic",
        alarm_gone,
        "send the shifted traffic again and make drift: the new reference includes the shift",
    )

    def still_there():
        production = lab.aliases().get("production", "0")
        ok = int(production) >= int(facts["r2"]["version"])
        return {"production": production} if ok else False

    yield criterion(
        "@production is that version or a later one",
        still_there,
        "a rollback took production back before the retrained version",
    )
