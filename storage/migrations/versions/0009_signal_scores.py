"""signal_scores: each signal stores the score its action was decided on and the thresholds

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-04

Signal schema_version 2 (`score`, `buy_threshold`, `sell_threshold`); nullable, so the signals
stored before it (schema_version 1) stay as they are. Downgrading drops the three columns.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("score", "buy_threshold", "sell_threshold")


def upgrade() -> None:
    with op.batch_alter_table("signals") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("signals") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
