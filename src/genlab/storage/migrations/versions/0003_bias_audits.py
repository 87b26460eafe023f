"""Bias audits.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bias_audits",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model", sa.String(100), nullable=False),
        sa.Column("suite", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("gap", sa.Float, nullable=False),
        sa.Column("headline", sa.JSON, nullable=False),
        sa.Column("path", sa.String(500), nullable=False),
    )
    op.create_index("ix_bias_audits_created_at", "bias_audits", ["created_at"])
    op.create_index("ix_bias_audits_model", "bias_audits", ["model"])


def downgrade() -> None:
    op.drop_table("bias_audits")
