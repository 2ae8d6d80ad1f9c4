"""outbox entries Kafka keeps refusing are parked (`parked_at`), not retried forever

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04

Downgrading drops the column: entries parked until then are queued again (and retried forever
by a receiver of the former revision).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parked_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("parked_at")
