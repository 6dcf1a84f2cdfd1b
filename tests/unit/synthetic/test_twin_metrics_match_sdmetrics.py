"""Our vectorised privacy metrics give SDMetrics' own numbers (they run at full size)."""

from __future__ import annotations

import numpy as np
from sdmetrics.single_table import DisclosureProtection
from sdmetrics.single_table.privacy.dcr_utils import calculate_dcr

from synthetic.privacy import _as_metric_frame, cap_disclosure, closest_distances


def test_cap_disclosure_equals_sdmetrics(table_maker):
    cols = ["geboortejaar", "geslacht", "wijk_code", "migratieachtergrond"]
    sdt = {c: "categorical" for c in cols} | {"geboortejaar": "numerical"}
    real = _as_metric_frame(table_maker(400, 1)[cols], sdt)
    twin = _as_metric_frame(table_maker(400, 2)[cols], sdt)
    known = cols[:3]
    ours = cap_disclosure(real, twin, known, "migratieachtergrond", ["geboortejaar"])
    theirs = DisclosureProtection.compute(
        real, twin, known_column_names=known, sensitive_column_names=["migratieachtergrond"],
        continuous_column_names=["geboortejaar"],
    )  # fmt: skip
    assert ours == theirs


def test_closest_distances_equal_sdmetrics_dcr(table_maker):
    cols = ["geboortejaar", "eindtoets_score", "geslacht", "schooladvies", "mbo_niveau", "vsv"]
    sdt = {c: ("numerical" if c in cols[:2] else "categorical") for c in cols}
    a = _as_metric_frame(table_maker(300, 1)[cols], sdt)
    b = _as_metric_frame(table_maker(250, 2)[cols], sdt)
    a.loc[:20, "eindtoets_score"] = np.nan
    ours = closest_distances(a, b, sdt)
    theirs = calculate_dcr(a, b, {"columns": {c: {"sdtype": t} for c, t in sdt.items()}})
    assert np.allclose(ours, theirs.to_numpy())
