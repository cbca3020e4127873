"""The Jinja2 environment for the HTML pages the hub publishes (report, data dictionary).

Autoescape is on for every template, so a value from the data can never
become markup; templates live in ``transforms/templates/``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from transforms.notices import PART2_NOTICE

TEMPLATES_DIR = Path(__file__).with_name("templates")


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES_DIR), autoescape=True,
                      undefined=StrictUndefined, keep_trailing_newline=True)
    env.globals["PART2_NOTICE"] = PART2_NOTICE
    return env


def render(template: str, **values) -> str:
    return environment().get_template(template).render(**values)
