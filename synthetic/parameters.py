"""The synthetic county's fixed numbers and word lists: rates, cohort model, id schemes, names."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import numpy as np

TRANSFORMS_DIR = Path(__file__).resolve().parent.parent / "transforms"
EVALUATION_FILE = TRANSFORMS_DIR / "evaluation.yaml"
OFFENSE_CODES_FILE = TRANSFORMS_DIR / "reference" / "offense_codes.csv"

DATA_START = date(2020, 1, 1)
DATA_END = date(2024, 12, 31)
BLOCK_PEOPLE = 10_000          # part of the output's definition: each block has its own stream
FOLLOW_UP_DAYS = 365           # the window of the planted model

NONE, LEAD, COMPARISON = 0, 1, 2
COHORT_NAMES = {NONE: "none", LEAD: "lead", COMPARISON: "comparison"}

# --- the planted outcome model ---------------------------------------------------------------
# logit P(any arrest in (index, index+365]) = intercept + any_prior_365*[prior arrests > 0]
#   + age_per_decade*(age_at_index - 35)/10 + male*[sex == M] + lead*[LEAD]
# The intercept is solved for at run time so the comparison group re-arrests at
# TARGET_COMPARISON_REARREST.
ODDS_RATIO_LEAD = 0.42
TARGET_COMPARISON_REARREST = 0.60
MODEL = {"any_prior_365": 0.9, "age_per_decade": -0.25, "male": 0.3, "lead": math.log(ODDS_RATIO_LEAD)}
EXTRA_REARRESTS_MEAN = 0.8      # re-arrested people have 1 + Poisson(0.8) arrests in the year
# P(0..4 arrests in the 365 days before index); LEAD people carry slightly more history.
PRIOR_ARRESTS_P = {LEAD: (0.30, 0.30, 0.20, 0.12, 0.08), COMPARISON: (0.38, 0.30, 0.17, 0.10, 0.05)}

# --- volumes -------------------------------------------------------------------------------------
MEAN_ARRESTS = 2.5              # background arrests per person over the data period (gamma-Poisson)
ARREST_SPREAD = 1.0             # gamma shape: smaller means a more concentrated "frequent flyer" tail
CHARGES_P = (0.50, 0.32, 0.18)  # 1, 2 or 3 charges per arrest
HOME_PRECINCT_SHARE = 0.7       # arrests in the person's usual precinct
PRECINCT_WEIGHTS = {"NORTH": 0.22, "SOUTH": 0.22, "EAST": 0.15, "WEST": 0.15, "CENTRAL": 0.26}
BOOKED_SHARE = 0.8
EXTRA_BOOKINGS = 0.10           # warrant and other-agency bookings, per arrest booking
PROSECUTOR_SHARE = 0.6
EXTRA_CASES = 0.05              # prosecutor cases with no police arrest, per referred arrest
SECOND_REFERRAL_SHARE = 0.22
REFERRAL_TYPES = {"arrest_diversion": 0.55, "social_contact": 0.35, "community": 0.10}
REFERRAL_CATEGORY = {            # offense_category of the conduct behind a referral (None = not recorded)
    "arrest_diversion": {"drug": 0.72, "public_order": 0.28},
    "social_contact": {"drug": 0.40, "public_order": 0.20, "property": 0.10, "other": 0.10, None: 0.20},
    "community": {None: 0.60, "other": 0.20, "drug": 0.20},
}
OFFICERS = 150
WARRANT_CODES = {"OTH01": 0.5, "OTH03": 0.2}   # charges of extra bookings; the rest as arrests
OTHER_CLIENTS = 0.004           # share of non-LEAD people who are treatment clients on their own
CONTACTS_PER_DAY = 0.1          # about three service contacts a month while an episode is open
SERVICE_TYPES = {"case_management": 0.55, "housing": 0.15, "sud_treatment": 0.12,
                 "mental_health": 0.12, "benefits": 0.06}
CLIENT_SOURCES = {"self": 0.40, "court": 0.35, "other": 0.25}
# No 'deceased': a dead client would go on being arrested in these data.
EXIT_REASONS = {"completed": 0.36, "disengaged": 0.36, "moved": 0.10, "incarcerated": 0.10, "other": 0.08}
CONSENT = {"active": 0.85, "revoked": 0.06, "expired": 0.05, "none": 0.04}
DECISIONS = ("filed", "declined", "diverted", "pending")
DECISION_P = (0.58, 0.25, 0.07, 0.10)
DECISION_P_LEAD = (0.36, 0.22, 0.32, 0.10)    # LEAD participants' cases after their index date
DISPOSITIONS = ("convicted", "dismissed", "acquitted", "pending")
DISPOSITION_P = (0.60, 0.25, 0.05, 0.10)

# --- case managers' assessments: housing, employment, income --------------------------------------
# The University of Washington LEAD evaluation (Clifasefi, Lonczak & Collins, housing, employment and
# income/benefits report, 2016; Crime & Delinquency, 2017) followed participants month by month over
# the 18 months after referral against the month before it: they became more likely to be housed,
# employed and to have legitimate income or benefits, and attaining housing went with fewer later
# arrests. The sizes below only share that direction; they are illustrative, not its estimates.
#
# Each assessment reports the person's status when it was made. For outcome k, with t the months
# (DAYS_PER_MONTH days) from the referral to the assessment and u_k a person's own intercept
# drawn once, N(0, LIFE_PERSON_SD):  logit P(k) = LIFE_LOGIT[k][0] + LIFE_LOGIT[k][1] * t + u_k.
DAYS_PER_MONTH = 30.4375
LIFE_LOGIT = {                   # (log-odds at referral, log-odds per month since referral)
    "housed": (-1.2, 0.08),      # ~23% housed at referral; odds x4.2 over 18 months
    "employed": (-2.2, 0.05),    # ~10% employed at referral; odds x2.5 over 18 months
    "income": (-0.6, 0.06),      # ~35% with income or benefits at referral; odds x2.9
}
LIFE_PERSON_SD = 1.0             # SD of each person's intercept, log-odds; drawn per outcome, independent
# How a status is written: (share of the 'yes' side, its categories), (the 'no' side, its categories).
HOUSING_STATUS = ({"transitional": 0.55, "permanent": 0.45}, {"street": 0.6, "shelter": 0.4})
EMPLOYMENT_STATUS = ({"part_time": 0.6, "full_time": 0.4}, {"unemployed": 0.75, "unable_to_work": 0.25})
INCOME_WITH_WORK = {"employment": 0.6, "both": 0.4}   # income, and employed; otherwise 'benefits'
CONTACTS_LOG_ODDS = 0.0          # no planted effect of case-manager contacts on any outcome
# Being housed lowers arrests: an assessment that finds the person housed multiplies their arrest
# hazard by HOUSED_ARREST_RATE_RATIO on each of the HOUSED_EFFECT_DAYS days after it; the effects
# of successive housed assessments multiply (three housed months running: 0.8^3 = 0.51).
# Employment and income have no planted effect on arrests.
HOUSED_ARREST_RATE_RATIO = 0.8
HOUSED_EFFECT_DAYS = 91
# When case managers assess: the first 15-45 days before referral, then about monthly (gaps of
# N(30, 7) days, at least 14), a month skipped now and then, until 18 months and 45 days after.
ASSESS_FIRST_DAYS = (15, 45)
ASSESS_GAP_DAYS = (30.0, 7.0)
ASSESS_SKIP_SHARE = 0.12
ASSESS_UNTIL_DAYS = 593
UNKNOWN_STATUS_SHARE = 0.04      # per status: recorded as 'unknown'
DUPLICATE_ASSESSMENT_SHARE = 0.01   # entered twice, under a second assessment number

# --- people --------------------------------------------------------------------------------------
SEX_P = {"M": 0.72, "F": 0.27, "X": 0.01}
RACE_P = {"WHITE": 0.46, "BLACK": 0.30, "ASIAN": 0.08, "NATIVE": 0.06, "PACIFIC": 0.03, "OTHER": 0.07}
HISPANIC_SHARE = 0.16
HOUSEHOLD_SHARE = 0.15          # people living with a relative of the same surname
TWIN_SHARE = 0.10               # of those pairs: twins, born on the same day (see the docstring)
HOMELESS_SHARE, SHELTER_SHARE = 0.08, 0.04
PHONE_SHARE = 0.85
MIDDLE_INITIAL_SHARE = 0.7
COMPOUND_SURNAME = {"hispanic": 0.30, "other": 0.01}   # gives ~5% of people a compound surname

# --- how agencies record people ------------------------------------------------------------------
# Rates per record (a referral, arrest, booking, case or client). Agencies copy most records from
# their own master record of the person, which was itself typed with these rates, and retype the
# rest, so one agency id usually but not always carries one spelling.
RETYPED_SHARE = 0.2
VARIANT_RATES = {
    "typo": 0.04,               # substitution, transposition, deletion or insertion in a name
    "nickname": 0.10,           # of records whose given name has a nickname in the dataset
    "placeholder_first": 0.01,  # given name recorded as 'Unknown', 'FNU', 'Baby Boy'...
    "placeholder_last": 0.01,   # surname recorded as 'Unknown', 'LNU', 'Resident'...
    "initial_only": 0.005,      # given name cut to its first letter
    "household_dob": 0.01,      # of records of people living with a relative: the relative's dob
    "dob_missing": 0.01,        # blank birth date, where the extract's contract allows one
    "middle_initial": 0.03,     # given name recorded as 'John Q'
    "compound": 0.25,           # of records of compound surnames: 'Garcia Lopez', 'Garcia' or 'Lopez'
    "swap_names": 0.01,         # first and last name swapped
    "swap_dob": 0.02,           # day and month of birth swapped (only possible when day <= 12)
    "ssn_missing": 0.25,
    "format": 0.02,             # case, whitespace or punctuation ('O'Brien' vs 'OBRIEN')
    "race_unknown": 0.03,
    "ethnicity_unknown": 0.04,
}
DUPLICATE_ID_SHARE = 0.04       # of people with 2+ records in an agency: registered twice there
DUPLICATE_AGENCIES = ("police", "jail", "prosecutor")
# Each agency's own conventions: case, accents and apostrophes, SSN layout, how "no address" reads.
AGENCY_STYLE = {
    "police": {"upper_first": False, "upper_last": False, "upper_address": False, "ascii": False,
               "ssn_dashes": True, "homeless": "TRANSIENT"},
    "jail": {"upper_first": True, "upper_last": True, "upper_address": True, "ascii": True,
             "ssn_dashes": False, "homeless": "HOMELESS"},
    "prosecutor": {"upper_first": False, "upper_last": True, "upper_address": True, "ascii": True,
                   "ssn_dashes": True, "homeless": "NO FIXED ADDRESS"},
    "treatment": {"upper_first": False, "upper_last": False, "upper_address": False, "ascii": False,
                  "ssn_dashes": True, "homeless": "No fixed address"},
}
# Person numbers: prefix and digits. Numbers are scrambled so they say nothing about order.
PERSON_ID_SCHEMES = {"police": ("P", 7), "prosecutor": ("D", 6), "jail": ("J", 8), "treatment": ("C", 5)}
RECORD_ID_SCHEMES = {"referral": ("R", 6), "arrest": ("A", 8), "booking": ("B", 8), "case": ("K", 7),
                     "episode": ("E", 6), "contact": ("S", 8), "assessment": ("V", 7)}

# --- name pools (roughly by frequency, most common first) --------------------------------------------
# No name equals a code value of any extract (race WHITE or BLACK, say), so checking that no
# identifier value leaks into other columns or files is never ambiguous.
MALE_NAMES = """James Michael Robert John David William Richard Joseph Thomas Christopher Charles
Daniel Matthew Anthony Mark Donald Steven Andrew Paul Joshua Kenneth Kevin Brian Timothy Ronald
George Jason Edward Jeffrey Ryan Jacob Nicholas Gary Eric Jonathan Stephen Larry Justin Scott
Brandon Benjamin Samuel Gregory Alexander Patrick Frank Raymond Jack Dennis Jerry Tyler Aaron
José Adam Nathan Henry Zachary Douglas Peter Kyle Noah Ethan Jeremy Christian Walter Keith Austin
Roger Terry Sean Gerald Carl Dylan Harold Jordan Jesse Bryan Lawrence Arthur Gabriel Bruce Logan
Billy Joe Albert Willie Alan Juan Elijah Wayne Randy Vincent Roy Eugene Russell Bobby Louis Philip
Carlos Luis Miguel Jesús Francisco Alejandro Antonio Manuel Ricardo Marcus Andre Darnell Tyrone
Jamal Malik Terrell DeShawn Dmitri Minh Tuan Hung Wei Jin Hiroshi Sione Tavita""".split()
FEMALE_NAMES = """Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Lisa Nancy
Margaret Sandra Ashley Kimberly Emily Donna Michelle Carol Amanda Melissa Deborah Stephanie
Dorothy Rebecca Sharon Laura Cynthia Amy Kathleen Angela Shirley Brenda Emma Anna Pamela Nicole
Samantha Katherine Christine Helen Debra Rachel Carolyn Janet Maria Catherine Heather Diane Olivia
Julie Joyce Victoria Ruth Virginia Lauren Kelly Christina Joan Evelyn Judith Andrea Hannah Megan
Cheryl Jacqueline Martha Madison Teresa Gloria Sara Janice Ann Kathryn Abigail Sophia Frances Jean
Alice Judy Isabella Julia Grace Amber Denise Danielle Marilyn Beverly Charlotte Natalie Theresa
Diana Brittany Doris Kayla Alexis Lori Marie Guadalupe Rosa Ana Carmen Yolanda Lucía Alejandra
Keisha Latoya Tamika Shanice Ebony Aaliyah Mai Linh Mei Yuki Leilani Winona""".split()
SURNAMES = """Smith Johnson Williams Brown Jones Miller Davis Wilson Anderson Taylor Thomas Moore
Jackson Martin Lee Thompson Whitaker Harris Clark Lewis Robinson Walker Young Allen King Wright Scott
Hill Green Adams Baker Nelson Carter Mitchell Roberts Turner Phillips Campbell Parker Evans
Edwards Collins Stewart Morris Murphy Cook Rogers Morgan Peterson Cooper Reed Bailey Bell Kelly
Howard Ward Cox Richardson Wood Watson Brooks Bennett Gray Hughes Price Sanders Myers Long Ross
Foster Powell Jenkins Perry Russell Sullivan Fisher Henderson Coleman Simmons Patterson Jordan
Reynolds Hamilton Graham Wallace Weston Cole Hayes Bryant Gibson Ellis Stevens Murray Ford Marshall
Owens McDonald Harrison Kennedy Wells Dixon Robertson Blackwell Daniels Palmer Mills Hunt Warren
Knight Ferguson Rose Stone Hawkins Dunn Perkins Hudson Spencer Stephens Pierce Holmes Greene
Barnes Fox Hart Freeman Wagner Weaver Carroll Duncan Snyder Franklin Lawson Fields Burke
Washington Jefferson Banks Mack Battle O'Brien O'Neil O'Connor D'Angelo McCarthy MacKenzie
St._John Van_Dyke Nguyen Tran Pham Le Huynh Vo Kim Park Choi Chen Wang Li Zhang Liu Wong Chan
Yamamoto Tanaka Sato Patel Singh Shah Kaur Ali Khan Ahmed Hassan Mohamed Abdi Yusuf Tesfaye Haile
Ivanov Petrov Kowalski Nowak Schmidt Muller Olsen Larsen Johansson Lindqvist Horvath Begay Yazzie
Tsosie Whitehorse Redcloud Sampson Tafuna Fonoti Kealoha Fifita""".split()
HISPANIC_SURNAMES = """Garcia Rodriguez Martinez Hernandez Lopez Gonzalez Perez Sanchez Ramirez
Torres Flores Rivera Gomez Diaz Reyes Morales Cruz Ortiz Gutierrez Chavez Ramos Ruiz Alvarez
Mendoza Vasquez Castillo Jimenez Moreno Romero Herrera Medina Aguilar Vargas Guzman Mendez Castro
Salazar Delgado Soto Contreras Peña Muñoz Ibáñez Núñez Rojas Espinoza Silva Sandoval Cabrera
Fuentes Valdez Acosta Campos De_La_Cruz Del_Rio Navarro Cervantes Villanueva Zamora Orozco""".split()
# Multi-word surnames are written with '_' above so that split() keeps them whole.
SURNAMES = [s.replace("_", " ") for s in SURNAMES]
HISPANIC_SURNAMES = [s.replace("_", " ") for s in HISPANIC_SURNAMES]
# What agencies write when they do not know a name. Every placeholder is marked as such here so
# tests can tell them from identifiers: they identify nobody and may equal a code value
# ('UNKNOWN', 'declined').
PLACEHOLDER_FIRST = ("Unknown", "FNU", "Declined", "Refused", "None Given")
PLACEHOLDER_FIRST_BY_SEX = {"M": "Baby Boy", "F": "Baby Girl"}
# Not 'Doe' alone: it is a real surname; 'John Doe' is the convention, for a wholly unknown man.
PLACEHOLDER_LAST = ("Unknown", "LNU", "Declined", "Resident", "Last Name")
PLACEHOLDER_NAMES = frozenset(PLACEHOLDER_FIRST + PLACEHOLDER_LAST
                              + tuple(PLACEHOLDER_FIRST_BY_SEX.values()))
MIDDLE_INITIALS = "ABCDEFGHIJKLMNOPRSTW"
STREETS = """Main Oak Pine Maple Cedar Elm Washington Lake Hill Park Jefferson Madison Lincoln
Jackson Union Market Pike Yesler Cherry Spruce Alder Broadway Rainier Aurora Fremont Ballard
Beacon Delridge Holly Juniper Willow Birch Ash Columbia Marion Spring Seneca University Harrison
Mercer""".split()
STREET_SUFFIXES = ("St", "Ave", "Way", "Pl", "Blvd", "Rd", "Dr", "Ct", "Ln")
STREET_DIRECTIONS = ("", "", "", "N ", "S ", "NE ", "SW ")
SHELTERS = ("77 S Washington St", "1902 2nd Ave", "2515 Western Ave", "318 2nd Ave Ext S",
            "1561 Alaskan Way S", "600 4th Ave")
AREA_CODES = ("206", "253", "360", "425")

EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
NULL_DAY = np.iinfo(np.int64).min      # missing date / timestamp in the int arrays below
SSN_SPACE = 898 * 99 * 9999            # areas 001-665 and 667-899, groups 01-99, serials 0001-9999

# Relative frequency of each code among arrest charges (codes not listed get weight 2).
OFFENSE_WEIGHTS = {"DRG01": 12, "DRG02": 8, "DRG03": 4, "DRG04": 2, "PRS01": 3, "PRS02": 2,
                   "POR01": 8, "POR02": 6, "POR03": 3, "POR04": 4, "PRP01": 10, "PRP02": 3,
                   "PRP03": 2, "PRP04": 4, "PRP05": 2, "PER01": 6, "PER02": 2, "PER03": 1,
                   "PER04": 3, "OTH01": 8, "OTH02": 6, "OTH03": 4}
