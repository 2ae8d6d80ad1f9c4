"""live_aggregates: running live metrics per model and day, updated per new outcome

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04

Outcomes get `aggregated` (false for those already stored: the first live-metric snapshot after
the upgrade counts them, once) and a partial index over those not counted yet. Downgrading drops
the tables and the column: the snapshots of the former revision recompute everything anyway.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outcomes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("aggregated", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.create_index(
        "ix_outcomes_unaggregated",
        "outcomes",
        ["model_key", "bar_time"],
        unique=False,
        sqlite_where=sa.text("aggregated = 0"),
        postgresql_where=sa.text("NOT aggregated"),
    )
    op.create_table(
        "live_aggregates",
        sa.Column("model_key", sa.String(length=120), nullable=False),
        sa.Column("bucket", sa.String(length=10), nullable=False),
        sa.Column("target", sa.String(length=16), nullable=False),
        sa.Column("interval", sa.String(length=16), nullable=False),
        sa.Column("segment", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model_key", "bucket"),
    )
    op.create_index("ix_live_aggregates_bucket", "live_aggregates", ["bucket"], unique=False)
    op.create_table(
        "live_aggregate_state",
        sa.Column("name", sa.String(length=16), nullable=False),
        sa.Column("cost_bps", sa.Float(), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("live_aggregate_state")
    op.drop_index("ix_live_aggregates_bucket", table_name="live_aggregates")
    op.drop_table("live_aggregates")
    op.drop_index("ix_outcomes_unaggregated", table_name="outcomes")
    with op.batch_alter_table("outcomes", schema=None) as batch_op:
        batch_op.drop_column("aggregated")
