"""bars: volume may be missing (indices); bar_revisions keeps the values a revision replaced

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("bars", schema=None) as batch_op:
        batch_op.alter_column("volume", existing_type=sa.Float(), nullable=True)
    op.create_table(
        "bar_revisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("symbol", sa.String(length=40), nullable=False),
        sa.Column("interval", sa.String(length=16), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("open", sa.Float(), nullable=False),
        sa.Column("high", sa.Float(), nullable=False),
        sa.Column("low", sa.Float(), nullable=False),
        sa.Column("close", sa.Float(), nullable=False),
        sa.Column("volume", sa.Float(), nullable=True),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("revised_by", sa.String(length=32), nullable=False),
        sa.Column("revised_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("bar_revisions", schema=None) as batch_op:
        batch_op.create_index("ix_bar_revisions_bar", ["symbol", "interval", "time"], unique=False)


def downgrade() -> None:
    """Bars without a volume cannot go back to NOT NULL: they get 0, the old convention."""
    with op.batch_alter_table("bar_revisions", schema=None) as batch_op:
        batch_op.drop_index("ix_bar_revisions_bar")
    op.drop_table("bar_revisions")
    op.execute("UPDATE bars SET volume = 0 WHERE volume IS NULL")
    with op.batch_alter_table("bars", schema=None) as batch_op:
        batch_op.alter_column("volume", existing_type=sa.Float(), nullable=False)
