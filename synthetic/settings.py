"""Twin settings as a plain dataclass: the flows map event.yaml's `twin:` block onto it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from synthetic.errors import TwinError

SYNTHESIZERS = ("cart", "gaussian_copula", "ctgan", "tvae")

# cart's leaf floor when event.yaml leaves it to hackgap (`min_leaf: auto`), by the pupils in
# the linked table. Measured (docs/scale.md): on the demo's 44,424 pupils 10 passes every gate
# check and 20 misses a challenge statistic by 0.002; on 380,671 pupils (2,000,000 persons)
# 10 misses disclosure protection by 0.001 and 20 passes every check, as it does on 189,977
# (1,000,000 persons). Larger tables repeat the quasi-identifiers' associations more closely,
# so above the limit the coarser floor is the safe one.
LEAF_FLOOR_SMALL, LEAF_FLOOR_LARGE, LEAF_FLOOR_LIMIT = 10, 20, 100_000


def leaf_floor(pupils: int) -> int:
    """The automatic leaf floor for a linked table of `pupils` rows."""
    return LEAF_FLOOR_SMALL if pupils <= LEAF_FLOOR_LIMIT else LEAF_FLOOR_LARGE


@dataclass(frozen=True)
class Thresholds:
    """Release-gate thresholds; the defaults are the safe ones from event.yaml."""

    min_quality: float = 0.80
    max_identical_share: float = 0.15
    dcr_overfitting_min: float = 0.9
    disclosure_protection_min: float = 0.5
    k_anonymity: int = 5
    rare_category_min: int = 10
    max_attack_risk: float = 0.09

    def __post_init__(self) -> None:
        for name in (
            "min_quality",
            "max_identical_share",
            "dcr_overfitting_min",
            "disclosure_protection_min",
            "max_attack_risk",
        ):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise TwinError(f"twin.thresholds.{name}: {value} is outside 0..1; set it in 0..1.")
        if self.k_anonymity < 2:
            raise TwinError("twin.thresholds.k_anonymity: must be at least 2; set it to 5.")
        if self.rare_category_min < 1:
            raise TwinError("twin.thresholds.rare_category_min: must be at least 1; set it to 10.")


@dataclass(frozen=True)
class TwinSettings:
    """How to make and check one twin.

    `stratify_by` fits one synthesizer per stratum of these columns (ordinals cut into
    `stratum_bins` groups) so gradients across them survive; `area_attributes` are public
    area figures re-attached from the area code after sampling (they are functions of the
    area, so sampling them would only break that); `hierarchies` are kept as fixed
    combinations (sdv.cag.FixedCombinations; cart draws a child within its parent).

    cart (synthetic/cart.py): `visit_first` columns are synthesised first (the conditioning
    variables; wijk first so its SES figures condition everything after it), the rest in
    schema order, `visit_last` at the end (many-valued identifiers and noise, drawn given
    everything but predicting nothing); every tree leaf holds at least `min_leaf` real rows
    (None: `leaf_floor` of the table's size, fixed by `sized` before anything is fitted);
    `max_depth` caps the trees (None: grown until leaves reach `min_leaf`, as synthpop does);
    `fit_within` and `max_classes` keep a many-valued column's trees linear in the rows.
    """

    synthesizer: str = "cart"
    seed: int = 20261126
    epochs: int = 300
    distribution: str = "beta"
    rows: int | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    min_leaf: int | None = None
    max_depth: int | None = None
    visit_first: tuple[str, ...] = ("wijk_code", "inkomen_decile", "migratieachtergrond")
    visit_last: tuple[str, ...] = ("vsv", "geboortemaand", "po_brin", "buurt_code")
    stratify_by: tuple[str, ...] = (
        "present:schooladvies",
        "present:mbo_niveau",
        "inkomen_decile",
        "wijk_ses_tertiel",
    )
    stratum_bins: int = 3
    stratum_min_rows: int = 300
    hierarchies: tuple[tuple[str, ...], ...] = (("wijk_code", "buurt_code"),)
    # cart: (column, parent) fitted with one tree per parent value, keeping its place in the
    # visit order: a school within the pupil's wijk. Its trees see the wijk's schools only,
    # so their cost grows with the rows, not rows x every school of the municipality.
    fit_within: tuple[tuple[str, str], ...] = (("po_brin", "wijk_code"),)
    # cart: a tree keeps at most this many classes of its own; rarer ones are pooled and drawn
    # from the pooled donors of the leaf (synthetic/cart.py); 0 keeps every class
    max_classes: int = 20
    area_attributes: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("buurt_code", ("buurt_pct_laag_inkomen",)),
        ("wijk_code", ("wijk_gem_inkomen", "wijk_ses_tertiel")),
    )
    coarsen: tuple[tuple[str, str], ...] = (("buurt_code", "wijk_code"),)
    quasi_identifiers: tuple[str, ...] = ("geboortejaar", "geslacht", "buurt_code", "po_brin")
    holdout_rows: int = 5_000
    eval_rows: int = 5_000
    dcr_rows: int = 2_000
    disclosure_rows: int = 5_000
    # anonymeter (synthetic/attacks.py): fixed attack counts and seed keep the gate
    # deterministic; an attack whose interval spans max_attack_risk is run again with more
    # attacks, up to attack_count_max (and the holdout's size); linkability joins the two
    # groups of quasi-identifiers through the twin
    attack_count: int = 500
    attack_count_max: int = 5_000
    attack_columns: int = 3
    link_groups: tuple[tuple[str, ...], tuple[str, ...]] = (
        ("geboortejaar", "geboortemaand", "geslacht"),
        ("buurt_code", "wijk_code", "po_brin"),
    )

    def __post_init__(self) -> None:
        if self.synthesizer not in SYNTHESIZERS:
            hint = (
                " (hma needs more than one table; the analysis table is one table)"
                if self.synthesizer == "hma"
                else ""
            )
            raise TwinError(
                f"twin.synthesizer: '{self.synthesizer}' is not available{hint}; "
                f"use one of {', '.join(SYNTHESIZERS)}."
            )
        if self.epochs < 1:
            raise TwinError("twin.epochs: must be at least 1; set it to e.g. 300.")
        if self.min_leaf is not None and self.min_leaf < 5:
            raise TwinError(
                "twin.min_leaf: must be at least 5 (each value is drawn from that many real "
                "people); set it to 10."
            )
        if self.max_classes == 1 or self.max_classes < 0:
            raise TwinError("twin.max_classes: must be 0 (no cap) or at least 2; set it to 20.")
        if self.max_depth is not None and self.max_depth < 1:
            raise TwinError("twin.max_depth: must be at least 1; leave it out for no cap.")
        if self.rows is not None and self.rows < 1:
            raise TwinError("twin.rows: must be at least 1; leave it out to match the real table.")

    def sized(self, pupils: int) -> TwinSettings:
        """These settings for a linked table of `pupils` rows: an unset leaf floor fixed by
        `leaf_floor`, so the fit, the gate's remedy and the codebook all name the same one."""
        if self.min_leaf is not None:
            return self
        return replace(self, min_leaf=leaf_floor(pupils))
