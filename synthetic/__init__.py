"""A fictional county's LEAD program: one extract per contract, plus the truth behind them.

The county runs LEAD in the precincts that ``transforms/evaluation.yaml`` does
not list as comparison precincts, during its program window. Four agencies see
the same true people, each through its own person numbers and its own spelling
of names, dates of birth and SSNs, so record linkage has real work to do.
Extracts land in ``inbox/<agency>/`` exactly as agencies would drop them; the
ground truth lands in ``answers/`` for tests and evaluation. The pipeline never
reads the answers.

Planted effect: the odds of any re-arrest within 365 days of the index date are
``ODDS_RATIO_LEAD`` (0.42) times as high for LEAD participants as for the
comparison group, adjusted for prior arrests, age and sex (see ``MODEL``).

Planted life outcomes (``synthetic/life.py``): case managers assess every participant about
monthly, from about a month before referral to 18 months after (irregular gaps, some months
skipped, none after the data end). At each assessment the log-odds of being housed, employed and
having income or benefits rise linearly with months since referral (``LIFE_LOGIT``), around a
random intercept per person. An assessment that finds the person housed multiplies their arrest
hazard by ``HOUSED_ARREST_RATE_RATIO`` (0.8) on each of the 91 days after it, compounding over
housed months running: the participant's number of re-arrests in the follow-up year stays the
re-arrest model's (so the 0.42 odds ratio holds) and only their days follow the hazard; later
background arrests are thinned by it. Case-manager contacts have no planted effect. About 4% of
statuses are recorded 'unknown' and 1% of assessments are entered twice under a second number.

Cohorts are built so that the pipeline's cohort rule finds exactly the true
ones when linkage is right: only LEAD people are referred, and the only
arrests with a LEAD-eligible charge in a comparison precinct inside the
program window belong to comparison people, on or after their index date.

Answers (no name, date of birth, SSN, address, phone or agency id in any of them):
  records.csv  contract, row_number (1-based data row of that contract's file),
               true_person_id: the true person behind every data row
  persons.csv  the LEAD and comparison people: cohort, index date, sex, race,
               ethnicity, age at index, arrests in the 365 days before index
  truth.json   the planted model and the true outcome aggregates per cohort and
               window, counted as marts.outcomes counts them; referrals by month.
               planted.life_outcomes: the assessment model (log_odds_at_referral,
               log_odds_per_month and odds_ratio_per_month per outcome housed /
               employed / income, person_intercept_sd: the within-person, conditional
               values a mixed-effects model estimates), population_averaged_log_odds_per_month
               (what a marginal GEE model over months -1..18 estimates),
               contacts_log_odds_per_contact (0: none planted), housed_arrest_rate_ratio
               and housed_effect_days (within-person: a model of arrests in the 91 days
               after an assessment with the person as a fixed or random effect recovers
               it), employed_ and income_arrest_rate_ratio (1: none planted)

Hardness: agencies write people the way real administrative data does, so linkage
meets what it meets in practice (rates are per record unless said otherwise; see
``VARIANT_RATES`` and the people section below):
  typos, case and punctuation        4% and 2%; guesses
  nicknames                          10% of records whose given name has one in the
                                     maintained ``nicknames`` dataset (a guess); each
                                     person has one nickname from that dataset, never
                                     from a hand list
  placeholder names                  1% of given names, 1% of surnames ("Unknown",
                                     "FNU"/"LNU", "Declined", "Resident", "Baby Boy"...)
                                     and 0.5% of given names cut to an initial (a guess)
  household member's birth date      1% of records of people who live with a relative
  blank birth date                   1%, in extracts whose contract lets dob be empty
                                     (police referrals, treatment clients)
  twins                              10% of the pairs of relatives living together (1.5%
                                     of people): same surname, address and birth date,
                                     different given names and SSNs
The 1% rates are pseudopeople's defaults for the same noise types (``use_fake_name``,
``copy_from_household_member``, ``leave_blank``: cell probability 0.01 in its
``ColumnNoiseType``); they are themselves its authors' choices, not measurements. About
3% of US births are twins (CDC NVSS, twin birth rate 31-33 per 1,000 births in
2014-2022); that both twins appear in one county's justice data is a guess.

Scale: people are generated in fixed blocks of ``BLOCK_PEOPLE``, each drawing
from its own random stream seeded by (seed, block number) and written before
the next block is built. Memory stays flat, and the output depends only on the
arguments of ``generate``.
"""

from __future__ import annotations

import time
from pathlib import Path

from tqdm import tqdm

from synthetic.answers import _Truth, _write_answers
from synthetic.arrays import _obj
from synthetic.blocks import _block
from synthetic.extracts import _AtomicCsv, _ExtractWriter
from synthetic.parameters import BLOCK_PEOPLE, DATA_END, PLACEHOLDER_NAMES, VARIANT_RATES
from synthetic.world import _World

__all__ = ["generate", "PLACEHOLDER_NAMES", "VARIANT_RATES"]


def generate(inbox_dir: Path, answers_dir: Path, people: int = 3000, seed: int = 7,
             lead: int = 203, comparison: int = 115, progress: bool = False) -> dict:
    """Write one extract per contract into ``inbox_dir/<agency>/`` and the truth into ``answers_dir``.

    Files are named by the contract's file pattern with the data end date as the stamp and appear
    only when complete (written as ``.part``, synced, renamed). Answers are finalized first, so the
    truth exists before any extract does.

    Returns an identifier-free summary: seed, people, cohort sizes, and rows per file.
    """
    started = time.monotonic()
    w = _World(people, seed, lead, comparison)
    inbox_dir, answers_dir = Path(inbox_dir), Path(answers_dir)
    stamp = DATA_END.strftime("%Y%m%d")
    writers: dict[str, _ExtractWriter] = {}
    opened: list[_AtomicCsv] = []
    truth = _Truth(w)
    bar = tqdm(total=people, unit="people", desc="synthetic", disable=not progress)
    rows_bar = tqdm(unit="rows", desc="extract rows", disable=not progress)
    try:
        records = _AtomicCsv(answers_dir / "records.csv", ["contract", "row_number", "true_person_id"])
        opened.append(records)
        for name, contract in w.contracts.items():
            writers[name] = _ExtractWriter(inbox_dir, contract, stamp)
            opened.append(writers[name])
        for b in range(-(-people // BLOCK_PEOPLE)):
            g0 = b * BLOCK_PEOPLE
            rows, P, events = _block(w, b, g0, min(BLOCK_PEOPLE, people - g0))
            tids = _obj(f"T{g + 1:0{w.tid_width}d}" for g in P.gid.tolist())
            written = 0
            for name, writer in writers.items():
                ident, plain, who = rows[name]
                start = writer.rows
                n = writer.write(ident, plain)
                records.write_columns([[name] * n, list(range(start + 1, start + n + 1)), tids[who].tolist()])
                written += n
            truth.add(P, events)
            bar.update(P.n)
            rows_bar.update(written)

        outcomes = truth.outcomes()
        _write_answers(w, answers_dir, truth, outcomes, {n: wr.rows for n, wr in writers.items()})
        records.commit()
        for writer in writers.values():
            writer.commit()
    except BaseException as exc:
        for writer in opened:
            writer.abort(exc)
        raise
    finally:
        bar.close()
        rows_bar.close()
    return {
        "seed": seed, "people": people, "lead": lead, "comparison": comparison,
        "files": {n: wr.rows for n, wr in writers.items()},
        "paths": {n: str(wr.path) for n, wr in writers.items()},
        "rows_total": sum(wr.rows for wr in writers.values()),
        "answers_dir": str(answers_dir),
        "seconds": round(time.monotonic() - started, 2),
    }
