"""Review items, decisions, and the hash-chained audit log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def upgrade() -> None:
    op.create_table(
        "review_items",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("model", sa.String(100), nullable=False),
        sa.Column("modality", sa.String(20), nullable=False),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("risk", sa.Float, nullable=False),
        sa.Column("request", sa.JSON, nullable=False),
        sa.Column("artifact", sa.JSON, nullable=False),
        sa.Column("findings", sa.JSON, nullable=False),
        sa.Column("key_id", sa.Integer, sa.ForeignKey("api_keys.id"), nullable=True),
        sa.Column("webhook", sa.String(500), nullable=True),
        sa.Column("claimed_by", sa.String(100), nullable=True),
        sa.Column("released", sa.JSON, nullable=True),
    )
    op.create_index("ix_review_items_created_at", "review_items", ["created_at"])
    op.create_index("ix_review_items_state", "review_items", ["state"])
    op.create_table(
        "review_decisions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("item_id", sa.String(40), sa.ForeignKey("review_items.id"), nullable=False),
        sa.Column("reviewer", sa.String(100), nullable=False),
        sa.Column("verdict", sa.String(20), nullable=False),
        sa.Column("reason_code", sa.String(60), nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("edited", sa.JSON, nullable=True),
        sa.Column("seconds_spent", sa.Float, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_review_decisions_item_id", "review_decisions", ["item_id"])
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("item_id", sa.String(40), nullable=True),
        sa.Column("from_state", sa.String(20), nullable=True),
        sa.Column("to_state", sa.String(20), nullable=True),
        sa.Column("payload_hash", sa.String(64), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_events_item_id", "audit_events", ["item_id"])
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("last_seq", sa.Integer, nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "last_seq": 0, "last_hash": GENESIS}])


def downgrade() -> None:
    op.drop_table("audit_head")
    op.drop_table("audit_events")
    op.drop_table("review_decisions")
    op.drop_table("review_items")
