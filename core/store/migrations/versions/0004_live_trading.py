"""live trading: tables and columns for live trading on AsterDex

``desk_install`` holds the install's client order id prefix; positions record how long they were
left without a resting stop (``naked_since_ms`` while it lasts, ``naked_ms`` in total); sessions
carry the live feed's status for the dashboard.

Revision ID: 0004
Revises: 0003
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "desk_install",
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("feed_status", sa.Text(), nullable=True))
    with op.batch_alter_table("positions") as batch:
        batch.add_column(sa.Column("naked_since_ms", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("naked_ms", sa.BigInteger(), nullable=False,
                                   server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("positions") as batch:
        batch.drop_column("naked_ms")
        batch.drop_column("naked_since_ms")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("feed_status")
    op.drop_table("desk_install")
