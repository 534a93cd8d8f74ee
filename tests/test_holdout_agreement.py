"""Training and the gate agree on the held-out rows (the packages share no code)."""

import pytest

from gatekeeper import holdout
from trainer import data


@pytest.mark.parametrize("name", holdout.DATASETS)
def test_training_leaves_out_exactly_the_rows_the_gate_measures_on(name):
    full = data.load(name)
    assert data.holdout_mask(name, len(full.y)).tolist() == (
        holdout.holdout_mask(name, len(full.y)).tolist()
    )
    assert data.HOLDOUT_FRACTION == holdout.HOLDOUT_FRACTION
