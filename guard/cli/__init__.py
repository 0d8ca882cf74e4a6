"""The ``guard`` command: one thin module per command or command group (parse, call, print), registered here.

serve (:mod:`~guard.cli.serve`), db (:mod:`~guard.cli.db`), models (:mod:`~guard.cli.models`), eval
(:mod:`~guard.cli.eval`), policy (:mod:`~guard.cli.policy` and its ``policy_*`` modules), audit
(:mod:`~guard.cli.audit`, ``audit_review``, ``audit_chain``) and keys (:mod:`~guard.cli.keys`). Heavy libraries
(torch, transformers, uvicorn) are imported inside the commands that need them, so ``guard --help`` stays quick.
"""

from __future__ import annotations

import os

import click

from guard.cli.audit import audit
from guard.cli.db import db
from guard.cli.eval import evaluate
from guard.cli.keys import keys
from guard.cli.models import models
from guard.cli.policy import policy
from guard.cli.serve import serve

__all__ = ["main"]


@click.group()
@click.version_option(package_name="guard")
def main() -> None:
    """guard: a responsible-AI safety gateway around Gemma-2."""
    # Before torch loads: OpenMP's busy-wait policy makes decode ~10x slower on small CPUs.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # presidio's email/URL recognizers use tldextract, which tries the network first without this.
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")


for _command in (serve, db, models, evaluate, policy, keys, audit):
    main.add_command(_command)
