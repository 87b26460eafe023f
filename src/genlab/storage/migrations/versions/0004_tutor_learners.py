"""Tutor learners: each learner's state (mastery per skill) and every answer they gave.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "learners",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("course", sa.String(100), nullable=False),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "learner_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "learner_id", sa.String(100), sa.ForeignKey("learners.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("skill", sa.String(100), nullable=False),
        sa.Column("item_id", sa.String(100), nullable=False),
        sa.Column("correct", sa.Boolean, nullable=False),
        sa.Column("mastery_before", sa.Float, nullable=False),
        sa.Column("mastery_after", sa.Float, nullable=False),
    )
    op.create_index("ix_learner_events_learner_id", "learner_events", ["learner_id"])


def downgrade() -> None:
    op.drop_table("learner_events")
    op.drop_table("learners")
