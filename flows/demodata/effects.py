"""The planted effects of the demo data: every parameter in one frozen dataclass.

Why a single place: the generator (`world.py`) draws from these models, the docs
describe them (`describe()`), and tests and challenge packs check that analyses of the
generated data recover them. Every model is an explicit logistic (or ordered-logit)
model on centred predictors, so a regression with the same terms recovers the slopes:

- ``income_c = inkomen_decile - 5.5`` (parents' household income decile, 1..10)
- ``ses_c = wijk_ses_tertiel - 2`` (tertile of the wijk's mean income, 1..3)
- ``score_c = (eindtoets_score - 535) / 10``

Logit coefficients are log-odds per unit of the centred predictor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flows.pipeline.schemas import MIGRATIEACHTERGROND

ADVICE_ORDER = ("pro", "vmbo-b/k", "vmbo-gt", "vmbo-gt/havo", "havo", "havo/vwo", "vwo")
"""The 7 ordered schooladvies categories, lowest first (as in the analysis table)."""

HAVO_OR_HIGHER = ("havo", "havo/vwo", "vwo")
"""Advice categories counted as 'havo or higher' (latent above `advice_cuts[3]`)."""

VOOROPLEIDING = ("vmbo-b", "vmbo-k", "vmbo-gt", "havo", "vwo", "pro", "geen diploma")
MIGRATION = MIGRATIEACHTERGROND  # the readers' vocabulary: the generator writes what they accept


def _d(**kw: float) -> dict[str, float]:
    return field(default_factory=lambda: dict(kw))


@dataclass(frozen=True)
class Effects:
    """Every planted-effect parameter of the demo generator (defaults = the demo world)."""

    # --- groep 8: eindtoets score -------------------------------------------------------
    score_mean: float = 535.0
    """Mean eindtoets score at income decile 5.5 and SES tertile 2 (before clipping to 501..550)."""
    score_sd: float = 8.0
    """Residual standard deviation of the score (normal), in score points."""
    score_income: float = 0.9
    """Score points per income decile: richer parents, higher test scores."""
    score_ses: float = 1.5
    """Score points per wijk SES tertile: the neighbourhood adds beyond income."""

    # --- groep 8: schooladvies, ordered logit --------------------------------------------
    advice_score: float = 2.0
    """Advice latent per 10 score points (score_c): the test is the main driver of advice."""
    advice_income: float = 0.09
    """Advice latent per income decile AT EQUAL SCORE: the advice gap (advieskloof)."""
    advice_ses: float = 0.30
    """Advice latent per wijk SES tertile at equal score and income."""
    advice_cuts: tuple[float, ...] = (-4.8, -2.0, -0.6, 0.1, 1.2, 2.0)
    """Cut points on the latent (+ standard logistic noise) between the 7 ADVICE_ORDER
    categories; advice k when cut[k-1] < latent <= cut[k]. P(havo or higher) is
    logistic(latent_mean - cut[3])."""

    # --- vo ------------------------------------------------------------------------------
    vo_dropout_intercept: float = -3.3
    """Log-odds of leaving vo early without a diploma (a vsv event); income 5.5, SES 2, havo/vwo."""
    vo_dropout_ses: float = -0.40
    """Per SES tertile: lower-SES wijken lose more pupils (lowest/highest vsv ratio ~2)."""
    vo_dropout_income: float = -0.06
    """Per income decile."""
    vo_dropout_vmbo: float = 0.5
    """Extra log-odds for pupils in a vmbo/pro track."""
    vo_exam_fail: float = 0.08
    """Share of final-year vo pupils who fail the diploma (then 60% go to mbo anyway)."""

    # --- mbo first year: dropout (uitval) and switch --------------------------------------
    uitval_intercept: float = -2.3
    """Log-odds of leaving mbo without a diploma in year 1 (vmbo-gt prior, SES 2, BOL, mbo-4)."""
    uitval_vooropleiding: dict[str, float] = _d(  # noqa: RUF009
        **{
            "vmbo-b": 0.35,
            "vmbo-k": 0.2,
            "vmbo-gt": 0.0,
            "havo": -0.2,
            "vwo": -0.3,
            "pro": 0.6,
            "geen diploma": 1.0,
        }
    )
    """Log-odds shift by prior education: 'geen diploma' drops out far more often."""
    uitval_ses: float = -0.25
    """Per SES tertile."""
    uitval_bbl: float = 0.35
    """BBL (work-based) vs BOL."""
    uitval_level: dict[str, float] = _d(**{"mbo-1": 0.5, "mbo-2": 0.3, "mbo-3": 0.1, "mbo-4": 0})  # noqa: RUF009
    """Log-odds shift by mbo level."""
    switch_intercept: float = -2.4
    """Log-odds of switching programme in year 1 (among those who do not drop out)."""
    switch_vooropleiding: dict[str, float] = _d(  # noqa: RUF009
        **{
            "vmbo-b": 0.2,
            "vmbo-k": 0.1,
            "vmbo-gt": 0.0,
            "havo": 0.3,
            "vwo": 0.3,
            "pro": 0.2,
            "geen diploma": 0.5,
        }
    )
    """Log-odds shift of switching by prior education."""
    switch_ses: float = -0.15
    """Per SES tertile."""
    switch_bbl: float = -0.3
    """BBL pupils switch less (they hold a job contract)."""
    mbo_later_dropout: float = 0.08
    """Probability of leaving without a diploma after year 1."""

    # --- after mbo --------------------------------------------------------------------
    move_out_intercept: float = -1.6
    """Log-odds that an mbo graduate moves out of the municipality (then missing from tracking)."""
    move_out_migration: dict[str, float] = _d(  # noqa: RUF009
        **{
            "Nederland": 0.0,
            "Europa (exclusief Nederland)": 0.9,
            "Turkije": -0.4,
            "Marokko": -0.4,
            "Suriname": 0.3,
            "Nederlandse Cariben": 0.8,
            "Overig buiten Europa": 0.6,
        }
    )
    """Log-odds shift of moving out by migration background."""
    hbo_intercept: float = -0.4
    """Log-odds that an mbo-4 graduate who stays goes on to hbo (income 5.5, Nederland)."""
    hbo_income: float = 0.12
    """Per parental income decile."""
    hbo_migration: dict[str, float] = _d(  # noqa: RUF009
        **{
            "Nederland": 0.0,
            "Europa (exclusief Nederland)": -0.2,
            "Turkije": 0.3,
            "Marokko": 0.3,
            "Suriname": 0.2,
            "Nederlandse Cariben": -0.3,
            "Overig buiten Europa": 0.1,
        }
    )
    """Log-odds shift of transferring to hbo by migration background."""
    mbo_vervolg: float = 0.35
    """Probability that an mbo-1..3 graduate who stays continues at the next mbo level."""

    def advice_latent_mean(self, score: float, decile: float, tertile: float) -> float:
        """Mean of the advice latent (the logistic noise is added on top)."""
        return (
            self.advice_score * (score - 535) / 10
            + self.advice_income * (decile - 5.5)
            + self.advice_ses * (tertile - 2)
        )


EFFECTS = Effects()


def describe(effects: Effects = EFFECTS) -> str:
    """The planted effects in words (Markdown bullets), for docs and challenge briefs."""
    import math

    def p(x: float) -> float:
        return 1 / (1 + math.exp(-x))

    e = effects
    cut = e.advice_cuts[3]
    low = p(e.advice_latent_mean(535, 1.5, 2) - cut)
    high = p(e.advice_latent_mean(535, 9.5, 2) - cut)
    ses_low = p(e.advice_latent_mean(535, 5.5, 1) - cut)
    ses_high = p(e.advice_latent_mean(535, 5.5, 3) - cut)
    vsv_low = p(e.vo_dropout_intercept - e.vo_dropout_ses)
    vsv_high = p(e.vo_dropout_intercept + e.vo_dropout_ses)
    return "\n".join(
        [
            f"- Advice gap: at an equal eindtoets score of 535, {high:.0%} of pupils from the top "
            f"income quintile get havo-or-higher advice vs {low:.0%} from the bottom quintile "
            f"(ordered logit: {e.advice_score} per 10 score points, {e.advice_income} per income "
            f"decile, {e.advice_ses} per wijk SES tertile).",
            f"- Neighbourhood beyond income: at equal score and income, {ses_high:.0%} (highest "
            f"SES tertile) vs {ses_low:.0%} (lowest) havo-or-higher advice; the score itself rises "
            f"{e.score_income} points per income decile and {e.score_ses} per SES tertile.",
            f"- Early school leaving: leaving vo early is {vsv_low / vsv_high:.1f}x as likely in "
            f"the lowest as in the highest wijk-SES tertile (logit {e.vo_dropout_ses} per tertile,"
            f" {e.vo_dropout_income} per income decile).",
            f"- First-year mbo dropout: log-odds +{e.uitval_vooropleiding['geen diploma']} without "
            f"a prior diploma, +{e.uitval_bbl} for BBL, {e.uitval_ses} per SES tertile, "
            f"+{e.uitval_level['mbo-1']} at mbo-1.",
            f"- After mbo: mbo-4 graduates go to hbo with {e.hbo_income} log-odds per income decile"
            f" (+{e.hbo_migration['Marokko']} Moroccan/Turkish background); graduates with a "
            f"European background move out (missing from tracking) with log-odds "
            f"+{e.move_out_migration['Europa (exclusief Nederland)']}.",
        ]
    )
