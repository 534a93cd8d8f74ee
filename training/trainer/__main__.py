"""`python -m trainer`: the one-shot training job. Exit 0 on success, 1 on bad data, 2 otherwise."""

from __future__ import annotations

import logging
import sys

from trainer.config import ConfigError, TrainConfig
from trainer.data import DataValidationError
from trainer.shift import ShiftError


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("mlflow", "urllib3", "botocore", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        cfg = TrainConfig.from_env()
    except ConfigError as exc:
        print(f"training: configuration error: {exc}", file=sys.stderr)
        return 2
    from trainer.train import run  # heavy imports only once the config is sound

    try:
        result = run(cfg)
    except DataValidationError as exc:
        print(f"training: data validation failed: {exc}", file=sys.stderr)
        return 1
    except ShiftError as exc:
        print(f"training: configuration error: TRAIN_SHIFT: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # one line for the operator; the traceback helps nobody here
        print(f"training: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    m = result.metrics
    print(
        f"training: registered {cfg.model_name} version {result.version} as "
        f"@{cfg.candidate_alias} ({result.params['family']}, accuracy={m['accuracy']:.3f}, "
        f"f1_macro={m['f1_macro']:.3f}, run {result.run_id})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
